"""Issue 5: the scheduled job, the bound server action, background "Sync now" and the
XML-RPC API (over real HTTP), with the documented example script."""

import io
import unittest
import xmlrpc.client
from datetime import timedelta
from unittest.mock import patch

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.azure_ad_contacts import series
from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin, azure_ad_sync_mixin

from examples import azure_ad_rpc

from .common import CONTOSO_ID, FABRIKAM_ID, AzureAdCase, FakeTenantMixin, outside_requests, user


class TestScheduledSync(AzureAdCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fabrikam = cls.env["res.partner"].create({"name": "Fabrikam", "is_company": True})
        cls.fabrikam_integration = cls.env["azure.ad.integration"].create({"partner_id": cls.fabrikam.id})
        cls.cron = cls.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")

    def run_cron(self, **kwargs):
        """The job as Odoo's scheduler runs it: with a progress record in the context."""
        _cron, progress = self.cron._add_progress()
        self.env["azure.ad.integration"].with_context(
            ir_cron_progress_id=progress.id, cron_id=progress.cron_id.id
        )._cron_sync_due(**kwargs)
        return progress

    def connect_both(self):
        self.connect()
        self.connect(self.fabrikam_integration, FABRIKAM_ID)
        (self.integration | self.fabrikam_integration).write({"auto_sync": True, "sync_interval_hours": 6})

    def test_automatic_sync_is_off_by_default(self):
        self.connect()
        self.assertFalse(self.integration.auto_sync)
        self.assertFalse(self.integration.next_sync_date)
        progress = self.run_cron()
        self.assertEqual((progress.done, progress.remaining), (0, 0))
        self.assertEqual(len(self.integration.sync_log_ids), 1, "only the connect run")

    def test_due_integrations_sync_and_are_rescheduled(self):
        self.connect_both()
        last = self.integration.last_sync_date
        self.assertEqual(self.integration.next_sync_date, last + timedelta(hours=6))
        self.assertEqual(self.run_cron().done, 0, "nothing is due yet")
        (self.integration | self.fabrikam_integration).write(
            {"next_sync_date": fields.Datetime.now() - timedelta(minutes=1)}
        )
        progress = self.run_cron()
        self.assertEqual((progress.done, progress.remaining), (2, 0))
        for integration in self.integration | self.fabrikam_integration:
            log = integration.sync_log_ids[0]
            self.assertEqual((log.trigger, log.state), ("cron", "done"))
            self.assertEqual(integration.next_sync_date, integration.last_sync_date + timedelta(hours=6))

    def test_excluded_and_disconnected_customers_are_skipped(self):
        self.connect_both()
        self.integration.excluded = True
        self.fabrikam_integration.action_disconnect()
        (self.integration | self.fabrikam_integration).write({"next_sync_date": fields.Datetime.now()})
        self.assertEqual(self.run_cron().done, 0)
        self.assertEqual(self.env["azure.ad.sync.log"].search_count([("trigger", "=", "cron")]), 0)

    def test_one_broken_tenant_never_stops_the_others(self):
        self.connect_both()
        self.fake.set_consent(CONTOSO_ID, False)  # Contoso revoked the app
        self.integration.sudo().token_cache = False  # ... and its app token expired
        self.fake.update_user(
            FABRIKAM_ID, self.fake.tenant(FABRIKAM_ID)["users"][0]["id"], {"jobTitle": "CEO"}
        )
        (self.integration | self.fabrikam_integration).write({"next_sync_date": fields.Datetime.now()})
        progress = self.run_cron()
        self.assertEqual(progress.done, 2)
        self.assertEqual(self.integration.sync_log_ids[0].state, "failed")
        self.assertEqual(self.integration.state, "error")
        self.assertIn("AADSTS700016", self.integration.last_error)
        # Tried again in an hour, not at every run of the job.
        self.assertGreater(self.integration.retry_date, fields.Datetime.now() + timedelta(minutes=59))
        fabrikam_log = self.fabrikam_integration.sync_log_ids[0]
        self.assertEqual((fabrikam_log.state, fabrikam_log.updated), ("done", 1))
        # A crash (not a Microsoft error) stays with its customer too.
        self.fabrikam_integration.next_sync_date = fields.Datetime.now()
        self.integration.write(
            {"state": "connected", "retry_date": False, "next_sync_date": fields.Datetime.now()}
        )
        self.fake.set_consent(CONTOSO_ID, True)
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()  # else MSAL replays the refusal for 60 s
        fabrikam_runs = len(self.fabrikam_integration.sync_log_ids)
        contoso_runs = len(self.integration.sync_log_ids)
        original = azure_ad_sync_mixin.AzureAdSyncMixin._existing_contacts

        def broken_for_contoso(integration, *args, **kwargs):
            if integration == self.integration:
                raise RuntimeError("boom")
            return original(integration, *args, **kwargs)

        with (
            patch.object(azure_ad_sync_mixin.AzureAdSyncMixin, "_existing_contacts", broken_for_contoso),
            self.assertLogs("odoo.addons.azure_ad_contacts", "ERROR"),
        ):
            self.assertEqual(self.run_cron().done, 2)
        # Fabrikam got a new, successful run after Contoso's crash.
        self.assertEqual(len(self.fabrikam_integration.sync_log_ids), fabrikam_runs + 1)
        self.assertEqual(self.fabrikam_integration.sync_log_ids[0].trigger, "cron")
        self.assertEqual(self.fabrikam_integration.sync_log_ids[0].state, "done")
        # Contoso's crash rolled back its own run entirely; it is tried again later.
        self.assertEqual(len(self.integration.sync_log_ids), contoso_runs)
        self.assertGreater(self.integration.retry_date, fields.Datetime.now() + timedelta(minutes=59))

    def test_batches_report_progress_and_continue(self):
        self.connect_both()
        (self.integration | self.fabrikam_integration).write({"next_sync_date": fields.Datetime.now()})
        # A batch budget of 0 s: one integration per batch, the rest reported as remaining.
        progress = self.run_cron(batch_seconds=0)
        self.assertEqual((progress.done, progress.remaining), (1, 1))
        progress = self.run_cron(batch_seconds=0)
        self.assertEqual((progress.done, progress.remaining), (1, 0))
        self.assertEqual(self.env["azure.ad.sync.log"].search_count([("trigger", "=", "cron")]), 2)

    def test_a_thousand_connected_customers_fit_the_job(self):
        """1,000 customers: the due query and the batching stay cheap (no sync is due)."""
        partners = self.env["res.partner"].create(
            [{"name": f"Customer {n}", "is_company": True} for n in range(1000)]
        )
        future = fields.Datetime.now() + timedelta(hours=1)
        self.env["azure.ad.integration"].create(
            [{"partner_id": p.id, "auto_sync": True, "next_sync_date": future} for p in partners]
        ).write({"state": "connected", "tenant_id": CONTOSO_ID})
        with self.assertQueryCount(__system__=6):
            progress = self.run_cron()
        self.assertEqual((progress.done, progress.remaining), (0, 0))

    def test_large_tenant_sync_now_runs_in_the_background_and_notifies(self):
        self.connect()
        with patch.object(azure_ad_sync_mixin, "BACKGROUND_SYNC_THRESHOLD", 10):
            action = self.integration.action_sync_now()
        self.assertEqual(action["params"]["type"], "info")
        self.assertIn("background", action["params"]["message"])
        self.assertEqual(self.integration.sync_requested_by, self.env.user)
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)]))
        self.assertEqual(len(self.integration.sync_log_ids), 1, "nothing ran in the request")
        self.env["bus.bus"].search([]).unlink()
        self.run_cron()
        self.env.cr.precommit.run()  # the bus writes its notifications when the job commits
        log = self.integration.sync_log_ids[0]
        self.assertEqual((log.trigger, log.state, log.unchanged), ("manual", "done", 15))
        self.assertFalse(self.integration.sync_requested_by)
        notification = self.env["bus.bus"].search([("message", "like", "simple_notification")])
        self.assertEqual(len(notification), 1)
        self.assertIn("15 unchanged", notification.message)

    def test_server_action_syncs_the_selected_customers(self):
        self.connect_both()
        self.set_users([user("id-new", "new@contoso.example", "New", "Person")])
        action = self.env.ref("azure_ad_contacts.res_partner_action_sync_azure_ad")
        result = action.with_context(
            active_model="res.partner", active_ids=(self.customer | self.fabrikam).ids
        ).run()
        self.assertEqual(result["tag"], "display_notification")
        self.assertEqual(result["params"]["type"], "success")
        self.assertIn("1 created", result["params"]["message"])
        self.assertEqual(self.integration.sync_log_ids[0].trigger, "manual")
        self.assertTrue(self.contact("new@contoso.example"))
        # Customers that are not connected are refused with a clear message.
        nobody = self.env["res.partner"].create({"name": "Not connected", "is_company": True})
        with self.assertRaisesRegex(UserError, "None of the selected customers is connected"):
            action.with_context(active_model="res.partner", active_ids=nobody.ids).run()


@tagged("post_install", "-at_install")
class TestRpcApi(FakeTenantMixin, HttpCase):
    """The public API over real XML-RPC, as an administrator's script and as a plain user."""

    customer_name = "Contoso RPC"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        new_test_user(cls.env, login="rpc_plain", password="rpc_plain_pw", groups="base.group_user")
        new_test_user(cls.env, login="rpc_admin", password="rpc_admin_pw", groups="base.group_system")

    def setUp(self):
        super().setUp()
        self.fake.set_consent(CONTOSO_ID, True)
        self.integration._complete_consent(CONTOSO_ID)

    def rpc(self, login, password, model, method, *args, **kwargs):
        uid = self.xmlrpc_common.authenticate(self.env.cr.dbname, login, password, {})
        return self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, uid, password, model, method, list(args), kwargs
        )

    def test_admin_syncs_and_reads_the_log(self):
        results = self.rpc(
            "rpc_admin", "rpc_admin_pw", "azure.ad.integration", "sync_contacts", [self.integration.id]
        )
        self.assertEqual(
            results,
            [
                {
                    "integration_id": self.integration.id,
                    "created": 0,
                    "updated": 0,
                    "unchanged": 15,
                    "skipped": 6,
                    "archived": 0,
                }
            ],
        )
        logs = self.rpc(
            "rpc_admin",
            "rpc_admin_pw",
            "azure.ad.sync.log",
            "search_read",
            [("integration_id", "=", self.integration.id)],
            fields=["trigger", "state", "unchanged"],
        )
        self.assertEqual(
            [(log["trigger"], log["state"]) for log in logs], [("api", "done"), ("connect", "done")]
        )

    def test_errors_are_clear_faults(self):
        for method in ("sync_contacts", "action_sync_now", "action_disconnect", "action_connect"):
            with self.assertRaisesRegex(xmlrpc.client.Fault, "Only administrators|not allowed"):
                self.rpc("rpc_plain", "rpc_plain_pw", "azure.ad.integration", method, [self.integration.id])
        with self.assertRaisesRegex(xmlrpc.client.Fault, "not allowed"):
            self.rpc("rpc_plain", "rpc_plain_pw", "azure.ad.sync.log", "search_read", [])
        self.integration.excluded = True
        with self.assertRaisesRegex(xmlrpc.client.Fault, "excluded"):
            self.rpc(
                "rpc_admin", "rpc_admin_pw", "azure.ad.integration", "sync_contacts", [self.integration.id]
            )
        self.integration.write({"excluded": False, "state": "disconnected"})
        with self.assertRaisesRegex(xmlrpc.client.Fault, "not connected"):
            self.rpc(
                "rpc_admin", "rpc_admin_pw", "azure.ad.integration", "sync_contacts", [self.integration.id]
            )

    def run_the_example(self, admin, plain):
        """The example script's commands, signed in as `admin` (its options), refused as `plain`."""
        common = ["--url", self.base_url(), "--db", self.env.cr.dbname]
        with outside_requests(self):
            out = io.StringIO()
            azure_ad_rpc.main([*common, *admin, "list"], out)
            self.assertIn("Contoso RPC", out.getvalue())
            self.assertIn("connected", out.getvalue())
            out = io.StringIO()
            azure_ad_rpc.main([*common, *admin, "sync", "--customer", "Contoso RPC"], out)
            self.assertIn(
                f"integration {self.integration.id}: 0 created, 0 updated, 15 unchanged, 6 skipped",
                out.getvalue(),
            )
            out = io.StringIO()
            azure_ad_rpc.main([*common, *admin, "log", "--limit", "5"], out)
            self.assertIn("api", out.getvalue())
            with self.assertRaisesRegex(SystemExit, "Odoo refused"):
                azure_ad_rpc.main([*common, *plain, "sync", "--all"], io.StringIO())

    def test_the_documented_example_script(self):
        self.run_the_example(
            ["--user", "rpc_admin", "--password", "rpc_admin_pw"],
            ["--user", "rpc_plain", "--password", "rpc_plain_pw"],
        )

    @unittest.skipUnless(series.JSON2_API, "Odoo's JSON-2 API is new in 19.0")
    def test_the_documented_example_script_over_json2(self):
        def api_key(login):
            user = self.env["res.users"].search([("login", "=", login)])
            return self.env["res.users.apikeys"].with_user(user).sudo()._generate(None, "example", None)

        self.run_the_example(["--api-key", api_key("rpc_admin")], ["--api-key", api_key("rpc_plain")])
