"""The errors of Microsoft's services as the addon tells them apart (plain Python, no Odoo):
one class per remedy, Entra's AADSTS codes mapped to them, and Microsoft's text cleaned
before anyone stores or logs it."""

import json
import re
import time
from email.utils import parsedate_to_datetime

MAX_ERROR_TEXT = 500  # Microsoft's messages are a sentence or two; more is noise or hostile
MAX_ERROR_CODE = 100
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Retry-After values beyond this (seconds) are taken as this: whatever a response says, a
# sync waits or reschedules no further than an hour on its word.
MAX_RETRY_AFTER = 3600.0


def clean_error_text(value, limit=MAX_ERROR_TEXT):
    """Text from Microsoft made safe to store, show and log: one line (no newline or other
    control character to forge log lines with), blanks collapsed, at most `limit` characters."""
    text = " ".join(_CONTROL_CHARS.sub(" ", str(value or "")[: limit * 4]).split())
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def retry_after_seconds(value):
    """Seconds asked by a Retry-After header (ASCII delta-seconds or an HTTP-date), at most
    MAX_RETRY_AFTER; None if unusable."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():  # not "²" or other Unicode digits
        digits = value.lstrip("0") or "0"  # measured as text: int() refuses 5,000 digits
        return MAX_RETRY_AFTER if len(digits) > 9 else min(float(digits), MAX_RETRY_AFTER)
    try:
        seconds = parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError, OverflowError, IndexError):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


class GraphError(Exception):
    """A Microsoft call failed; `detail` is Microsoft's own text (cleaned and capped: it is
    stored and logged), `code` its error code."""

    def __init__(self, detail="", status=None, code=None, request_id=None, retry_after=None):
        detail = clean_error_text(detail)
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = clean_error_text(code, MAX_ERROR_CODE) or None
        self.request_id = request_id
        self.retry_after = retry_after


class AuthenticationError(GraphError):
    """No usable app token for the tenant."""


class ConsentMissingError(AuthenticationError):
    """The app is not (or no longer) consented in the tenant: AADSTS700016 / 65001.
    Remedy: reconnect (a customer administrator consents again)."""


class IdentityNotFoundError(ConsentMissingError):
    """Graph 401/403 Authorization_IdentityNotFound: Graph does not know the app's service
    principal in the tenant, e.g. right after consent, before it has spread."""


class AppDisabledError(ConsentMissingError):
    """AADSTS7000112: the customer disabled the app (its enterprise application) in the
    tenant. Not transient: a customer administrator must enable it again, or reconnect."""


class CloudMismatchError(AuthenticationError):
    """AADSTS500011: the token endpoint does not know the Graph resource asked for, i.e. the
    login and Graph endpoints belong to different clouds (e.g. global and US Government)."""


class TenantMismatchError(AuthenticationError):
    """The token proving a consent belongs to another tenant than the one the consent named."""


class AppCredentialError(AuthenticationError):
    """Microsoft refuses the MSP's app credential (its client secret or certificate): every
    customer fails alike until an administrator gives a working one in the settings."""


class ClientSecretError(AppCredentialError):
    """The MSP's client secret is wrong (AADSTS7000215) or expired (AADSTS7000222)."""

    @property
    def expired(self):
        return self.code == "AADSTS7000222"


class CertificateError(AppCredentialError):
    """Microsoft refuses the client assertion signed with the MSP's certificate: the
    certificate is not registered on the app or has expired there (AADSTS700027), or the
    assertion's times are off (AADSTS700024: the server's clock), its claims wrong
    (AADSTS700021, AADSTS700023) or the token malformed (AADSTS50027)."""


class TenantNotFoundError(AuthenticationError):
    """The tenant does not exist: AADSTS90002 / invalid_tenant."""


class PermissionDeniedError(GraphError):
    """Graph 403 Authorization_RequestDenied: the application permission is missing."""


class ThrottledError(GraphError):
    """Graph keeps answering 429, or asks for a wait beyond the budget (see `retry_after`)."""


class ServiceUnavailableError(GraphError):
    """Microsoft answers 5xx, or cannot be reached, after the allowed retries."""


class MalformedResponseError(GraphError):
    """Microsoft answered something that is not the JSON shape we expect."""


class UntrustedHostError(GraphError):
    """A link points outside the configured Graph endpoint."""


class DeltaExpiredError(GraphError):
    """Graph 410 resyncRequired: a saved deltaLink expired (after seven days) or is unknown to
    the service; the next round must list every user again (no deltaLink)."""


class PagingLimitError(MalformedResponseError):
    """A paged listing went past the page cap or the overall deadline (e.g. a nextLink with
    a new skiptoken each time that never ends)."""


class GroupNotFoundError(GraphError):
    """A group of the integration's group filter does not exist (any more) in the tenant."""


class GroupPermissionError(PermissionDeniedError):
    """The app may not read group members: GroupMember.Read.All is not granted."""


class HiddenMembershipError(GroupPermissionError):
    """The group's membership is hidden: reading its members needs the application
    permission Member.Read.Hidden besides GroupMember.Read.All."""


def graph_error(response):
    """The typed error of a Graph answer that is not a success (a `requests` response)."""
    status = response.status_code
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), str) else None
    inner = error.get("innerError") if isinstance(error.get("innerError"), dict) else {}
    if status == 410 or code in ("resyncRequired", "syncStateNotFound"):
        cls = DeltaExpiredError
    elif status == 429:
        cls = ThrottledError
    elif status >= 500:
        cls = ServiceUnavailableError
    elif code == "Authorization_IdentityNotFound":  # Graph answers it with 401 or 403
        cls = IdentityNotFoundError
    elif status == 401:
        cls = AuthenticationError
    elif status == 403 and code == "Authorization_RequestDenied":
        cls = PermissionDeniedError
    else:
        cls = GraphError
    return cls(
        str(error.get("message") or response.text[:500] or response.reason or status),
        status=status,
        code=code,
        request_id=response.headers.get("request-id") or inner.get("request-id"),
    )


_AADSTS_ERRORS = {
    700016: ConsentMissingError,
    65001: ConsentMissingError,
    7000112: AppDisabledError,
    500011: CloudMismatchError,
    7000215: ClientSecretError,
    7000222: ClientSecretError,
    700027: CertificateError,
    700024: CertificateError,
    700021: CertificateError,
    700023: CertificateError,
    50027: CertificateError,
    90002: TenantNotFoundError,
    90033: ServiceUnavailableError,  # "a transient error has occurred"
}


def token_error(result, status=None):
    """Map an Entra error dict to a typed error, by `error_codes` and `error`, never the text."""
    codes = [c for c in result.get("error_codes") or () if isinstance(c, int)]
    known = [c for c in codes if c in _AADSTS_ERRORS]
    if known:
        cls = _AADSTS_ERRORS[known[0]]
    elif result.get("error") == "invalid_tenant":
        cls = TenantNotFoundError
    elif result.get("error") == "temporarily_unavailable":  # how Entra words a 429 or 503
        cls = ServiceUnavailableError
    else:
        cls = AuthenticationError
    first = (known or codes or [None])[0]
    return cls(
        result.get("error_description") or result.get("error") or "",
        status=status,
        code=f"AADSTS{first}" if first else result.get("error"),
        request_id=result.get("trace_id") or result.get("correlation_id"),
    )


def discovery_error(exc):
    """MSAL re-raises a failed OpenID discovery as a bare ValueError; the body is in its context."""
    original = str(exc.__context__ or "")
    found = re.search(r"HTTP status: (\d+), Error: (.*)", original, re.DOTALL)
    if found:
        try:
            body = json.loads(found[2])
        except ValueError:
            body = None
        if isinstance(body, dict):
            return token_error(body, status=int(found[1]))
        return AuthenticationError(found[2], status=int(found[1]))
    if isinstance(exc.__context__, ValueError):  # the configuration was not JSON
        return MalformedResponseError(original)
    return AuthenticationError(str(exc))
