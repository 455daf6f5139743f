import logging
import secrets
import time
from datetime import timedelta

import msal
from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, config, split_every

from ..utils import graph_client, reconcile

_logger = logging.getLogger(__name__)

DEFAULT_LOGIN_ENDPOINT = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"
CREATE_BATCH_SIZE = 1000
GRAPH_TIMEOUT = 30  # seconds per Graph request
# How the sync writes contacts: no chatter message, follower or tracking per contact.
SYNC_CONTEXT = {
    "active_test": False,
    "tracking_disable": True,
    "mail_create_nolog": True,
    "mail_notrack": True,
}
# Seconds a sync may wait for Microsoft's throttling in one request: short while a user
# waits on an HTTP worker, longer in the scheduled job.
INTERACTIVE_MAX_WAIT = 15
CRON_MAX_WAIT = 120
# "Sync now" of a tenant whose last run saw more users than this runs in the background.
BACKGROUND_SYNC_THRESHOLD = 5000
# The scheduled job syncs integrations one after another for about this long per batch,
# commits, and continues in a new batch: far below Odoo's cron time limits.
CRON_BATCH_SECONDS = 60
FAILED_SYNC_RETRY = timedelta(hours=1)
# One dict per process: MSAL keeps discovery documents and throttling state in it, so
# per-tenant apps built for every sync don't fetch the OpenID configuration again.
_MSAL_HTTP_CACHE = {}


class AzureAdIntegration(models.Model):
    _name = "azure.ad.integration"
    _description = "Azure AD Integration"
    _inherit = ["mail.thread"]
    _order = "name, id"

    partner_id = fields.Many2one(
        "res.partner",
        string="Customer",
        required=True,
        ondelete="cascade",
        domain=[("is_company", "=", True)],
        tracking=True,
    )
    name = fields.Char(related="partner_id.name", store=True)
    state = fields.Selection(
        [
            ("draft", "Never connected"),
            ("connected", "Connected"),
            ("disconnected", "Disconnected"),
            ("error", "Error"),
        ],
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        tracking=True,
    )
    tenant_id = fields.Char(string="Tenant ID", readonly=True, copy=False, tracking=True)
    excluded = fields.Boolean(
        help="No sync of any kind runs for this customer while excluded.", tracking=True
    )
    include_guests = fields.Boolean(help="Also import guest (B2B) accounts.")
    include_disabled = fields.Boolean(help="Also import disabled accounts.")
    auto_sync = fields.Boolean(string="Automatic sync", help="Sync on a schedule.")
    sync_interval_hours = fields.Integer(string="Every (hours)", default=24)
    next_sync_date = fields.Datetime(
        compute="_compute_next_sync_date",
        store=True,
        readonly=False,  # a failed scheduled run postpones it without a successful sync
        copy=False,
        index=True,
        help="When the scheduled sync runs next.",
    )
    # "Sync now" on a large tenant: the scheduled job runs it and notifies this user.
    sync_requested_by = fields.Many2one("res.users", readonly=True, copy=False)
    last_sync_date = fields.Datetime(readonly=True, copy=False)
    last_error = fields.Text(readonly=True, copy=False)
    # What the administrator can do about last_error: the UI offers the matching button.
    last_error_kind = fields.Selection(
        [
            ("consent", "Consent missing"),
            ("secret", "Client secret invalid or expired"),
            ("throttled", "Microsoft busy or throttling"),
            ("other", "Other"),
        ],
        readonly=True,
        copy=False,
    )
    # MSAL's serialized cache: only the short-lived app token, never a credential.
    token_cache = fields.Text(groups="base.group_system", copy=False, prefetch=False)
    # One-time value bound into the signed consent state (replay protection).
    consent_nonce = fields.Char(groups="base.group_system", copy=False, prefetch=False)
    sync_log_ids = fields.One2many("azure.ad.sync.log", "integration_id", string="Sync runs")
    last_log_id = fields.Many2one("azure.ad.sync.log", compute="_compute_last_log")
    # The last run at a glance on the integration's form.
    last_run_state = fields.Selection(
        [("running", "Running"), ("done", "Done"), ("failed", "Failed")],
        string="Last run",
        compute="_compute_last_run",
    )
    last_run_date = fields.Datetime(string="Last run started", compute="_compute_last_run")
    last_run_created = fields.Integer(string="Created", compute="_compute_last_run")
    last_run_updated = fields.Integer(string="Updated", compute="_compute_last_run")
    last_run_unchanged = fields.Integer(string="Unchanged", compute="_compute_last_run")
    last_run_skipped = fields.Integer(string="Skipped", compute="_compute_last_run")
    last_run_skip_summary = fields.Char(string="Skipped because", compute="_compute_last_run")
    contact_count = fields.Integer(compute="_compute_contact_count", string="Synced contacts")

    _sql_constraints = [
        ("partner_uniq", "unique(partner_id)", "This customer already has an Azure AD integration."),
        (
            "interval_positive",
            "CHECK(sync_interval_hours > 0)",
            "The sync interval must be at least one hour.",
        ),
    ]

    @api.depends("auto_sync", "sync_interval_hours", "last_sync_date")
    def _compute_next_sync_date(self):
        for integration in self:
            if not integration.auto_sync:
                integration.next_sync_date = False
            elif not integration.last_sync_date:
                integration.next_sync_date = fields.Datetime.now()
            else:
                integration.next_sync_date = integration.last_sync_date + timedelta(
                    hours=integration.sync_interval_hours
                )

    @api.depends("sync_log_ids")
    def _compute_last_log(self):
        for integration in self:
            integration.last_log_id = integration.sync_log_ids[:1]

    @api.depends(
        "sync_log_ids.state",
        "sync_log_ids.created",
        "sync_log_ids.updated",
        "sync_log_ids.unchanged",
        "sync_log_ids.skipped",
        "sync_log_ids.skip_reasons",
    )
    def _compute_last_run(self):
        for integration in self:
            log = integration.sync_log_ids[:1]
            integration.last_run_state = log.state
            integration.last_run_date = log.date_start
            integration.last_run_created = log.created
            integration.last_run_updated = log.updated
            integration.last_run_unchanged = log.unchanged
            integration.last_run_skipped = log.skipped
            integration.last_run_skip_summary = log.skip_summary

    def _compute_contact_count(self):
        counts = dict(
            self.env["res.partner"]
            .with_context(active_test=False)
            ._read_group(
                [("azure_ad_integration_id", "in", self.ids)], ["azure_ad_integration_id"], ["__count"]
            )
        )
        for integration in self:
            integration.contact_count = counts.get(integration, 0)

    # ------------------------------------------------------------------ actions

    def action_open(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "current",
        }

    def action_open_connect_wizard(self):
        self.ensure_one()
        self._check_admin()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Connect to Azure Active Directory"),
            "res_model": "azure.ad.connect.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_integration_id": self.id},
        }

    def action_view_contacts(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Synced contacts"),
            "res_model": "res.partner",
            "view_mode": "list,kanban,form",
            "domain": [("azure_ad_integration_id", "=", self.id)],
            "context": {"active_test": False},
        }

    def action_connect(self):
        """Sends the administrator to the consent route (which redirects to Microsoft)."""
        self.ensure_one()
        self._check_admin()
        if self.excluded:
            raise UserError(self.env._("%(customer)s is excluded from Azure AD sync.", customer=self.name))
        self._get_app_credentials()  # fail here, not on Microsoft's page
        return {
            "type": "ir.actions.act_url",
            "url": f"/azure_ad_contacts/connect/{self.id}",
            "target": "self",
        }

    def action_sync_now(self):
        """Syncs at once, or, for a tenant whose last run was large, hands the sync to the
        scheduled job (no HTTP worker waits for minutes) and notifies the user when done."""
        self.ensure_one()
        last_done = self.sync_log_ids.filtered(lambda log: log.state == "done")[:1]
        if last_done.users_total <= BACKGROUND_SYNC_THRESHOLD:
            return self._notification(self._sync("manual"))
        self._check_syncable()
        self.write({"sync_requested_by": self.env.uid})
        self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")._trigger()
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "info",
                "title": self.env._("Azure AD sync started"),
                "message": self.env._(
                    "%(customer)s has %(count)s users in Azure AD: the sync runs in the background. "
                    "You will be notified when it is done.",
                    customer=self.name,
                    count=last_done.users_total,
                ),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    def action_disconnect(self):
        """Forgets the token cache (S9); imported contacts stay as they are."""
        self._check_admin()
        self.sudo().write({"token_cache": False, "consent_nonce": False})
        self.write({"state": "disconnected", "last_error": False, "last_error_kind": False})
        for integration in self:
            integration.message_post(
                body=self.env._("Disconnected from Azure AD. Imported contacts were kept.")
            )
        return True

    def sync_contacts(self):
        """Public API: syncs every integration of the recordset.

        Returns one dict per integration: integration_id, created, updated, unchanged,
        skipped, archived (and error when that integration's sync failed).
        """
        return self._sync("api")

    # ------------------------------------------------------------ consent flow

    def _consent_redirect_uri(self):
        return f"{self.get_base_url()}/azure_ad_contacts/oauth/callback"

    def _new_consent_nonce(self):
        self.ensure_one()
        nonce = secrets.token_urlsafe(24)
        self.sudo().consent_nonce = nonce
        return nonce

    def _complete_consent(self, tenant_id):
        """Proves the consent for `tenant_id` (app token + one Graph read), then runs the
        first sync. Returns the result dict of that sync."""
        self.ensure_one()
        self._check_admin()
        self.sudo().write({"tenant_id": tenant_id, "token_cache": False, "consent_nonce": False})
        try:
            # A fresh MSAL HTTP cache: the shared one may still replay a "not consented"
            # answer from before this consent for up to a minute.
            self._get_graph_client(http_cache={}).probe()
        except graph_client.GraphError as error:
            message = self._graph_error_message(error)
            self.write(
                {"state": "error", "last_error": message, "last_error_kind": self._graph_error_kind(error)}
            )
            raise UserError(message) from error
        self.write({"state": "connected", "last_error": False, "last_error_kind": False})
        self.message_post(body=self.env._("Connected to Azure AD tenant %(tenant)s.", tenant=tenant_id))
        result = self._sync("connect")[0]
        # The confirmation the admin finds on the customer after Microsoft sends them back.
        self.partner_id.message_post(body=self._result_message(result))
        return result

    # -------------------------------------------------------------------- sync

    def _check_admin(self):
        if not self.env.is_admin():
            raise AccessError(
                self.env._("Only administrators (Settings rights) can manage Azure AD integrations.")
            )

    def _sync(self, trigger):
        self._check_syncable()
        return [integration._sync_one(trigger) for integration in self]

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

    def _lock_for_sync(self):
        """Row lock for the whole transaction: a second sync of this integration is refused
        while one runs; a sync that started on an older snapshot gets a serialization error
        (and is retried by Odoo) instead of creating duplicates."""
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL("SELECT id FROM azure_ad_integration WHERE id = %s FOR UPDATE NOWAIT", self.id)
                )
        except pg_errors.LockNotAvailable:
            raise UserError(
                self.env._(
                    "A sync of %(customer)s is already running. Wait until it has finished.",
                    customer=self.name,
                )
            ) from None

    def _sync_one(self, trigger):
        self.ensure_one()
        self._lock_for_sync()
        # Logs are written by the sync only (sudo): administrators can read them, not forge them.
        log = self.env["azure.ad.sync.log"].sudo().create({"integration_id": self.id, "trigger": trigger})
        started = time.monotonic()
        client = None
        try:
            with self.env.cr.savepoint():
                client = self._get_graph_client(
                    max_wait=CRON_MAX_WAIT if trigger == "cron" else INTERACTIVE_MAX_WAIT
                )
                plan = reconcile.build_plan(
                    client.iter_user_pages(),
                    self._existing_contacts(),
                    include_guests=self.include_guests,
                    include_disabled=self.include_disabled,
                )
                self._apply_plan(plan)
        except graph_client.GraphError as error:
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
            values = {"last_error": message, "last_error_kind": self._graph_error_kind(error)}
            if isinstance(error, graph_client.AuthenticationError | graph_client.PermissionDeniedError):
                values["state"] = "error"
            if self.auto_sync:
                # Retry the schedule later, not at every run of the job.
                delay = max(error.retry_after or 0, FAILED_SYNC_RETRY.total_seconds())
                values["next_sync_date"] = fields.Datetime.now() + timedelta(seconds=delay)
            self.write(values)
            return {**log._counts(), "error": message}
        counts = plan.counts()
        log.write(
            {
                **counts,
                "state": "done",
                "date_end": fields.Datetime.now(),
                "skip_reasons": dict(plan.skipped) or False,
                "graph_requests": client.request_count,
            }
        )
        self.write(
            {
                "state": "connected",
                "last_sync_date": log.date_end,
                "last_error": False,
                "last_error_kind": False,
            }
        )
        _logger.info(
            "Azure AD sync of %s (id %s) in %.1fs: %s",
            self.name,
            self.id,
            time.monotonic() - started,
            counts,
        )
        return log._counts()

    def _existing_contacts(self):
        """The customer's child contacts, archived included (S3), as plain tuples.

        Read with one SQL query: a re-sync of a 100,000-user tenant must not load
        100,000 records into the ORM cache just to compare five columns."""
        self.env["res.partner"].flush_model(
            [
                "parent_id",
                "email",
                "name",
                "function",
                "mobile",
                "azure_ad_object_id",
                "azure_ad_integration_id",
                "azure_ad_synced",
            ]
        )
        self.env.cr.execute(
            SQL(
                """SELECT id, email,
                          CASE WHEN azure_ad_integration_id = %s THEN azure_ad_object_id END,
                          azure_ad_integration_id = %s AND azure_ad_synced IS TRUE,
                          name, function, mobile
                     FROM res_partner
                    WHERE parent_id = %s""",
                self.id,
                self.id,
                self.partner_id.id,
            )
        )
        return [
            reconcile.Contact(
                id=row[0],
                email=reconcile.normalize_email(row[1]),
                object_id=row[2] or None,
                linked=bool(row[3]),
                name=row[4],
                function=row[5],
                mobile=row[6],
            )
            for row in self.env.cr.fetchall()
        ]

    def _apply_plan(self, plan):
        partners = (
            self.env["res.partner"]
            .sudo()
            .with_context(**SYNC_CONTEXT)
        )
        if plan.unlink_ids:
            # Clear old links first so that swapped links can't trip the unique constraint.
            partners.browse(plan.unlink_ids).write(
                {"azure_ad_object_id": False, "azure_ad_integration_id": False, "azure_ad_synced": False}
            )
            partners.flush_model()  # before the INSERTs/UPDATEs that take those links over
        link = {"azure_ad_integration_id": self.id, "azure_ad_synced": True}
        for partner_id, values in plan.updates.items():
            if "azure_ad_object_id" in values:
                values = {**values, **link}
            partners.browse(partner_id).write(values)
        common = {**link, "parent_id": self.partner_id.id, "type": "contact", "is_company": False}
        for batch in split_every(CREATE_BATCH_SIZE, plan.creates, list):
            partners.create([{**values, **common} for values in batch])
            # Keep memory flat on large tenants: write the batch out, drop it from the cache.
            partners.flush_model()
            partners.invalidate_model()

    # ------------------------------------------------------- Microsoft seams

    def _get_app_credentials(self):
        params = self.env["ir.config_parameter"].sudo()
        client_id = params.get_param("azure_ad_contacts.client_id")
        # odoo.conf wins: the MSP's secret can stay out of the database.
        secret = config.get("azure_ad_contacts_client_secret") or params.get_param(
            "azure_ad_contacts.client_secret"
        )
        if not client_id or not secret:
            raise UserError(
                self.env._(
                    "Azure AD is not configured: enter the application (client) ID and client "
                    "secret of your multi-tenant app in Settings › Azure AD Contacts."
                )
            )
        return client_id, secret

    def _get_endpoints(self):
        params = self.env["ir.config_parameter"].sudo()
        login = (params.get_param("azure_ad_contacts.login_endpoint") or DEFAULT_LOGIN_ENDPOINT).rstrip("/")
        graph = (params.get_param("azure_ad_contacts.graph_endpoint") or DEFAULT_GRAPH_ENDPOINT).rstrip("/")
        for endpoint in (login, graph):
            if not endpoint.startswith("https://"):
                raise UserError(self.env._("Azure AD endpoints must use https: %(url)s", url=endpoint))
        return login, graph

    def _get_msal_app(self, http_cache=None):
        """Factory seam for MSAL (tests may replace it): a confidential client for this
        customer's tenant over the stored token cache."""
        self.ensure_one()
        client_id, secret = self._get_app_credentials()
        login, _graph = self._get_endpoints()
        cache = msal.SerializableTokenCache()
        if self.sudo().token_cache:
            cache.deserialize(self.sudo().token_cache)
        return graph_client.build_msal_app(
            client_id,
            secret,
            login,
            self.tenant_id,
            token_cache=cache,
            http_cache=_MSAL_HTTP_CACHE if http_cache is None else http_cache,
        )

    def _get_graph_client(self, http_cache=None, max_wait=INTERACTIVE_MAX_WAIT):
        """Factory seam for the Graph client, with a token provider that keeps MSAL's
        cache (the app token) on the integration. `max_wait` bounds the time spent
        waiting for Microsoft's Retry-After/backoff in one request."""
        self.ensure_one()
        _login, graph = self._get_endpoints()
        app = self._get_msal_app(http_cache=http_cache)

        def token_provider(force_refresh=False):
            token = graph_client.acquire_app_token(app, graph, force_refresh=force_refresh)
            if app.token_cache.has_state_changed:
                self.sudo().token_cache = app.token_cache.serialize()
                app.token_cache.has_state_changed = False
            return token

        return graph_client.GraphClient(graph, token_provider, timeout=GRAPH_TIMEOUT, max_wait=max_wait)

    @api.model
    def _graph_error_kind(self, error):
        """Which remedy the UI offers for a Graph error (see last_error_kind)."""
        if isinstance(
            error,
            graph_client.ConsentMissingError
            | graph_client.PermissionDeniedError
            | graph_client.TenantNotFoundError,
        ):
            return "consent"
        if isinstance(error, graph_client.ClientSecretError):
            return "secret"
        if isinstance(error, graph_client.ThrottledError | graph_client.ServiceUnavailableError):
            return "throttled"
        return "other"

    def _graph_error_message(self, error):
        """A message an administrator can act on, for each kind of Microsoft failure."""
        customer = self.name
        if isinstance(error, graph_client.ConsentMissingError):
            return self.env._(
                "Microsoft says the app is not (or no longer) consented in the tenant of "
                "%(customer)s (%(code)s). Reconnect: a customer administrator must grant "
                "consent again.",
                customer=customer,
                code=error.code or "AADSTS700016",
            )
        if isinstance(error, graph_client.ClientSecretError):
            if error.expired:
                return self.env._(
                    "The client secret of your Azure AD app has expired (AADSTS7000222). Create a "
                    "new secret in the Azure portal and enter it in Settings › Azure AD Contacts. "
                    "This affects all customers."
                )
            return self.env._(
                "The client secret of your Azure AD app is invalid (AADSTS7000215). Check the "
                "secret (its value, not its ID) in Settings › Azure AD Contacts. This affects all "
                "customers."
            )
        if isinstance(error, graph_client.TenantNotFoundError):
            return self.env._(
                "Microsoft does not know the tenant %(tenant)s of %(customer)s (AADSTS90002). "
                "Check the login endpoint in the settings, or reconnect.",
                tenant=self.tenant_id,
                customer=customer,
            )
        if isinstance(error, graph_client.PermissionDeniedError):
            return self.env._(
                "The app may not read the users of %(customer)s (Authorization_RequestDenied). "
                "Make sure the application permission User.Read.All is granted, then reconnect "
                "so that a customer administrator consents again.",
                customer=customer,
            )
        if isinstance(error, graph_client.AuthenticationError):
            return self.env._(
                "Microsoft refused to issue a token for %(customer)s: %(detail)s",
                customer=customer,
                detail=error.detail,
            )
        if isinstance(error, graph_client.ThrottledError):
            return self.env._(
                "Microsoft Graph is throttling requests for %(customer)s. Nothing was changed; "
                "try again in %(seconds)s seconds.",
                customer=customer,
                seconds=int(error.retry_after or 60),
            )
        if isinstance(error, graph_client.ServiceUnavailableError):
            return self.env._(
                "Microsoft could not be reached or is unavailable (%(detail)s). Nothing was "
                "changed; try again later.",
                detail=error.detail,
            )
        if isinstance(error, graph_client.UntrustedHostError):
            return self.env._(
                "Microsoft Graph sent a link to an unexpected host (%(detail)s); the sync was "
                "stopped and nothing was changed.",
                detail=error.detail,
            )
        if isinstance(error, graph_client.MalformedResponseError):
            return self.env._(
                "Microsoft Graph answered with malformed data (%(detail)s). Nothing was changed; "
                "try again later.",
                detail=error.detail,
            )
        return self.env._("Microsoft Graph error: %(detail)s", detail=error.detail)

    # ------------------------------------------------------------ UI helpers

    @api.model
    def _result_message(self, result):
        if result.get("error"):
            return self.env._("Azure AD sync failed: %(error)s", error=result["error"])
        return self.env._(
            "Azure AD sync: %(created)s created, %(updated)s updated, %(unchanged)s unchanged, "
            "%(skipped)s skipped.",
            **result,
        )

    @api.model
    def _notification(self, results):
        failed = [result for result in results if result.get("error")]
        totals = {
            key: sum(result[key] for result in results if not result.get("error"))
            for key in ("created", "updated", "unchanged", "skipped", "archived")
        }
        message = self._result_message(totals)
        if failed:
            message = "\n".join(result["error"] for result in failed)
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "type": "danger" if failed else "success",
                "title": self.env._("Azure AD sync failed") if failed else self.env._("Azure AD sync done"),
                "message": message,
                "sticky": bool(failed),
                "next": {"type": "ir.actions.client", "tag": "soft_reload"},
            },
        }

    @api.model
    def _cron_sync_due(self, batch_seconds=CRON_BATCH_SECONDS):
        """The scheduled job: "Sync now" requests first, then the integrations whose
        interval has passed, in batches of about `batch_seconds` with progress."""
        started = time.monotonic()
        todo = self.search(
            [("sync_requested_by", "!=", False), ("excluded", "=", False)], order="write_date"
        ) | self.search(
            [
                ("auto_sync", "=", True),
                ("excluded", "=", False),
                ("state", "=", "connected"),
                ("next_sync_date", "<=", fields.Datetime.now()),
            ],
            order="next_sync_date, id",
        )
        done = 0
        for integration in todo:
            if done and time.monotonic() - started > batch_seconds:
                break
            integration._cron_sync_one()
            done += 1
        self.env["ir.cron"]._notify_progress(done=done, remaining=len(todo) - done)

    def _cron_sync_one(self):
        """One integration of the scheduled job: whatever fails stays with this customer."""
        self.ensure_one()
        requester = self.sync_requested_by
        trigger = "manual" if requester else "cron"
        try:
            with self.env.cr.savepoint():
                result = self.with_user(requester or self.env.user)._sync(trigger)[0]
        except UserError as error:  # excluded, disconnected, already running
            result = {"error": str(error)}
            _logger.info("Azure AD sync of %s skipped: %s", self.name, error)
        except Exception as error:  # one broken customer never stops the others
            _logger.exception("Azure AD sync of %s (id %s) crashed", self.name, self.id)
            result = {"error": self.env._("Unexpected error: %(error)s", error=error)}
            if self.auto_sync:
                self.next_sync_date = fields.Datetime.now() + FAILED_SYNC_RETRY
        if requester:
            self.sync_requested_by = False
            requester._bus_send(
                "simple_notification",
                {
                    "type": "danger" if result.get("error") else "success",
                    "title": self.name,
                    "message": self._result_message(result),
                    "sticky": bool(result.get("error")),
                },
            )
        return result
