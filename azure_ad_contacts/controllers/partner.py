"""The partner administrator's sign-in: Microsoft sends the browser back here with a code."""

import logging

from werkzeug.exceptions import Forbidden, NotFound

from odoo import http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.tools import consteq
from odoo.tools.misc import verify_hash_signed

from ..models.azure_ad_partner_tenant import SIGN_IN_STATE_SCOPE
from ..utils.graph_client import clean_error_text

_logger = logging.getLogger(__name__)


class AzureAdPartnerController(http.Controller):
    """Checks Microsoft's answer; the partner tenant model does the work."""

    @http.route("/azure_ad_contacts/partner/callback", type="http", auth="user")
    def partner_callback(self, state=None, code=None, error=None, error_description=None, **kwargs):
        partner = self._verify_state(state)
        answer = {
            "state": state,
            "code": code,
            "error": error,
            "error_description": error_description,
            **{key: value for key, value in kwargs.items() if key in ("session_state", "client_info")},
        }
        try:
            partner._complete_sign_in({key: value for key, value in answer.items() if value is not None})
        except UserError as failure:
            # Not re-raised: what was kept (the sign-in, an error on the partner) is committed.
            return request.render(
                "azure_ad_contacts.partner_sign_in_error",
                {"message": str(failure), "detail": clean_error_text(error_description) if error else None},
                status=400,
            )
        return request.redirect(f"/odoo/azure.ad.partner.tenant/{partner.id}")

    def _verify_state(self, state):
        """The signed state binds the answer to one partner tenant, user, database and click of
        "Sign in"; anything else (forged, expired, replayed) is refused."""
        try:
            values = verify_hash_signed(request.env(su=True), SIGN_IN_STATE_SCOPE, state or "")
        except (ValueError, UnicodeDecodeError):
            values = None
        if not isinstance(values, dict) or values.get("db") != request.db:
            _logger.warning("Azure AD partner sign-in refused: invalid or expired state")
            raise Forbidden(request.env._("Invalid or expired request: sign in again."))
        if values.get("user") != request.env.uid or not request.env.is_system():
            raise Forbidden(request.env._("This sign-in was started by another user."))
        partner = request.env["azure.ad.partner.tenant"].browse(values.get("partner")).exists()
        if not partner:
            raise NotFound()
        stored = partner.sudo().sign_in_nonce
        if not stored or not consteq(stored, str(values.get("nonce"))):
            _logger.warning("Azure AD partner sign-in refused: state already used")
            raise Forbidden(request.env._("This sign-in link was already used: sign in again."))
        return partner
