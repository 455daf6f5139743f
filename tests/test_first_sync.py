"""The first sync after connecting a tenant: judged before any user is read, run at once or in
the background, and never able to take the connection with it. (A real prefork server with
worker time limits: test_connect_prefork.py.)"""

import json
from datetime import timedelta
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

import requests

from odoo import fields
from odoo.sql_db import db_connect
from odoo.tests import HttpCase, tagged
from odoo.tools import config

from odoo.addons.azure_ad_contacts.models import res_partner

from fake_entra import generate_users

from .common import CONTOSO_ID, AzureAdCase, FakeTenantMixin


class TestFirstSyncJudgement(AzureAdCase):
    """How the first sync is judged: Microsoft's count of users, and how long it took to answer."""

    def setUp(self):
        super().setUp()
        self.connect()

    def may_outlast(self):
        return self.integration._first_sync_may_outlast_request()

    def test_a_small_quick_tenant_syncs_at_once(self):
        self.assertFalse(self.may_outlast())
        self.assertEqual(self.fake.stats()["counts"]["count"], 2)  # at connect, and now

    def test_more_users_than_a_request_may_sync(self):
        self.set_users(generate_users(5001, seed=8, domain="contoso.example", plain=True))
        self.assertTrue(self.may_outlast())

    def test_microsoft_slow_to_answer(self):
        self.fake.set_graph_latency(300, jitter=0)
        with patch.dict(config.options, {"limit_time_real": 2}):  # half a second in a request
            self.assertTrue(self.may_outlast())
        self.assertFalse(self.may_outlast())  # 30 s of the default 120

    def test_microsoft_cannot_count(self):
        """Throttled, or anything else: unknown, so it may take long. Nothing is waited for."""
        self.fake.add_fault(kind="429", target="count", retry_after=30)
        self.assertTrue(self.may_outlast())
        self.fake.add_fault(kind="503", target="count")
        self.assertTrue(self.may_outlast())
        self.assertEqual(self.fake.stats()["faults_pending"], [])

    def test_a_lagging_count_misjudges_a_large_tenant(self):
        """Microsoft's count comes from an eventually consistent index: users added in the last
        minutes may be missing, so a large tenant can look small. The judgement is an estimate;
        what keeps the connection then is that it is committed before the first sync (below)."""
        self.fake.set_index_lag(600)
        self.set_users(generate_users(5001, seed=8, domain="contoso.example", plain=True))
        self.assertFalse(self.may_outlast())


class TestLargeFirstSyncStatistics(AzureAdCase):
    """A first sync creating many contacts refreshes res_partner's statistics inside its own
    transaction (PostgreSQL plans Odoo's parent-cycle check of each batch of creates from
    them), and never waits for the lock that takes."""

    def setUp(self):
        super().setUp()
        self.set_users(generate_users(300, seed=3, domain="contoso.example", plain=True))
        self.patch(res_partner, "STATISTICS_REFRESH_FROM", 100)

    def planned_partners(self):
        """How many partners PostgreSQL plans with, and how many there are."""
        self.env.cr.execute(
            "SELECT reltuples, (SELECT count(*) FROM res_partner) FROM pg_class WHERE relname = 'res_partner'"
        )
        return self.env.cr.fetchone()

    def test_the_statistics_count_the_contacts_the_transaction_created(self):
        before, _count = self.planned_partners()
        self.assertEqual(self.connect()["created"], 300)
        planned, count = self.planned_partners()
        self.assertNotEqual(before, count)
        self.assertEqual(planned, count)

    def test_a_smaller_first_sync_leaves_them(self):
        self.patch(res_partner, "STATISTICS_REFRESH_FROM", 301)
        before, _count = self.planned_partners()
        self.assertEqual(self.connect()["created"], 300)
        self.assertEqual(self.planned_partners()[0], before)

    def test_never_waits_for_a_vacuum_or_analyze_elsewhere(self):
        with db_connect(self.env.cr.dbname).cursor() as other:
            other.execute("ANALYZE res_partner")  # holds the table's statistics lock until it ends
            before, _count = self.planned_partners()
            # Waiting would fail the sync here rather than hang the suite.
            self.env.cr.execute("SET LOCAL lock_timeout = '5s'")
            self.assertEqual(self.connect()["created"], 300)
            self.assertEqual(self.planned_partners()[0], before)
            other.rollback()


@tagged("post_install", "-at_install")
class TestFirstSyncAfterConsent(FakeTenantMixin, HttpCase):
    """Over real HTTP, as the administrator's browser goes: Connect, Microsoft, the callback."""

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())
        self.authenticate("admin", "admin")
        self.cron = self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")

    def connect_through_microsoft(self):
        action = self.make_jsonrpc_request(
            "/web/dataset/call_kw/azure.ad.integration/action_connect",
            {
                "model": "azure.ad.integration",
                "method": "action_connect",
                "args": [[self.integration.id]],
                "kwargs": {},
            },
        )
        query = {k: v[0] for k, v in parse_qs(urlsplit(action["url"]).query).items()}
        accepted = requests.post(
            action["url"].split("?")[0],
            data={**query, "tenant": CONTOSO_ID, "decision": "accept"},
            allow_redirects=False,
            timeout=10,
        )
        callback = accepted.headers["Location"].removeprefix(self.base_url())
        return self.url_open(callback, allow_redirects=False)

    def run_scheduled_job(self):
        _cron, progress = self.cron._add_progress()
        self.env["azure.ad.integration"].with_context(
            ir_cron_progress_id=progress.id, cron_id=progress.cron_id.id
        )._cron_sync_due()
        self.env.cr.precommit.run()  # the bus writes its notifications when the job commits

    def test_a_tenant_too_slow_for_a_request_syncs_in_the_background(self):
        """The callback connects and answers at once; the customer shows the first sync running;
        the scheduled job runs it as the connect run, and the customer then shows its counts."""
        self.fake.set_graph_latency(400, jitter=0)
        with patch.dict(config.options, {"limit_time_real": 4}):  # a second may run in a request
            response = self.connect_through_microsoft()
        self.assertIn(response.status_code, (302, 303), response.text[:300])
        self.assertTrue(
            response.headers["Location"].endswith(f"/odoo/contacts/{self.customer.id}?azure_ad_connected=1")
        )
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("connected", CONTOSO_ID))
        self.assertFalse(self.integration.sync_log_ids, "the first sync ran in the request")
        self.assertFalse(self.customer.child_ids)
        self.assertTrue(self.customer.azure_ad_first_sync_since)
        self.assertEqual(self.integration.sync_requested_by, self.env.ref("base.user_admin"))
        self.assertIn("runs in the background", self.integration.message_ids[0].body)
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)]))
        # "Sync now" meanwhile does not run it in the request after all.
        action = self.integration.with_user(self.env.ref("base.user_admin")).action_sync_now()
        self.assertIn("first sync of Contoso Ltd runs in the background", action["params"]["message"])
        self.assertFalse(self.integration.sync_log_ids)
        self.fake.set_graph_latency(0)
        self.env["bus.bus"].search([]).unlink()
        self.run_scheduled_job()
        log = self.integration.sync_log_ids
        self.assertEqual((log.trigger, log.state, log.created), ("connect", "done", 15))
        self.assertEqual(len(self.customer.child_ids.filtered("azure_ad_synced")), 15)
        self.assertFalse(self.customer.azure_ad_first_sync_since)
        self.assertFalse(self.integration.sync_requested_by)
        self.assertEqual(self.customer.azure_ad_last_run_summary, log.counts_summary)
        self.assertIn("15 created", self.customer.message_ids[0].body)
        [notification] = self.env["bus.bus"].search([("message", "like", "simple_notification")])
        self.assertIn("15 created", json.loads(notification.message)["payload"]["message"])

    def test_a_first_sync_that_dies_keeps_the_connection_and_stays_due(self):
        """Whatever ends the first sync in the request (here an unexpected error; in use, the
        worker stopped at its time limit), the connection was committed before it: the tenant
        stays connected, and the scheduled job runs the first sync once that worker is gone."""
        integration_class = type(self.env["azure.ad.integration"])
        sync_one = integration_class._sync_one

        def dies(integration, trigger):
            raise MemoryError("the worker went away")

        started = fields.Datetime.now()
        with patch.object(integration_class, "_sync_one", dies), self.assertLogs("odoo.http", "ERROR"):
            response = self.connect_through_microsoft()
        self.assertEqual(response.status_code, 500)
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("connected", CONTOSO_ID))
        self.assertTrue(self.integration.sudo().token_cache)
        self.assertTrue(self.integration.first_sync_pending_since)
        self.assertFalse(self.integration.sync_log_ids)
        trigger = self.env["ir.cron.trigger"].search(
            [("cron_id", "=", self.cron.id)], order="call_at desc", limit=1
        )
        limit = config["limit_time_real"]
        self.assertGreaterEqual(trigger.call_at, started + timedelta(seconds=limit))
        self.assertLessEqual(trigger.call_at, fields.Datetime.now() + timedelta(seconds=limit + 60))
        self.assertIs(integration_class._sync_one, sync_one)
        self.run_scheduled_job()
        log = self.integration.sync_log_ids
        self.assertEqual((log.trigger, log.state, log.created), ("connect", "done", 15))
        self.assertFalse(self.integration.first_sync_pending_since)
        self.assertIn("15 created", self.customer.message_ids[0].body)
        self.run_scheduled_job()
        self.assertEqual(len(self.integration.sync_log_ids), 1, "a first sync is run once")
