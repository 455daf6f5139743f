"""The integration of one customer's Entra tenant: identity, state, sync options, constraints,
buttons, and the consent that connects it."""

from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import AccessError, ValidationError

from ..series import Constraint
from ..utils import graph_client
from .azure_ad_sync_mixin import option_values

# What the integration's form shows read-only, and its secrets: written by the code that owns
# them (the consent's proof, the sync, Disconnect) in superuser mode, never by a user over the
# UI or RPC, administrators included: a state or tenant written by hand would skip the proof
# of the consent. (A context key would not do: callers choose their context.) The customer is
# chosen when the integration is made, and stays.
OWNED_FIELDS = (
    "partner_id",
    "state",
    "tenant_id",
    "additional_tenant",
    "last_sync_date",
    "last_error",
    "last_error_kind",
    "archive_allowance",
    "sync_requested_by",
    "group_names",
    "token_cache",
    "consent_nonce",
    "consent_waiting_since",
    "first_sync_pending_since",
    "delta_link",
    "delta_scope",
    "delta_rules",
    "last_full_sync_date",
    "retry_date",
    "failed_runs",
    # How it is connected (its customer's consent, or the partner tenant).
    "connection_method",
    "partner_customer_id",
)


class AzureAdIntegration(models.Model):
    _name = "azure.ad.integration"
    _description = "Azure AD Integration"
    _inherit = [
        "mail.thread",
        "mail.activity.mixin",
        "azure.ad.app.credential.mixin",
        # Before the Microsoft and consent mixins: a customer connected through the partner
        # reads its tenant and connects differently (Odoo puts the first parent first).
        "azure.ad.partner.connection.mixin",
        "azure.ad.owned.fields.mixin",
        "azure.ad.microsoft.mixin",
        "azure.ad.consent.mixin",
        "azure.ad.sync.mixin",
        "azure.ad.delta.mixin",
        "azure.ad.recovery.mixin",
    ]
    _order = "name, id"
    _azure_ad_owned = OWNED_FIELDS
    _azure_ad_chosen_at_create = ("partner_id",)

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
    # Sync options (README "Beyond the basics"): every default keeps the basic behaviour.
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
    # Names of the filter's groups as "Choose groups" found them: {object id: name}.
    group_names = fields.Json(copy=False, readonly=True)
    group_summary = fields.Char(string="Groups", compute="_compute_group_summary")
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
    archive_portal_logins = fields.Boolean(
        string="Also archive portal logins",
        help="A leaver whose contact has a portal login: archive the login too, so that the "
        "person can no longer sign in to the portal, then the contact. Off: such contacts stay "
        "active (the run log says so). Contacts of internal users are never archived.",
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
            ("secret", "App credential (secret or certificate) invalid or expired"),
            ("throttled", "Microsoft busy or throttling"),
            ("partner", "Partner tenant (GDAP) access"),
            ("other", "Other"),
        ],
        string="Kind of error",
        readonly=True,
        copy=False,
    )
    sync_log_ids = fields.One2many("azure.ad.sync.log", "integration_id", string="Sync runs")
    # The last run (the one way to find it), and the last run at a glance on the integration's form.
    last_log_id = fields.Many2one(
        "azure.ad.sync.log", string="Last run log", compute="_compute_last_log", search="_search_last_log"
    )
    last_run_state = fields.Selection(related="last_log_id.state", string="Last run")
    last_run_date = fields.Datetime(related="last_log_id.date_start", string="Last run started")
    last_run_created = fields.Integer(related="last_log_id.created", string="Created")
    last_run_updated = fields.Integer(related="last_log_id.updated", string="Updated")
    last_run_unchanged = fields.Integer(related="last_log_id.unchanged", string="Unchanged")
    last_run_skipped = fields.Integer(related="last_log_id.skipped", string="Skipped")
    last_run_skip_summary = fields.Char(related="last_log_id.skip_summary", string="Skipped because")
    last_run_other_edits_summary = fields.Char(
        related="last_log_id.other_edits_summary", string="Because of edits in Odoo"
    )
    last_run_summary = fields.Char(related="last_log_id.counts_summary", string="Contacts")
    contact_count = fields.Integer(compute="_compute_contact_count", string="Synced contacts")

    # One integration per customer; an explicitly added tenant of it is the only exception.
    _partner_uniq = Constraint(
        "EXCLUDE (partner_id WITH =) WHERE (additional_tenant IS NOT TRUE)",
        "This customer already has an Azure AD integration. To connect another tenant to "
        'it, use "Add another tenant" on that integration.',
    )
    _interval_positive = Constraint(
        "CHECK(sync_interval_hours > 0)",
        "The sync interval must be at least one hour.",
    )

    @api.model
    def _owned_fields_error(self, names):
        return self.env._(
            "These fields of an Azure AD integration are set by the Azure AD sync itself "
            "(connecting, syncing, disconnecting), not by hand: %(fields)s.",
            fields=", ".join(names),
        )

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
        Log = self.env["azure.ad.sync.log"]
        for integration in self:
            # By the log's order, not the cached one2many's (which may hold new runs last).
            integration.last_log_id = Log.search([("integration_id", "=", integration.id)], limit=1)

    def _search_last_log(self, operator, value):
        """The integrations whose last run is one of the given logs (how a change of a log
        reaches the last_run_* fields)."""
        if operator not in ("in", "="):
            raise NotImplementedError(f"last_log_id {operator} is not supported")
        logs = self.env["azure.ad.sync.log"].browse([value] if isinstance(value, int) else value).exists()
        last = logs.filtered(lambda log: log.integration_id.last_log_id == log)
        return [("id", "in", last.integration_id.ids)]

    def _latest_log(self):
        self.ensure_one()
        return self.last_log_id

    @api.depends("sync_log_ids.state", "sync_log_ids.error")
    def _compute_pending_confirmation(self):
        for integration in self:
            log = integration.last_log_id
            integration.pending_confirmation = log.state == "confirm" and log.error

    @api.depends("partner_id.name", "tenant_id", "additional_tenant")
    def _compute_display_name(self):
        for integration in self:
            name = integration.partner_id.name or ""
            if integration.additional_tenant:
                name = f"{name} ({integration.tenant_id or self.env._('new tenant')})"
            integration.display_name = name

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

    @api.depends("group_ids", "group_names")
    def _compute_group_summary(self):
        for integration in self:
            names = {key.lower(): name for key, name in (integration.group_names or {}).items()}
            integration.group_summary = ", ".join(
                names.get(group_id.lower()) or group_id for group_id in option_values(integration.group_ids)
            )

    def action_choose_groups(self):
        self.ensure_one()
        self._check_admin()
        return self.env["azure.ad.group.picker"]._open_for(self)

    def _add_filter_groups(self, groups):
        """Adds `groups` ({object id: name}) to the group filter, after the groups in it."""
        self.ensure_one()
        ids = option_values(self.group_ids)
        known = {group_id.lower() for group_id in ids}
        ids += [group_id for group_id in groups if group_id.lower() not in known]
        names = {**(self.group_names or {}), **groups}
        self.sudo().write({"group_ids": "\n".join(ids), "group_names": names})

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
            for group_id in option_values(integration.group_ids):
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

    def unlink(self):
        # Contacts are never deleted: they stay, without a link to a tenant nobody syncs.
        self.env["res.partner"]._azure_ad_unlink_all(self)
        return super().unlink()

    @api.model
    def _move_to_merged_customer(self, customers, into):
        """Before `customers` are merged into the customer `into`: their integrations become
        into's, with everything they hold (contacts' links, options, run logs). into's own
        integration stays its integration (else the first connected one of `customers`
        becomes it), the others become additional tenants (a tenant belongs to one customer:
        theirs differ); integrations never connected are dropped when a connected one remains."""
        Integration = self.sudo()
        sources = Integration.search([("partner_id", "in", customers.ids)], order="additional_tenant, id")
        if not sources:
            return
        everyone = Integration.search([("partner_id", "=", into.id)], order="additional_tenant, id") | sources
        kept = everyone.filtered("tenant_id") or everyone[:1]
        (everyone - kept).unlink()
        for integration in kept:
            additional = integration != kept[0]
            if integration.partner_id != into or integration.additional_tenant != additional:
                integration.write({"partner_id": into.id, "additional_tenant": additional})
        kept.flush_recordset()  # before Odoo's SQL looks for what still refers to `customers`

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
        domain = [("azure_ad_integration_id", "=", self.id)]  # before the name: see sync log's
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Synced contacts"),
            "res_model": "res.partner",
            "view_mode": "list,kanban,form",
            "domain": domain,
            "context": {"active_test": False},
        }

    def action_disconnect(self):
        """Forgets the token cache; imported contacts stay as they are."""
        self._check_admin()
        self._forget_delta_state()
        self._stop_retries()
        self.sudo().write(
            {
                "state": "disconnected",
                "token_cache": False,
                "consent_nonce": False,
                "last_error": False,
                "last_error_kind": False,
                "consent_waiting_since": False,
                "first_sync_pending_since": False,
            }
        )
        for integration in self:
            integration.message_post(
                body=self.env._("Disconnected from Azure AD. Imported contacts were kept.")
            )
        return True

    def action_add_tenant(self):
        """Several tenants for one customer (e.g. after a merger): a second integration."""
        self.ensure_one()
        self._check_admin()
        other = self.sudo().create({"partner_id": self.partner_id.id, "additional_tenant": True}).sudo(False)
        other.message_post(
            body=self.env._(
                "Additional tenant of %(customer)s, added by %(user)s.",
                customer=self.name,
                user=self.env.user.name,
            )
        )
        return other.action_open_connect_wizard()

    # ------------------------------------------------------------ consent flow

    # ------------------------------------------------------------------ rights

    def _check_admin(self):
        if not self.env.is_system():
            raise AccessError(
                self.env._("Only administrators (Settings rights) can manage Azure AD integrations.")
            )
