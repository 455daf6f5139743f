"""Contacts and customers: the Azure AD fields of res.partner, a customer's status and buttons,
and how a sync reads and writes a customer's contacts (with their change history)."""

from odoo import Command, api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools import SQL, split_every

from ..series import Constraint
from ..utils import reconcile

CREATE_BATCH_SIZE = 1000
# Contacts one transaction creates before it refreshes res_partner's statistics, and again at
# each doubling (see _azure_ad_count_created).
STATISTICS_REFRESH_FROM = 20_000
# How the sync writes contacts: no chatter message, follower or tracking per contact.
SYNC_CONTEXT = {
    "active_test": False,
    "tracking_disable": True,
    "mail_create_nolog": True,
    "mail_notrack": True,
}
# Contact fields whose changes a sync records in the contact's chatter (change history).
HISTORY_FIELDS = (
    "name",
    "email",
    "function",
    "mobile",
    "phone",
    "azure_ad_department",
    "azure_ad_company_name",
    "azure_ad_office",
    "active",
)
HISTORY_BATCH_SIZE = 1000
# The Azure AD mark and link: written by the sync only, which writes contacts in superuser
# mode, out of reach of any RPC call. (A context key would not do: callers choose their
# context.)
SYNC_OWNED_FIELDS = ("azure_ad_synced", "azure_ad_object_id", "azure_ad_integration_id", "azure_ad_guest")
# What a contact loses with its link: it keeps its data, and is no longer synced.
UNLINKED_VALUES = dict.fromkeys((*SYNC_OWNED_FIELDS, "azure_ad_archived", "azure_ad_synced_email"), False)


class ResPartner(models.Model):
    _inherit = "res.partner"

    # Entra's mobilePhone. Odoo 18.0 has the field, 19.0 keeps one phone number per contact:
    # declared here it is Odoo's own on 18.0 and the addon's on 19.0, where the business phone
    # mapping still writes `phone`, so no number is lost (data/series_data.xml shows it on 19.0).
    mobile = fields.Char()
    azure_ad_object_id = fields.Char(
        string="Azure AD Object ID",
        copy=False,
        index="btree_not_null",
        groups="base.group_system",
        help="Object id of the Entra ID user this contact is synced from.",
    )
    azure_ad_integration_id = fields.Many2one(
        "azure.ad.integration",
        string="Azure AD Integration",
        copy=False,
        index="btree_not_null",
        ondelete="set null",
        groups="base.group_system",
    )
    azure_ad_synced = fields.Boolean(
        string="Synced from Azure AD",
        copy=False,
        readonly=True,
        help="Managed by Azure AD: each sync overwrites the name, job position and mobile of "
        "this contact, and the fields its integration also syncs, with the values from "
        "Microsoft Entra ID.",
    )
    azure_ad_guest = fields.Boolean(
        string="Azure AD guest",
        copy=False,
        readonly=True,
        help="Synced from a guest (B2B) account of the tenant: its address belongs to another organisation.",
    )
    # Per-contact pins (README "Beyond the basics"), administrators only.
    azure_ad_never_overwrite = fields.Boolean(
        string="Never overwrite",
        copy=False,
        groups="base.group_system",
        help="The Azure AD sync keeps this contact linked but never changes its fields.",
    )
    azure_ad_never_archive = fields.Boolean(
        string="Never archive",
        copy=False,
        groups="base.group_system",
        help="The Azure AD sync never archives this contact, even when its user leaves.",
    )
    azure_ad_archived = fields.Boolean(
        string="Archived by Azure AD sync",
        copy=False,
        readonly=True,
        groups="base.group_system",
        help="Archived because its user left Azure AD: active again when the user returns.",
    )
    azure_ad_synced_email = fields.Char(
        string="Last synced email",
        copy=False,
        readonly=True,
        groups="base.group_system",
        help="The email Azure AD had at the last sync: while the contact's email is unchanged, "
        "it follows email changes in Azure AD (when the integration says so).",
    )
    # Optional mappings of the integration (Entra has no standard res.partner field for them).
    azure_ad_department = fields.Char(string="Department", copy=False)
    azure_ad_company_name = fields.Char(
        string="Company (Azure AD)", copy=False, help="The company name the user has in Azure AD."
    )
    azure_ad_office = fields.Char(string="Office", copy=False)
    # The customer side: its integration, and the ones of its additional tenants.
    azure_ad_integration_ids = fields.One2many(
        "azure.ad.integration", "partner_id", groups="base.group_system"
    )
    azure_ad_state = fields.Selection(
        [
            ("none", "Not connected"),
            ("draft", "Never connected"),
            ("connected", "Connected"),
            ("disconnected", "Disconnected"),
            ("error", "Error"),
        ],
        string="Azure AD",
        compute="_compute_azure_ad_state",
        groups="base.group_system",
    )
    # The integration's status, for the "Sync contacts" menu on the customer form.
    azure_ad_excluded = fields.Boolean(
        string="Excluded from Azure AD sync", compute="_compute_azure_ad_state", groups="base.group_system"
    )
    azure_ad_last_sync_date = fields.Datetime(
        string="Last Azure AD sync", compute="_compute_azure_ad_state", groups="base.group_system"
    )
    azure_ad_last_error = fields.Text(
        string="Azure AD error", compute="_compute_azure_ad_state", groups="base.group_system"
    )
    azure_ad_last_run_summary = fields.Char(
        string="Last Azure AD run", compute="_compute_azure_ad_state", groups="base.group_system"
    )
    azure_ad_last_error_kind = fields.Selection(
        related="azure_ad_integration_ids.last_error_kind", groups="base.group_system"
    )
    azure_ad_consent_waiting = fields.Boolean(
        string="Waiting for Microsoft", compute="_compute_azure_ad_state", groups="base.group_system"
    )
    azure_ad_first_sync_since = fields.Datetime(
        string="First Azure AD sync running since",
        compute="_compute_azure_ad_state",
        groups="base.group_system",
    )

    _azure_ad_object_uniq = Constraint(
        "unique(azure_ad_integration_id, azure_ad_object_id)",
        "An Entra ID user can be linked to only one contact per integration.",
    )

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            self._check_sync_owned_fields(
                name for vals in vals_list for name in SYNC_OWNED_FIELDS if vals.get(name)
            )
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su:
            self._check_sync_owned_fields(name for name in SYNC_OWNED_FIELDS if name in vals)
        return super().write(vals)

    def _check_sync_owned_fields(self, names):
        names = sorted(set(names))
        if names:
            raise AccessError(
                self.env._(
                    "Only the Azure AD sync sets the Azure AD mark and link of a contact (%(fields)s).",
                    fields=", ".join(names),
                )
            )

    @api.depends(
        "azure_ad_integration_ids.state",
        "azure_ad_integration_ids.excluded",
        "azure_ad_integration_ids.last_sync_date",
        "azure_ad_integration_ids.last_error",
        "azure_ad_integration_ids.last_run_state",
        "azure_ad_integration_ids.last_run_summary",
        "azure_ad_integration_ids.consent_waiting_since",
        "azure_ad_integration_ids.first_sync_pending_since",
    )
    def _compute_azure_ad_state(self):
        for partner in self:
            integration = partner.azure_ad_integration_ids[:1]
            partner.azure_ad_state = integration.state or "none"
            partner.azure_ad_excluded = integration.excluded
            partner.azure_ad_last_sync_date = integration.last_sync_date
            partner.azure_ad_last_error = integration.last_error
            partner.azure_ad_last_run_summary = (
                integration.last_run_state == "done" and integration.last_run_summary
            )
            partner.azure_ad_consent_waiting = integration.consent_waiting
            partner.azure_ad_first_sync_since = integration.first_sync_pending_since

    def unlink(self):
        # A customer's integration goes with it (ondelete cascade): through the ORM, so that
        # its contacts lose their link and mark (see azure.ad.integration's unlink).
        self.sudo().azure_ad_integration_ids.unlink()
        return super().unlink()

    def _azure_ad_integration(self):
        """The customer's integration, created (never connected) on first use."""
        self.ensure_one()
        if not self.is_company:
            raise UserError(self.env._("Azure AD can only be connected for a company, not for a person."))
        return self.azure_ad_integration_ids[:1] or self.env["azure.ad.integration"].create(
            {"partner_id": self.id}
        )

    def action_azure_ad_connect(self):
        """Opens the connect wizard (not connected) or the manage page (connected)."""
        integration = self._azure_ad_integration()
        if integration.state == "connected":
            return integration.action_open()
        return integration.action_open_connect_wizard()

    def action_azure_ad_manage(self):
        return self._azure_ad_integration().action_open()

    def action_azure_ad_sync(self):
        """Server action "Sync contacts from Azure AD" on the selected customers."""
        integrations = self.filtered("is_company").azure_ad_integration_ids.filtered(
            lambda i: i.state == "connected" and not i.excluded
        )
        if not integrations:
            raise UserError(self.env._("None of the selected customers is connected to Azure AD."))
        return self._azure_ad_sync_integrations(integrations)

    def _azure_ad_sync_integrations(self, integrations):
        """Syncs the selected customers' integrations one after the other, and tells how."""
        return integrations._sync("manual")._notification_action()

    # ------------------------------------------------- what a sync reads and writes

    @api.model
    def _azure_ad_existing_contacts(self, integration, contact_ids=None):
        """The child contacts of `integration`'s customer (those of `contact_ids` only, if
        given), archived included, as the planner's tuples.

        Read with one SQL query: a re-sync of a 100,000-user tenant must not load
        100,000 records into the ORM cache just to compare five columns."""
        if contact_ids is not None and not contact_ids:
            return []
        rules = integration._sync_rules()
        self.env.cr.execute(self._azure_ad_contact_query(integration, rules, contact_ids))
        return self._azure_ad_contacts_of(self.env.cr.fetchall())

    @api.model
    def _azure_ad_contact_batches(self, integration, size=10_000):
        """The customer's contacts, as _azure_ad_existing_contacts gives them, in batches of
        `size` by id: one batch in memory at a time."""
        rules = integration._sync_rules()
        after = 0
        while True:
            query = self._azure_ad_contact_query(integration, rules, after=after, limit=size)
            self.env.cr.execute(query)
            if not (rows := self.env.cr.fetchall()):
                return
            after = rows[-1][0]
            yield self._azure_ad_contacts_of(rows)

    @api.model
    def _azure_ad_contacts_of(self, rows):
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
                extra=row[9:-2] or None,
                digest=row[-2],
                version=row[-1],
            )
            for row in rows
        ]

    @api.model
    def _azure_ad_contact_query(self, integration, rules, contact_ids=None, after=None, limit=None):
        """The SQL query of the customer's contacts (those of `contact_ids` only, if given; or
        the first `limit` by id after `after`) as the planner reads them, then a digest of
        all that and where the contact's rows stand: id, email, linked object id, linked,
        name, function, mobile, flags, synced email, the extra fields, digest, version."""
        self.flush_model(
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
        self.env["res.users"].flush_model(["partner_id", "active", "share"])
        # Contacts synced from another tenant of this customer.
        other_tenants = integration.search(
            [("partner_id", "=", integration.partner_id.id), ("id", "!=", integration.id)]
        ).ids
        columns = SQL(
            """res_partner.id, email,
               CASE WHEN azure_ad_integration_id = %s THEN azure_ad_object_id END,
               azure_ad_integration_id = %s AND azure_ad_synced IS TRUE,
               name, function, mobile,
               (res_partner.active IS NOT TRUE)::int * %s
               + (azure_ad_archived IS TRUE)::int * %s
               + (azure_ad_never_overwrite IS TRUE)::int * %s
               + (azure_ad_never_archive IS TRUE)::int * %s
               + (azure_ad_synced IS TRUE AND azure_ad_integration_id = ANY(%s::int[]))::int * %s
               + (azure_ad_guest IS TRUE)::int * %s
               + (login.partner_id IS NOT NULL)::int * %s
               + (login.active IS TRUE)::int * %s
               + (login.internal IS TRUE)::int * %s,
               azure_ad_synced_email
               %s""",
            integration.id,
            integration.id,
            reconcile.INACTIVE,
            reconcile.ARCHIVED_BY_SYNC,
            reconcile.NEVER_OVERWRITE,
            reconcile.NEVER_ARCHIVE,
            other_tenants,
            reconcile.OTHER_TENANT,
            reconcile.GUEST,
            reconcile.LOGIN,
            reconcile.ACTIVE_LOGIN,
            reconcile.INTERNAL_LOGIN,
            SQL("").join(SQL(", %s", SQL.identifier(name)) for name in rules.extra_fields),
        )
        # The version: the row versions (PostgreSQL's xmin and ctid: any UPDATE, by the ORM
        # or by SQL, makes a new one) of the contact and its logins, and what else the flags
        # depend on. The same version, the same contact: its digest needs no computing.
        return SQL(
            """SELECT %s, hashtextextended(ROW(%s)::text, 0)::text AS digest,
                      concat_ws('/', %s::text, res_partner.xmin, res_partner.ctid, login.versions) AS version
                 FROM res_partner
            LEFT JOIN (SELECT partner_id, bool_or(active) AS active,
                              bool_or(active AND share IS NOT TRUE) AS internal,
                              string_agg(concat(xmin, ctid), ',' ORDER BY id) AS versions
                         FROM res_users GROUP BY partner_id) AS login
                   ON login.partner_id = res_partner.id
                WHERE parent_id = %s %s %s""",
            columns,
            columns,
            str(other_tenants),
            integration.partner_id.id,
            SQL("AND res_partner.id = ANY(%s)", list(contact_ids)) if contact_ids is not None else SQL(),
            SQL("AND res_partner.id > %s ORDER BY res_partner.id LIMIT %s", after, limit)
            if limit is not None
            else SQL(),
        )

    @api.model
    def _azure_ad_count_linked(self, integration):
        """How many active contacts of the customer `integration` links to a user (what the
        archive threshold's percentage is of)."""
        self.flush_model(
            ["parent_id", "active", "azure_ad_object_id", "azure_ad_integration_id", "azure_ad_synced"]
        )
        self.env.cr.execute(
            SQL(
                """SELECT count(*) FROM res_partner
                    WHERE parent_id = %s AND azure_ad_integration_id = %s AND azure_ad_synced IS TRUE
                      AND azure_ad_object_id IS NOT NULL AND azure_ad_object_id != '' AND active IS TRUE""",
                integration.partner_id.id,
                integration.id,
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _azure_ad_apply_plan(self, integration, plan, log=None):
        """Writes `plan` to the contacts of `integration`'s customer: links, updates, creates,
        archives, and the change history when the integration keeps one. Returns the ids of
        the contacts created."""
        history = self._azure_ad_history_before(plan) if integration.log_changes else None
        partners = self.sudo().with_context(**SYNC_CONTEXT)
        if plan.unlink_ids:
            # Clear old links first so that swapped links can't trip the unique constraint.
            partners.browse(plan.unlink_ids).write(UNLINKED_VALUES)
            partners.flush_model()  # before the INSERTs/UPDATEs that take those links over
        link = {"azure_ad_integration_id": integration.id, "azure_ad_synced": True}
        # One recordset for all updates: what write() reads per contact (its users, for
        # instance) is then fetched once for all of them, not once per contact.
        for partner in partners.browse(list(plan.updates)):
            values = plan.updates[partner.id]
            if "azure_ad_object_id" in values:
                values = {**values, **link}
            partner.write(values)
        customer = integration.partner_id
        # In the customer's company: Odoo's company rule then shows them where it shows the customer.
        common = {
            **link,
            "parent_id": customer.id,
            "company_id": customer.company_id.id,
            "type": "contact",
            "is_company": False,
        }
        created_ids = []
        for batch in split_every(CREATE_BATCH_SIZE, plan.creates, list):
            created_ids += partners.create([{**values, **common} for values in batch]).ids
            # Keep memory flat on large tenants: write the batch out, drop it from the cache.
            partners.flush_model()
            partners.invalidate_model()
            self._azure_ad_count_created(len(batch))
        if plan.archives:  # leavers: archived, never deleted; back when their user returns
            # Only active users keep Odoo from archiving a partner (the planner left out
            # those that keep theirs; see reconcile._keeps_login).
            leavers = partners.browse(list(plan.archives)).with_context(active_test=True)
            if integration.archive_portal_logins:
                leavers.user_ids.filtered("share").write({"active": False})
            leavers.write({"active": False, "azure_ad_archived": True})
        if history is not None:
            self._azure_ad_record_history(plan, history, log)
        return created_ids

    @api.model
    def _azure_ad_count_created(self, count):
        """Odoo checks each batch of new contacts for a parent cycle with a recursive query
        that PostgreSQL plans from res_partner's statistics. In a transaction that creates many
        contacts these describe the table before it (autovacuum cannot see uncommitted rows):
        where hardly any partner had a parent then, the check is planned for a handful of rows
        and reads every contact with a parent, per batch (5 s a batch at 150,000). ANALYZE in
        the transaction counts its own rows: run at 20,000 contacts created and at each
        doubling, and never waiting for a lock (SKIP_LOCKED: a VACUUM or an ANALYZE elsewhere
        goes on, and this transaction plans on as before)."""
        data = self.env.cr.precommit.data  # this transaction's, cleared at commit and rollback
        created = data["azure_ad_contacts.created"] = data.get("azure_ad_contacts.created", 0) + count
        if created >= data.get("azure_ad_contacts.analyze_at", STATISTICS_REFRESH_FROM):
            self.env.cr.execute(SQL("ANALYZE (SKIP_LOCKED) %s", SQL.identifier(self._table)))
            data["azure_ad_contacts.analyze_at"] = 2 * created

    @api.model
    def _azure_ad_unlink_moved(self, integration):
        """Contacts of `integration` that someone moved out of its customer (another parent,
        or none) keep their data and lose link and mark: the customer's sync plans only its
        own contacts, and gives their users contacts under it again. Returns how many."""
        self.flush_model(["parent_id", "azure_ad_integration_id"])
        self.env.cr.execute(
            SQL(
                """SELECT id FROM res_partner
                    WHERE azure_ad_integration_id = %s AND parent_id IS DISTINCT FROM %s""",
                integration.id,
                integration.partner_id.id,
            )
        )
        moved = self.sudo().with_context(**SYNC_CONTEXT).browse(row[0] for row in self.env.cr.fetchall())
        moved.write(UNLINKED_VALUES)
        moved.flush_recordset()  # before the INSERTs that link their users again
        return len(moved)

    @api.model
    def _azure_ad_unlink_all(self, integrations):
        """The contacts of `integrations`, which are deleted, keep their data and lose link
        and mark: nobody syncs them any more."""
        self.sudo().with_context(**SYNC_CONTEXT).search(
            [("azure_ad_integration_id", "in", integrations.ids)]
        ).write(UNLINKED_VALUES)

    @api.model
    def _azure_ad_take_merged_link(self, partners, into):
        """Before `partners` are merged into `into`: takes their Azure AD links away and
        returns the one the merged contact keeps (into's, else that of the first of
        `partners` that has one) as values for _azure_ad_give_link, or {}. The users of the
        other links get contacts again at the next sync, as when an email is changed."""
        everyone = (into | partners).sudo().with_context(active_test=False)
        keeper = everyone.filtered("azure_ad_integration_id")[:1]
        link = keeper._convert_to_write({name: keeper[name] for name in UNLINKED_VALUES}) if keeper else {}
        marked = everyone.filtered(lambda partner: any(partner[name] for name in UNLINKED_VALUES))
        marked.with_context(**SYNC_CONTEXT).write(UNLINKED_VALUES)
        marked.flush_recordset()  # before another contact takes one of these links over
        return link

    def _azure_ad_give_link(self, link):
        """Writes a link taken by _azure_ad_take_merged_link on this contact."""
        self.ensure_one()
        self.sudo().with_context(**SYNC_CONTEXT).write(link)

    @api.model
    def _azure_ad_contact_values(self, contact_ids, field_names):
        """{contact id: {field: value}} with one SQL query (no ORM cache on large runs)."""
        self.flush_model(field_names)
        self.env.cr.execute(
            SQL(
                "SELECT id, %s FROM res_partner WHERE id = ANY(%s)",
                SQL(", ").join(SQL.identifier(name) for name in field_names),
                list(contact_ids),
            )
        )
        return {row[0]: dict(zip(field_names, row[1:], strict=True)) for row in self.env.cr.fetchall()}

    @api.model
    def _azure_ad_history_before(self, plan):
        """The current values of what `plan` changes, for the change history."""
        changed = {name for values in plan.updates.values() for name in values}
        if plan.archives:
            changed.add("active")
        names = [name for name in HISTORY_FIELDS if name in changed]
        contact_ids = plan.updates.keys() | plan.archives.keys()
        return self._azure_ad_contact_values(contact_ids, names) if names and contact_ids else {}

    @api.model
    def _azure_ad_record_history(self, plan, before, log):
        """One chatter note per changed contact with its changes (old → new), logged in
        batches by mail.thread's _message_log_batch; the run log lists the contacts.
        Created contacts get no note."""
        labels = self.env["azure.ad.sync.log"]._skip_reason_labels()
        Partner = self.sudo()
        Tracking = self.env["mail.tracking.value"].sudo()
        field_info = Partner.fields_get(HISTORY_FIELDS, attributes=["type"])
        bodies = {}
        trackings = {}
        for contact_id in sorted(before):
            values = dict(plan.updates.get(contact_id, {}))
            if contact_id in plan.archives:
                values["active"] = False
            changes = [
                Tracking._create_tracking_values(
                    old or _EMPTY[field_info[name]["type"]],
                    values[name] or _EMPTY[field_info[name]["type"]],
                    name,
                    field_info[name],
                    Partner,
                )
                for name, old in before[contact_id].items()
                if name in values and (old or False) != (values[name] or False)
            ]
            if not changes:
                continue
            if contact_id in plan.archives:
                reason = plan.archives[contact_id]
                body = self.env._("Archived by Azure AD sync: %(reason)s.", reason=labels.get(reason, reason))
            elif values.get("active"):
                body = self.env._("Active again: the user is back in Azure AD.")
            else:
                body = self.env._("Updated by Azure AD sync.")
            bodies[contact_id] = body
            trackings[contact_id] = changes
        for batch in split_every(HISTORY_BATCH_SIZE, list(bodies), list):
            messages = Partner.browse(batch)._message_log_batch({cid: bodies[cid] for cid in batch})
            # The old → new values of the whole batch in one create, not one per message.
            Tracking.create(
                [
                    {**tracking, "mail_message_id": message.id}
                    for message, contact_id in zip(messages, batch, strict=True)
                    for tracking in trackings[contact_id]
                ]
            )
        if log and bodies:
            log.sudo().changed_partner_ids = [Command.set(list(bodies))]


# What an empty value is tracked as, by field type (the history's fields are char or boolean).
_EMPTY = {"char": "", "boolean": False}
