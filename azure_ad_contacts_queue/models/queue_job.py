"""Who a queued Azure AD sync runs as: whoever asks for it to run. queue_job runs a job as the
user who queued it; a Job Queue Manager could requeue an administrator's sync (or give it
another user) and so run it with rights they do not have."""

from odoo import models
from odoo.exceptions import AccessError

from odoo.addons.queue_job.job import ENQUEUED, PENDING, STARTED, WAIT_DEPENDENCIES

SYNC_JOB = ("azure.ad.integration", "_sync_job")
# States from which the job runner runs a job.
RUNNABLE_STATES = (WAIT_DEPENDENCIES, PENDING, ENQUEUED, STARTED)


class QueueJob(models.Model):
    _inherit = "queue.job"

    def write(self, vals):
        # queue_job writes its own changes in superuser mode; a user's write is checked.
        if not self.env.su and (vals.get("state") in RUNNABLE_STATES or "user_id" in vals):
            if vals.get("user_id", self.env.uid) != self.env.uid:
                self._azure_ad_sync_jobs()._azure_ad_refuse()
            self._azure_ad_sync_jobs()._azure_ad_run_as_current_user()
        return super().write(vals)

    def _change_job_state(self, state, result=None):
        # Requeue (the button, the wizard), before queue_job stores the new state as superuser.
        if state == PENDING and not self.env.su:
            self._azure_ad_sync_jobs()._azure_ad_run_as_current_user()
        return super()._change_job_state(state, result=result)

    def _azure_ad_sync_jobs(self):
        return self.filtered(lambda job: (job.sudo().model_name, job.sudo().method_name) == SYNC_JOB)

    def _azure_ad_run_as_current_user(self):
        """The Azure AD syncs of `self` will run as the current user, who must be an
        administrator (Settings rights), as for any sync."""
        if not self:
            return
        if not self.env.user.has_group("base.group_system"):
            self._azure_ad_refuse()
        user = self.env.user
        for job in self.sudo().with_context(_job_edit_sentinel=self.EDIT_SENTINEL):
            # Stored in two places: the user, and the env of the records the job runs on.
            super(QueueJob, job).write({"user_id": user.id, "records": job.records.with_user(user)})

    def _azure_ad_refuse(self):
        if self:
            raise AccessError(
                self.env._(
                    "An Azure AD sync job runs with the rights of whoever asks for it to run: only "
                    "administrators (Settings rights) requeue one, and it then runs as them."
                )
            )
