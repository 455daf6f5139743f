"""One line of a sync preview."""

from odoo import fields, models


class AzureAdPreviewLine(models.TransientModel):
    """One contact of a sync preview: what the sync would do to it, and why."""

    _name = "azure.ad.preview.line"
    _description = "Azure AD Sync Preview Line"
    _order = "id"

    wizard_id = fields.Many2one("azure.ad.preview.wizard", required=True, ondelete="cascade")
    action = fields.Selection(
        [("create", "Create"), ("update", "Update"), ("archive", "Archive"), ("skip", "Skip")],
        required=True,
    )
    partner_id = fields.Many2one("res.partner", string="Contact", ondelete="cascade")
    name = fields.Char()
    email = fields.Char()
    changes = fields.Text()
    reason = fields.Char()
