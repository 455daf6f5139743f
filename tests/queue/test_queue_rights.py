"""Whose rights a queued Azure AD sync runs with: whoever asks for it to run. A Job Queue Manager
without Settings rights can manage the queue, but cannot make an administrator's sync job run
again (requeue, set it pending, give it another user); another administrator who requeues it
runs it as themselves."""

import xmlrpc.client

from odoo import Command
from odoo.tests import new_test_user

from odoo.addons.azure_ad_contacts import series
from odoo.addons.queue_job.exception import FailedJobError

from .test_queue_jobs import QueueCase

RPC_FAULT_CODE_ACCESS_ERROR = 4  # Odoo's XML-RPC fault of an AccessError (base on 18.0, rpc on 19.0)


class TestWhoASyncJobRunsAs(QueueCase):
    def setUp(self):
        super().setUp()
        self.queue_manager = new_test_user(
            self.env(su=True),
            login="jq_manager",
            password="jq_manager_pw",
            groups="base.group_user,queue_job.group_queue_job_manager",
        )
        self.other_admin = new_test_user(
            self.env(su=True),
            login="second_admin",
            password="second_admin_pw",
            groups="base.group_user,base.group_system,queue_job.group_queue_job_manager",
        )
        # The administrator's "Sync now" of a large tenant, run and done.
        (self.job,) = self.integration._enqueue_sync("manual")
        self.perform(self.job)
        self.job.button_done()
        self.assertEqual((self.job.state, self.job.user_id), ("done", self.env.user))

    def as_user(self, user, model, method, *args):
        return self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, user.id, f"{user.login}_pw", model, method, list(args)
        )

    def assert_refused(self, user, model, method, *args):
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            self.as_user(user, model, method, *args)
        self.assertEqual(
            caught.exception.faultCode, RPC_FAULT_CODE_ACCESS_ERROR, caught.exception.faultString
        )
        self.assertIn("whoever asks", caught.exception.faultString)

    def test_a_job_queue_manager_cannot_run_an_administrators_sync_again(self):
        job_ids = self.job.ids
        self.assert_refused(self.queue_manager, "queue.job", "requeue", job_ids)
        self.assert_refused(self.queue_manager, "queue.job", "write", job_ids, {"state": "pending"})
        self.assert_refused(self.queue_manager, "queue.job", "write", job_ids, {"state": "enqueued"})
        self.assert_refused(
            self.queue_manager, "queue.job", "write", job_ids, {"user_id": self.queue_manager.id}
        )
        wizard = self.as_user(
            self.queue_manager, "queue.requeue.job", "create", {"job_ids": [(6, 0, job_ids)]}
        )
        self.assert_refused(self.queue_manager, "queue.requeue.job", "requeue", [wizard])
        self.env.invalidate_all()
        self.assertEqual((self.job.state, self.job.user_id), ("done", self.env.user))
        # Managing the queue otherwise stays theirs: other jobs, and what runs nothing.
        other = self.env["queue.job"].with_delay()._test_job()
        other.db_record().button_done()
        self.as_user(self.queue_manager, "queue.job", "requeue", other.db_record().ids)
        self.as_user(self.queue_manager, "queue.job", "write", job_ids, {"priority": 5})
        self.env.invalidate_all()
        self.assertEqual((other.db_record().state, self.job.priority), ("pending", 5))

    def test_an_administrator_who_requeues_it_runs_it_as_themselves(self):
        self.as_user(self.other_admin, "queue.job", "requeue", self.job.ids)
        self.env.invalidate_all()
        self.assertEqual((self.job.state, self.job.user_id), ("pending", self.other_admin))
        self.assertEqual(self.job.records.env.uid, self.other_admin.id)
        self.perform(self.job)
        log = self.integration.sync_log_ids[:1]
        self.assertEqual((log.job_id, log.state, log.user_id), (self.job, "done", self.other_admin))

    def test_a_scheduled_sync_requeued_by_an_administrator_runs_as_that_administrator(self):
        (job,) = self.integration.sudo()._enqueue_sync("cron")
        self.assertTrue(job.records.env.su)
        job.button_done()
        self.as_user(self.other_admin, "queue.job", "requeue", job.ids)
        self.env.invalidate_all()
        self.assertFalse(job.records.env.su)
        self.assertEqual(job.records.env.uid, self.other_admin.id)

    def test_a_sync_job_whose_user_lost_settings_rights_refuses_to_run(self):
        job = self.integration.with_user(self.other_admin)._enqueue_sync("manual")
        self.assertEqual(job.records.env.uid, self.other_admin.id)
        self.other_admin.sudo()[series.GROUPS_FIELD] = [Command.unlink(self.env.ref("base.group_system").id)]
        logs_before = self.integration.sync_log_ids
        with self.assertRaises(FailedJobError) as failed:
            self.perform(job)
        self.assertIn("Only administrators", str(failed.exception))
        self.assertEqual(self.integration.sync_log_ids, logs_before)
