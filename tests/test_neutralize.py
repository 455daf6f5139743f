"""A neutralized copy of the database (odoo-bin neutralize, or a staging copy on
odoo.sh) forgets every tenant's token and consent nonce and runs no sync on its own; the
contacts and the run history stay."""

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

    def test_a_consent_link_started_before_the_copy_is_dead_on_the_copy(self):
        nonce = self.integration._new_consent_nonce()
        self.assertTrue(nonce)
        self.env.flush_all()
        neutralize_database(self.env.cr)
        self.env.invalidate_all()
        self.assertFalse(self.integration.sudo().consent_nonce)
