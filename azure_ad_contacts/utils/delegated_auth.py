"""Delegated access through the partner tenant (plain Python, no Odoo): Microsoft's "Secure
Application Model". A partner administrator signs in once to the MSP's multi-tenant app (MSAL's
authorization-code flow with PKCE); the refresh token that sign-in leaves in MSAL's cache is then
redeemed against each customer tenant's own authority, where GDAP lets the administrator's
security group read the directory.

A refresh token is bound to the user and the app, not to a tenant; each use returns a new one
(the old one is not revoked) and one unused for 90 days expires, so the cache is kept after
every use. Revoking the user's sessions, disabling it, or a Conditional Access sign-in frequency
ends them all: then only a new sign-in helps.
"""

import warnings

import msal
import requests

from .graph_errors import (
    AuthenticationError,
    MalformedResponseError,
    ServiceUnavailableError,
    token_error,
)

# What the sign-in asks for in the partner tenant: reading its GDAP relationships and customers.
SIGN_IN_PERMISSIONS = ("DelegatedAdminRelationship.Read.All",)
# Entra's answers that only a new interactive sign-in cures (docs: refresh tokens, AADSTS codes):
# expired by inactivity, revoked, sign-in frequency, MFA or Conditional Access, no consent.
SIGN_IN_AGAIN_CODES = frozenset({700082, 70008, 50173, 70043, 50076, 50079, 53003, 50078, 50133,
                                 65001, 50057, 50053, 50055})
NO_ACCESS_CODES = frozenset({50020, 500213})  # the user has no (GDAP) access to that tenant
APP_NOT_AUTHORIZED_CODES = frozenset({90099})  # the app is not authorized in the customer tenant


class SignInRequiredError(AuthenticationError):
    """The partner administrator's sign-in no longer gives tokens (expired, revoked, a
    Conditional Access policy, a withdrawn consent, or no sign-in at all): sign in again."""


class SignInFailedError(AuthenticationError):
    """The sign-in at Microsoft did not complete (declined, or its answer does not fit)."""


class PartnerAccessError(AuthenticationError):
    """The partner has no GDAP access to this customer tenant (AADSTS50020): no active
    relationship gives the administrator's security group a role there."""


class PartnerAppNotAuthorizedError(AuthenticationError):
    """The MSP's app is not authorized in this customer tenant (AADSTS90099): the partner must
    consent to it there (Partner Center) or the customer's administrator must."""


def delegated_token_error(result):
    """A typed error for an Entra error answer to a delegated token request."""
    codes = {code for code in result.get("error_codes") or () if isinstance(code, int)}
    error = token_error(result)
    for found, cls in ((codes & NO_ACCESS_CODES, PartnerAccessError),
                       (codes & APP_NOT_AUTHORIZED_CODES, PartnerAppNotAuthorizedError),
                       (codes & SIGN_IN_AGAIN_CODES, SignInRequiredError)):
        if found:
            return cls(error.detail, status=error.status, code=error.code, request_id=error.request_id)
    if result.get("error") in ("invalid_grant", "interaction_required") and not isinstance(
            error, ServiceUnavailableError):
        return SignInRequiredError(error.detail, status=error.status, code=error.code,
                                   request_id=error.request_id)
    return error


def sign_in_scopes(graph_endpoint):
    return [f"{graph_endpoint.rstrip('/')}/{name}" for name in SIGN_IN_PERMISSIONS]


def customer_scopes(graph_endpoint):
    """Whatever delegated permissions the app holds in the customer tenant (``/.default``): the
    partner's consent there may name fewer than the app registration asks for."""
    return [f"{graph_endpoint.rstrip('/')}/.default"]


def start_sign_in(app, graph_endpoint, redirect_uri, state, login_hint=None):
    """MSAL's authorization-code flow (PKCE and nonce included): the dict to keep until the
    redirect comes back; its ``auth_uri`` is Microsoft's sign-in page."""
    with warnings.catch_warnings():
        # MSAL recommends form_post; the answer comes back as a query on purpose: Odoo's
        # session cookie is SameSite=Lax, which a cross-site POST would not carry.
        warnings.simplefilter("ignore", UserWarning)
        return app.initiate_auth_code_flow(
            sign_in_scopes(graph_endpoint), redirect_uri=redirect_uri, state=state,
            login_hint=login_hint, prompt="select_account", response_mode="query")


def finish_sign_in(app, flow, auth_response):
    """Redeems the code Microsoft sent back; returns the ID token's claims (``tid`` is the
    tenant the administrator belongs to) and ``home_account_id``. The token cache then holds
    the refresh token."""
    if auth_response.get("error"):
        raise SignInFailedError(
            auth_response.get("error_description") or auth_response["error"],
            code=auth_response["error"])
    try:
        result = app.acquire_token_by_auth_code_flow(flow, auth_response)
    except ValueError as exc:  # MSAL: the state does not match the flow, or no code
        raise SignInFailedError(str(exc), code="state_mismatch") from exc
    except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
        raise ServiceUnavailableError(str(exc)) from exc
    except RuntimeError as exc:  # MSAL: the ID token's nonce is not the flow's
        raise SignInFailedError(str(exc), code="nonce_mismatch") from exc
    if not isinstance(result, dict) or "access_token" not in result:
        if isinstance(result, dict) and result.get("error"):
            raise delegated_token_error(result)
        raise MalformedResponseError("The token endpoint answered with neither a token nor an error.")
    claims = result.get("id_token_claims") or {}
    if not claims.get("tid") or not claims.get("oid"):
        raise MalformedResponseError("The sign-in's ID token names no tenant or user.")
    account = next((a for a in app.get_accounts() if a.get("local_account_id") == claims["oid"]), None)
    if account is None:
        raise MalformedResponseError("Microsoft's answer identifies no account (client_info).")
    return {**claims, "home_account_id": account["home_account_id"]}


def acquire_delegated_token(app, scopes, home_account_id, force_refresh=False):
    """An access token for the signed-in partner user from MSAL's cache, refreshing it (with
    the stored refresh token) at the app's authority if needed; typed errors on failure."""
    account = next((a for a in app.get_accounts() if a.get("home_account_id") == home_account_id), None)
    if account is None:
        raise SignInRequiredError("No partner sign-in is stored.", code="no_account")
    try:
        result = app.acquire_token_silent_with_error(scopes, account, force_refresh=force_refresh)
    except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
        raise ServiceUnavailableError(str(exc)) from exc
    except ValueError as exc:  # a token response that is not JSON
        raise MalformedResponseError(str(exc)) from exc
    if result is None:  # nothing usable in the cache: no refresh token
        raise SignInRequiredError("The stored partner sign-in holds no refresh token.", code="no_token")
    if result.get("access_token"):
        return result["access_token"]
    if not result.get("error"):
        raise MalformedResponseError("The token endpoint answered with neither a token nor an error.")
    raise delegated_token_error(result)
