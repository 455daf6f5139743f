"""Other people's edits: contacts that colleagues move, merge or give logins, integrations and
customers that administrators delete, several companies in one database. Each has one defined
outcome, counted with its reason in the run log; none makes a sync fail. Driven over XML-RPC
as the user who would do it."""

import xmlrpc.client
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.azure_ad_contacts import series

from .common import CONTOSO_ID, FABRIKAM_ID, AzureAdCase, FakeTenantMixin, SyncHelpers, user
from .test_helpdesk import HelpdeskCase

ADELE = "adele.vance@contoso.example"
ALEX = "alex.wilber@contoso.example"
ADELE_ID = "f27609e2-827e-404b-bf93-1d0b96d8975b"
ALEX_ID = "4b895896-54e7-4034-a960-7933dca6c91b"
MERGE_WIZARD = "base.partner.merge.automatic.wizard"
MIGRATIONS = Path(__file__).resolve().parent.parent / "azure_ad_contacts" / "migrations" / "1.1.0"


@tagged("post_install", "-at_install")
class OtherEditsCase(SyncHelpers, FakeTenantMixin, HttpCase):
    customer_name = "Edited Customer"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.env.ref("base.user_admin")
        # An internal user as Settings › Users creates one: with Contact Creation.
        cls.colleague = new_test_user(
            cls.env,
            login="edit_colleague",
            password="edit_colleague_pw",
            groups="base.group_user,base.group_partner_manager",
        )
        cls.other_company = cls.env["res.company"].create({"name": "Edited Customer's Company"})
        cls.admin.company_ids |= cls.other_company

    def rpc(self, login, model, method, *args, **kwargs):
        """One call of Odoo's external XML-RPC API as `login` (password: login + "_pw",
        "admin" for the administrator)."""
        uid = self.env["res.users"].search([("login", "=", login)]).id
        password = "admin" if login == "admin" else f"{login}_pw"
        return self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, uid, password, model, method, list(args), kwargs
        )

    def sync_over_rpc(self, integration=None):
        """sync_contacts() over XML-RPC as the administrator, and the run log it wrote."""
        integration = integration or self.integration
        (result,) = self.rpc("admin", "azure.ad.integration", "sync_contacts", integration.ids)
        self.env.invalidate_all()
        return result, integration.sync_log_ids[:1]

    def login_for(self, partner, group="base.group_portal", **values):
        return (
            self.env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "login": f"login_{partner.id}",
                    "partner_id": partner.id,
                    series.GROUPS_FIELD: [Command.set([self.env.ref(group).id])],
                    **values,
                }
            )
        )

    def merge(self, login, partners, into):
        """Odoo's "Merge contacts" wizard, as `login` runs it."""
        wizard_id = self.rpc(
            login,
            MERGE_WIZARD,
            "create",
            {"partner_ids": [(6, 0, partners.ids)], "dst_partner_id": into.id},
        )
        self.rpc(login, MERGE_WIZARD, "action_merge", [wizard_id])
        self.env.invalidate_all()

    def link_of(self, partner):
        partner = partner.sudo()
        return (partner.azure_ad_synced, partner.azure_ad_integration_id, partner.azure_ad_object_id)


class TestCompanies(OtherEditsCase):
    def test_contacts_are_created_in_the_customers_company_and_only_seen_there(self):
        self.customer.company_id = self.other_company
        self.connect()
        self.fake.add_user(CONTOSO_ID, user("0a000000-0000-4000-8000-000000000001", "late@contoso.example"))
        self.sync_over_rpc()  # a contact planned after the listing, not while it ran
        self.assertEqual(set(self.contacts().mapped("company_id")), {self.other_company})
        self.assertEqual(len(self.contacts()), 16)
        main = self.env.ref("base.main_company")
        outsider = new_test_user(
            self.env,
            login="edit_main_only",
            password="edit_main_only_pw",
            company_id=main.id,
            company_ids=[Command.set(main.ids)],
        )
        insider = new_test_user(
            self.env,
            login="edit_insider",
            password="edit_insider_pw",
            company_id=self.other_company.id,
            company_ids=[Command.set(self.other_company.ids)],
        )
        domain = [("parent_id", "=", self.customer.id)]
        self.assertEqual(self.rpc(outsider.login, "res.partner", "search_read", domain, ["company_id"]), [])
        seen = self.rpc(insider.login, "res.partner", "search_read", domain, ["company_id"])
        self.assertEqual(len(seen), 16)
        self.assertEqual({row["company_id"][0] for row in seen}, {self.other_company.id})

    def test_run_logs_and_stored_users_are_seen_only_within_the_customers_company(self):
        self.customer.company_id = self.other_company
        self.connect()
        main = self.env.ref("base.main_company")
        for login, company in (("edit_admin_main", main), ("edit_admin_other", self.other_company)):
            new_test_user(
                self.env,
                login=login,
                password=f"{login}_pw",
                groups="base.group_system",
                company_id=company.id,
                company_ids=[Command.set(company.ids)],
            )
        mine = [("integration_id", "=", self.integration.id)]
        for model in ("azure.ad.integration", "azure.ad.sync.log", "azure.ad.directory.user"):
            domain = [("id", "=", self.integration.id)] if model == "azure.ad.integration" else mine
            with self.subTest(model=model):
                self.assertEqual(self.rpc("edit_admin_main", model, "search_count", domain), 0)
                self.assertGreater(self.rpc("edit_admin_other", model, "search_count", domain), 0)
        log = self.integration.sync_log_ids
        with self.assertRaises(xmlrpc.client.Fault):
            self.rpc("edit_admin_main", "azure.ad.sync.log", "read", log.ids, ["created"])


class TestDeletedIntegrations(OtherEditsCase):
    def test_deleting_an_integration_unlinks_its_contacts(self):
        self.connect()
        contacts = self.contacts()
        self.assertEqual(len(contacts), 15)
        self.rpc("admin", "azure.ad.integration", "unlink", self.integration.ids)
        self.env.invalidate_all()
        self.assertEqual(len(self.contacts()), 15, "no contact is deleted")
        for contact in contacts:
            self.assertEqual(self.link_of(contact), (False, self.env["azure.ad.integration"], False))
        self.assertEqual(self.contact(ADELE).name, "Adele Vance", "they keep their data")

    def test_deleting_the_customer_unlinks_its_contacts(self):
        self.connect()
        contacts = self.contacts()
        self.rpc("admin", "res.partner", "unlink", self.customer.ids)
        self.env.invalidate_all()
        self.assertFalse(self.integration.exists())
        self.assertEqual(len(contacts.exists()), 15, "no contact is deleted")
        self.assertFalse(contacts.sudo().filtered("azure_ad_synced"))
        self.assertFalse(contacts.sudo().filtered("azure_ad_object_id"))


class TestMerges(OtherEditsCase):
    def connect_fabrikam(self):
        fabrikam = self.env["res.partner"].create({"name": "Fabrikam Inc", "is_company": True})
        integration = self.env["azure.ad.integration"].create({"partner_id": fabrikam.id})
        self.connect(integration, FABRIKAM_ID)
        return fabrikam, integration

    def test_merging_two_connected_customers_keeps_both_tenants(self):
        self.connect()
        fabrikam, fabrikam_integration = self.connect_fabrikam()
        fabrikam_contacts = self.contacts(fabrikam)
        self.assertTrue(fabrikam_contacts)
        logs = fabrikam_integration.sync_log_ids
        self.merge(self.colleague.login, self.customer | fabrikam, into=self.customer)
        self.assertFalse(fabrikam.exists())
        self.assertRecordValues(
            fabrikam_integration,
            [{"partner_id": self.customer.id, "additional_tenant": True, "tenant_id": FABRIKAM_ID}],
        )
        self.assertFalse(self.integration.additional_tenant)
        self.assertEqual(fabrikam_integration.sync_log_ids, logs)
        for contact in fabrikam_contacts:
            self.assertEqual(contact.parent_id, self.customer)
            self.assertEqual(self.link_of(contact)[:2], (True, fabrikam_integration))
        # Both tenants sync on, into the one customer, without a new contact.
        for integration in (self.integration, fabrikam_integration):
            result, _log = self.sync_over_rpc(integration)
            self.assertNotIn("error", result)
            self.assertEqual((result["created"], result["updated"]), (0, 0))

    def test_a_never_connected_integration_gives_way_when_customers_merge(self):
        self.connect()
        draft_customer = self.env["res.partner"].create({"name": "Draft Customer", "is_company": True})
        draft = self.env["azure.ad.integration"].create({"partner_id": draft_customer.id})
        self.merge(self.colleague.login, self.customer | draft_customer, into=draft_customer)
        self.assertFalse(draft.exists())
        self.assertEqual(self.integration.partner_id, draft_customer)
        self.assertFalse(self.integration.additional_tenant)
        self.assertEqual(len(self.contacts(draft_customer).filtered("azure_ad_synced")), 15)

    def test_merging_a_synced_contact_with_a_duplicate_keeps_its_link(self):
        self.connect()
        adele = self.contact(ADELE)
        duplicate = self.env["res.partner"].create(
            {"name": "Adele V.", "parent_id": self.customer.id, "email": ADELE, "phone": "+49 30 1"}
        )
        # Into the hand-made duplicate: the merged contact takes the link over.
        self.merge(self.colleague.login, adele | duplicate, into=duplicate)
        self.assertFalse(adele.exists())
        self.assertEqual(self.link_of(duplicate), (True, self.integration, ADELE_ID))
        self.assertEqual(duplicate.phone, "+49 30 1")
        result, _log = self.sync_over_rpc()
        self.assertEqual((result["created"], result["updated"]), (0, 1))  # the name is Entra's again
        self.assertEqual(duplicate.name, "Adele Vance")

    def test_merging_two_synced_contacts_keeps_the_link_of_the_one_that_stays(self):
        self.connect()
        adele, alex = self.contact(ADELE), self.contact(ALEX)
        self.merge("admin", adele | alex, into=adele)  # different emails: administrators only
        self.assertFalse(alex.exists())
        self.assertEqual(self.link_of(adele), (True, self.integration, ADELE_ID))
        result, log = self.sync_over_rpc()
        # Alex's user is a contact again, as when the email of its contact is changed.
        self.assertEqual((result["created"], result["updated"]), (1, 0))
        self.assertEqual(self.link_of(self.contact(ALEX))[2], ALEX_ID)
        self.assertEqual(log.state, "done")


class TestMovedContacts(OtherEditsCase):
    def assert_moved_and_replaced(self, moved, result, log):
        self.assertNotIn("error", result)
        self.assertEqual(result["created"], 1)
        self.assertEqual(log.other_edits, {"moved": 1})
        self.assertEqual(log.other_edits_summary, "moved out of the customer, no longer synced: 1")
        self.assertEqual(self.link_of(moved), (False, self.env["azure.ad.integration"], False))
        self.assertEqual((moved.name, moved.email), ("Adele Vance", ADELE), "it keeps its data")
        replacement = self.contact(ADELE)
        self.assertEqual(self.link_of(replacement), (True, self.integration, ADELE_ID))

    def test_a_contact_moved_to_another_company_is_let_go_and_its_user_gets_a_contact(self):
        self.connect()
        adele = self.contact(ADELE)
        elsewhere = self.env["res.partner"].create({"name": "Somewhere Else", "is_company": True})
        self.rpc(self.colleague.login, "res.partner", "write", adele.ids, {"parent_id": elsewhere.id})
        result, log = self.sync_over_rpc()  # changes only
        self.assert_moved_and_replaced(adele, result, log)
        result, log = self.sync_over_rpc()
        self.assertEqual((result["created"], result["updated"], log.other_edits), (0, 0, False))
        self.assertEqual(adele.parent_id, elsewhere)

    def test_a_contact_moved_by_sql_is_let_go_by_the_scheduled_job(self):
        self.connect()
        adele = self.contact(ADELE)
        run_sql(self.env, "UPDATE res_partner SET parent_id = NULL WHERE id = %s", adele.id)
        self.integration.write({"auto_sync": True, "full_sync_interval_days": 0})  # every run full
        self.integration.next_sync_date = self.integration.last_sync_date  # due
        self.env["azure.ad.integration"]._cron_sync_due()
        log = self.integration.sync_log_ids[:1]
        self.assertEqual((log.trigger, log.state, log.sync_mode), ("cron", "done", "full"))
        self.assert_moved_and_replaced(adele, log._result(), log)


class TestArchivedByHand(OtherEditsCase):
    def test_a_contact_archived_by_a_colleague_stays_archived_and_is_counted(self):
        self.connect()
        adele = self.contact(ADELE)
        self.rpc(self.colleague.login, "res.partner", "write", adele.ids, {"active": False})
        self.fake.update_user(CONTOSO_ID, ADELE_ID, {"jobTitle": "CFO"})
        result, log = self.sync_over_rpc()
        self.assertEqual((result["updated"], log.other_edits), (1, {"archived": 1}))
        self.assertEqual((adele.active, adele.function), (False, "CFO"))
        self.assertEqual(log.other_edits_summary, "archived in Odoo, kept archived: 1")
        # At every run while it lasts, also when nothing concerns it.
        result, log = self.sync_over_rpc()
        self.assertEqual((log.sync_mode, result["updated"], log.other_edits), ("delta", 0, {"archived": 1}))
        self.rpc(self.colleague.login, "res.partner", "write", adele.ids, {"active": True})
        result, log = self.sync_over_rpc()
        self.assertEqual(log.other_edits, False)


class TestLogins(OtherEditsCase):
    def setUp(self):
        super().setUp()
        self.connect()
        self.adele, self.alex = self.contact(ADELE), self.contact(ALEX)
        self.integration.deleted_action = "archive"

    def remove_from_tenant(self, *object_ids):
        tenant = self.fake.tenant(CONTOSO_ID)
        self.set_users([u for u in tenant["users"] if u["id"] not in object_ids])

    def test_a_leaver_with_a_portal_login_is_kept_and_counted(self):
        portal = self.login_for(self.adele)
        self.remove_from_tenant(ADELE_ID, ALEX_ID)
        result, log = self.sync_over_rpc()
        self.assertNotIn("error", result)
        self.assertEqual(result["archived"], 1)
        self.assertFalse(self.alex.active)
        self.assertTrue(self.adele.active)
        self.assertTrue(portal.active)
        self.assertEqual(log.other_edits, {"has_login": 1})
        self.assertEqual(self.integration.last_run_other_edits_summary, "has a login, not archived: 1")
        # At every run while it lasts, also when only Microsoft's changes are read.
        self.fake.update_user(CONTOSO_ID, "7b797d0f-edff-4773-bcc3-c98efb2279d1", {"jobTitle": "Boss"})
        result, log = self.sync_over_rpc()
        self.assertEqual((log.sync_mode, result["updated"], log.other_edits), ("delta", 1, {"has_login": 1}))
        # Once the login is archived, the contact is archived as any leaver.
        portal.active = False
        result, log = self.sync_over_rpc()
        self.assertEqual((result["archived"], log.other_edits), (1, False))
        self.assertFalse(self.adele.active)

    def test_with_the_option_portal_logins_are_archived_never_an_employees(self):
        self.integration.archive_portal_logins = True
        portal = self.login_for(self.adele)
        employee = self.login_for(self.alex, "base.group_user")
        self.remove_from_tenant(ADELE_ID, ALEX_ID)
        result, log = self.sync_over_rpc()
        self.assertNotIn("error", result)
        self.assertEqual(result["archived"], 1)
        self.assertFalse(self.adele.active)
        self.assertFalse(portal.active)
        self.assertTrue(self.alex.active)
        self.assertTrue(employee.active)
        self.assertEqual(log.other_edits, {"has_login": 1})
        # The user returns: the contact is active again, the login stays archived.
        self.set_users(self.fake.tenant(CONTOSO_ID)["users"] + [user(ADELE_ID, ADELE, "Adele", "Vance")])
        self.sync_over_rpc()
        self.assertTrue(self.adele.active)
        self.assertFalse(portal.with_context(active_test=False).active)

    def test_the_email_of_a_partner_with_a_login_never_follows_entra(self):
        self.integration.follow_email_changes = True
        self.sync_over_rpc()  # the synced emails are recorded
        portal = self.login_for(self.adele)
        self.fake.update_user(CONTOSO_ID, ADELE_ID, {"mail": "adele.smith@contoso.example"})
        result, log = self.sync_over_rpc()
        self.assertNotIn("error", result)
        self.assertEqual(self.adele.email, ADELE)
        self.assertEqual(portal.email, ADELE)
        self.assertEqual(self.link_of(self.adele), (False, self.env["azure.ad.integration"], False))
        newcomer = self.contact("adele.smith@contoso.example")
        self.assertEqual(self.link_of(newcomer), (True, self.integration, ADELE_ID))
        self.assertEqual(log.other_edits, {"login_email": 1})
        self.assertEqual((result["created"], result["updated"]), (1, 1))
        # A contact without a login does follow.
        self.fake.update_user(CONTOSO_ID, ALEX_ID, {"mail": "alex.w@contoso.example"})
        self.sync_over_rpc()
        self.assertEqual(self.alex.email, "alex.w@contoso.example")

    def test_without_following_emails_a_login_keeps_its_email_too(self):
        portal = self.login_for(self.adele)
        self.fake.update_user(CONTOSO_ID, ADELE_ID, {"mail": "adele.smith@contoso.example"})
        result, log = self.sync_over_rpc()
        self.assertEqual((result["created"], log.other_edits), (1, False))
        self.assertEqual(portal.email, ADELE)


class TestHelpdeskEdits(HelpdeskCase):
    def test_mail_from_a_contact_marked_without_an_integration_still_makes_a_ticket(self):
        self.connect()
        adele = self.contact(ADELE)
        # What another module's SQL could leave behind: the mark without an integration.
        run_sql(self.env, "UPDATE res_partner SET azure_ad_integration_id = NULL WHERE id = %s", adele.id)
        ticket = self.receive(f"Adele Vance <{ADELE}>")
        self.assertNotEqual(ticket.azure_ad_requester_match, "email", "no tenant vouches for it")
        self.assertEqual(ticket.name, "Printer on fire")

    def test_tickets_of_another_company_never_get_the_customers_contacts(self):
        other_company = self.env["res.company"].create({"name": "Customer's Company"})
        self.customer.company_id = other_company
        self.connect()
        adele = self.contact(ADELE)
        self.assertEqual(adele.company_id, other_company)
        ticket = self.receive(ADELE)
        self.assertNotEqual(ticket.company_id, other_company)
        self.assertFalse(ticket.partner_id)
        theirs = self.Ticket.create(
            {
                "name": "Theirs",
                "description": "<p>x</p>",
                "company_id": other_company.id,
                "partner_email": ADELE,
            }
        )
        self.assertEqual(theirs.partner_id, adele)


def run_sql(env, query, *params):
    """An edit made with SQL, behind the ORM's back."""
    env.flush_all()
    env.cr.execute(query, params)
    env.invalidate_all()


def run_migration(env, name):
    """Runs the upgrade step `name` of 1.1.0 as Odoo's `-u` does."""
    spec = spec_from_file_location(name, MIGRATIONS / f"{name}.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    env.flush_all()
    module.migrate(env.cr, "18.0.1.0.0")
    env.invalidate_all()


class TestUpgrade(AzureAdCase):
    def test_contacts_synced_before_get_their_customers_company(self):
        company = self.env["res.company"].create({"name": "Customer's Company"})
        self.customer.company_id = company
        self.connect()
        local = self.env["res.partner"].create({"name": "Local", "parent_id": self.customer.id})
        adele = self.contact(ADELE)
        # A portal user of the main company: Odoo keeps its partner in the user's company.
        self.env["res.users"].with_context(no_reset_password=True).create(
            {
                "login": "upgrade_adele",
                "partner_id": adele.id,
                series.GROUPS_FIELD: [Command.set(self.env.ref("base.group_portal").ids)],
            }
        )
        # As 1.0 created them: without a company.
        run_sql(self.env, "UPDATE res_partner SET company_id = NULL WHERE parent_id = %s", self.customer.id)
        run_migration(self.env, "post-10-contact-company")
        synced = self.contacts().filtered("azure_ad_synced")
        self.assertEqual(len(synced), 15)
        self.assertEqual(set((synced - adele).mapped("company_id")), {company})
        self.assertFalse(adele.company_id)
        self.assertFalse(local.company_id, "only what the sync created")

    def test_contacts_of_a_deleted_integration_lose_the_mark(self):
        self.connect()
        other = self.env["res.partner"].create({"name": "Other Customer", "is_company": True})
        other_integration = self.env["azure.ad.integration"].create({"partner_id": other.id})
        self.connect(other_integration, FABRIKAM_ID)
        # As 1.0 deleted it: by the database's cascade.
        run_sql(self.env, "DELETE FROM azure_ad_integration WHERE id = %s", self.integration.id)
        self.assertEqual(len(self.contacts().filtered("azure_ad_synced")), 15)
        run_migration(self.env, "post-20-unlinked-contacts")
        self.assertFalse(self.contacts().filtered("azure_ad_synced"))
        self.assertFalse(self.contacts().sudo().filtered("azure_ad_object_id"))
        self.assertTrue(self.contacts(other).filtered("azure_ad_synced"))
