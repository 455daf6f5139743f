"""One group found by the "Choose groups" dialog."""

from odoo import fields, models


class AzureAdGroupPickerLine(models.TransientModel):
    _name = "azure.ad.group.picker.line"
    _description = "Azure AD group found"
    _order = "name, id"

    picker_id = fields.Many2one("azure.ad.group.picker", required=True, ondelete="cascade")
    object_id = fields.Char(string="Object ID", required=True)
    name = fields.Char(string="Group")
    selected = fields.Boolean(string="Add")
