"""The helpdesk bridge (azure_ad_contacts_helpdesk) with OCA's real helpdesk_mgmt: tickets from
the mail gateway, the portal and the form land on the synced contact and its customer."""

import re
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import polib

from odoo.exceptions import AccessError, UserError
from odoo.tests import Form, HttpCase, new_test_user, tagged

from scripts import i18n

from .common import CONTOSO_ID, FABRIKAM_ID, AzureAdCase, FakeTenantMixin, user

BRIDGE = Path(__file__).resolve().parent.parent / "azure_ad_contacts_helpdesk"


def rfc822(sender, subject="Printer on fire", body="The printer on floor 2 is on fire again."):
    """An incoming email as the mail gateway receives it (bytes, RFC 822)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "support@msp.example"
    message["Subject"] = subject
    message["Message-Id"] = make_msgid(domain="mail.contoso.example")
    message.set_content(body)
    return message.as_bytes()


class HelpdeskCase(AzureAdCase):
    test_module = "azure_ad_contacts_helpdesk"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Ticket = cls.env["helpdesk.ticket"]
        cls.agent = new_test_user(
            cls.env, login="hd_agent", groups="base.group_user,helpdesk_mgmt.group_helpdesk_user"
        )

    def receive(self, sender, **kwargs):
        ticket_id = self.env["mail.thread"].message_process("helpdesk.ticket", rfc822(sender, **kwargs))
        self.assertTrue(ticket_id, "the mail gateway created no ticket")
        return self.Ticket.browse(ticket_id)

    def add_customer(self, name, tenant_id=FABRIKAM_ID, users=(), **tenant):
        """Another customer, connected to its own tenant (the fake's Fabrikam by default)."""
        customer = self.env["res.partner"].create({"name": name, "is_company": True})
        integration = self.env["azure.ad.integration"].create({"partner_id": customer.id})
        self.fake.put_tenant({**self.fake.tenant(tenant_id), "users": list(users), **tenant})
        self.connect(integration, tenant_id)
        return customer, integration

    def partners_with(self, email):
        return (
            self.env["res.partner"]
            .with_context(active_test=False)
            .search([("email_normalized", "=", email.lower())])
        )


class TestHelpdeskMail(HelpdeskCase):
    def test_mail_from_a_synced_user_lands_on_the_contact_and_its_customer(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        ticket = self.receive("Adele Vance <adele.vance@contoso.example>")
        self.assertRecordValues(
            ticket,
            [
                {
                    "partner_id": adele.id,
                    "commercial_partner_id": self.customer.id,
                    "partner_name": "Adele Vance",
                    "azure_ad_synced": True,
                    "azure_ad_suggested_customer_id": False,
                    "name": "Printer on fire",
                }
            ],
        )
        self.assertIn("on fire again", str(ticket.description))
        self.assertEqual(ticket.message_ids[:1].author_id, adele)
        # An address is no identity: the ticket says how its requester was found.
        self.assertEqual(ticket.azure_ad_requester_match, "email")
        self.assertIn("o_azure_ad_matched_by_email", self.Ticket.get_view(view_type="form")["arch"])

    def test_case_and_blank_variants_of_the_address(self):
        # Existing before the first sync, with blanks and capitals: the sync links it and
        # keeps its email as typed; mail from the plain address must still find it.
        typed = self.env["res.partner"].create(
            {"name": "Lynne R.", "parent_id": self.customer.id, "email": "  LYNNE.Robbins@Contoso.EXAMPLE "}
        )
        self.connect()
        self.assertTrue(typed.azure_ad_synced)
        adele = self.contact("adele.vance@contoso.example")
        for sender, contact in [
            ("ADELE.VANCE@CONTOSO.EXAMPLE", adele),
            ('"Vance, Adele" <Adele.Vance@Contoso.Example>', adele),
            ("lynne.robbins@contoso.example", typed),
            ("Lynne <Lynne.ROBBINS@contoso.example>", typed),
        ]:
            with self.subTest(sender=sender):
                ticket = self.receive(sender)
                self.assertEqual(ticket.partner_id, contact)
                self.assertEqual(ticket.commercial_partner_id, self.customer)

    def test_the_synced_contact_wins_over_other_partners_with_the_address(self):
        # An older, stray partner with the same address (e.g. created by hand before the
        # customer was connected): Odoo's gateway alone would pick either.
        stray = self.env["res.partner"].create({"name": "A. Vance", "email": "adele.vance@contoso.example"})
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        self.assertNotEqual(stray, adele)
        ticket = self.receive("adele.vance@contoso.example")
        self.assertEqual(ticket.partner_id, adele)
        self.assertEqual(ticket.commercial_partner_id, self.customer)

    def test_the_same_address_under_two_customers_lands_where_its_domain_is_verified(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        # Named to sort first: Odoo's gateway alone would pick this customer's contact. Its
        # tenant has the address only as a user's mail (Entra does not check it), and has the
        # domain added but not verified.
        self.add_customer(
            "Alpine Ski House",
            users=[user("ad-fab-1", "adele.vance@contoso.example", "Adele", "Vance")],
            unverified_domains=["contoso.example"],
        )
        self.assertEqual(len(self.partners_with("adele.vance@contoso.example")), 2)
        ticket = self.receive("adele.vance@contoso.example")
        self.assertEqual(ticket.partner_id, adele)
        self.assertEqual(ticket.message_ids[:1].author_id, adele)

    def test_a_member_made_with_another_customers_address_gets_none_of_its_mail(self):
        """Customer B's tenant admin gives a user the address of a person of customer A, who
        is not synced: the mail of that person must not land on B's contact (where B's portal
        users would read it), not even as Odoo's own pick of an author."""
        fabrikam, _integration = self.add_customer(
            "Alpine Ski House", users=[user("ad-fab-1", "ceo@contoso.example", "Fake", "CEO")]
        )
        forged = self.contacts(fabrikam)
        self.assertTrue(forged.azure_ad_synced)
        ticket = self.receive("CEO <ceo@contoso.example>", subject="Reset my MFA")
        self.assertFalse(ticket.partner_id)
        self.assertNotEqual(ticket.message_ids[:1].author_id, forged)
        self.assertNotIn(forged, ticket.message_partner_ids)
        # Contoso is connected later: its verified domain makes the ticket Contoso's.
        self.set_users([user("ceo-1", "ceo@contoso.example", "Real", "CEO")])
        self.connect()
        self.assertEqual(ticket.partner_id, self.contact("ceo@contoso.example"))

    def test_an_address_verified_by_two_customers_chooses_none_and_says_why(self):
        self.connect()
        self.add_customer(
            "Alpine Ski House",
            users=[user("ad-fab-1", "adele.vance@contoso.example", "Adele", "Vance")],
            domains=["contoso.example", "fabrikam.example"],
        )
        ticket = self.receive("adele.vance@contoso.example")
        self.assertFalse(ticket.partner_id)
        self.assertEqual(ticket.azure_ad_requester_match, "ambiguous")
        self.assertFalse(ticket.message_ids[:1].author_id.azure_ad_synced)
        self.assertIn("o_azure_ad_requester_ambiguous", self.Ticket.get_view(view_type="form")["arch"])
        # The agent chooses: the choice is kept through later syncs.
        adele = self.contact("adele.vance@contoso.example")
        ticket.partner_id = adele
        self.assertFalse(ticket.azure_ad_requester_match)
        self.integration.sync_contacts()
        self.assertEqual(ticket.partner_id, adele)

    def test_guests_are_never_requesters(self):
        # A B2B guest keeps its home address, outside its host tenant's verified domains; and
        # even a guest with an address of the tenant's own domain is no requester.
        self.integration.include_guests = True
        self.set_users(
            [
                user("member-1", "adele.vance@contoso.example", "Adele", "Vance"),
                user("guest-1", "megan.bowen@contoso.example", "Megan", "Guest", userType="Guest"),
                user("guest-2", "pat@partner.example", "Pat", "Partner", userType="Guest"),
            ]
        )
        self.connect()
        guests = self.contact("megan.bowen@contoso.example") | self.contact("pat@partner.example")
        self.assertEqual(guests.mapped("azure_ad_guest"), [True, True])
        self.assertTrue(all(guests.mapped("azure_ad_synced")))
        self.assertFalse(self.receive("megan.bowen@contoso.example").partner_id)
        self.assertFalse(self.receive("pat@partner.example").partner_id)
        self.assertEqual(
            self.receive("adele.vance@contoso.example").partner_id,
            self.contact("adele.vance@contoso.example"),
        )
        # Made a member in Entra: the next sync says so, and its mail finds it.
        self.fake.update_user(CONTOSO_ID, "guest-1", {"userType": "Member"})
        self.integration.sync_contacts()
        self.assertFalse(self.contact("megan.bowen@contoso.example").azure_ad_guest)
        self.assertEqual(
            self.receive("megan.bowen@contoso.example").partner_id,
            self.contact("megan.bowen@contoso.example"),
        )

    def test_mail_from_an_unknown_address_keeps_the_gateway_behaviour(self):
        self.connect()
        ticket = self.receive("someone@elsewhere.example")
        self.assertFalse(ticket.partner_id)
        self.assertFalse(ticket.azure_ad_suggested_customer_id)
        self.assertFalse(self.partners_with("someone@elsewhere.example"))


class TestHelpdeskSuggestion(HelpdeskCase):
    def test_connect_stores_the_tenants_verified_domains(self):
        self.connect()
        self.assertEqual(self.integration.email_domains, "contoso.example contoso.onmicrosoft.com")
        self.assertEqual(self.integration.email_domains_source, "graph")
        self.assertEqual(self.fake.stats()["counts"]["domains"], 1)

    def test_unknown_address_of_a_known_domain_suggests_sync_instead_of_a_new_partner(self):
        self.connect()
        ticket = self.receive("New Hire <new.hire@contoso.example>")
        self.assertFalse(ticket.partner_id)
        self.assertFalse(self.partners_with("new.hire@contoso.example"), "no stray partner")
        self.assertEqual(ticket.azure_ad_suggested_customer_id, self.customer)
        self.assertEqual(self.Ticket.search([("azure_ad_suggested_customer_id", "!=", False)]), ticket)
        # The other verified domain of the tenant counts too.
        other = self.receive("new.hire@CONTOSO.onmicrosoft.com")
        self.assertEqual(other.azure_ad_suggested_customer_id, self.customer)

        # The person joins the tenant; the agent (an administrator) clicks "Sync now".
        self.fake.add_user(CONTOSO_ID, user("new-hire-1", "new.hire@contoso.example", "New", "Hire"))
        action = ticket.action_azure_ad_sync_customer()
        new_hire = self.contact("new.hire@contoso.example")
        self.assertTrue(new_hire.azure_ad_synced)
        self.assertRecordValues(
            ticket,
            [
                {
                    "partner_id": new_hire.id,
                    "commercial_partner_id": self.customer.id,
                    "partner_name": "New Hire",
                    "azure_ad_synced": True,
                    "azure_ad_suggested_customer_id": False,
                }
            ],
        )
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn("New Hire", action["params"]["message"])
        last_log = self.env["azure.ad.sync.log"].search(
            [("integration_id", "=", self.integration.id)], order="id desc", limit=1
        )
        self.assertEqual((last_log.trigger, last_log.state), ("manual", "done"))

    def test_sync_that_does_not_import_the_person_says_so(self):
        self.connect()
        # Grady Archie's account is disabled: skipped by the sync's default filters.
        ticket = self.receive("grady.archie@contoso.example")
        self.assertEqual(ticket.azure_ad_suggested_customer_id, self.customer)
        action = ticket.action_azure_ad_sync_customer()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("grady.archie@contoso.example", action["params"]["message"])
        self.assertFalse(ticket.partner_id)
        self.assertEqual(ticket.azure_ad_suggested_customer_id, self.customer)

    def test_any_later_sync_matches_waiting_tickets(self):
        self.connect()
        ticket = self.receive("new.hire@contoso.example")
        self.fake.add_user(CONTOSO_ID, user("new-hire-1", "new.hire@contoso.example", "New", "Hire"))
        self.integration.sync_contacts()  # API (or scheduled) sync: no click needed
        self.assertEqual(ticket.partner_id, self.contact("new.hire@contoso.example"))
        self.assertFalse(ticket.azure_ad_suggested_customer_id)

    def test_tickets_from_before_the_first_sync_are_matched_by_it(self):
        early = self.receive("Adele.Vance@contoso.example")
        # A partner with the address, which the mail gateway picks for the ticket.
        megan_stray = self.env["res.partner"].create(
            {"name": "Megan", "email": "megan.bowen@contoso.example"}
        )
        stray_requester = self.receive("megan.bowen@contoso.example")
        self.assertEqual(stray_requester.partner_id, megan_stray)
        self.assertEqual(stray_requester.azure_ad_requester_match, "gateway")
        self.assertFalse(early.partner_id or early.azure_ad_suggested_customer_id)
        self.connect()
        self.assertEqual(early.partner_id, self.contact("adele.vance@contoso.example"))
        self.assertEqual(stray_requester.partner_id, self.contact("megan.bowen@contoso.example"))
        self.assertEqual(stray_requester.azure_ad_requester_match, "email")

    def test_a_chosen_partner_or_one_with_a_user_is_never_replaced(self):
        chosen_stray = self.env["res.partner"].create(
            {"name": "Adele (old)", "email": "adele.vance@contoso.example"}
        )
        chosen = self.Ticket.with_user(self.agent).create(
            {"name": "Chosen", "description": "<p>x</p>", "partner_id": chosen_stray.id}
        )
        # Mail from an address whose partner has a user (an employee, a portal login).
        login = new_test_user(
            self.env, login="megan_login", groups="base.group_portal", email="megan.bowen@contoso.example"
        )
        gateway_user = self.receive("megan.bowen@contoso.example")
        self.assertEqual(gateway_user.partner_id, login.partner_id)
        self.connect()
        self.assertEqual(chosen.partner_id, chosen_stray)
        self.assertEqual(gateway_user.partner_id, login.partner_id)
        self.assertFalse(chosen.azure_ad_requester_match or chosen.azure_ad_synced)

    def test_without_verified_domains_no_address_is_matched_to_a_contact(self):
        """Without Domain.Read.All the contacts' domains only suggest a sync: they are not
        Microsoft's word that the tenant owns the address."""
        self.fake.add_fault(kind="malformed", target="domains", count=None)
        self.connect()
        self.assertEqual(self.integration.email_domains_source, "contacts")
        ticket = self.receive("adele.vance@contoso.example")
        self.assertFalse(ticket.partner_id)
        self.assertEqual(ticket.azure_ad_suggested_customer_id, self.customer)

    def test_the_contacts_domains_never_claim_public_mail_domains(self):
        self.fake.add_fault(kind="malformed", target="domains", count=None)
        self.set_users(
            [
                user("u-1", "ann@gmail.com", "Ann"),
                user("u-2", "bob@GMAIL.com", "Bob"),
                user("u-3", "carl@outlook.com", "Carl"),
                user("u-4", "dora@contoso.example", "Dora"),
            ]
        )
        self.connect()
        self.assertEqual(self.integration.email_domains, "contoso.example")
        self.assertFalse(self.receive("someone@gmail.com").azure_ad_suggested_customer_id)

    def test_requester_and_suggestion_stay_within_the_tickets_company(self):
        self.connect()
        other_company = self.env["res.company"].create({"name": "Other MSP Company"})
        self.customer.company_id = other_company
        adele = self.contact("adele.vance@contoso.example")
        self.assertEqual(adele.company_id, other_company)
        ticket = self.receive("adele.vance@contoso.example")
        self.assertNotEqual(ticket.company_id, other_company)
        self.assertFalse(ticket.partner_id)
        self.assertFalse(self.receive("new.hire@contoso.example").azure_ad_suggested_customer_id)
        other = self.Ticket.create(
            {
                "name": "Other",
                "description": "<p>x</p>",
                "company_id": other_company.id,
                "partner_email": "adele.vance@contoso.example",
            }
        )
        self.assertEqual(other.partner_id, adele)
        other.partner_email = "new.hire@contoso.example"
        other.partner_id = False
        self.assertEqual(other.azure_ad_suggested_customer_id, self.customer)

    def test_closed_tickets_are_left_alone(self):
        ticket = self.receive("adele.vance@contoso.example")
        ticket.stage_id = self.env["helpdesk.ticket.stage"].search([("closed", "=", True)], limit=1)
        self.connect()
        self.assertFalse(ticket.partner_id)

    def test_without_the_domains_permission_the_contacts_domains_are_used(self):
        self.fake.add_fault(kind="malformed", target="domains", count=None)
        self.set_users(
            [
                user("u-1", "ann@contoso.example", "Ann"),
                user("u-2", "bob@Sales.Contoso.example", "Bob"),
            ]
        )
        self.connect()
        self.assertEqual(self.integration.state, "connected", "the sync itself must not fail")
        self.assertEqual(self.integration.email_domains, "contoso.example sales.contoso.example")
        self.assertEqual(self.integration.email_domains_source, "contacts")
        self.assertEqual(
            self.receive("carl@sales.contoso.example").azure_ad_suggested_customer_id, self.customer
        )
        # Permission granted (which needs the customer's consent again): reconnecting reads
        # the verified domains, which replace the fallback.
        self.fake.clear_faults()
        self.connect()
        self.assertEqual(self.integration.email_domains_source, "graph")
        self.assertEqual(self.integration.email_domains, "contoso.example contoso.onmicrosoft.com")

    def test_later_syncs_read_the_domains_once_a_day(self):
        self.connect()
        self.integration.sync_contacts()
        self.integration.action_sync_now()
        self.assertEqual(self.fake.stats()["counts"]["domains"], 1)
        self.integration.email_domains_date = "2000-01-01 00:00:00"
        self.integration.sync_contacts()
        self.assertEqual(self.fake.stats()["counts"]["domains"], 2)

    def test_a_domain_claimed_by_two_customers_suggests_nothing(self):
        self.connect()
        fabrikam = self.env["res.partner"].create({"name": "Fabrikam Inc", "is_company": True})
        # Both tenants say Microsoft verified it (one list is out of date: a domain moved).
        self.env["azure.ad.integration"].create(
            {
                "partner_id": fabrikam.id,
                "state": "connected",
                "email_domains": "contoso.example",
                "email_domains_source": "graph",
            }
        )
        self.assertFalse(self.receive("new.hire@contoso.example").azure_ad_suggested_customer_id)
        self.assertEqual(
            self.receive("x@contoso.onmicrosoft.com").azure_ad_suggested_customer_id, self.customer
        )

    def test_excluded_or_disconnected_customers_are_not_suggested(self):
        self.connect()
        self.integration.excluded = True
        self.assertFalse(self.receive("new.hire@contoso.example").azure_ad_suggested_customer_id)
        self.integration.excluded = False
        self.integration.action_disconnect()
        self.assertFalse(self.receive("new.hire@contoso.example").azure_ad_suggested_customer_id)

    def test_sync_button_without_a_suggested_customer(self):
        ticket = self.receive("someone@elsewhere.example")
        with self.assertRaises(UserError):
            ticket.action_azure_ad_sync_customer()

    def test_agents_see_the_suggestion_but_only_administrators_sync(self):
        self.connect()
        ticket = self.receive("new.hire@contoso.example")
        as_agent = ticket.with_user(self.agent)
        self.assertEqual(as_agent.azure_ad_suggested_customer_id.name, "Contoso Ltd")
        self.assertFalse(as_agent.azure_ad_synced)
        with self.assertRaises(AccessError):
            as_agent.action_azure_ad_sync_customer()


class TestHelpdeskManualAndCounts(HelpdeskCase):
    def test_ticket_typed_by_an_agent_gets_the_synced_requester(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        form = Form(self.Ticket.with_user(self.agent))
        form.name = "Cannot log in"
        form.description = "<p>Since this morning</p>"
        form.partner_email = "  Adele.VANCE@contoso.example "
        ticket = form.save()
        self.assertEqual(ticket.partner_id, adele)
        self.assertEqual(ticket.commercial_partner_id, self.customer)
        self.assertEqual(ticket.partner_name, "Adele Vance")

    def test_agent_typing_the_address_later_matches_the_ticket(self):
        self.connect()
        ticket = self.Ticket.with_user(self.agent).create({"name": "Call", "description": "<p>Phone</p>"})
        self.assertFalse(ticket.partner_id)
        ticket.partner_email = "megan.bowen@contoso.example"
        self.assertEqual(ticket.partner_id, self.contact("megan.bowen@contoso.example"))

    def test_a_chosen_synced_contact_is_kept(self):
        self.connect()
        alex = self.contact("alex.wilber@contoso.example")
        ticket = self.Ticket.create(
            {
                "name": "For Alex",
                "description": "<p>x</p>",
                "partner_id": alex.id,
                "partner_email": "other@x.example",
            }
        )
        self.assertEqual(ticket.partner_id, alex)

    def test_open_tickets_from_synced_contacts_are_counted_on_integration_and_customer(self):
        self.connect()
        tickets = self.receive("adele.vance@contoso.example") | self.receive("alex.wilber@contoso.example")
        self.receive("someone@elsewhere.example")
        local = self.env["res.partner"].create(
            {"name": "Local", "parent_id": self.customer.id, "email": "local@contoso.example"}
        )
        self.Ticket.create({"name": "Local", "description": "<p>x</p>", "partner_id": local.id})
        self.assertEqual(self.integration.helpdesk_open_ticket_count, 2)
        self.assertEqual(self.customer.azure_ad_open_ticket_count, 2)
        self.assertTrue(self.customer.azure_ad_customer)
        for action in (
            self.integration.action_view_helpdesk_tickets(),
            self.customer.action_view_azure_ad_tickets(),
        ):
            self.assertEqual(action["res_model"], "helpdesk.ticket")
            self.assertEqual(self.Ticket.search(action["domain"]), tickets)
        tickets[0].stage_id = self.env["helpdesk.ticket.stage"].search([("closed", "=", True)], limit=1)
        self.integration.invalidate_recordset()
        self.customer.invalidate_recordset()
        self.assertEqual(self.integration.helpdesk_open_ticket_count, 1)
        self.assertEqual(self.customer.azure_ad_open_ticket_count, 1)

    def test_german_po_is_current_and_complete(self):
        exported = i18n.export_pot(self.env.cr, "azure_ad_contacts_helpdesk")
        exported = {
            (entry.msgctxt, entry.msgid) for entry in i18n.without_magic_field_labels(polib.pofile(exported))
        }
        german = polib.pofile(str(BRIDGE / "i18n" / "de.po"))
        committed = {(entry.msgctxt, entry.msgid) for entry in german}
        self.assertEqual(
            (sorted(exported - committed, key=str), sorted(committed - exported, key=str)),
            ([], []),
            "(terms missing from azure_ad_contacts_helpdesk/i18n/de.po, terms gone from the code)",
        )
        self.assertEqual([entry.msgid for entry in german if not entry.msgstr.strip()], [])
        placeholder = re.compile(r"%\(\w+\)[sd]")
        self.assertEqual(
            [
                e.msgid
                for e in german
                if sorted(placeholder.findall(e.msgstr)) != sorted(placeholder.findall(e.msgid))
            ],
            [],
        )

    def test_german_translations(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(
            ["azure_ad_contacts_helpdesk"], ["de_DE"], overwrite=True
        )
        german = self.Ticket.with_context(lang="de_DE")
        self.assertEqual(
            german.fields_get(["azure_ad_suggested_customer_id"])["azure_ad_suggested_customer_id"]["string"],
            "Aus Azure AD zu synchronisierender Kunde",
        )
        arch = german.with_user(self.agent).get_view(view_type="form")["arch"]
        self.assertIn("Die Adresse des Anfragenden", arch)
        self.assertIn("Bitten Sie einen Administrator", arch)
        self.connect()
        ticket = self.receive("grady.archie@contoso.example").with_context(lang="de_DE")
        self.assertIn("wurde synchronisiert", ticket.action_azure_ad_sync_customer()["params"]["message"])

    def test_views_render_the_mark_the_banner_and_the_buttons(self):
        ticket_form = self.Ticket.get_view(view_type="form")["arch"]
        self.assertIn("o_azure_ad_form_icon", ticket_form)
        self.assertIn("o_azure_ad_sync_suggestion", ticket_form)
        self.assertIn("action_azure_ad_sync_customer", ticket_form)
        agent_form = self.Ticket.with_user(self.agent).get_view(view_type="form")["arch"]
        self.assertNotIn("action_azure_ad_sync_customer", agent_form, "the button is for administrators")
        self.assertIn("Ask an administrator", agent_form)
        self.assertIn("o_azure_ad_card_icon", self.Ticket.get_view(view_type="kanban")["arch"])
        self.assertIn("azure_ad_synced", self.Ticket.get_view(view_type="list")["arch"])
        integration_form = self.env["azure.ad.integration"].get_view(view_type="form")["arch"]
        self.assertIn("action_view_helpdesk_tickets", integration_form)
        partner_form = self.env["res.partner"].get_view(view_type="form")["arch"]
        self.assertIn("action_view_azure_ad_tickets", partner_form)


@tagged("post_install", "-at_install")
class TestHelpdeskBrowser(FakeTenantMixin, HttpCase):
    test_module = "azure_ad_contacts_helpdesk"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A portal login made for Adele before the customer was connected: its partner is
        # not under the customer, so the sync creates the synced contact beside it.
        cls.portal_user = new_test_user(
            cls.env,
            login="adele_portal",
            password="adele_portal_pw",
            groups="base.group_portal",
            name="Adele (portal)",
            email="Adele.Vance@contoso.example",
        )

    def setUp(self):
        super().setUp()
        self.fake.set_consent(CONTOSO_ID, True)
        self.integration._complete_consent(CONTOSO_ID)

    def test_a_portal_user_with_a_synced_persons_address_stays_the_requester(self):
        """A portal user can set any address on their account: the signed-in identity is the
        requester, never the synced contact that has the address (and its Azure AD mark)."""
        adele = self.env["res.partner"].search(
            [("parent_id", "=", self.customer.id), ("email", "=", "adele.vance@contoso.example")]
        )
        self.assertTrue(adele.azure_ad_synced)
        self.assertNotEqual(adele, self.portal_user.partner_id)
        self.authenticate("adele_portal", "adele_portal_pw")
        page = self.url_open("/new/ticket")
        self.assertEqual(page.status_code, 200)
        csrf = re.search(r'name="csrf_token"\s+value="([^"]+)"', page.text)
        self.assertTrue(csrf, "no csrf token on the portal form")
        response = self.url_open(
            "/submitted/ticket",
            data={"csrf_token": csrf[1], "subject": "VPN down", "description": "Since 9:00"},
            allow_redirects=False,
        )
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        ticket = self.env["helpdesk.ticket"].search([("name", "=", "VPN down")])
        self.assertEqual(len(ticket), 1)
        self.assertEqual(ticket.partner_id, self.portal_user.partner_id)
        self.assertNotEqual(ticket.commercial_partner_id, self.customer)
        self.assertFalse(ticket.azure_ad_synced or ticket.azure_ad_requester_match)
        self.assertNotIn(adele, ticket.message_partner_ids)
        # A later sync leaves it so.
        self.integration.sync_contacts()
        self.assertEqual(ticket.partner_id, self.portal_user.partner_id)
        # The portal author follows and sees the ticket.
        self.assertIn(self.portal_user.partner_id, ticket.message_partner_ids)
        self.assertEqual(self.url_open(f"/my/ticket/{ticket.id}").status_code, 200)

    def test_sync_now_from_the_ticket_banner_in_the_browser(self):
        self.fake.add_user(CONTOSO_ID, user("new-hire-1", "new.hire@contoso.example", "New", "Hire"))
        raw = rfc822("New Hire <new.hire@contoso.example>", subject="First day: no laptop")
        ticket = self.env["helpdesk.ticket"].browse(
            self.env["mail.thread"].message_process("helpdesk.ticket", raw)
        )
        self.assertEqual(ticket.azure_ad_suggested_customer_id, self.customer)
        self.start_tour(
            f"/odoo/helpdesk.ticket/{ticket.id}", "azure_ad_contacts_helpdesk_sync_from_ticket", login="admin"
        )
        self.env.invalidate_all()
        self.assertEqual(ticket.partner_id.email, "new.hire@contoso.example")
        self.assertTrue(ticket.partner_id.azure_ad_synced)
        self.assertEqual(ticket.commercial_partner_id, self.customer)
