"""Syncs as queue jobs: one job per customer in the channel root.azure_ad, run by any Odoo
server of the database, retried after Microsoft's Retry-After or while another server syncs
the same customer."""

import logging

import psycopg2

from odoo import fields, models
from odoo.exceptions import UserError

from odoo.addons.azure_ad_contacts.utils import graph_client
from odoo.addons.queue_job.exception import FailedJobError, RetryableJobError

_logger = logging.getLogger(__name__)

# A sync of the same customer runs on another server: try again shortly, without counting
# it as a failed try.
ALREADY_RUNNING_RETRY = 15
# Microsoft's own errors that a later try can get past (throttling, unavailable service).
RETRYABLE_ERRORS = (graph_client.ThrottledError, graph_client.ServiceUnavailableError)


class AzureAdIntegration(models.Model):
    _inherit = "azure.ad.integration"

    # ------------------------------------------------------------ enqueueing

    def _enqueue_sync(self, trigger):
        """One job per integration of the recordset, unless one is already waiting for it;
        returns the jobs (queue.job), in order."""
        jobs = self.env["queue.job"]
        for integration in self:
            delayed = integration.with_delay(
                description=self.env._("Azure AD sync of %(customer)s", customer=integration.display_name),
                identity_key=f"azure_ad_contacts.sync:{integration.id}",
            )._sync_job(trigger)
            # A new job, or the queue.job already waiting with the same identity key.
            jobs |= delayed if isinstance(delayed, models.BaseModel) else delayed.db_record()
        return jobs

    def sync_contacts_async(self):
        """Public API: queues a sync of every integration of the recordset and returns the
        job identifiers (uuids of queue.job), in order; each job's result and its run log
        (azure.ad.sync.log, field job_id) tell the outcome."""
        self._check_syncable()
        return self._enqueue_sync("api").mapped("uuid")

    def _sync_in_background(self):
        """ "Sync now" of a large tenant, or the first sync of one just connected: a job, not
        the scheduled job."""
        self._enqueue_sync(self._requested_trigger())

    def _cron_sync_due(self, batch_seconds=None):
        """The scheduled job only queues: one job per due integration, run by the job runner
        on any server as the channel's capacity allows."""
        due = self._cron_due_integrations()
        # A "Sync now" request is handed over to its job; the job notifies the requester.
        requested = due.filtered("sync_requested_by")
        for integration in requested:
            integration.with_user(integration.sync_requested_by)._enqueue_sync(integration._requested_trigger())
        requested.sudo().sync_requested_by = False
        # A first sync whose request ended before it did (e.g. its worker was stopped).
        first = (due - requested).filtered("first_sync_pending_since")
        first._enqueue_sync("connect")
        (due - requested - first)._enqueue_sync("cron")
        _logger.info("Azure AD scheduled sync: %s job(s) queued", len(due))

    # ------------------------------------------------------------------ the job

    def _sync_job(self, trigger):
        """The job: one run of this customer's sync, on whichever server the runner chose.
        Throttling and a sync of this customer running elsewhere become retries of the job;
        any other failure fails the job (Job Queue › Jobs lists it) and keeps its run log."""
        self.ensure_one()
        if trigger == "connect" and not self.first_sync_pending_since:
            return self.env._("The first sync of %(customer)s ran already.", customer=self.name)
        try:
            # Whatever the run wrote is rolled back with this savepoint when it fails,
            # and so is the lock on this customer.
            with self.env.cr.savepoint():
                log = self.with_context(azure_ad_raise_graph_errors=True)._sync(trigger)
        except RETRYABLE_ERRORS as error:
            if self._last_job_try():  # the run fails like any other: its log, its next try
                raise FailedJobError(self._fail_job_run(error, trigger)) from error
            raise RetryableJobError(self._graph_error_message(error), seconds=error.retry_after) from error
        except graph_client.GraphError as error:
            raise FailedJobError(self._fail_job_run(error, trigger)) from error
        except UserError as error:  # excluded or disconnected since it was queued
            raise FailedJobError(str(error)) from error
        except (RetryableJobError, psycopg2.OperationalError):
            raise  # queue_job retries these itself (busy customer, database conflicts)
        except Exception as error:  # a crash: the job fails, the customer is tried again later
            self._crash_job_run(error, trigger)
            raise
        log.sudo().job_id = self._current_job()  # run logs are written by the sync only
        self._notify_job_user(log, trigger)
        return log._outcome_message()

    def _lock_for_sync(self):
        # In a job, a sync of this customer running elsewhere is a short retry, not a failure.
        try:
            return super()._lock_for_sync()
        except UserError as busy:
            if not self.env.context.get("job_uuid"):
                raise
            raise RetryableJobError(str(busy), seconds=ALREADY_RUNNING_RETRY, ignore_retry=True) from busy

    def _fail_run(self, log, error, client):
        # In a job, Microsoft's errors go to _sync_job, which retries or fails the job.
        if self.env.context.get("azure_ad_raise_graph_errors"):
            raise error
        return super()._fail_run(log, error, client)

    def _create_job_run_log(self, trigger):
        """The run log of the job that runs now, as `trigger`."""
        return (
            self.env["azure.ad.sync.log"]
            .sudo()
            .create({"integration_id": self.id, "trigger": trigger, "job_id": self._current_job().id})
        )

    def _fail_job_run(self, error, trigger):
        """Keeps the run log of a failed job and tells the user; returns the error message.
        The job's transaction is rolled back when it fails, so the log, the integration's
        error and the notification are written in a transaction of their own."""
        with self.env.registry.cursor() as cr:
            integration = self.with_env(self.env(cr=cr))
            log = integration._create_job_run_log(trigger)
            integration._fail_run(log, error, None)
            if trigger == "connect":
                integration._announce_first_sync(log)
            integration._notify_job_user(log, trigger)
            return log.error

    def _crash_job_run(self, error, trigger):
        """A job that crashed heals as a crashed scheduled sync does: tried again later with a
        growing delay, an activity after two failures in a row. The job's transaction is rolled
        back, so its run log and the next try are written in a transaction of their own."""
        with self.env.registry.cursor() as cr:
            integration = self.with_env(self.env(cr=cr))
            message = integration.env._("Unexpected error: %(error)s", error=error)
            log = integration._create_job_run_log(trigger)
            log.write({"state": "failed", "date_end": fields.Datetime.now(), "error": message})
            integration._schedule_retry(message)
            integration._notify_job_user(log, trigger)

    def _last_job_try(self):
        """Whether queue_job gives up on this job if it asks for a retry now."""
        job = self._current_job()
        return bool(job.max_retries) and job.retry + 1 >= job.max_retries

    def _current_job(self):
        return self.env["queue.job"].sudo().search([("uuid", "=", self.env.context.get("job_uuid"))], limit=1)

    def _notify_job_user(self, log, trigger):
        """Whoever pressed "Sync now" or the Action menu, or connected the customer, is told
        how their job ended."""
        if trigger in ("manual", "connect") and not self.env.user._is_superuser():
            log._notify_user(self.env.user)

    def _sync_job_related_action(self):
        """Job Queue › Jobs › "Related": the integration the job synced."""
        return self.action_open()
