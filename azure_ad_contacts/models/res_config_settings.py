"""Settings › Azure AD Contacts: the MSP's multi-tenant app and Microsoft's endpoints."""

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..utils.graph_client import DEFAULT_GRAPH_ENDPOINT, DEFAULT_LOGIN_ENDPOINT


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    azure_ad_client_id = fields.Char(
        string="Application (client) ID", config_parameter="azure_ad_contacts.client_id"
    )
    azure_ad_client_secret = fields.Char(
        string="Client secret",
        config_parameter="azure_ad_contacts.client_secret",
        groups="base.group_system",
    )
    azure_ad_login_endpoint = fields.Char(
        string="Login endpoint",
        config_parameter="azure_ad_contacts.login_endpoint",
        default=DEFAULT_LOGIN_ENDPOINT,
    )
    azure_ad_graph_endpoint = fields.Char(
        string="Graph endpoint",
        config_parameter="azure_ad_contacts.graph_endpoint",
        default=DEFAULT_GRAPH_ENDPOINT,
    )
    azure_ad_redirect_uri = fields.Char(string="Redirect URI", compute="_compute_azure_ad_redirect_uri")

    @api.model
    def default_get(self, fields):
        # Odoo's default_get reads config parameters with sudo and checks no access: without
        # this, any internal user could fetch the client secret over RPC.
        self.check_access("read")
        self.check_field_access_rights("read", fields)
        return super().default_get(fields)

    def _compute_azure_ad_redirect_uri(self):
        uri = self.env["azure.ad.integration"]._consent_redirect_uri()
        for settings in self:
            settings.azure_ad_redirect_uri = uri

    @api.constrains("azure_ad_login_endpoint", "azure_ad_graph_endpoint")
    def _check_azure_ad_endpoints(self):
        for settings in self:
            for url in (settings.azure_ad_login_endpoint, settings.azure_ad_graph_endpoint):
                if url and not url.startswith("https://"):
                    raise ValidationError(self.env._("Azure AD endpoints must use https: %(url)s", url=url))
