import dataclasses
import logging
import secrets
import time
from datetime import timedelta

import msal
from markupsafe import escape
from psycopg2 import errors as pg_errors

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL, config, split_every
from odoo.tools.misc import hash_sign

from ..utils import graph_client, reconcile

_logger = logging.getLogger(__name__)

DEFAULT_LOGIN_ENDPOINT = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"
# The signed `state` of a consent: what the callback accepts, and for how long.
CONSENT_STATE_SCOPE = "azure_ad_contacts.consent"
CONSENT_STATE_VALIDITY_HOURS = 1
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
INTERACTIVE_MAX_WAIT = 30
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
# Contact fields whose changes a sync records in the contact's chatter (change history).
HISTORY_FIELDS = (
    "name", "email", "function", "mobile", "phone", "azure_ad_department",
    "azure_ad_company_name", "azure_ad_office", "active",
)
HISTORY_BATCH_SIZE = 1000


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
    # Beyond S1-S19 (README "Beyond the basics"): every default keeps S1-S19.
    licensed_only = fields.Boolean(
        string="Licensed users only", help="Skip users without any Microsoft 365 licence."
    )
    exclude_patterns = fields.Text(
        string="Exclude mailboxes",
        help="Email or sign-in name patterns to skip, one per line (or comma-separated), "
        "* and ? as wildcards: e.g. noreply*, *room*@*, scan@*. Matching ignores case.",
    )
    group_ids = fields.Text(
        string="Only members of groups",
        help="Object ids of Entra groups, one per line: only their members (nested groups "
        "included) become contacts. Needs the application permission GroupMember.Read.All.",
    )
    disabled_action = fields.Selection(
        [("keep", "Keep the contact"), ("archive", "Archive the contact")],
        string="Disabled users",
        default="keep",
        required=True,
        help="What happens to the contact of a user whose account is disabled in Azure AD.",
    )
    deleted_action = fields.Selection(
        [("keep", "Keep the contact"), ("archive", "Archive the contact")],
        string="Deleted or filtered-out users",
        default="keep",
        required=True,
        help="What happens to the contact of a user deleted from Azure AD or no longer "
        "matching the filters. Only contacts the sync linked are archived, never deleted; "
        "they become active again when their user returns.",
    )
    archive_max_count = fields.Integer(
        string="Confirm above (contacts)",
        default=50,
        help="A run that would archive more contacts than this stops before writing anything "
        "and asks for a confirmation (0: no limit).",
    )
    archive_max_percent = fields.Integer(
        string="Confirm above (%)",
        default=25,
        help="A run that would archive more than this share of the synced contacts stops "
        "before writing anything and asks for a confirmation (0: no limit).",
    )
    # How many archives an administrator confirmed for the next run (never the scheduled one).
    archive_allowance = fields.Integer(readonly=True, copy=False)
    follow_email_changes = fields.Boolean(
        string="Follow email changes in Azure AD",
        help="When a user's email changes in Azure AD and the contact still has the last synced "
        "email, the contact's email follows instead of a new contact being created.",
    )
    map_business_phone = fields.Boolean(string="Business phone → Phone")
    map_department = fields.Boolean(string="Department")
    map_company_name = fields.Boolean(string="Company name")
    map_office = fields.Boolean(string="Office")
    log_changes = fields.Boolean(
        string="Change history",
        help="Each contact's chatter records the fields a sync changed (old → new), and each "
        "run lists the contacts it changed.",
    )
    additional_tenant = fields.Boolean(
        readonly=True,
        copy=False,
        help="Another Entra tenant of this customer (e.g. after a merger): it matches the "
        "customer's contacts by email like the first one.",
    )
    # The last run stopped for the archive safety threshold: what it says.
    pending_confirmation = fields.Text(compute="_compute_pending_confirmation")
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
        string="Kind of error",
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
        [("running", "Running"), ("done", "Done"), ("failed", "Failed"), ("confirm", "Needs confirmation")],
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
        # S1; an explicitly added tenant of the same customer is the only exception.
        (
            "partner_uniq",
            "EXCLUDE (partner_id WITH =) WHERE (additional_tenant IS NOT TRUE)",
            (
                "This customer already has an Azure AD integration. To connect another tenant to "
                'it, use "Add another tenant" on that integration.'
            ),
        ),
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
        """Microsoft's admin-consent page for this customer, with a fresh signed state. Only
        this (an authenticated, CSRF-safe call) starts a consent: a link from another site
        cannot."""
        self.ensure_one()
        self._check_admin()
        if self.excluded:
            raise UserError(self.env._("%(customer)s is excluded from Azure AD sync.", customer=self.name))
        client_id, _secret = self._get_app_credentials()  # fail here, not on Microsoft's page
        login, graph = self._get_endpoints()
        state = hash_sign(
            self.env(su=True),
            CONSENT_STATE_SCOPE,
            {
                "integration": self.id,
                "user": self.env.uid,
                "db": self.env.cr.dbname,
                "nonce": self._new_consent_nonce(),
            },
            expiration_hours=CONSENT_STATE_VALIDITY_HOURS,
        )
        return {
            "type": "ir.actions.act_url",
            "url": graph_client.admin_consent_url(
                login, client_id, f"{graph}/.default", self._consent_redirect_uri(), state
            ),
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
        # Every internal user reads the customer's chatter: the counts, no tenant id or
        # Microsoft error there; the details stay on the integration (administrators).
        if result.get("error"):
            self.message_post(body=self._result_message(result))
            summary = self.env._(
                "Connected to Azure AD, but the first sync failed: an administrator finds the "
                "details on the Azure AD integration."
            )
        else:
            summary = self._result_message(result)
        self.partner_id.message_post(body=summary)
        return result

    # -------------------------------------------------------------------- sync

    def _check_admin(self):
        if not self.env.is_system():
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
                # All tenants of the customer: they share its contacts (rule 8).
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
                plan = self._plan_contacts(client)
                self._check_plan(plan, trigger)
                self._apply_plan(plan, log)
        except ArchiveConfirmationNeeded as stop:
            return self._stop_for_confirmation(stop.plan, log, trigger, client.request_count)
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
        counts = {**plan.counts(), "archived": plan.archived}
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
                **({"archive_allowance": 0} if trigger != "cron" else {}),
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
        rules = self._sync_rules()
        Partner = self.env["res.partner"]
        Partner.flush_model(
            [
                "parent_id",
                "email",
                "name",
                "function",
                "mobile",
                "active",
                "azure_ad_object_id",
                "azure_ad_integration_id",
                "azure_ad_synced",
                "azure_ad_archived",
                "azure_ad_never_overwrite",
                "azure_ad_never_archive",
                "azure_ad_synced_email",
                "azure_ad_guest",
                *rules.extra_fields,
            ]
        )
        # Contacts synced from another tenant of this customer (rule 8).
        other_tenants = self.search([("partner_id", "=", self.partner_id.id), ("id", "!=", self.id)]).ids
        self.env.cr.execute(
            SQL(
                """SELECT id, email,
                          CASE WHEN azure_ad_integration_id = %s THEN azure_ad_object_id END,
                          azure_ad_integration_id = %s AND azure_ad_synced IS TRUE,
                          name, function, mobile,
                          (active IS NOT TRUE)::int * %s
                          + (azure_ad_archived IS TRUE)::int * %s
                          + (azure_ad_never_overwrite IS TRUE)::int * %s
                          + (azure_ad_never_archive IS TRUE)::int * %s
                          + (azure_ad_synced IS TRUE AND azure_ad_integration_id = ANY(%s::int[]))::int * %s
                          + (azure_ad_guest IS TRUE)::int * %s,
                          azure_ad_synced_email
                          %s
                     FROM res_partner
                    WHERE parent_id = %s""",
                self.id,
                self.id,
                reconcile.INACTIVE,
                reconcile.ARCHIVED_BY_SYNC,
                reconcile.NEVER_OVERWRITE,
                reconcile.NEVER_ARCHIVE,
                other_tenants,
                reconcile.OTHER_TENANT,
                reconcile.GUEST,
                SQL("").join(SQL(", %s", SQL.identifier(name)) for name in rules.extra_fields),
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
                flags=row[7],
                synced_email=reconcile.normalize_email(row[8]),
                extra=row[9:] or None,
            )
            for row in self.env.cr.fetchall()
        ]

    def _apply_plan(self, plan, log=None):
        history = self._history_before(plan) if self.log_changes else None
        partners = self.env["res.partner"].sudo().with_context(**SYNC_CONTEXT)
        if plan.unlink_ids:
            # Clear old links first so that swapped links can't trip the unique constraint.
            partners.browse(plan.unlink_ids).write(
                {
                    "azure_ad_object_id": False,
                    "azure_ad_integration_id": False,
                    "azure_ad_synced": False,
                    "azure_ad_guest": False,
                }
            )
            partners.flush_model()  # before the INSERTs/UPDATEs that take those links over
        link = {"azure_ad_integration_id": self.id, "azure_ad_synced": True}
        # One recordset for all updates: what write() reads per contact (its users, for
        # instance) is then fetched once for all of them, not once per contact.
        for partner in partners.browse(list(plan.updates)):
            values = plan.updates[partner.id]
            if "azure_ad_object_id" in values:
                values = {**values, **link}
            partner.write(values)
        common = {**link, "parent_id": self.partner_id.id, "type": "contact", "is_company": False}
        for batch in split_every(CREATE_BATCH_SIZE, plan.creates, list):
            partners.create([{**values, **common} for values in batch])
            # Keep memory flat on large tenants: write the batch out, drop it from the cache.
            partners.flush_model()
            partners.invalidate_model()
        if plan.archives:  # leavers: archived, never deleted; back when their user returns
            partners.browse(list(plan.archives)).write({"active": False, "azure_ad_archived": True})
        if history is not None:
            self._record_history(plan, history, log)

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
        if isinstance(error, graph_client.GroupPermissionError):
            return self.env._(
                "The app may not read the group members of %(customer)s (Authorization_RequestDenied). "
                "Grant the application permission GroupMember.Read.All to your Azure AD app, then "
                "reconnect so that a customer administrator consents again, or remove the group "
                "filter.",
                customer=customer,
            )
        if isinstance(error, graph_client.GroupNotFoundError):
            return self.env._(
                "A group of the group filter of %(customer)s does not exist in its tenant "
                "(%(detail)s). Correct the group ids in the integration's options. Nothing was changed.",
                customer=customer,
                detail=error.detail,
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
        if result.get("needs_confirmation"):
            return result["needs_confirmation"]
        if result.get("archived"):
            return self.env._(
                "Azure AD sync: %(created)s created, %(updated)s updated, %(unchanged)s unchanged, "
                "%(skipped)s skipped, %(archived)s archived.",
                **result,
            )
        return self.env._(
            "Azure AD sync: %(created)s created, %(updated)s updated, %(unchanged)s unchanged, "
            "%(skipped)s skipped.",
            **result,
        )

    @api.model
    def _notification(self, results):
        failed = [result for result in results if result.get("error")]
        stopped = [result for result in results if result.get("needs_confirmation")]
        totals = {
            key: sum(result[key] for result in results if not result.get("error"))
            for key in ("created", "updated", "unchanged", "skipped", "archived")
        }
        message = self._result_message(totals)
        if failed:
            message = "\n".join(result["error"] for result in failed)
        elif stopped:
            return {
                "type": "ir.actions.client",
                "tag": "display_notification",
                "params": {
                    "type": "warning",
                    "title": self.env._("Azure AD sync needs your confirmation"),
                    "message": "\n".join(result["needs_confirmation"] for result in stopped),
                    "sticky": True,
                    "next": {"type": "ir.actions.client", "tag": "soft_reload"},
                },
            }
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
        except pg_errors.SerializationFailure as error:
            # Synced by someone else since this job's transaction began: any write to this
            # customer would fail again and roll back the whole batch. The next run retries
            # (a "Sync now" request stays pending until then).
            _logger.info("Azure AD sync of %s skipped: it was synced meanwhile", self.name)
            return {"error": str(error)}
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
                    "type": "danger"
                    if result.get("error")
                    else "warning"
                    if result.get("needs_confirmation")
                    else "success",
                    "title": self.name,
                    "message": self._result_message(result),
                    "sticky": bool(result.get("error") or result.get("needs_confirmation")),
                },
            )
        return result

    # ------------------------------------------------- beyond the basics (README)

    @api.depends("sync_log_ids.state", "sync_log_ids.error")
    def _compute_pending_confirmation(self):
        for integration in self:
            log = integration._latest_log()
            integration.pending_confirmation = log.state == "confirm" and log.error

    def _latest_log(self):
        """The last run, by the log's order (a cached one2many may hold new runs last)."""
        self.ensure_one()
        return self.env["azure.ad.sync.log"].search([("integration_id", "=", self.id)], limit=1)

    @api.constrains("tenant_id", "partner_id")
    def _check_tenant_once_per_customer(self):
        for integration in self.filtered("tenant_id"):
            if self.search_count(
                [
                    ("partner_id", "=", integration.partner_id.id),
                    ("tenant_id", "=ilike", integration.tenant_id),
                    ("id", "!=", integration.id),
                ]
            ):
                raise ValidationError(
                    self.env._(
                        "The tenant %(tenant)s is already connected to %(customer)s.",
                        tenant=integration.tenant_id,
                        customer=integration.name,
                    )
                )

    @api.constrains("group_ids", "archive_max_count", "archive_max_percent")
    def _check_sync_options(self):
        for integration in self:
            for group_id in _option_values(integration.group_ids):
                if not graph_client.is_object_id(group_id):
                    raise ValidationError(
                        self.env._(
                            "%(value)s is not the object id of an Entra group (a GUID such as "
                            "3f2504e0-4f89-11d3-9a0c-0305e82c3301).",
                            value=group_id,
                        )
                    )
            if integration.archive_max_count < 0 or not 0 <= integration.archive_max_percent <= 100:
                raise ValidationError(
                    self.env._("The archive confirmation limits must be positive (and at most 100 %).")
                )

    @api.depends("partner_id.name", "tenant_id", "additional_tenant")
    def _compute_display_name(self):
        for integration in self:
            name = integration.partner_id.name or ""
            if integration.additional_tenant:
                name = f"{name} ({integration.tenant_id or self.env._('new tenant')})"
            integration.display_name = name

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
            exclude_patterns=tuple(_option_values(self.exclude_patterns)),
            extra_fields=tuple(name for name, mapped in mappings if mapped),
            follow_email=self.follow_email_changes,
            archive_disabled=self.disabled_action == "archive",
            archive_deleted=self.deleted_action == "archive",
        )

    def _plan_contacts(self, client, on_skip=None):
        """Read the tenant through `client` and plan the sync; writes no contact."""
        rules = self._sync_rules()
        group_ids = _option_values(self.group_ids)
        if group_ids:
            members = frozenset(
                member.lower() for group_id in group_ids for member in client.group_member_ids(group_id)
            )
            rules = dataclasses.replace(rules, group_member_ids=members)
        extra = rules.graph_properties()
        if extra:  # only what the options need: the default request stays SPEC §2's
            pages = client.iter_user_pages(select=tuple(dict.fromkeys(graph_client.USER_SELECT + extra)))
        else:
            pages = client.iter_user_pages()
        return reconcile.build_plan(pages, self._existing_contacts(), rules=rules, on_skip=on_skip)

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
                "graph_requests": request_count,
            }
        )
        values = {} if trigger == "cron" else {"archive_allowance": 0}
        if self.auto_sync:  # ask again at the next interval, not at every run of the job
            values["next_sync_date"] = now + timedelta(hours=self.sync_interval_hours)
        self.write(values)
        self.message_post(body=message)
        _logger.info("Azure AD sync of %s (id %s) waits for confirmation: %s", self.name, self.id, message)
        return {**log._counts(), "needs_confirmation": message}

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
        self.archive_allowance = log.archive_pending
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

    def action_add_tenant(self):
        """Several tenants for one customer (e.g. after a merger): a second integration."""
        self.ensure_one()
        self._check_admin()
        other = self.create({"partner_id": self.partner_id.id, "additional_tenant": True})
        other.message_post(
            body=self.env._(
                "Additional tenant of %(customer)s, added by %(user)s.",
                customer=self.name,
                user=self.env.user.name,
            )
        )
        return other.action_open_connect_wizard()

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

    def _contact_values(self, contact_ids, field_names):
        """{contact id: {field: value}} with one SQL query (no ORM cache on large runs)."""
        self.env["res.partner"].flush_model(field_names)
        self.env.cr.execute(
            SQL(
                "SELECT id, %s FROM res_partner WHERE id = ANY(%s)",
                SQL(", ").join(SQL.identifier(name) for name in field_names),
                list(contact_ids),
            )
        )
        return {row[0]: dict(zip(field_names, row[1:], strict=True)) for row in self.env.cr.fetchall()}

    def _history_before(self, plan):
        """The current values of what `plan` changes, for the change history."""
        changed = {name for values in plan.updates.values() for name in values}
        if plan.archives:
            changed.add("active")
        names = [name for name in HISTORY_FIELDS if name in changed]
        contact_ids = plan.updates.keys() | plan.archives.keys()
        return self._contact_values(contact_ids, names) if names and contact_ids else {}

    def _record_history(self, plan, before, log):
        """One chatter note per changed contact with its changes (old → new), posted in
        batches; the run log lists the contacts. Created contacts get no note."""
        Fields = self.env["ir.model.fields"]
        field_ids = {name: Fields._get("res.partner", name).id for name in HISTORY_FIELDS}
        labels = self.env["azure.ad.sync.log"]._skip_reason_labels()
        Partner = self.env["res.partner"].sudo()
        author_id, email_from = Partner._message_compute_author(raise_on_email=False)
        # What mail.message would otherwise compute per message (reply-to, record name):
        # once for the run, as mail.thread's _message_log_batch does.
        common = {
            "author_id": author_id,
            "email_from": email_from,
            "model": "res.partner",
            "message_type": "notification",
            "is_internal": True,
            "subtype_id": self.env["ir.model.data"]._xmlid_to_res_id("mail.mt_note"),
            "record_name": False,
            "record_alias_domain_id": False,
            "record_company_id": False,
            "reply_to": self.env["mail.thread"]._notify_get_reply_to(default=email_from)[False],
        }
        changed = []
        messages = []
        for contact_id in sorted(before):
            values = dict(plan.updates.get(contact_id, {}))
            if contact_id in plan.archives:
                values["active"] = False
            trackings = [
                _tracking_value(field_ids[name], name, old, values[name])
                for name, old in before[contact_id].items()
                if name in values and (old or False) != (values[name] or False)
            ]
            if not trackings:
                continue
            if contact_id in plan.archives:
                reason = plan.archives[contact_id]
                body = self.env._("Archived by Azure AD sync: %(reason)s.", reason=labels.get(reason, reason))
            elif values.get("active"):
                body = self.env._("Active again: the user is back in Azure AD.")
            else:
                body = self.env._("Updated by Azure AD sync.")
            changed.append(contact_id)
            messages.append(({**common, "res_id": contact_id, "body": escape(body)}, trackings))
        Tracking = self.env["mail.tracking.value"].sudo()
        for batch in split_every(HISTORY_BATCH_SIZE, messages, list):
            created = Partner._message_create([values for values, _trackings in batch])
            # The old → new values of the whole batch in one create, not one per message.
            Tracking.create(
                [
                    {**tracking, "mail_message_id": message.id}
                    for message, (_values, trackings) in zip(created, batch, strict=True)
                    for tracking in trackings
                ]
            )
        if log and changed:
            log.sudo().changed_partner_ids = [Command.set(changed)]


def _option_values(text):
    """The entries of a one-per-line (or comma-separated) option."""
    return [value.strip() for line in (text or "").splitlines() for value in line.split(",") if value.strip()]


def _tracking_value(field_id, name, old, new):
    """A mail.tracking.value for a char field, or for `active`."""
    if name == "active":
        return {
            "field_id": field_id,
            "old_value_integer": int(bool(old)),
            "new_value_integer": int(bool(new)),
        }
    return {"field_id": field_id, "old_value_char": old or "", "new_value_char": new or ""}
