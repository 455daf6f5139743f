"""A customer's helpdesk side: is it an Azure AD customer, its open tickets from synced contacts."""

from odoo import fields, models


class ResPartner(models.Model):
    _inherit = "res.partner"

    # Readable by helpdesk agents, unlike the integration itself (administrators only).
    azure_ad_customer = fields.Boolean(
        compute="_compute_azure_ad_customer", compute_sudo=True, string="Azure AD customer"
    )
    azure_ad_open_ticket_count = fields.Integer(
        compute="_compute_azure_ad_open_ticket_count", string="Open tickets from Azure AD contacts"
    )

    def _compute_azure_ad_customer(self):
        integrated = self.env["azure.ad.integration"].search([("partner_id", "in", self.ids)]).partner_id
        for partner in self:
            partner.azure_ad_customer = partner in integrated

    def _compute_azure_ad_open_ticket_count(self):
        tickets = self.env["helpdesk.ticket"]
        for partner in self:
            partner.azure_ad_open_ticket_count = (
                tickets.search_count(partner._azure_ad_open_ticket_domain()) if partner.id else 0
            )

    def _azure_ad_open_ticket_domain(self):
        return [
            ("partner_id", "child_of", self.ids),
            ("partner_id.azure_ad_synced", "=", True),
            ("closed", "=", False),
        ]

    def action_view_azure_ad_tickets(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Open tickets from Azure AD contacts"),
            "res_model": "helpdesk.ticket",
            "view_mode": "list,kanban,form",
            "domain": self._azure_ad_open_ticket_domain(),
        }
