from odoo import fields, models


class AzureAdConnectWizard(models.TransientModel):
    _name = "azure.ad.connect.wizard"
    _description = "Connect a customer to Azure AD"

    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade")
    partner_id = fields.Many2one(related="integration_id.partner_id")

    def action_connect(self):
        self.ensure_one()
        return self.integration_id.action_connect()
