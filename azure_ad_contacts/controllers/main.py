"""The consent routes: send the administrator to Microsoft's admin consent, check its answer."""

import logging

from werkzeug.exceptions import Forbidden, NotFound, abort

from odoo import fields, http
from odoo.exceptions import UserError
from odoo.http import request
from odoo.tools.misc import hash_sign, verify_hash_signed

from ..models.azure_ad_consent_mixin import CONSENT_STATE_SCOPE, CONSENT_WAIT, ConsentSpreading
from ..series import JSON_ROUTE
from ..utils.graph_client import clean_error_text

_logger = logging.getLogger(__name__)

STATE_SCOPE = CONSENT_STATE_SCOPE  # the name tests and older code import
# A consent the callback checked but Microsoft did not confirm yet: the waiting page asks again
# with this signed token, bound to the integration, tenant, user, database and the consent
# under way (its nonce: each check uses it up and hands out the next one).
PENDING_SCOPE = "azure_ad_contacts.consent_pending"
PENDING_VALIDITY_HOURS = 1


def next_check_in(waited):
    """Seconds until the waiting page checks again by itself: often at first, when a consent
    usually arrives, then less often."""
    return 5 if waited < 60 else 15 if waited < 180 else 30


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
        attempt = {"tenant": tenant.strip().lower(), "hint": hint, "since": fields.Datetime.now()}
        try:
            self._connect(integration, attempt)
        except ConsentSpreading:
            # Right after consent Microsoft may not confirm it yet: a page that says so and
            # checks again, for minutes, instead of failing.
            return request.render(
                "azure_ad_contacts.consent_waiting",
                {
                    "integration": integration,
                    "pending": self._pending_token(integration, attempt),
                    "next_check": next_check_in(0),
                    "wait_minutes": int(CONSENT_WAIT.total_seconds() // 60),
                },
            )
        except UserError as failure:
            # Not re-raised: the error state and message are committed with this response.
            return self._error_page(integration, str(failure))
        return request.redirect(self._customer_url(integration))

    @http.route("/azure_ad_contacts/consent/prove", type=JSON_ROUTE, auth="user")
    def prove(self, pending=None):
        """The waiting page's check: proves the pending consent once. Answers where to go
        next, that Microsoft still spreads the consent (with the token for the next check), or
        the error to show; a token that is not (or no longer) valid is refused."""
        if not isinstance(pending, str):
            self._refuse(400, request.env._("Invalid request: the consent to check is missing."))
        try:
            values = verify_hash_signed(request.env(su=True), PENDING_SCOPE, pending)
        except (ValueError, UnicodeDecodeError):
            values = None
        bound_to = (request.db, request.env.uid)
        if not isinstance(values, dict) or (values.get("db"), values.get("user")) != bound_to:
            self._refuse(403, request.env._("Invalid or expired request: start the connection again."))
        integration = self._integration(values.get("integration"))
        if not integration._take_consent_nonce(values.get("nonce")):
            self._refuse(
                403,
                request.env._(
                    "This consent was completed already, or a newer connection or a disconnect "
                    "replaced it: start the connection again if needed."
                ),
            )
        attempt = {
            "tenant": values.get("tenant"),
            "hint": values.get("hint"),
            "since": fields.Datetime.to_datetime(values.get("since")) or fields.Datetime.now(),
        }
        try:
            self._connect(integration, attempt)
        except ConsentSpreading:
            waited = int((fields.Datetime.now() - attempt["since"]).total_seconds())
            return {
                "waiting": True,
                "pending": self._pending_token(integration, attempt),
                "waited": waited,
                "next_check": next_check_in(waited),
            }
        except UserError as failure:
            return {"error": str(failure), "back": f"/odoo/res.partner/{integration.partner_id.id}"}
        return {"redirect": self._customer_url(integration)}

    @staticmethod
    def _connect(integration, attempt):
        """Connects the consented tenant and commits that before the first sync starts: a first
        sync that fails, or dies with its worker, never takes the connection with it."""
        integration._connect_tenant(
            attempt["tenant"], tenant_hint=attempt["hint"], wait=0, waiting_since=attempt["since"]
        )
        request.env.cr.commit()
        try:
            integration._start_first_sync()
        except UserError as busy:  # e.g. a sync of this customer runs already
            # The first sync stays due: the scheduled job runs it.
            _logger.info("Azure AD first sync of %s not started now: %s", integration.name, busy)

    @staticmethod
    def _pending_token(integration, attempt):
        """The signed token with which the waiting page checks the consent `attempt` again."""
        return hash_sign(
            request.env(su=True),
            PENDING_SCOPE,
            {
                "integration": integration.id,
                "user": request.env.uid,
                "db": request.db,
                "nonce": integration._new_consent_nonce(),
                "tenant": attempt["tenant"],
                "hint": attempt["hint"],
                "since": fields.Datetime.to_string(attempt["since"]),
            },
            expiration_hours=PENDING_VALIDITY_HOURS,
        )

    @staticmethod
    def _refuse(status, message):
        """Ends a JSON request with `status` and the message the waiting page shows."""
        abort(request.make_json_response({"error": message}, status=status))

    @staticmethod
    def _customer_url(integration):
        # Back to the customer in the Contacts app, which shows the confirmation with the counts
        # (the azure_ad_sync_contacts widget), or that the first sync runs in the background.
        return f"/odoo/contacts/{integration.partner_id.id}?azure_ad_connected=1"

    def _integration(self, integration_id):
        # Settings rights, as for every other action on integrations (not only Access Rights).
        if not request.env.is_system():
            raise Forbidden()
        if not isinstance(integration_id, int):
            raise NotFound()
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
        if not integration._take_consent_nonce(values.get("nonce")):
            _logger.warning("Azure AD consent callback refused: state already used")
            raise Forbidden(request.env._("This consent link was already used: start the connection again."))
        return integration, values.get("hint")

    def _error_page(self, integration, message, detail=None):
        return request.render(
            "azure_ad_contacts.consent_error",
            {"integration": integration, "message": message, "detail": detail},
            status=400,
        )
