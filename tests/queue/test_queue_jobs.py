"""The queue_job bridge (azure_ad_contacts_queue) in one database: what is queued, by whom,
and how a job ends. Runs on a database that has the bridge installed (bin/test makes one)."""

import os
import unittest
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import polib

from odoo import fields
from odoo.tests import HttpCase, TransactionCase
from odoo.tools import config

from odoo.addons.azure_ad_contacts import series
from odoo.addons.azure_ad_contacts_queue.models.azure_ad_integration import ALREADY_RUNNING_RETRY
from odoo.addons.queue_job import jobrunner
from odoo.addons.queue_job.exception import FailedJobError, RetryableJobError
from odoo.addons.queue_job.job import Job

from scripts import i18n

from ..common import CONTOSO_ID, FABRIKAM_ID, AddonTest, CommittedTransactions, FakeTenantMixin


class QueueCase(FakeTenantMixin, HttpCase):
    """Contoso and Fabrikam connected to the fake; jobs are stored, not run, until a test
    performs them as the job runner's worker would."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fabrikam = cls.env["res.partner"].create({"name": "Fabrikam Inc", "is_company": True})
        cls.fabrikam_integration = cls.env["azure.ad.integration"].create({"partner_id": cls.fabrikam.id})

    def setUp(self):
        super().setUp()
        for integration, tenant_id in (
            (self.integration, CONTOSO_ID),
            (self.fabrikam_integration, FABRIKAM_ID),
        ):
            self.fake.set_consent(tenant_id, True)
            integration._complete_consent(tenant_id)
        # As an administrator, not in superuser mode: what a job may write, the admin's job may.
        self.env = self.env(user=self.env.ref("base.user_admin"))
        self.integration = self.integration.with_env(self.env)
        self.fabrikam_integration = self.fabrikam_integration.with_env(self.env)
        self.customer, self.fabrikam = self.customer.with_env(self.env), self.fabrikam.with_env(self.env)

    def jobs(self, integrations=None):
        integrations = integrations or (self.integration | self.fabrikam_integration)
        return (
            self.env["queue.job"]
            .search(
                [("model_name", "=", "azure.ad.integration"), ("method_name", "=", "_sync_job")], order="id"
            )
            .filtered(lambda job: job.records & integrations)
        )

    def perform(self, job_record):
        """What the runner's worker does with a job: load it and run its method."""
        job = Job.load(self.env, job_record.uuid)
        job.set_started()
        return job.perform()

    def perform_failing(self, job_record):
        """Performs a job that must fail; returns its message. Not assertRaises: Odoo's rolls
        back what its block wrote, and the failed run's log must stay."""
        try:
            self.perform(job_record)
        except FailedJobError as failure:
            self.env.invalidate_all()  # the log was written by a transaction of its own
            return str(failure)
        self.fail("the job did not fail")

    def make_due(self, *integrations):
        for integration in integrations:
            integration.write({"auto_sync": True})
            integration.next_sync_date = fields.Datetime.now() - timedelta(minutes=1)


class TestQueueing(QueueCase):
    def test_scheduled_job_queues_one_job_per_due_customer_and_never_twice(self):
        self.make_due(self.integration, self.fabrikam_integration)
        self.env["azure.ad.integration"]._cron_sync_due()
        jobs = self.jobs()
        self.assertEqual(len(jobs), 2)
        self.assertEqual(set(jobs.mapped("channel")), {"root.azure_ad"})
        self.assertEqual(jobs.mapped("state"), ["pending", "pending"])
        self.assertEqual({job.records for job in jobs}, {self.integration, self.fabrikam_integration})
        # The next run of the scheduled job, before those jobs ran: nothing is queued twice.
        self.env["azure.ad.integration"]._cron_sync_due()
        self.assertEqual(self.jobs(), jobs)
        # Nothing was synced by the scheduled job itself.
        self.assertEqual(self.integration.sync_log_ids.mapped("trigger"), ["connect"])

    def test_sync_now_of_a_large_tenant_queues_a_job_for_the_user(self):
        self.env["azure.ad.sync.log"].sudo().create(
            {"integration_id": self.integration.id, "trigger": "manual", "state": "done", "unchanged": 6000}
        )
        action = self.integration.action_sync_now()
        self.assertEqual(action["params"]["type"], "info")
        (job,) = self.jobs(self.integration)
        self.assertEqual((job.args, job.user_id), (["manual"], self.env.user))
        self.assertFalse(self.integration.sync_requested_by)

    def test_a_first_sync_too_long_for_a_request_is_a_job(self):
        """Connecting a tenant whose first sync may outlast the request queues it as a job of
        the administrator who connected; the scheduled job queues no second one, and a job for
        a first sync that ran already does nothing."""
        self.integration.action_disconnect()
        self.fake.set_graph_latency(400, jitter=0)
        with patch.dict(config.options, {"limit_time_real": 4}):  # a second may run in a request
            self.assertFalse(self.integration._complete_consent(CONTOSO_ID))
        self.fake.set_graph_latency(0)
        (job,) = self.jobs(self.integration)
        self.assertEqual((job.args, job.user_id), (["connect"], self.env.user))
        self.assertTrue(self.integration.first_sync_pending_since)
        self.env["azure.ad.integration"]._cron_sync_due()
        self.assertEqual(self.jobs(self.integration), job)
        self.perform(job)
        log = self.integration.sync_log_ids.filtered("job_id")  # one transaction: one date for all runs
        self.assertEqual((log.trigger, log.state, log.unchanged, log.job_id), ("connect", "done", 15, job))
        self.assertFalse(self.integration.first_sync_pending_since)
        self.assertIn("15 unchanged", self.customer.message_ids[0].body)
        logs = self.integration.sync_log_ids
        again = self.integration._enqueue_sync("connect")
        self.assertIn("ran already", self.perform(again))
        self.assertEqual(self.integration.sync_log_ids, logs)

    def test_action_menu_queues_one_job_per_selected_customer(self):
        action = (self.customer | self.fabrikam).action_azure_ad_sync()
        self.assertEqual(action["params"]["type"], "info")
        self.assertEqual(len(self.jobs()), 2)

    def test_async_api_returns_the_job_uuids_and_sync_contacts_stays_synchronous(self):
        integrations = self.integration | self.fabrikam_integration
        uuids = integrations.sync_contacts_async()
        self.assertEqual(uuids, self.jobs().mapped("uuid"))
        results = integrations.sync_contacts()
        self.assertEqual([result["integration_id"] for result in results], integrations.ids)
        self.assertTrue(
            all(
                set(result) >= {"created", "updated", "unchanged", "skipped", "archived"}
                for result in results
            )
        )
        self.assertEqual(len(self.jobs()), 2)  # the synchronous call queued nothing

    @unittest.skipUnless(series.CHANNEL_CAPACITY_IN_DATABASE, "queue_job 19.0: capacities are configured")
    def test_capacity_setting_is_the_channel_capacity(self):
        self.assertTrue(self.env["res.config.settings"].create({}).azure_ad_sync_capacity_editable)
        settings = self.env["res.config.settings"].create({"azure_ad_sync_capacity": 4})
        settings.execute()
        channel = self.env.ref("azure_ad_contacts_queue.queue_job_channel_azure_ad")
        self.assertEqual((channel.complete_name, channel.capacity), ("root.azure_ad", 4))
        self.assertEqual(self.env["res.config.settings"].create({}).azure_ad_sync_capacity, 4)

    @unittest.skipIf(series.CHANNEL_CAPACITY_IN_DATABASE, "queue_job 18.0 keeps capacities in the database")
    def test_capacity_setting_shows_the_configured_capacity(self):
        with patch.dict(os.environ, {"ODOO_QUEUE_JOB_CHANNELS": "root:4,root.azure_ad:3"}):
            shown = self.env["res.config.settings"].create({})
            self.assertEqual(shown.azure_ad_sync_capacity, 3)
            self.assertFalse(shown.azure_ad_sync_capacity_editable)
            self.env["res.config.settings"].create({"azure_ad_sync_capacity": 5}).execute()
            self.assertEqual(self.env["res.config.settings"].create({}).azure_ad_sync_capacity, 3)
        # Not configured: the channel has what its parent, root, has.
        with patch.dict(os.environ, {"ODOO_QUEUE_JOB_CHANNELS": "root:2"}):
            self.assertEqual(self.env["res.config.settings"].create({}).azure_ad_sync_capacity, 2)


class TestJobs(QueueCase):
    def test_a_job_syncs_and_its_run_log_links_to_it(self):
        self.fake.add_user(
            CONTOSO_ID,
            {
                "id": "0a1b2c3d-0000-4000-8000-000000000001",
                "givenName": "Queued",
                "surname": "User",
                "displayName": "Queued User",
                "mail": "queued.user@contoso.example",
                "userType": "Member",
                "accountEnabled": True,
            },
        )
        (job,) = self.jobs(self.integration) or self.integration._enqueue_sync("cron")
        message = self.perform(job)
        log = self.integration.sync_log_ids[:1]
        self.assertEqual((log.trigger, log.state, log.created, log.job_id), ("cron", "done", 1, job))
        self.assertIn("1 created", message)

    def test_a_contact_moved_to_another_company_never_fails_the_job(self):
        adele = self.customer.child_ids.filtered(lambda c: c.email == "adele.vance@contoso.example")
        adele.parent_id = self.fabrikam  # by a colleague: no longer a contact of Contoso
        job = self.integration._enqueue_sync("cron")
        message = self.perform(job)
        log = self.integration.last_log_id
        self.assertEqual((log.state, log.created, log.other_edits), ("done", 1, {"moved": 1}))
        self.assertIn("1 created", message)
        self.assertFalse(adele.sudo().azure_ad_object_id)

    def test_throttling_becomes_a_retry_after_microsofts_wait(self):
        job = self.integration._enqueue_sync("cron")
        self.fake.add_fault(kind="429", target="delta", retry_after=900, count=10)
        logs_before = self.integration.sync_log_ids
        with self.assertRaises(RetryableJobError) as raised:
            self.perform(job)
        self.assertEqual(raised.exception.seconds, 900)
        # Nothing of the throttled try remains: the retry is the job's.
        self.assertEqual(self.integration.sync_log_ids, logs_before)
        self.assertEqual(self.integration.state, "connected")

    def test_a_failed_run_fails_the_job_and_keeps_its_run_log(self):
        job = self.integration._enqueue_sync("manual")
        self.fake.revoke_consent(CONTOSO_ID)
        message = self.perform_failing(job)
        log = self.integration.sync_log_ids[:1]
        self.assertEqual((log.state, log.job_id, log.trigger), ("failed", job, "manual"))
        self.assertEqual(message, log.error)
        self.assertEqual(self.integration.state, "error")
        self.assertTrue(self.integration.retry_date, "tried again later, by a new job")

    def test_a_failed_customer_is_queued_again_when_its_next_try_comes_scheduled_or_not(self):
        self.assertFalse(self.integration.auto_sync)
        self.fake.revoke_consent(CONTOSO_ID)
        self.perform_failing(self.integration._enqueue_sync("manual"))
        self.assertGreater(self.integration.retry_date, fields.Datetime.now())
        self.env["queue.job"].sudo().search([]).unlink()
        self.env["azure.ad.integration"]._cron_sync_due()
        self.assertFalse(self.jobs(), "not before its next try")
        self.integration.sudo().retry_date = fields.Datetime.now() - timedelta(minutes=1)
        self.fake.set_consent(CONTOSO_ID, True)
        self.env["azure.ad.integration"]._cron_sync_due()
        (job,) = self.jobs()
        self.assertEqual((job.records, job.args), (self.integration, ["cron"]))
        self.perform(job)
        self.assertEqual((self.integration.state, self.integration.retry_date), ("connected", False))

    def test_a_crashed_job_heals_as_a_crashed_scheduled_sync_does(self):
        """A crash fails the job (Job Queue › Jobs shows its traceback), and the customer is
        tried again later with a growing delay, an activity after two crashes in a row, whether
        or not it syncs on a schedule."""
        self.assertFalse(self.integration.auto_sync)
        integration_class = type(self.env["azure.ad.integration"])

        def broken(integration, *args, **kwargs):
            raise RuntimeError("boom")

        self.patch(integration_class, "_existing_contacts", broken)
        failing = self.env.ref("azure_ad_contacts.mail_activity_type_sync_failing")
        for crashes, hours in ((1, 1), (2, 2)):
            job = self.integration._enqueue_sync("cron")
            try:
                self.perform(job)
            except RuntimeError:
                pass
            else:
                self.fail("the job did not crash")
            self.env.invalidate_all()  # written by a transaction of its own
            log = self.integration.sync_log_ids[:1]
            self.assertEqual((log.state, log.job_id, log.trigger), ("failed", job, "cron"))
            self.assertIn("boom", log.error)
            self.assertEqual(self.integration.failed_runs, crashes)
            self.assertAlmostEqual(
                self.integration.retry_date,
                fields.Datetime.now() + timedelta(hours=hours),
                delta=timedelta(minutes=2),
            )
            activities = self.integration.activity_ids.filtered(lambda a: a.activity_type_id == failing)
            self.assertEqual(len(activities), crashes - 1, "an activity after two failures in a row")
        # Its next try comes: the scheduled job queues it.
        self.integration.sudo().retry_date = fields.Datetime.now() - timedelta(minutes=1)
        self.env["queue.job"].sudo().search([]).unlink()
        self.env["azure.ad.integration"]._cron_sync_due()
        self.assertEqual(self.jobs().records, self.integration)

    def test_the_last_try_of_a_throttled_job_fails_like_a_failed_run(self):
        job = self.integration._enqueue_sync("cron")
        job.max_retries = 1  # this try is the last one queue_job allows
        self.fake.add_fault(kind="429", target="delta", retry_after=900, count=10)
        self.perform_failing(job)
        log = self.integration.sync_log_ids[:1]
        self.assertEqual((log.state, log.job_id), ("failed", job))
        self.assertIn("throttling", log.error)
        self.assertEqual(self.integration.failed_runs, 1)
        self.assertGreaterEqual(self.integration.retry_date, fields.Datetime.now() + timedelta(minutes=59))


class TestBusyCustomer(CommittedTransactions, AddonTest, TransactionCase):
    """A sync of the customer running on another server: each side has its own PostgreSQL
    transaction on committed data, as two servers would."""

    def setUp(self):
        super().setUp()
        with self.committed() as env:
            customer = env["res.partner"].create({"name": "Busy Customer", "is_company": True})
            integration = env["azure.ad.integration"].create(
                {"partner_id": customer.id, "state": "connected", "tenant_id": CONTOSO_ID}
            )
            job = integration._enqueue_sync("cron")
            self.customer_id, self.integration_id, self.job_uuid = customer.id, integration.id, job.uuid
        self.addCleanup(self.delete_committed_data)

    def delete_committed_data(self):
        with self.committed() as env:
            env["queue.job"].search([("uuid", "=", self.job_uuid)]).unlink()
            env["azure.ad.integration"].browse(self.integration_id).unlink()
            env["res.partner"].browse(self.customer_id).unlink()

    def test_the_test_process_runs_no_job_runner(self):
        """Else it would take the job this class commits and run it meanwhile: the test's
        own transactions then meet the runner's (could not serialize access)."""
        self.assertIsNone(jobrunner.runner_thread)

    def test_a_sync_running_elsewhere_is_a_short_retry_not_a_failure(self):
        with self.committed() as elsewhere:
            # The other server's sync holds this customer's lock while this job starts.
            elsewhere.cr.execute(
                "SELECT id FROM azure_ad_integration WHERE id = %s FOR UPDATE", [self.integration_id]
            )
            with self.committed() as here, self.assertRaises(RetryableJobError) as raised:
                job = Job.load(here, self.job_uuid)
                job.set_started()
                job.perform()
        self.assertEqual(raised.exception.seconds, ALREADY_RUNNING_RETRY)
        self.assertTrue(raised.exception.ignore_retry)
        with self.committed() as env:  # the retry is queue_job's: nobody ran the job meanwhile
            job = env["queue.job"].search([("uuid", "=", self.job_uuid)])
            self.assertEqual((job.state, job.retry), ("pending", 0))


class TestQueueTranslations(QueueCase):
    def test_german_po_is_current_and_complete(self):
        exported = i18n.export_pot(self.env.cr, "azure_ad_contacts_queue")
        exported = {
            (entry.msgctxt, entry.msgid) for entry in i18n.without_magic_field_labels(polib.pofile(exported))
        }
        german = polib.pofile(str(Path(__file__).parents[2] / "azure_ad_contacts_queue" / "i18n" / "de.po"))
        self.assertEqual({(entry.msgctxt, entry.msgid) for entry in german}, exported)
        self.assertEqual([entry.msgid for entry in german if not entry.msgstr.strip()], [])
