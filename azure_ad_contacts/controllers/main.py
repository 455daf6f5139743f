"""The consent routes: send the administrator to Microsoft's admin consent, check its answer."""

import logging

from werkzeug.exceptions import Forbidden, NotFound

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.tools import consteq
from odoo.tools.misc import hash_sign, verify_hash_signed

from ..models.azure_ad_consent_mixin import CONSENT_STATE_SCOPE, ConsentSpreading
from ..utils.graph_client import clean_error_text

_logger = logging.getLogger(__name__)

STATE_SCOPE = CONSENT_STATE_SCOPE  # the name tests and older code import
# A consent the callback checked but Microsoft did not confirm yet: the waiting page asks again
# with this signed token (bound to the integration, tenant, user and database).
PENDING_SCOPE = "azure_ad_contacts.consent_pending"
PENDING_VALIDITY_HOURS = 1


class AzureAdContactsController(http.Controller):
    """Admin consent at Microsoft. The controller only checks; the model does the work."""

    @http.route("/azure_ad_contacts/connect/<int:integration_id>", type="http", auth="user")
    def connect(self, integration_id):
        """Former start of the consent, kept so that old links land somewhere: it only shows
        the integration. A GET can be triggered from any site, so it must start nothing; the
        consent starts from the Connect button (action_connect), which hands out Microsoft's
        URL with a fresh signed state."""
        integration = self._integration(integration_id)
        return request.redirect(f"/odoo/azure.ad.integration/{integration.id}")

    @http.route("/azure_ad_contacts/oauth/callback", type="http", auth="user")
    def callback(self, state=None, admin_consent=None, tenant=None, error=None, **kwargs):
        integration, hint = self._verify_state(state)
        if error:
            return self._error_page(
                integration,
                request.env._(
                    "Microsoft did not grant the consent: %(error)s", error=clean_error_text(error, 100)
                ),
                clean_error_text(kwargs.get("error_description")),
            )
        if admin_consent != "True" or not tenant:
            return self._error_page(
                integration, request.env._("Microsoft's answer holds no consented tenant.")
            )
        try:
            integration._complete_consent(tenant, tenant_hint=hint, wait=0)
        except ConsentSpreading:
            # Right after consent Microsoft may not confirm it yet: a page that says so and
            # asks again (the proof retries for up to a minute) instead of failing.
            pending = hash_sign(
                request.env(su=True),
                PENDING_SCOPE,
                {"integration": integration.id, "user": request.env.uid, "db": request.db,
                 "tenant": tenant.strip().lower(), "hint": hint},
                expiration_hours=PENDING_VALIDITY_HOURS,
            )
            return request.render(
                "azure_ad_contacts.consent_waiting", {"integration": integration, "pending": pending}
            )
        except UserError as failure:
            # Not re-raised: the error state and message are committed with this response.
            return self._error_page(integration, str(failure))
        return request.redirect(self._customer_url(integration))

    @http.route("/azure_ad_contacts/consent/prove", type="json", auth="user")
    def prove(self, pending=None):
        """The waiting page's request: proves the pending consent, retrying while Microsoft
        spreads it. Answers where to go next, or the error to show."""
        try:
            values = verify_hash_signed(request.env(su=True), PENDING_SCOPE, pending or "")
        except (ValueError, UnicodeDecodeError):
            values = None
        bound_to = (request.db, request.env.uid)
        if not isinstance(values, dict) or (values.get("db"), values.get("user")) != bound_to:
            raise Forbidden(request.env._("Invalid or expired request: start the connection again."))
        integration = self._integration(values.get("integration"))
        try:
            integration._complete_consent(values["tenant"], tenant_hint=values.get("hint"))
        except UserError as failure:
            return {"error": str(failure), "back": f"/odoo/res.partner/{integration.partner_id.id}"}
        return {"redirect": self._customer_url(integration)}

    @staticmethod
    def _customer_url(integration):
        # Back to the customer in the Contacts app, which shows the confirmation with the counts
        # (the azure_ad_sync_contacts widget).
        return f"/odoo/contacts/{integration.partner_id.id}?azure_ad_connected=1"

    def _integration(self, integration_id):
        # Settings rights, as for every other action on integrations (not only Access Rights).
        if not request.env.is_system():
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
        return integration, values.get("hint")

    def _error_page(self, integration, message, detail=None):
        return request.render(
            "azure_ad_contacts.consent_error",
            {"integration": integration, "message": message, "detail": detail},
            status=400,
        )
