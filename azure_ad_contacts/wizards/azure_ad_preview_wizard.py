"""The sync preview (dry run) and its "Apply"."""

from odoo import Command, api, fields, models

from ..models.azure_ad_sync_mixin import PreviewOutdated

# Lines listed per kind; the counts always cover the whole plan.
PREVIEW_LINES = 500
# Contact fields a preview shows as "old → new"; the sync's bookkeeping fields are left out.
SHOWN_FIELDS = (
    "name", "email", "function", "mobile", "phone", "azure_ad_department",
    "azure_ad_company_name", "azure_ad_office",
)


class AzureAdPreviewWizard(models.TransientModel):
    """Dry run of a sync: what it would create, update, skip and archive. "Apply" re-reads
    Azure AD and applies the plan only if it is still exactly the one shown."""

    _name = "azure.ad.preview.wizard"
    _description = "Azure AD Sync Preview"

    integration_id = fields.Many2one(
        "azure.ad.integration", required=True, readonly=True, ondelete="cascade"
    )
    partner_id = fields.Many2one(related="integration_id.partner_id", string="Customer")
    # Fingerprint of everything the previewed plan writes (reconcile.Plan.digest).
    digest = fields.Char(readonly=True)
    to_create = fields.Integer(string="To create", readonly=True)
    to_update = fields.Integer(string="To update", readonly=True)
    unchanged = fields.Integer(readonly=True)
    skipped = fields.Integer(readonly=True)
    to_archive = fields.Integer(string="To archive", readonly=True)
    skip_summary = fields.Char(string="Skipped because", readonly=True)
    # Applying archives more contacts than the safety threshold: "Apply" confirms them.
    beyond_threshold = fields.Boolean(readonly=True)
    truncated = fields.Boolean(readonly=True)
    outdated_message = fields.Text(readonly=True)
    line_ids = fields.One2many("azure.ad.preview.line", "wizard_id")
    create_line_ids = fields.One2many(
        "azure.ad.preview.line", "wizard_id", domain=[("action", "=", "create")]
    )
    update_line_ids = fields.One2many(
        "azure.ad.preview.line", "wizard_id", domain=[("action", "=", "update")]
    )
    archive_line_ids = fields.One2many(
        "azure.ad.preview.line", "wizard_id", domain=[("action", "=", "archive")]
    )
    skip_line_ids = fields.One2many("azure.ad.preview.line", "wizard_id", domain=[("action", "=", "skip")])

    @api.model
    def _open_for(self, integration):
        wizard = self.create({"integration_id": integration.id})
        wizard._fill()
        return wizard._action_reopen()

    def _action_reopen(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Preview of the Azure AD sync"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }

    def _fill(self):
        """Plans the sync now (Azure AD is read, nothing is written) and lists the plan."""
        self.ensure_one()
        integration = self.integration_id
        plan, skipped = integration._preview(PREVIEW_LINES)
        labels = self.env["azure.ad.sync.log"]._skip_reason_labels()
        lines = [
            *self._create_lines(plan),
            *self._update_lines(plan),
            *self._archive_lines(plan, labels),
            *(
                {"action": "skip", "name": label, "reason": labels.get(reason, reason)}
                for label, reason in skipped
            ),
        ]
        self.line_ids.unlink()
        self.write(
            {
                "digest": plan.digest(),
                "to_create": plan.created,
                "to_update": plan.updated,
                "unchanged": plan.unchanged,
                "skipped": plan.skipped.total(),
                "to_archive": plan.archived,
                "skip_summary": ", ".join(
                    f"{labels.get(reason, reason)}: {count}" for reason, count in sorted(plan.skipped.items())
                ),
                "beyond_threshold": bool(plan.archives) and integration._archive_threshold_exceeded(plan),
                "truncated": max(plan.created, plan.updated, plan.archived, plan.skipped.total())
                > PREVIEW_LINES,
                "line_ids": [Command.create(values) for values in lines],
            }
        )

    def _label(self, field_name):
        return self.env["res.partner"]._fields[field_name]._description_string(self.env)

    def _create_lines(self, plan):
        for values in plan.creates[:PREVIEW_LINES]:
            yield {
                "action": "create",
                "name": values["name"],
                "email": values["email"],
                "changes": "\n".join(
                    f"{self._label(name)}: {values[name]}"
                    for name in SHOWN_FIELDS
                    if name not in ("name", "email") and values.get(name)
                ),
            }

    def _update_lines(self, plan):
        contact_ids = list(plan.updates)[:PREVIEW_LINES]
        contact_ids += [cid for cid in plan.unlink_ids if cid not in plan.updates][
            : PREVIEW_LINES - len(contact_ids)
        ]
        before = self.env["res.partner"]._azure_ad_contact_values(contact_ids, list(SHOWN_FIELDS))
        for contact_id in contact_ids:
            values = plan.updates.get(contact_id, {})
            old = before.get(contact_id, {})
            changes = [
                f"{self._label(name)}: {old.get(name) or '–'} → {values[name] or '–'}"
                for name in SHOWN_FIELDS
                if name in values
            ]
            if values.get("active"):
                changes.append(self.env._("Active again: the user is back in Azure AD"))
            if values.get("azure_ad_object_id"):
                changes.append(
                    self.env._("Linked to the Azure AD user %(user)s", user=values["azure_ad_object_id"])
                )
            if contact_id in plan.unlink_ids and contact_id not in plan.updates:
                changes.append(self.env._("No longer linked to Azure AD: its user has another contact now"))
            if not changes:
                changes.append(self.env._("Records the email Azure AD has now"))
            yield {
                "action": "update",
                "partner_id": contact_id,
                "name": old.get("name"),
                "email": old.get("email"),
                "changes": "\n".join(changes),
            }

    def _archive_lines(self, plan, labels):
        contact_ids = list(plan.archives)[:PREVIEW_LINES]
        before = self.env["res.partner"]._azure_ad_contact_values(contact_ids, ["name", "email"])
        for contact_id in contact_ids:
            reason = plan.archives[contact_id]
            yield {
                "action": "archive",
                "partner_id": contact_id,
                "name": before.get(contact_id, {}).get("name"),
                "email": before.get(contact_id, {}).get("email"),
                "reason": labels.get(reason, reason),
            }

    def action_refresh(self):
        self.ensure_one()
        self.outdated_message = False
        self._fill()
        return self._action_reopen()

    def action_apply(self):
        """Applies the previewed plan: the sync re-reads Azure AD and refuses (writing
        nothing) unless it would write exactly what this preview shows."""
        self.ensure_one()
        integration = self.integration_id
        try:
            with self.env.cr.savepoint():  # a refused run leaves no run log either
                logs = integration.with_context(azure_ad_preview_digest=self.digest)._sync("manual")
        except PreviewOutdated:
            shown = {"to_create": self.to_create, "to_update": self.to_update, "to_archive": self.to_archive}
            self._fill()
            self.outdated_message = self._outdated_message(shown)
            return self._action_reopen()
        return logs._notification_action()

    def _outdated_message(self, shown):
        labels = {
            "to_create": self.env._("to create"),
            "to_update": self.env._("to update"),
            "to_archive": self.env._("to archive"),
        }
        differences = ", ".join(
            f"{labels[key]} {old} → {self[key]}" for key, old in shown.items() if old != self[key]
        ) or self.env._("the same numbers, but other contacts or values")
        return self.env._(
            "Azure AD or the contacts changed since the preview you applied (%(differences)s), "
            "so nothing was written. This is the new preview: check it and apply again.",
            differences=differences,
        )
