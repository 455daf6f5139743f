"""The consent routes: send the administrator to Microsoft's admin consent, check its answer."""

import logging
from urllib.parse import urlencode

from werkzeug.exceptions import Forbidden, NotFound

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.tools import consteq
from odoo.tools.misc import hash_sign, verify_hash_signed

_logger = logging.getLogger(__name__)

STATE_SCOPE = "azure_ad_contacts.consent"
STATE_VALIDITY_HOURS = 1


class AzureAdContactsController(http.Controller):
    """Admin consent at Microsoft. The controller only checks; the model does the work."""

    @http.route("/azure_ad_contacts/connect/<int:integration_id>", type="http", auth="user")
    def connect(self, integration_id):
        integration = self._integration(integration_id)
        integration.action_connect()  # access, exclusion and configuration checks
        client_id, _secret = integration._get_app_credentials()
        login, graph = integration._get_endpoints()
        state = hash_sign(
            request.env(su=True),
            STATE_SCOPE,
            {
                "integration": integration.id,
                "user": request.env.uid,
                "db": request.db,
                "nonce": integration._new_consent_nonce(),
            },
            expiration_hours=STATE_VALIDITY_HOURS,
        )
        query = urlencode(
            {
                "client_id": client_id,
                "scope": f"{graph}/.default",
                "redirect_uri": integration._consent_redirect_uri(),
                "state": state,
            }
        )
        return request.redirect(f"{login}/organizations/v2.0/adminconsent?{query}", code=302, local=False)

    @http.route("/azure_ad_contacts/oauth/callback", type="http", auth="user")
    def callback(self, state=None, admin_consent=None, tenant=None, error=None, **kwargs):
        integration = self._verify_state(state)
        if error:
            return self._error_page(
                integration,
                request.env._("Microsoft did not grant the consent: %(error)s", error=error),
                kwargs.get("error_description"),
            )
        if admin_consent != "True" or not tenant:
            return self._error_page(
                integration, request.env._("Microsoft's answer holds no consented tenant.")
            )
        try:
            integration._complete_consent(tenant.strip())
        except UserError as failure:
            # Not re-raised: the error state and message are committed with this response.
            return self._error_page(integration, str(failure))
        # Back to the customer in the Contacts app, which shows the confirmation with the counts
        # (the azure_ad_sync_contacts widget).
        return request.redirect(f"/odoo/contacts/{integration.partner_id.id}?azure_ad_connected=1")

    def _integration(self, integration_id):
        if not request.env.is_admin():
            raise Forbidden()
        integration = request.env["azure.ad.integration"].browse(integration_id).exists()
        if not integration:
            raise NotFound()
        return integration

    def _verify_state(self, state):
        """The signed state binds the callback to one integration, user, database and
        connect click; anything else (forged, expired, replayed) is refused."""
        try:
            values = verify_hash_signed(request.env(su=True), STATE_SCOPE, state or "")
        except (ValueError, UnicodeDecodeError):
            values = None
        if not isinstance(values, dict) or values.get("db") != request.db:
            _logger.warning("Azure AD consent callback refused: invalid or expired state")
            raise Forbidden(request.env._("Invalid or expired request: start the connection again."))
        if values.get("user") != request.env.uid:
            raise Forbidden(request.env._("This consent was started by another user."))
        integration = self._integration(values.get("integration"))
        stored = integration.sudo().consent_nonce
        if not stored or not consteq(stored, str(values.get("nonce"))):
            _logger.warning("Azure AD consent callback refused: state already used")
            raise Forbidden(request.env._("This consent link was already used: start the connection again."))
        integration.sudo().consent_nonce = False
        return integration

    def _error_page(self, integration, message, detail=None):
        return request.render(
            "azure_ad_contacts.consent_error",
            {"integration": integration, "message": message, "detail": detail},
            status=400,
        )
