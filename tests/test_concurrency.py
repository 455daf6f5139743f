"""Two syncs of one customer at once, the scheduled job against the button, and a
sync while a user edits contacts. Real concurrency: each side has its own PostgreSQL
transaction (own cursor in a thread, or its own request on Odoo's threaded HTTP server), on
committed data that each test creates and deletes again.

The fake Microsoft holds the first Graph page for a few seconds ("timeout" fault with a
short delay), so the first sync is known to hold its lock while the other side acts.
"""

import logging
import socket
import threading
import time

import psycopg2
import requests

import odoo
from odoo.exceptions import UserError
from odoo.tests import TransactionCase, new_test_user
from odoo.tools import config

from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin

from .common import (
    CONTOSO_ID,
    AddonTest,
    CommittedTransactions,
    configure_addon,
    execute_kw_payload,
    fake_entra,
)

ADMIN_ID = 2
ADMIN_PASSWORD = "admin"
EDITOR = "rel_concurrency_editor"
HOLD = 3.0  # seconds the fake holds the first Graph page
ALREADY_RUNNING = "is already running"
ADELE = "f27609e2-827e-404b-bf93-1d0b96d8975b"
MEGAN = "7b797d0f-edff-4773-bcc3-c98efb2279d1"


def http_server_running():
    try:
        with socket.create_connection(("127.0.0.1", int(config["http_port"])), timeout=1):
            return True
    except OSError:
        return False


class TestConcurrentSyncs(CommittedTransactions, AddonTest, TransactionCase):
    """Committed data: a customer with a connected integration (Contoso's tenant) and a user
    who may edit contacts. The test transaction itself is not used."""

    def setUp(self):
        super().setUp()
        self.fake = fake_entra()
        self.fake.reset()
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.fake.set_consent(CONTOSO_ID, True)
        with self.committed() as env:
            params = env["ir.config_parameter"]
            self.saved_params = {
                key: params.get_param(key)
                for key in (
                    "azure_ad_contacts.client_id",
                    "azure_ad_contacts.client_secret",
                    "azure_ad_contacts.login_endpoint",
                    "azure_ad_contacts.graph_endpoint",
                )
            }
            configure_addon(env, self.fake)
            customer = env["res.partner"].create({"name": "Concurrency Customer", "is_company": True})
            integration = env["azure.ad.integration"].create(
                {"partner_id": customer.id, "state": "connected", "tenant_id": CONTOSO_ID}
            )
            editor = new_test_user(
                env,
                login=EDITOR,
                password=EDITOR + "_pw",
                groups="base.group_user,base.group_partner_manager",
            )
            self.customer_id, self.integration_id, self.editor_id = customer.id, integration.id, editor.id
        self.addCleanup(self.delete_committed_data)

    def delete_committed_data(self):
        with self.committed() as env:
            partners = env["res.partner"].with_context(active_test=False)
            partners.search([("parent_id", "=", self.customer_id)]).unlink()
            env["azure.ad.integration"].browse(self.integration_id).unlink()
            partners.browse(self.customer_id).unlink()
            editor = env["res.users"].browse(self.editor_id)
            editor_partner = editor.partner_id
            editor.unlink()
            editor_partner.unlink()
            params = env["ir.config_parameter"]
            for key, value in self.saved_params.items():
                params.set_param(key, value)

    # ------------------------------------------------------------------ helpers

    def sync_in_transaction(self, method="sync_contacts", trigger=None):
        """What one worker does: sync in its own transaction. Returns the result or the error."""
        try:
            with self.committed(uid=ADMIN_ID) as env:
                integration = env["azure.ad.integration"].browse(self.integration_id)
                if trigger:
                    return integration._sync(trigger)
                return getattr(integration, method)()
        except Exception as error:  # noqa: BLE001 (the test inspects it)
            return error

    def in_thread(self, func, *args, **kwargs):
        box = {}
        thread = threading.Thread(target=lambda: box.setdefault("result", func(*args, **kwargs)))
        thread.start()
        self.addCleanup(thread.join, 60)
        return thread, box

    def hold_first_graph_page(self, target="users"):
        """`target` "delta": a sync after the first one asks for the changes only."""
        fired = self.fake.stats()["faults_fired"]
        self.fake.add_fault(kind="timeout", target=target, delay=HOLD)
        return fired

    def wait_until_held(self, fired):
        """The first sync is inside Graph now, so it holds the integration's row lock."""
        deadline = time.monotonic() + 20
        while self.fake.stats()["faults_fired"] == fired:
            self.assertLess(time.monotonic(), deadline, "the first sync never reached Graph")
            time.sleep(0.05)

    def contacts(self):
        with self.committed() as env:
            partners = env["res.partner"].with_context(active_test=False)
            contacts = partners.search([("parent_id", "=", self.customer_id)])
            return [
                {
                    "id": p.id,
                    "email": p.email,
                    "name": p.name,
                    "function": p.function,
                    "phone": p.phone,
                    "comment": str(p.comment or ""),
                    "object_id": p.azure_ad_object_id,
                }
                for p in contacts
            ]

    def assert_no_duplicates(self, expected_count=15):
        contacts = self.contacts()
        self.assertEqual(len(contacts), expected_count)
        emails = [c["email"].strip().lower() for c in contacts]
        self.assertEqual(len(emails), len(set(emails)), "duplicate contacts")
        object_ids = [c["object_id"] for c in contacts if c["object_id"]]
        self.assertEqual(len(object_ids), len(set(object_ids)))
        return {c["email"]: c for c in contacts}

    def logs(self):
        with self.committed() as env:
            return env["azure.ad.sync.log"].search_read(
                [("integration_id", "=", self.integration_id)], ["state", "trigger", "created"], order="id"
            )

    def first_sync(self):
        result = self.sync_in_transaction()
        self.assertIsInstance(result, list, result)
        self.assertEqual(result[0]["created"], 15)

    def jsonrpc(self, model, method, args, login_uid=ADMIN_ID, password=ADMIN_PASSWORD):
        """One call over Odoo's external JSON-RPC API: its own HTTP request and transaction."""
        response = requests.post(
            f"http://127.0.0.1:{config['http_port']}/jsonrpc",
            json=execute_kw_payload(self.env.cr.dbname, login_uid, password, model, method, args),
            timeout=120,
        )
        response.raise_for_status()
        return response.json()

    def skip_without_http(self):
        if not http_server_running():
            self.skipTest("needs Odoo's HTTP server (pytest --odoo-http)")

    # ------------------------------------------------------------------ tests

    def test_two_syncs_at_once_the_second_is_refused(self):
        fired = self.hold_first_graph_page()
        first, first_box = self.in_thread(self.sync_in_transaction)
        self.wait_until_held(fired)
        second = self.sync_in_transaction()
        self.assertIsInstance(second, UserError)
        self.assertIn("A sync of Concurrency Customer is already running", str(second))
        self.assertIn("Wait until it has finished", str(second))
        first.join(60)
        self.assertEqual(first_box["result"][0]["created"], 15)
        self.assert_no_duplicates()
        self.assertEqual([log["state"] for log in self.logs()], ["done"])

    def test_a_sync_on_a_stale_snapshot_never_duplicates(self):
        """The second transaction began before the first one committed: it must not plan on
        what it saw (no contacts yet) and create them all again."""
        with self.committed(uid=ADMIN_ID) as env:
            env.cr.execute("SELECT count(*) FROM res_partner")  # the snapshot is taken here
            self.first_sync()  # another transaction syncs and commits meanwhile
            integration = env["azure.ad.integration"].browse(self.integration_id)
            with self.assertRaises(psycopg2.errors.SerializationFailure) as caught:
                integration.sync_contacts()
            # Odoo retries a request that fails this way, in a fresh transaction.
            self.assertIn(caught.exception.pgcode, odoo.service.model.PG_CONCURRENCY_ERRORS_TO_RETRY)
            env.cr.rollback()
            result = integration.sync_contacts()  # the retry
            self.assertEqual((result[0]["created"], result[0]["unchanged"]), (0, 15))
        self.assert_no_duplicates()

    def test_stale_snapshot_after_a_failed_sync_never_duplicates(self):
        with self.committed(uid=ADMIN_ID) as env:
            env.cr.execute("SELECT count(*) FROM res_partner")
            self.fake.add_fault(kind="malformed", target="users")  # fails at once, no retry
            failed = self.sync_in_transaction()
            self.assertIn("error", failed[0])
            self.fake.clear_faults()
            self.first_sync()
            with self.assertRaises(psycopg2.errors.SerializationFailure):
                env["azure.ad.integration"].browse(self.integration_id).sync_contacts()
            env.cr.rollback()
        self.assert_no_duplicates()

    def test_two_http_workers_sync_at_once(self):
        self.skip_without_http()
        fired = self.hold_first_graph_page()
        first, first_box = self.in_thread(
            self.jsonrpc, "azure.ad.integration", "sync_contacts", [[self.integration_id]]
        )
        self.wait_until_held(fired)
        second = self.jsonrpc("azure.ad.integration", "action_sync_now", [[self.integration_id]])
        self.assertEqual(second["error"]["data"]["name"], "odoo.exceptions.UserError")
        self.assertIn(ALREADY_RUNNING, second["error"]["data"]["message"])
        first.join(60)
        result = first_box["result"]["result"]
        self.assertEqual((result[0]["integration_id"], result[0]["created"]), (self.integration_id, 15))
        self.assert_no_duplicates()
        self.assertEqual([log["state"] for log in self.logs()], ["done"])

    def test_button_while_the_scheduled_job_runs(self):
        with self.committed() as env:
            env["azure.ad.integration"].browse(self.integration_id).auto_sync = True
        fired = self.hold_first_graph_page()
        cron = self.in_thread(self.run_cron)[0]
        self.wait_until_held(fired)
        refused = self.sync_in_transaction("action_sync_now")
        self.assertIsInstance(refused, UserError)
        self.assertIn(ALREADY_RUNNING, str(refused))
        cron.join(60)
        self.assert_no_duplicates()
        self.assertEqual([(log["trigger"], log["state"]) for log in self.logs()], [("cron", "done")])

    def test_scheduled_job_while_the_button_runs(self):
        with self.committed() as env:
            env["azure.ad.integration"].browse(self.integration_id).auto_sync = True
        fired = self.hold_first_graph_page()
        button, box = self.in_thread(self.sync_in_transaction, "action_sync_now")
        self.wait_until_held(fired)
        # logging.INFO, not "INFO": Odoo renames level 25 to "INFO".
        with self.assertLogs("odoo.addons.azure_ad_contacts", logging.INFO) as logs:
            self.run_cron()  # skips the busy customer, does not crash
        self.assertIn(ALREADY_RUNNING, "\n".join(logs.output))
        button.join(60)
        self.assertEqual(box["result"]["params"]["type"], "success")
        self.assert_no_duplicates()
        self.assertEqual([(log["trigger"], log["state"]) for log in self.logs()], [("manual", "done")])

    def run_cron(self):
        with self.committed() as env:
            env.ref("azure_ad_contacts.azure_ad_integration_cron_sync").method_direct_trigger()

    def test_a_user_edit_during_a_sync_survives(self):
        """The user saves while the sync is reading Graph: the sync's write to that contact
        hits a serialization failure, Odoo retries the sync's request, and the retry keeps
        the user's edit (the fields the sync does not own) and applies Entra's values."""
        self.skip_without_http()
        self.first_sync()
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "Chief Financial Officer"})
        before = self.assert_no_duplicates()
        adele, megan = before["adele.vance@contoso.example"], before["megan.bowen@contoso.example"]
        fired = self.hold_first_graph_page("delta")
        sync, box = self.in_thread(
            self.jsonrpc, "azure.ad.integration", "sync_contacts", [[self.integration_id]]
        )
        self.wait_until_held(fired)
        edit = self.jsonrpc(
            "res.partner",
            "write",
            [[adele["id"], megan["id"]], {"phone": "+49 30 12345", "comment": "<p>call after 10</p>"}],
            login_uid=self.editor_id,
            password=EDITOR + "_pw",
        )
        self.assertIs(edit.get("result"), True, edit)
        sync.join(60)
        result = box["result"]["result"][0]
        self.assertEqual((result["created"], result["updated"], result["unchanged"]), (0, 1, 14))
        after = self.assert_no_duplicates()
        for email in ("adele.vance@contoso.example", "megan.bowen@contoso.example"):
            self.assertEqual(after[email]["phone"], "+49 30 12345")
            self.assertEqual(after[email]["comment"], "<p>call after 10</p>")
        self.assertEqual(after["adele.vance@contoso.example"]["function"], "Chief Financial Officer")
        self.assertEqual([log["state"] for log in self.logs()], ["done", "done"])

    def test_a_user_edit_blocked_by_the_sync_survives(self):
        """The sync has written a contact and not committed yet: the user's save waits for
        the row, fails to serialize when the sync commits, and Odoo retries it."""
        self.skip_without_http()
        self.first_sync()
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "Chief Financial Officer"})
        adele = self.assert_no_duplicates()["adele.vance@contoso.example"]
        applied, release = threading.Event(), threading.Event()
        integration_class = type(self.env["azure.ad.integration"])
        apply_plan = integration_class._apply_plan

        def apply_and_wait(integration, *args, **kwargs):
            created_ids = apply_plan(integration, *args, **kwargs)
            integration.env.flush_all()  # the UPDATEs are sent: the sync holds the rows
            applied.set()
            release.wait(30)
            return created_ids

        self.patch(integration_class, "_apply_plan", apply_and_wait)
        sync, sync_box = self.in_thread(self.sync_in_transaction)
        self.assertTrue(applied.wait(30), sync_box)
        edit, edit_box = self.in_thread(
            self.jsonrpc,
            "res.partner",
            "write",
            [[adele["id"]], {"phone": "+49 30 777", "function": "Edited by a user"}],
            login_uid=self.editor_id,
            password=EDITOR + "_pw",
        )
        self.wait_for_a_blocked_transaction()
        release.set()
        sync.join(60)
        edit.join(60)
        self.assertEqual(sync_box["result"][0]["updated"], 1)
        self.assertIs(edit_box["result"].get("result"), True, edit_box["result"])
        adele = self.assert_no_duplicates()["adele.vance@contoso.example"]
        self.assertEqual(adele["phone"], "+49 30 777")
        # The user saved last: their job title stands until the next sync overwrites it.
        self.assertEqual(adele["function"], "Edited by a user")
        result = self.sync_in_transaction()[0]
        self.assertEqual(result["updated"], 1)
        adele = self.assert_no_duplicates()["adele.vance@contoso.example"]
        self.assertEqual((adele["function"], adele["phone"]), ("Chief Financial Officer", "+49 30 777"))

    def wait_for_a_blocked_transaction(self):
        deadline = time.monotonic() + 20
        while True:
            with self.committed() as env:
                env.cr.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                if env.cr.fetchone()[0]:
                    return
            self.assertLess(time.monotonic(), deadline, "the user's save never waited for the sync")
            time.sleep(0.05)

    def test_scheduled_job_on_a_stale_snapshot_skips_that_customer_only(self):
        """The job's transaction began before a "Sync now" committed: it must neither plan on
        its old snapshot (duplicates) nor lose the batch's other customers."""
        with self.committed() as env:
            env["azure.ad.integration"].browse(self.integration_id).auto_sync = True
            other_customer = env["res.partner"].create({"name": "Concurrency Other", "is_company": True})
            other = env["azure.ad.integration"].create(
                {
                    "partner_id": other_customer.id,
                    "state": "connected",
                    "tenant_id": CONTOSO_ID,
                    "auto_sync": True,
                }
            )
            other_ids = (other_customer.id, other.id)
        try:
            with self.committed() as env:
                env.cr.execute("SELECT count(*) FROM res_partner")  # the job's snapshot
                self.first_sync()  # "Sync now" commits meanwhile
                with self.assertLogs("odoo.addons.azure_ad_contacts", logging.INFO) as logs:
                    env["azure.ad.integration"]._cron_sync_due()
                    env.flush_all()
            self.assertIn("Concurrency Customer skipped: it was synced meanwhile", "\n".join(logs.output))
            self.assert_no_duplicates()
            self.assertEqual([(log["trigger"], log["state"]) for log in self.logs()], [("api", "done")])
            with self.committed() as env:
                other_log = env["azure.ad.sync.log"].search([("integration_id", "=", other_ids[1])])
                self.assertEqual(
                    (other_log.trigger, other_log.state, other_log.created), ("cron", "done", 15)
                )
        finally:
            with self.committed() as env:
                env["res.partner"].with_context(active_test=False).search(
                    [("parent_id", "=", other_ids[0])]
                ).unlink()
                env["azure.ad.integration"].browse(other_ids[1]).unlink()
                env["res.partner"].browse(other_ids[0]).unlink()
