from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

# The Azure AD mark and link: written by the sync only, which writes contacts in superuser
# mode, out of reach of any RPC call. (A context key would not do: callers choose their
# context.)
SYNC_OWNED_FIELDS = ("azure_ad_synced", "azure_ad_object_id", "azure_ad_integration_id", "azure_ad_guest")


class ResPartner(models.Model):
    _inherit = "res.partner"

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
        help="Managed by Azure AD: each sync overwrites the name, job position and mobile "
        "of this contact with the values from Microsoft Entra ID.",
    )
    azure_ad_guest = fields.Boolean(
        string="Azure AD guest",
        copy=False,
        readonly=True,
        help="Synced from a guest (B2B) account of the tenant: its address belongs to another "
        "organisation.",
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
    # The customer side: one integration per company (S1).
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

    _sql_constraints = [
        (
            "azure_ad_object_uniq",
            "unique(azure_ad_integration_id, azure_ad_object_id)",
            "An Entra ID user can be linked to only one contact per integration.",
        ),
    ]

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
                    "Only the Azure AD sync sets the Azure AD mark and link of a contact "
                    "(%(fields)s).",
                    fields=", ".join(names),
                )
            )

    @api.depends(
        "azure_ad_integration_ids.state",
        "azure_ad_integration_ids.excluded",
        "azure_ad_integration_ids.last_sync_date",
        "azure_ad_integration_ids.last_error",
        "azure_ad_integration_ids.last_run_state",
    )
    def _compute_azure_ad_state(self):
        for partner in self:
            integration = partner.azure_ad_integration_ids[:1]
            partner.azure_ad_state = integration.state or "none"
            partner.azure_ad_excluded = integration.excluded
            partner.azure_ad_last_sync_date = integration.last_sync_date
            partner.azure_ad_last_error = integration.last_error
            partner.azure_ad_last_run_summary = integration.last_run_state == "done" and self.env._(
                "%(created)s created, %(updated)s updated, %(unchanged)s unchanged, %(skipped)s skipped",
                created=integration.last_run_created,
                updated=integration.last_run_updated,
                unchanged=integration.last_run_unchanged,
                skipped=integration.last_run_skipped,
            )

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
        results = integrations._sync("manual")
        return integrations._notification(results)
