"""The "Connect to Azure Active Directory" dialog."""

from odoo import api, fields, models
from odoo.exceptions import UserError


class AzureAdConnectWizard(models.TransientModel):
    """The "Connect to Azure Active Directory" dialog: says what will happen, then sends
    the administrator to Microsoft's consent page."""

    _name = "azure.ad.connect.wizard"
    _description = "Connect a customer to Azure AD"

    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade")
    partner_id = fields.Many2one(related="integration_id.partner_id")
    reconnect = fields.Boolean(string="Connected before", compute="_compute_reconnect")
    app_configured = fields.Boolean(string="Azure AD app configured", compute="_compute_app_configured")

    @api.depends("integration_id.state")
    def _compute_reconnect(self):
        for wizard in self:
            wizard.reconnect = wizard.integration_id.state in ("connected", "disconnected", "error")

    @api.depends("integration_id")
    def _compute_app_configured(self):
        for wizard in self:
            try:
                wizard.integration_id._get_app_credentials()
            except UserError:
                wizard.app_configured = False
            else:
                wizard.app_configured = True

    def action_connect(self):
        self.ensure_one()
        return self.integration_id.action_connect()
