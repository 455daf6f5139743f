"""Settings › Azure AD Contacts: the MSP's multi-tenant app (its client id and its secret or
certificate) and Microsoft's endpoints."""

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import config

from ..models.azure_ad_app_credential_mixin import CERTIFICATE_PARAM, SECRET_EXPIRY_PARAM
from ..utils import credentials
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
    # Stored as ir.config_parameter by get_values/set_values (config_parameter takes no dates).
    azure_ad_client_secret_expiry = fields.Date(
        string="Secret expires on",
        help="The date the Azure portal shows for the client secret (Expires): administrators are "
        "reminded 30 and 7 days before.",
    )
    # Write-only: a new certificate is given here; the stored one (and its private key) is never
    # shown again, only its thumbprint and expiry.
    azure_ad_new_certificate = fields.Text(
        string="New certificate",
        groups="base.group_system",
        help="The certificate of your app registration together with its private key, in PEM format "
        "(-----BEGIN PRIVATE KEY----- … -----BEGIN CERTIFICATE----- …). With a certificate, Odoo signs "
        "in with it instead of the client secret, as Microsoft recommends.",
    )
    azure_ad_certificate_thumbprint = fields.Char(
        string="Certificate thumbprint", compute="_compute_azure_ad_certificate"
    )
    azure_ad_certificate_expiry = fields.Datetime(
        string="Certificate expires on", compute="_compute_azure_ad_certificate"
    )
    azure_ad_certificate_in_config = fields.Boolean(
        string="Certificate from odoo.conf", compute="_compute_azure_ad_certificate"
    )
    azure_ad_certificate_error = fields.Char(
        string="Certificate problem", compute="_compute_azure_ad_certificate"
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

    def _compute_azure_ad_certificate(self):
        try:
            certificate = self.env["azure.ad.integration"]._app_certificate()
            error = False
        except UserError as failure:
            certificate, error = None, str(failure)
        for settings in self:
            settings.azure_ad_certificate_thumbprint = certificate and certificate.thumbprint
            settings.azure_ad_certificate_expiry = certificate and certificate.not_after
            settings.azure_ad_certificate_in_config = bool(config.get("azure_ad_contacts_client_certificate"))
            settings.azure_ad_certificate_error = error

    @api.constrains("azure_ad_new_certificate")
    def _check_azure_ad_new_certificate(self):
        Integration = self.env["azure.ad.integration"]
        for settings in self.filtered("azure_ad_new_certificate"):
            try:
                certificate = credentials.load_certificate(settings.azure_ad_new_certificate)
            except credentials.CertificateInputError as error:
                raise ValidationError(Integration._certificate_input_message(error)) from error
            if certificate.expired():
                raise ValidationError(
                    self.env._(
                        "This certificate expired on %(date)s. Create a new one, upload it to your app "
                        "registration and give it here.",
                        date=fields.Datetime.to_string(certificate.not_after),
                    )
                )

    def get_values(self):
        values = super().get_values()
        expiry = self.env["ir.config_parameter"].sudo().get_param(SECRET_EXPIRY_PARAM)
        values["azure_ad_client_secret_expiry"] = fields.Date.to_date(expiry) if expiry else False
        return values

    def set_values(self):
        """Saves the settings; new app credentials retry at once every customer that failed for
        the old ones."""
        Integration = self.env["azure.ad.integration"]
        before = Integration._credential_fingerprint()
        result = super().set_values()
        self.env["ir.config_parameter"].sudo().set_param(
            SECRET_EXPIRY_PARAM, fields.Date.to_string(self.azure_ad_client_secret_expiry) or False
        )
        if self.azure_ad_new_certificate:
            pem = credentials.load_certificate(self.azure_ad_new_certificate)
            self.env["ir.config_parameter"].sudo().set_param(
                CERTIFICATE_PARAM, pem.private_key_pem + pem.certificate_pem
            )
        self._azure_ad_credentials_changed(before)
        return result

    def action_azure_ad_remove_certificate(self):
        """Forgets the certificate given in the settings: the app signs in with its secret again."""
        self.env["azure.ad.integration"]._check_admin()
        before = self.env["azure.ad.integration"]._credential_fingerprint()
        self.env["ir.config_parameter"].sudo().set_param(CERTIFICATE_PARAM, False)
        self._azure_ad_credentials_changed(before)
        return {"type": "ir.actions.client", "tag": "reload"}

    def _azure_ad_credentials_changed(self, before):
        Integration = self.env["azure.ad.integration"]
        if Integration._credential_fingerprint() != before:
            Integration._retry_credential_failures()
        # Warnings about a credential no longer in use are closed, and a new one that expires
        # soon is announced now rather than tomorrow.
        Integration._cron_warn_credential_expiry()

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
