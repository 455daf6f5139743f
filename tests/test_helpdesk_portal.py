"""Which tickets a customer's employees see on the portal. OCA helpdesk_mgmt shares every ticket
of a customer with all of its portal users; once every employee is a synced contact, that would
show everyone their colleagues' tickets. Per customer, the MSP chooses: synced employees see
their own tickets (the default), or all of their company's."""

import json
import xmlrpc.client

from odoo.tests import HttpCase, new_test_user, tagged

from .common import CONTOSO_ID, FakeTenantMixin
from .test_helpdesk import rfc822

TICKETS = {
    "adele.vance@contoso.example": "VPN of Adele",
    "alex.wilber@contoso.example": "Salary slip of Alex",
    "megan.bowen@contoso.example": "Laptop of Megan",
}


@tagged("post_install", "-at_install")
class TestPortalTicketVisibility(FakeTenantMixin, HttpCase):
    test_module = "azure_ad_contacts_helpdesk"
    customer_name = "Contoso Portal Ltd"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Ticket = cls.env["helpdesk.ticket"]

    def setUp(self):
        super().setUp()
        self.fake.set_consent(CONTOSO_ID, True)
        self.integration._complete_consent(CONTOSO_ID)
        contacts = self.customer.child_ids
        self.synced = {email: contacts.filtered(lambda c, e=email: c.email == e) for email in TICKETS}
        self.assertTrue(all(contact.azure_ad_synced for contact in self.synced.values()))
        self.tickets = {}
        for email, subject in TICKETS.items():
            ticket_id = self.env["mail.thread"].message_process(
                "helpdesk.ticket", rfc822(email, subject=subject)
            )
            self.tickets[email] = self.Ticket.browse(ticket_id)
            self.assertEqual(self.tickets[email].partner_id, self.synced[email])
        # The MSP invites Adele and Alex to the portal (their synced contacts get logins).
        self.adele = self.portal_login("adele_p", self.synced["adele.vance@contoso.example"])
        self.portal_login("alex_p", self.synced["alex.wilber@contoso.example"])

    def portal_login(self, login, partner):
        return new_test_user(
            self.env,
            login=login,
            password=f"{login}_pw",
            groups="base.group_portal",
            partner_id=partner.id,
            name=partner.name,
            email=partner.email,
        )

    def seen_on_the_portal(self, login):
        """The ticket titles the portal's ticket list (/my/tickets) shows to `login`."""
        self.authenticate(login, f"{login}_pw")
        page = self.url_open("/my/tickets")
        self.assertEqual(page.status_code, 200)
        return {subject for subject in TICKETS.values() if subject in page.text}

    def seen_over_rpc(self, login, domain=()):
        uid = self.env["res.users"].search([("login", "=", login)]).id
        tickets = self.xmlrpc_object.execute_kw(
            self.env.cr.dbname,
            uid,
            f"{login}_pw",
            "helpdesk.ticket",
            "search_read",
            [list(domain)],
            {"fields": ["name"]},
        )
        return {ticket["name"] for ticket in tickets}

    def opens(self, login, ticket):
        self.authenticate(login, f"{login}_pw")
        response = self.url_open(f"/my/ticket/{ticket.id}", allow_redirects=False)
        return response.status_code == 200

    def test_synced_employees_see_their_own_tickets_by_default(self):
        self.assertEqual(self.integration.helpdesk_portal_tickets, "own")
        adele_ticket = self.tickets["adele.vance@contoso.example"]
        alex_ticket = self.tickets["alex.wilber@contoso.example"]
        self.assertEqual(self.seen_on_the_portal("adele_p"), {"VPN of Adele"})
        self.assertEqual(self.seen_over_rpc("adele_p"), {"VPN of Adele"})
        self.assertEqual(self.seen_over_rpc("alex_p"), {"Salary slip of Alex"})
        self.assertTrue(self.opens("adele_p", adele_ticket))
        self.assertFalse(self.opens("adele_p", alex_ticket))
        with self.assertRaises(xmlrpc.client.Fault):
            self.xmlrpc_object.execute_kw(
                self.env.cr.dbname,
                self.adele.id,
                "adele_p_pw",
                "helpdesk.ticket",
                "read",
                [alex_ticket.ids, ["name"]],
            )
        # The count on the portal's home page.
        counters = self.url_open(
            "/my/counters",
            data=json.dumps({"params": {"counters": ["ticket_count"]}}),
            headers={"Content-Type": "application/json"},
        ).json()
        self.assertEqual(counters["result"]["ticket_count"], 1)
        # Added as a follower (in CC, or by an agent): then she sees it.
        alex_ticket.message_subscribe(partner_ids=self.adele.partner_id.ids)
        self.assertEqual(self.seen_over_rpc("adele_p"), {"VPN of Adele", "Salary slip of Alex"})
        self.assertTrue(self.opens("adele_p", alex_ticket))

    def test_the_msp_lets_a_customers_employees_see_all_company_tickets(self):
        self.integration.helpdesk_portal_tickets = "company"
        self.assertEqual(self.seen_on_the_portal("adele_p"), set(TICKETS.values()))
        self.assertEqual(self.seen_over_rpc("alex_p"), set(TICKETS.values()))
        self.assertTrue(self.opens("adele_p", self.tickets["megan.bowen@contoso.example"]))

    def test_portal_users_who_are_no_synced_employees_keep_helpdesk_visibility(self):
        """A contact the MSP made by hand under the customer (its IT manager, say) keeps what
        helpdesk_mgmt gives: every ticket of the company."""
        manager = self.env["res.partner"].create(
            {"name": "IT Manager", "parent_id": self.customer.id, "email": "it@contoso-portal.example"}
        )
        self.portal_login("it_manager", manager)
        self.assertEqual(self.seen_on_the_portal("it_manager"), set(TICKETS.values()))

    def test_agents_see_every_ticket_as_before(self):
        agent = new_test_user(
            self.env,
            login="portal_agent",
            password="portal_agent_pw",
            groups="base.group_user,helpdesk_mgmt.group_helpdesk_user",
        )
        self.assertEqual(
            self.seen_over_rpc(agent.login, [("partner_id.parent_id", "=", self.customer.id)]),
            set(TICKETS.values()),
        )
