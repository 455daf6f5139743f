"""The sync run of an integration: lock, plan, checks (preview, archive threshold), apply, run
log, "Sync now", and the scheduled job's time-boxed batches."""

import dataclasses
import logging
import time
from collections import Counter
from datetime import timedelta

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..utils import graph_client, graph_errors, reconcile
from ..utils.notification import display_notification
from .azure_ad_microsoft_mixin import CRON_MAX_WAIT, INTERACTIVE_MAX_WAIT

_logger = logging.getLogger(__name__)

# "Sync now" of a tenant whose last run saw more users than this runs in the background, and
# so does the first sync of a tenant that Microsoft counts more users in.
BACKGROUND_SYNC_THRESHOLD = 5000
# The scheduled job syncs integrations one after another for about this long per batch,
# commits, and continues in a new batch: far below Odoo's cron time limits.
CRON_BATCH_SECONDS = 60


class ArchiveConfirmationNeeded(Exception):
    """A run would archive more contacts than the integration's safety threshold allows."""

    def __init__(self, plan):
        super().__init__(plan.archived)
        self.plan = plan


class PreviewOutdated(Exception):
    """The tenant or the contacts changed between a preview and its "Apply"."""

    def __init__(self, plan):
        super().__init__(plan.digest())
        self.plan = plan


def option_values(text):
    """The entries of a one-per-line (or comma-separated) option."""
    return [value.strip() for line in (text or "").splitlines() for value in line.split(",") if value.strip()]


class AzureAdSyncMixin(models.AbstractModel):
    _name = "azure.ad.sync.mixin"
    _description = "Azure AD: sync runs"

    # ------------------------------------------------------------ entry points

    def sync_contacts(self):
        """Public API: syncs every integration of the recordset.

        Returns one dict per integration: integration_id, created, updated, unchanged,
        skipped, archived (and error when that integration's sync failed).
        """
        return [log._result() for log in self._sync("api")]

    def action_sync_now(self):
        """Syncs at once, or, for a tenant whose last run was large, hands the sync to the
        scheduled job (no HTTP worker waits for minutes) and notifies the user when done."""
        self.ensure_one()
        return self._sync_now_action(self._sync_now())

    def _sync_now(self):
        """ "Sync now": the run log of a sync run at once, or no log when the sync was handed
        to the scheduled job (a tenant whose last run was large)."""
        self.ensure_one()
        # A first sync due in the background is not run in the request after all.
        if self._last_users_total() <= BACKGROUND_SYNC_THRESHOLD and not self.first_sync_pending_since:
            return self._sync("manual")
        self._check_syncable()
        self._sync_in_background()
        return self.env["azure.ad.sync.log"]

    def _sync_in_background(self):
        """Hands "Sync now" (or a first sync) to the scheduled job, which syncs and notifies
        this user."""
        self.sudo().sync_requested_by = self.env.uid
        self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")._trigger()

    def _sync_now_action(self, logs):
        """What the user sees after "Sync now": the outcome, or that the sync runs in the background."""
        if logs:
            return logs._notification_action()
        if self.first_sync_pending_since:
            message = self.env._(
                "The first sync of %(customer)s runs in the background. You will be notified "
                "when it is done.",
                customer=self.name,
            )
        else:
            message = self.env._(
                "%(customer)s has %(count)s users in Azure AD: the sync runs in the background. "
                "You will be notified when it is done.",
                customer=self.name,
                count=self._last_users_total(),
            )
        return display_notification("info", self.env._("Azure AD sync started"), message)

    def _requested_trigger(self):
        """The trigger of a run someone asked for in the background: the first sync of a
        connection, or "Sync now"."""
        return "connect" if self.first_sync_pending_since else "manual"

    def _last_users_total(self):
        return self.sync_log_ids.filtered(lambda log: log.state == "done")[:1].users_total

    def _sync(self, trigger):
        """Syncs each integration of the recordset; returns their run logs, in order."""
        self._check_syncable()
        logs = self.env["azure.ad.sync.log"]
        for integration in self:
            log = integration._sync_one(trigger)
            if trigger == "connect":
                integration._announce_first_sync(log)
            logs += log
        return logs

    def _check_syncable(self):
        self._check_admin()
        for integration in self:
            if integration.excluded:
                raise UserError(
                    self.env._("%(customer)s is excluded from Azure AD sync.", customer=integration.name)
                )
            if integration.state not in ("connected", "error") or not integration.tenant_id:
                raise UserError(
                    self.env._(
                        "%(customer)s is not connected to Azure AD: connect it first.",
                        customer=integration.name,
                    )
                )

    # -------------------------------------------------------------- one run

    def _lock_for_sync(self):
        """Row lock for the whole transaction: a second sync of this integration is refused
        while one runs; a sync that started on an older snapshot gets a serialization error
        (and is retried by Odoo) instead of creating duplicates."""
        try:
            with self.env.cr.savepoint(flush=False):
                # All tenants of the customer: they share its contacts.
                self.env.cr.execute(
                    SQL(
                        "SELECT id FROM azure_ad_integration WHERE partner_id = %s FOR UPDATE NOWAIT",
                        self.partner_id.id,
                    )
                )
        except pg_errors.LockNotAvailable:
            raise UserError(
                self.env._(
                    "A sync of %(customer)s is already running. Wait until it has finished.",
                    customer=self.name,
                )
            ) from None

    def _sync_one(self, trigger):
        """One run of this integration; returns its run log (done, failed, or stopped for a
        confirmation)."""
        self.ensure_one()
        self._lock_for_sync()
        if self.first_sync_pending_since:
            # Done with whatever this run ends with; a run that dies leaves it due.
            self.sudo().first_sync_pending_since = False
        # Logs are written by the sync only (sudo): administrators can read them, not forge them.
        log = self.env["azure.ad.sync.log"].sudo().create({"integration_id": self.id, "trigger": trigger})
        started = time.monotonic()
        client = None
        try:
            with self.env.cr.savepoint():
                client = self._get_graph_client(
                    max_wait=CRON_MAX_WAIT if trigger == "cron" else INTERACTIVE_MAX_WAIT
                )
                moved = self.env["res.partner"]._azure_ad_unlink_moved(self)
                plan, tenant_round, run = self._plan_sync(client)
                self._check_plan(plan, trigger)
                created_ids = self._apply_plan(plan, log)
                self._settle(tenant_round, plan, run, created_ids)
        except ArchiveConfirmationNeeded as stop:
            self._stop_for_confirmation(stop.plan, log, trigger, client.request_count)
            return log.with_env(self.env)
        except graph_client.GraphError as error:
            self._fail_run(log, error, client)
            return log.with_env(self.env)
        finally:
            if client is not None:
                client.close()  # a page still being prefetched asks Microsoft for nothing more
        counts = {**plan.counts(), "archived": plan.archived}
        log.write(
            {
                **counts,
                "state": "done",
                "date_end": fields.Datetime.now(),
                "skip_reasons": dict(plan.skipped) or False,
                "other_edits": dict(plan.other_edit_counts() + Counter({reconcile.MOVED: moved})) or False,
                "graph_requests": client.request_count,
                "sync_mode": "full" if tenant_round.full else "delta",
            }
        )
        self.sudo().write(
            {
                "state": "connected",
                "last_sync_date": log.date_end,
                "last_error": False,
                "last_error_kind": False,
                **({"archive_allowance": 0} if trigger != "cron" else {}),
            }
        )
        self._recovered()
        _logger.info(
            "Azure AD sync of %s (id %s) in %.1fs: %s",
            self.name,
            self.id,
            time.monotonic() - started,
            counts,
        )
        return log.with_env(self.env)

    def _fail_run(self, log, error, client):
        """Ends a run that Microsoft failed: the log says why, the integration offers the remedy."""
        message = self._graph_error_message(error)
        _logger.warning("Azure AD sync of %s (id %s) failed: %s", self.name, self.id, error)
        log.write(
            {
                "state": "failed",
                "date_end": fields.Datetime.now(),
                "error": message,
                "graph_requests": client.request_count if client else 0,
            }
        )
        values = {
            "last_error": message,
            "last_error_kind": self._graph_error_kind(error),
            "first_sync_pending_since": False,  # a queue job's failure is kept in a transaction of its own
        }
        if isinstance(error, graph_client.AuthenticationError | graph_client.PermissionDeniedError):
            values["state"] = "error"
        self.sudo().write(values)
        # Whatever failed may go away (a new secret, consent granted again, Microsoft back):
        # the scheduled job tries again later, never sooner than Microsoft asked.
        self._schedule_retry(
            message, error.retry_after, credential=isinstance(error, graph_errors.AppCredentialError)
        )

    def _sync_rules(self):
        """The reconciliation rules this integration's options ask for."""
        self.ensure_one()
        mappings = (
            ("phone", self.map_business_phone),
            ("azure_ad_department", self.map_department),
            ("azure_ad_company_name", self.map_company_name),
            ("azure_ad_office", self.map_office),
        )
        return reconcile.Rules(
            include_guests=self.include_guests,
            include_disabled=self.include_disabled,
            licensed_only=self.licensed_only,
            exclude_patterns=tuple(option_values(self.exclude_patterns)),
            extra_fields=tuple(name for name, mapped in mappings if mapped),
            follow_email=self.follow_email_changes,
            archive_disabled=self.disabled_action == "archive",
            archive_deleted=self.deleted_action == "archive",
            archive_portal_logins=self.archive_portal_logins,
        )

    def _tenant_rules(self, client):
        """The reconciliation rules, with the members of the group filter read through `client`.

        Listed at every sync: a group's delta reports its direct members only, and the
        filter takes nested groups too."""
        rules = self._sync_rules()
        group_ids = option_values(self.group_ids)
        if group_ids:
            members = frozenset(
                member.lower() for group_id in group_ids for member in client.group_member_ids(group_id)
            )
            rules = dataclasses.replace(rules, group_member_ids=members)
        return rules

    def _plan_contacts(self, client, on_skip=None):
        """Read the whole tenant through `client` and plan the sync; writes nothing (previews)."""
        rules = self._tenant_rules(client)
        extra = rules.graph_properties()
        if extra:  # only what the options need: the default request stays the documented one
            pages = client.iter_user_pages(select=tuple(dict.fromkeys(graph_client.USER_SELECT + extra)))
        else:
            pages = client.iter_user_pages()
        return reconcile.build_plan(pages, self._existing_contacts(), rules=rules, on_skip=on_skip)

    def _plan_sync(self, client):
        """Brings the stored users up to date (every user, or Microsoft's changes since the
        last run) and plans from them against the contacts as they are now: the plan of a
        full listing, local edits included. Returns (plan, the round read, PlannedRun)."""
        rules = self._tenant_rules(client)
        select = tuple(dict.fromkeys(graph_client.USER_SELECT + rules.graph_properties()))
        early = self._early_creator(rules)
        tenant_round = self._read_tenant(client, select, on_page=early, rules=rules)
        plan, run = self._plan_stored(tenant_round, rules, early)
        return plan, tenant_round, run

    def _existing_contacts(self, contact_ids=None):
        """The customer's contacts (or those of `contact_ids`) as the planner sees them (see res.partner)."""
        return self.env["res.partner"]._azure_ad_existing_contacts(self, contact_ids)

    def _apply_plan(self, plan, log=None):
        """Writes `plan` to the customer's contacts (see res.partner); returns the ids of the
        contacts created."""
        return self.env["res.partner"]._azure_ad_apply_plan(self, plan, log)

    def _check_plan(self, plan, trigger):
        """Raises when `plan` must not be applied as it is: the tenant changed since the
        preview being applied, or too many leavers for the safety threshold."""
        expected = self.env.context.get("azure_ad_preview_digest")
        if expected:
            if plan.digest() != expected:
                raise PreviewOutdated(plan)
            return  # "Apply" in the preview: the administrator saw exactly these archives
        if not plan.archives or not self._archive_threshold_exceeded(plan):
            return
        # A confirmation is for the run it was given for, never for the scheduled job.
        allowance = 0 if trigger == "cron" else self.archive_allowance
        if plan.archived > allowance:
            raise ArchiveConfirmationNeeded(plan)

    def _archive_threshold_exceeded(self, plan):
        count = plan.archived
        return bool(
            (self.archive_max_count and count > self.archive_max_count)
            or (self.archive_max_percent and count * 100 > self.archive_max_percent * plan.linked)
        )

    def _stop_for_confirmation(self, plan, log, trigger, request_count):
        """Ends a run that would archive too many contacts, with nothing written."""
        message = self.env._(
            "This sync of %(customer)s would archive %(count)s of its %(linked)s synced contacts, "
            "more than the safety threshold allows. Nothing was written. Check them with "
            '"Preview", then confirm with "Archive them".',
            customer=self.name,
            count=plan.archived,
            linked=plan.linked,
        )
        now = fields.Datetime.now()
        log.write(
            {
                "state": "confirm",
                "date_end": now,
                "archive_pending": plan.archived,
                "error": message,
                "skip_reasons": dict(plan.skipped) or False,
                "other_edits": dict(plan.other_edit_counts()) or False,
                "graph_requests": request_count,
            }
        )
        values = {} if trigger == "cron" else {"archive_allowance": 0}
        if self.auto_sync:  # ask again at the next interval, not at every run of the job
            values["next_sync_date"] = now + timedelta(hours=self.sync_interval_hours)
        self.sudo().write(values)
        self._recovered()  # Microsoft answered; what is left is a person's decision
        self.message_post(body=message)
        _logger.info("Azure AD sync of %s (id %s) waits for confirmation: %s", self.name, self.id, message)

    def action_confirm_archive(self):
        """Confirms the archives the last run stopped for, and syncs: this run may archive
        as many contacts as the stopped one would have."""
        self.ensure_one()
        self._check_admin()
        log = self._latest_log()
        if log.state != "confirm":
            raise UserError(
                self.env._("No sync of %(customer)s waits for a confirmation.", customer=self.name)
            )
        self.sudo().archive_allowance = log.archive_pending
        self.message_post(
            body=self.env._(
                "%(user)s confirmed archiving up to %(count)s contacts.",
                user=self.env.user.name,
                count=log.archive_pending,
            )
        )
        return self.action_sync_now()

    def action_preview(self):
        """Dry run: what a sync would create, update, skip and archive, before anything is written."""
        self.ensure_one()
        self._check_admin()
        return self.env["azure.ad.preview.wizard"]._open_for(self)

    def _preview(self, limit):
        """The plan a sync would apply now, and up to `limit` skipped users as (label,
        reason) pairs. Writes no contact."""
        self.ensure_one()
        self._check_syncable()
        skipped = []

        def on_skip(_object_id, label, reason):
            if len(skipped) < limit:
                skipped.append((label, reason))

        try:
            plan = self._plan_contacts(self._get_graph_client(), on_skip=on_skip)
        except graph_client.GraphError as error:
            raise UserError(self._graph_error_message(error)) from error
        return plan, skipped

    # ------------------------------------------------------- scheduled job

    @api.model
    def _cron_sync_due(self, batch_seconds=CRON_BATCH_SECONDS):
        """The scheduled job: "Sync now" requests first, then the integrations whose
        interval has passed, in batches of about `batch_seconds` with progress."""
        started = time.monotonic()
        todo = self._cron_due_integrations()
        done = 0
        for integration in todo:
            if done and time.monotonic() - started > batch_seconds:
                break
            integration._cron_sync_one()
            done += 1
        self.env["ir.cron"]._notify_progress(done=done, remaining=len(todo) - done)

    @api.model
    def _cron_due_integrations(self):
        """What the scheduled job syncs now: "Sync now" requests and first syncs first, then
        the failed syncs whose next try has come (scheduled or not), then the integrations
        whose interval has passed, the longest due first."""
        now = fields.Datetime.now()
        return self.search(
            [
                ("excluded", "=", False),
                "|",
                ("sync_requested_by", "!=", False),
                "&",
                ("first_sync_pending_since", "!=", False),
                ("state", "=", "connected"),
            ],
            order="write_date",
        ) | self.search(
            [
                ("excluded", "=", False),
                ("state", "in", ("connected", "error")),
                ("tenant_id", "!=", False),
                "|",
                ("retry_date", "<=", now),
                "&",
                "&",
                ("auto_sync", "=", True),
                ("state", "=", "connected"),
                "&",
                ("retry_date", "=", False),
                ("next_sync_date", "<=", now),
            ],
            order="retry_date, next_sync_date, id",
        )

    def _cron_sync_one(self):
        """One integration of the scheduled job: whatever fails stays with this customer.
        Returns the run log (an unsaved one when the run could not start or crashed)."""
        self.ensure_one()
        requester = self.sync_requested_by
        trigger = self._requested_trigger() if requester or self.first_sync_pending_since else "cron"
        try:
            with self.env.cr.savepoint():
                log = self.with_user(requester or self.env.user)._sync(trigger)
        except pg_errors.SerializationFailure as error:
            # Synced by someone else since this job's transaction began: any write to this
            # customer would fail again and roll back the whole batch. The next run retries
            # (a "Sync now" request stays pending until then).
            _logger.info("Azure AD sync of %s skipped: it was synced meanwhile", self.name)
            return self._unsaved_failed_log(str(error), trigger)
        except UserError as error:  # excluded, disconnected, already running
            log = self._unsaved_failed_log(str(error), trigger)
            _logger.info("Azure AD sync of %s skipped: %s", self.name, error)
        except Exception as error:  # one broken customer never stops the others
            _logger.exception("Azure AD sync of %s (id %s) crashed", self.name, self.id)
            log = self._unsaved_failed_log(self.env._("Unexpected error: %(error)s", error=error), trigger)
            self._schedule_retry(log.error)
        if requester:
            self.sudo().sync_requested_by = False
            log._notify_user(requester)
        return log

    def _unsaved_failed_log(self, error, trigger):
        """The outcome of a run that could not start or crashed (its own log was rolled back)."""
        return self.env["azure.ad.sync.log"].new(
            {"integration_id": self.id, "trigger": trigger, "state": "failed", "error": error}
        )
