"""The "Disconnect from Azure AD" confirmation dialog."""

from odoo import fields, models

from ..utils.notification import display_notification


class AzureAdDisconnectWizard(models.TransientModel):
    """The confirmation before a disconnect: says that imported contacts stay."""

    _name = "azure.ad.disconnect.wizard"
    _description = "Disconnect a customer from Azure AD"

    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade")
    partner_id = fields.Many2one(related="integration_id.partner_id")
    contact_count = fields.Integer(related="integration_id.contact_count")

    def action_disconnect(self):
        self.ensure_one()
        self.integration_id.action_disconnect()
        return display_notification(
            "success",
            self.env._("Disconnected from Azure AD"),
            self.env._(
                "%(customer)s is no longer connected to Azure AD. Its %(count)s imported "
                "contacts were kept.",
                customer=self.partner_id.name,
                count=self.contact_count,
            ),
            next_action={"type": "ir.actions.act_window_close"},
        )
