"""The MSP's app credential: a client secret or a certificate with its private key (from the
settings, or from odoo.conf, which wins), when it expires, and the warnings ahead of that: an
activity for the administrators 30 and 7 days before, a banner on every integration after."""

import json
import logging

from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import config
from odoo.tools.misc import format_date

from ..utils import credentials

_logger = logging.getLogger(__name__)

CERTIFICATE_PARAM = "azure_ad_contacts.client_certificate"
SECRET_EXPIRY_PARAM = "azure_ad_contacts.client_secret_expiry"
# The warnings given so far, so that the daily job gives each once: ["<credential>@<days>", …].
WARNINGS_PARAM = "azure_ad_contacts.credential_warnings"
WARNING_DAYS = (30, 7)
CREDENTIAL_EXPIRY_ACTIVITY = "azure_ad_contacts.mail_activity_type_credential_expiry"


class AzureAdAppCredentialMixin(models.AbstractModel):
    _name = "azure.ad.app.credential.mixin"
    _description = "Azure AD: the app's credential"

    credential_warning = fields.Char(string="App credential warning", compute="_compute_credential_warning")

    def _compute_credential_warning(self):
        warning = self._expired_credential_message()
        for integration in self:
            integration.credential_warning = warning

    # ------------------------------------------------------------ the credential

    @api.model
    def _app_certificate(self):
        """The certificate in use (credentials.AppCertificate), None when the app uses its
        client secret. The odoo.conf option azure_ad_contacts_client_certificate (the path of
        a PEM file with the private key and the certificate) wins over the settings."""
        path = config.get("azure_ad_contacts_client_certificate")
        if path:
            try:
                with open(path, "rb") as pem_file:
                    pem = pem_file.read()
            except OSError as error:
                raise UserError(
                    self.env._(
                        "Odoo cannot read the certificate file %(path)s named in odoo.conf "
                        "(azure_ad_contacts_client_certificate): %(error)s",
                        path=path,
                        error=error.strerror or error,
                    )
                ) from error
        else:
            pem = self.env["ir.config_parameter"].sudo().get_param(CERTIFICATE_PARAM)
            if not pem:
                return None
        try:
            return credentials.load_certificate(pem)
        except credentials.CertificateInputError as error:
            raise UserError(self._certificate_input_message(error)) from error

    def _get_app_credentials(self):
        """(client id, credential): the certificate (as MSAL takes it) when there is one, else
        the client secret (odoo.conf's azure_ad_contacts_client_secret wins)."""
        params = self.env["ir.config_parameter"].sudo()
        client_id = params.get_param("azure_ad_contacts.client_id")
        certificate = self._app_certificate()
        if certificate:
            credential = certificate.msal_credential
        else:
            credential = config.get("azure_ad_contacts_client_secret") or params.get_param(
                "azure_ad_contacts.client_secret"
            )
        if not client_id or not credential:
            raise UserError(
                self.env._(
                    "Azure AD is not configured: enter the application (client) ID and a client "
                    "secret or certificate of your multi-tenant app in Settings › Azure AD Contacts."
                )
            )
        return client_id, credential

    @api.model
    def _credential_fingerprint(self):
        """What identifies the credential in use (changes when an administrator replaces it)."""
        try:
            client_id, credential = self._get_app_credentials()
        except UserError:
            return None
        return json.dumps([client_id, credential], sort_keys=True)

    @api.model
    def _credential_expiry(self):
        """(key, kind, expiry date) of the credential in use, None when its expiry is unknown
        (a secret whose date nobody entered) or it cannot be read. `kind`: certificate or secret."""
        try:
            certificate = self._app_certificate()
        except UserError:
            return None
        if certificate:
            return f"certificate:{certificate.sha256_thumbprint}", "certificate", certificate.not_after.date()
        expiry = fields.Date.to_date(self.env["ir.config_parameter"].sudo().get_param(SECRET_EXPIRY_PARAM))
        if not expiry:
            return None
        return f"secret:{expiry}", "secret", expiry

    def _credential_remedy(self, kind):
        """A sentence naming the credential and its expiry, and what to do about it."""
        if kind == "certificate":
            return self.env._(
                "Upload a new certificate to your app registration (Microsoft Entra admin center › "
                "App registrations › your app › Certificates & secrets) and give it with its "
                "private key in Settings › Azure AD Contacts."
            )
        return self.env._(
            "Create a new client secret for your app (Microsoft Entra admin center › App "
            "registrations › your app › Certificates & secrets), enter it and its expiry date in "
            "Settings › Azure AD Contacts."
        )

    @api.model
    def _expired_credential_message(self):
        """The banner of every integration once the app's credential has expired, else False."""
        known = self._credential_expiry()
        if not known or known[2] > fields.Date.context_today(self):
            return False
        _key, kind, expiry = known
        date = format_date(self.env, expiry)
        if kind == "certificate":
            what = self.env._(
                "The certificate of your Azure AD app expired on %(date)s: every sync fails until it "
                "is replaced.",
                date=date,
            )
        else:
            what = self.env._(
                "The client secret of your Azure AD app expired on %(date)s: every sync fails until "
                "it is replaced.",
                date=date,
            )
        return f"{what} {self._credential_remedy(kind)}"

    # ------------------------------------------------------------ the daily warnings

    @api.model
    def _cron_warn_credential_expiry(self, today=None):
        """The daily job: 30 and 7 days before the credential in use expires, each
        administrator gets an activity (once per credential and threshold, however often the
        job runs); warnings about a credential no longer in use are closed."""
        today = today or fields.Date.context_today(self)
        known = self._credential_expiry()
        anchor = self._credential_activity_anchor()
        stale = anchor.activity_search([CREDENTIAL_EXPIRY_ACTIVITY])
        if known:
            stale = stale.filtered(lambda activity: activity.date_deadline != known[2])
        if stale:
            stale.action_feedback(feedback=self.env._("The credential was replaced."))
        if not known:
            return
        key, kind, expiry = known
        days_left = (expiry - today).days
        due = [days for days in WARNING_DAYS if days_left <= days]
        params = self.env["ir.config_parameter"].sudo()
        given = {
            entry for entry in json.loads(params.get_param(WARNINGS_PARAM) or "[]") if entry.startswith(key)
        }
        threshold = min(due) if due else None
        if threshold is None or f"{key}@{threshold}" in given:
            return
        given |= {f"{key}@{days}" for days in due}  # a 7-day warning makes the 30-day one moot
        params.set_param(WARNINGS_PARAM, json.dumps(sorted(given)))
        self._warn_administrators(anchor, kind, expiry, days_left)

    def _warn_administrators(self, anchor, kind, expiry, days_left):
        days = max(days_left, 0)
        if kind == "certificate":
            summary = self.env._("The Azure AD app's certificate expires in %(days)s days", days=days)
        else:
            summary = self.env._("The Azure AD app's client secret expires in %(days)s days", days=days)
        note = Markup("<p>%s</p><p>%s</p>") % (
            self.env._(
                "On %(date)s Microsoft stops accepting it, and every customer's sync fails until it is "
                "replaced.",
                date=format_date(self.env, expiry),
            ),
            self._credential_remedy(kind),
        )
        open_activities = anchor.activity_search([CREDENTIAL_EXPIRY_ACTIVITY])
        for user in self._administrators():
            mine = open_activities.filtered(lambda activity, user=user: activity.user_id == user)
            if mine:
                mine.write({"summary": summary, "note": note})
            else:
                anchor.activity_schedule(
                    CREDENTIAL_EXPIRY_ACTIVITY,
                    date_deadline=expiry,
                    summary=summary,
                    note=note,
                    user_id=user.id,
                )
        _logger.info("Azure AD app credential (%s) expires on %s: administrators warned", kind, expiry)

    @api.model
    def _credential_activity_anchor(self):
        """The record the expiry activities are on: the main company's contact (the app is the
        MSP's own, not one customer's)."""
        return self.env.ref("base.main_company").sudo().partner_id

    def _certificate_input_message(self, error):
        """What is wrong with a certificate (credentials.CertificateInputError), in words."""
        messages = {
            "encrypted_key": self.env._(
                "The private key is encrypted. Give it without a passphrase (e.g. openssl pkey -in "
                "key.pem -out plain.pem) and keep it where only Odoo can read it."
            ),
            "no_key": self.env._(
                "Give the certificate together with its private key, in PEM format: a block "
                "-----BEGIN PRIVATE KEY----- and a block -----BEGIN CERTIFICATE-----."
            ),
            "several_keys": self.env._("Give exactly one private key (the one of the certificate)."),
            "no_certificate": self.env._(
                "The private key has no certificate with it: add the block -----BEGIN CERTIFICATE-----."
            ),
            "unreadable_key": self.env._("The private key cannot be read."),
            "not_rsa": self.env._("Microsoft Entra ID needs an RSA key for app certificates."),
            "weak_key": self.env._(
                "The RSA key is too short: Microsoft Entra ID needs at least %(bits)s bits.",
                bits=credentials.MIN_RSA_BITS,
            ),
            "unreadable_certificate": self.env._("A certificate cannot be read."),
            "no_matching_certificate": self.env._("None of the certificates belongs to the private key."),
        }
        message = messages.get(error.reason, self.env._("The certificate cannot be used."))
        return f"{message} ({error.detail})" if error.detail else message
