"""The helpdesk bridge's promises about identity: a partner that has a user is never replaced
by the mail gateway, and only the verified domains of a customer that is still connected vouch
for an address (never domains guessed from contact addresses, never public mailbox domains)."""

from odoo.tests import new_test_user

from .common import CONTOSO_ID, FABRIKAM_ID, user
from .test_helpdesk import HelpdeskCase


class TestUsersStayRequesters(HelpdeskCase):
    """Odoo's mail gateway picks a partner that has a user first: the bridge keeps it."""

    def setUp(self):
        super().setUp()
        self.connect()
        self.adele = self.contact("adele.vance@contoso.example")
        self.assertTrue(self.adele.azure_ad_synced)

    def assert_requester(self, ticket, partner):
        self.assertEqual(ticket.partner_id, partner)
        self.assertEqual(ticket.message_ids[:1].author_id, partner)

    def test_mail_from_the_address_of_a_user_stays_with_that_user(self):
        for groups, login in (("base.group_portal", "adele_portal"), ("base.group_user", "adele_employee")):
            with self.subTest(login=login):
                login_user = new_test_user(
                    self.env, login=login, groups=groups, email="Adele.Vance@contoso.example"
                )
                ticket = self.receive("Adele Vance <adele.vance@contoso.example>")
                self.assert_requester(ticket, login_user.partner_id)
                self.assertFalse(ticket.azure_ad_synced)
                self.assertNotIn(self.adele, ticket.message_partner_ids)
                # Later syncs leave it so.
                self.integration.sync_contacts()
                self.assertEqual(ticket.partner_id, login_user.partner_id)
                login_user.active = False

    def test_a_partner_whose_login_was_archived_is_not_replaced_either(self):
        former = new_test_user(
            self.env, login="hire_former", groups="base.group_portal", email="new.hire@contoso.example"
        )
        former.active = False
        # Not synced yet: Odoo's gateway finds the partner by its address.
        ticket = self.receive("new.hire@contoso.example")
        self.assert_requester(ticket, former.partner_id)
        self.assertEqual(ticket.azure_ad_requester_match, "gateway")
        # The person is (again) in the tenant: the sync imports a contact, and leaves the ticket.
        self.fake.add_user(CONTOSO_ID, user("new-hire-1", "new.hire@contoso.example", "New", "Hire"))
        self.integration.sync_contacts()
        self.assertTrue(self.contact("new.hire@contoso.example").azure_ad_synced)
        self.assertEqual(ticket.partner_id, former.partner_id)

    def test_a_synced_contact_with_a_login_that_does_not_qualify_stays_odoos_pick(self):
        """A contact synced under another customer, given a portal login there: its address is
        not verified by its tenant, but the login makes it a signed-in identity, which Odoo's
        gateway picks first; the bridge does not take it away."""
        fabrikam, _integration = self.add_customer(
            "Alpine Ski House", users=[user("ad-fab-1", "ceo@contoso.example", "Fake", "CEO")]
        )
        forged = self.contacts(fabrikam)
        login = new_test_user(
            self.env,
            login="alpine_ceo",
            groups="base.group_portal",
            partner_id=forged.id,
            name=forged.name,
            email=forged.email,
        )
        self.assertEqual(login.partner_id, forged)
        ticket = self.receive("ceo@contoso.example")
        self.assert_requester(ticket, forged)

    def test_a_synced_contact_given_a_login_is_its_own_requester(self):
        new_test_user(
            self.env,
            login="adele_synced_portal",
            groups="base.group_portal",
            partner_id=self.adele.id,
            name=self.adele.name,
            email=self.adele.email,
        )
        ticket = self.receive("adele.vance@contoso.example")
        self.assert_requester(ticket, self.adele)
        self.assertEqual(ticket.commercial_partner_id, self.customer)


class TestVerifiedDomains(HelpdeskCase):
    def test_a_disconnected_customer_vouches_for_no_address(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        self.integration.action_disconnect()
        self.assertRecordValues(
            self.integration,
            [{"email_domains": False, "email_domains_source": False, "email_domains_date": False}],
        )
        ticket = self.receive("adele.vance@contoso.example")
        self.assertFalse(ticket.partner_id)
        self.assertNotEqual(ticket.message_ids[:1].author_id, adele)
        self.assertFalse(ticket.azure_ad_suggested_customer_id)
        # Connected again: the verified domains are read again, and mail finds Adele.
        self.connect()
        self.assertEqual(self.integration.email_domains_source, "graph")
        self.assertEqual(self.receive("adele.vance@contoso.example").partner_id, adele)

    def test_an_excluded_customer_vouches_for_no_address_until_included_again(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        self.integration.excluded = True
        ticket = self.receive("adele.vance@contoso.example")
        self.assertFalse(ticket.partner_id)
        self.assertFalse(ticket.azure_ad_suggested_customer_id)
        self.integration.excluded = False
        self.assertEqual(self.receive("adele.vance@contoso.example").partner_id, adele)

    def test_domains_of_contact_addresses_never_outvote_a_verified_domain(self):
        """Alpine Ski House's tenant gives no verified domains (no Domain.Read.All): the
        domains of its contacts' addresses stand in, contoso.example among them (a user with
        an address of Contoso's). That guess must not cancel Contoso's verified domain."""
        self.connect()
        self.fake.add_fault(kind="malformed", target="domains", tenant=FABRIKAM_ID, count=None)
        alpine, alpine_integration = self.add_customer(
            "Alpine Ski House",
            users=[
                user("ad-fab-1", "partner.contact@contoso.example", "Partner", "Contact"),
                user("ad-fab-2", "ann@alpineskihouse.example", "Ann", "Alpine"),
            ],
        )
        self.assertEqual(alpine_integration.email_domains_source, "contacts")
        self.assertEqual(alpine_integration.email_domains, "alpineskihouse.example contoso.example")
        self.assertEqual(
            self.receive("new.hire@contoso.example").azure_ad_suggested_customer_id, self.customer
        )
        # Where no tenant verified the domain, the guess still suggests its customer.
        self.assertEqual(self.receive("bob@alpineskihouse.example").azure_ad_suggested_customer_id, alpine)

    def test_public_mailbox_domains_are_never_a_customers(self):
        self.fake.add_fault(kind="malformed", target="domains", count=None)
        self.set_users(
            [
                user("u-1", "ann@libero.it", "Ann"),
                user("u-2", "bob@free.fr", "Bob"),
                user("u-3", "carl@163.com", "Carl"),
                user("u-4", "dan@yahoo.co.jp", "Dan"),
                user("u-5", "eve@online.de", "Eve"),
                user("u-6", "dora@contoso.example", "Dora"),
            ]
        )
        self.connect()
        self.assertEqual(self.integration.email_domains, "contoso.example")
        self.assertFalse(self.receive("someone@libero.it").azure_ad_suggested_customer_id)
