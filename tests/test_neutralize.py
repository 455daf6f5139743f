"""A neutralized copy of the database (odoo-bin neutralize, or a staging copy on odoo.sh)
forgets every tenant's token, the consent nonces and the app's client secret, disconnects every
integration and runs no sync on its own; the contacts and the run history stay."""

from odoo.exceptions import UserError
from odoo.modules.neutralize import get_neutralization_queries, neutralize_database

from .common import AzureAdCase


class TestNeutralize(AzureAdCase):
    def test_neutralized_copy_forgets_tokens_and_stops_every_automatic_sync(self):
        self.connect()
        contacts = self.contacts().read(["name", "email", "azure_ad_object_id", "azure_ad_synced"])
        other_customer = self.env["res.partner"].create({"name": "Fabrikam", "is_company": True})
        other = self.env["azure.ad.integration"].create({"partner_id": other_customer.id})
        integrations = self.integration | other
        integrations.write({"auto_sync": True, "sync_interval_hours": 1})
        integrations.sudo().write({"consent_nonce": "a-pending-consent"})
        other.sudo().token_cache = '{"AccessToken": {}}'
        # A "Sync now" handed to the scheduled job, not run yet.
        self.integration.sync_requested_by = self.env.user
        self.assertTrue(self.integration.sudo().token_cache)
        self.assertIn(
            "azure_ad_integration",
            "\n".join(get_neutralization_queries(["azure_ad_contacts"])),
            "data/neutralize.sql is not found where Odoo looks for it",
        )

        self.env.flush_all()
        neutralize_database(self.env.cr)
        self.env.invalidate_all()

        for integration in integrations.sudo():
            self.assertRecordValues(
                integration,
                [
                    {
                        "token_cache": False,
                        "consent_nonce": False,
                        "auto_sync": False,
                        "sync_requested_by": False,
                        "delta_link": False,
                    }
                ],
            )
        # Nor what the tenant's users were: the copy starts over with a full listing.
        self.env.cr.execute("SELECT count(*) FROM azure_ad_directory_user")
        self.assertEqual(self.env.cr.fetchone()[0], 0)
        # Nothing is due for the scheduled job.
        self.env.cr.execute(
            "SELECT count(*) FROM azure_ad_integration WHERE auto_sync OR sync_requested_by IS NOT NULL"
        )
        self.assertEqual(self.env.cr.fetchone()[0], 0)
        with self.assertNoLogs("odoo.addons.azure_ad_contacts", "WARNING"):
            self.env["azure.ad.integration"]._cron_sync_due()
        self.assertEqual(len(self.integration.sync_log_ids), 1)  # only the first sync's
        # What was imported and the connection's identity stay.
        self.assertEqual(
            self.contacts().read(["name", "email", "azure_ad_object_id", "azure_ad_synced"]), contacts
        )
        self.assertEqual(self.integration.tenant_id, "9188040d-6c67-4c5b-b112-36a304b66dad")

    def test_neutralized_copy_keeps_no_client_secret_and_no_connected_integration(self):
        self.connect()
        params = self.env["ir.config_parameter"].sudo()
        draft_customer = self.env["res.partner"].create({"name": "Never Connected", "is_company": True})
        draft = self.env["azure.ad.integration"].create({"partner_id": draft_customer.id})
        failed_customer = self.env["res.partner"].create({"name": "Failing", "is_company": True})
        failed = self.env["azure.ad.integration"].create(
            {"partner_id": failed_customer.id, "tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47"}
        )
        failed.sudo().write({"state": "error"})
        self.assertEqual(self.integration.state, "connected")
        self.assertTrue(params.get_param("azure_ad_contacts.client_secret"))

        self.env.flush_all()
        neutralize_database(self.env.cr)
        self.env.invalidate_all()
        self.env.registry.clear_all_caches()  # ir.config_parameter values are cached (19.0: in "stable")

        self.assertFalse(params.get_param("azure_ad_contacts.client_secret"))
        self.assertTrue(params.get_param("azure_ad_contacts.client_id"), "the app's id is no secret")
        self.assertEqual(
            (self.integration | draft | failed).mapped("state"), ["disconnected", "draft", "disconnected"]
        )
        # Nothing on the copy can reach a tenant: no sync without a connection, and a new
        # connection needs a secret first.
        with self.assertRaisesRegex(UserError, "not connected"):
            self.integration.action_sync_now()
        with self.assertRaisesRegex(UserError, "client secret"):
            self.integration.action_connect()

    def test_a_consent_link_started_before_the_copy_is_dead_on_the_copy(self):
        nonce = self.integration._new_consent_nonce()
        self.assertTrue(nonce)
        self.env.flush_all()
        neutralize_database(self.env.cr)
        self.env.invalidate_all()
        self.assertFalse(self.integration.sudo().consent_nonce)
