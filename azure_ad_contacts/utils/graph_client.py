"""Microsoft Graph and MSAL access: the addon's only network code (plain Python, no Odoo)."""

import json
import random
import re
import time
import uuid
from collections import Counter
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import msal
import requests

# Microsoft's public cloud; the settings may point elsewhere (national clouds, the fake).
DEFAULT_LOGIN_ENDPOINT = "https://login.microsoftonline.com"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"
USER_SELECT = (
    "id", "givenName", "surname", "displayName", "jobTitle", "mobilePhone", "businessPhones",
    "mail", "userPrincipalName", "proxyAddresses", "otherMails", "accountEnabled", "userType",
)
PAGE_SIZE = 999  # Graph's maximum for /users
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_SAME_LINK = 2  # a page served twice is tolerated (its users are counted once), not more


class GraphError(Exception):
    """A Microsoft call failed; `detail` is Microsoft's own text, `code` its error code."""

    def __init__(self, detail="", status=None, code=None, request_id=None, retry_after=None):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retry_after = retry_after


class AuthenticationError(GraphError):
    """No usable app token for the tenant."""


class ConsentMissingError(AuthenticationError):
    """The app is not (or no longer) consented in the tenant: AADSTS700016 / 65001."""


class ClientSecretError(AuthenticationError):
    """The MSP's client secret is wrong (AADSTS7000215) or expired (AADSTS7000222)."""

    @property
    def expired(self):
        return self.code == "AADSTS7000222"


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


class GroupNotFoundError(GraphError):
    """A group of the integration's group filter does not exist (any more) in the tenant."""


class GroupPermissionError(PermissionDeniedError):
    """The app may not read group members: GroupMember.Read.All is not granted."""


_AADSTS_ERRORS = {
    700016: ConsentMissingError,
    65001: ConsentMissingError,
    7000215: ClientSecretError,
    7000222: ClientSecretError,
    90002: TenantNotFoundError,
    90033: ServiceUnavailableError,  # "a transient error has occurred"
}


def _token_error(result, status=None):
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


def _discovery_error(exc):
    """MSAL re-raises a failed OpenID discovery as a bare ValueError; the body is in its context."""
    original = str(exc.__context__ or "")
    found = re.search(r"HTTP status: (\d+), Error: (.*)", original, re.DOTALL)
    if found:
        try:
            body = json.loads(found[2])
        except ValueError:
            body = None
        if isinstance(body, dict):
            return _token_error(body, status=int(found[1]))
        return AuthenticationError(found[2], status=int(found[1]))
    if isinstance(exc.__context__, ValueError):  # the configuration was not JSON
        return MalformedResponseError(original)
    return AuthenticationError(str(exc))


class MsalSession(requests.Session):
    """MSAL's transport. MSAL's default session has no timeout, and its urllib3 retry sleeps
    for whatever Retry-After a 429/503 asks, however long; this one does neither."""

    def __init__(self, timeout=30):
        super().__init__()
        self.timeout = timeout

    def request(self, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def build_msal_app(client_id, client_secret, login_endpoint, tenant_id, token_cache=None,
                   http_cache=None, http_client=None):
    """A ConfidentialClientApplication for one tenant; MSAL fetches its OpenID config here."""
    try:
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=f"{login_endpoint.rstrip('/')}/{tenant_id}",
            token_cache=token_cache,
            http_cache=http_cache,
            http_client=http_client or MsalSession(),
            # Discovery would ask login.microsoftonline.com about any other host (emulators,
            # national clouds). On the public cloud it adds nothing for client credentials,
            # yet after a token error MSAL looks up host aliases there, and a failed lookup
            # replaces the real error (e.g. AADSTS700016) with "HTTP Error".
            instance_discovery=False,
        )
    except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
        raise ServiceUnavailableError(str(exc)) from exc
    except ValueError as exc:
        raise _discovery_error(exc) from exc
    except KeyError as exc:  # an OpenID configuration without its endpoints
        raise MalformedResponseError(f"OpenID configuration lacks {exc}") from exc


def app_scope(graph_endpoint):
    """The scope of an app-only Graph token: every application permission the tenant consented."""
    return f"{graph_endpoint.rstrip('/')}/.default"


def acquire_app_token(app, graph_endpoint, force_refresh=False):
    """An app-only Graph token from MSAL (its cache first); typed errors on failure."""
    if force_refresh:  # acquire_token_for_client() refuses force_refresh=True
        app.remove_tokens_for_client()
    try:
        result = app.acquire_token_for_client([app_scope(graph_endpoint)])
    except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
        raise ServiceUnavailableError(str(exc)) from exc
    except ValueError as exc:  # a token response that is not JSON
        raise MalformedResponseError(str(exc)) from exc
    if isinstance(result, dict) and result.get("access_token"):
        return result["access_token"]
    if not isinstance(result, dict) or not result.get("error"):
        # Not a refusal (that would carry an error code): a garbled answer, worth a retry.
        raise MalformedResponseError("The token endpoint answered with neither a token nor an error.")
    raise _token_error(result)


def is_object_id(value):
    """Whether `value` is an Entra object id (a GUID)."""
    try:
        uuid.UUID(value)
    except (TypeError, ValueError, AttributeError):
        return False
    return len(value.strip("{}")) == 36


def _origin(url):
    """(scheme, host, port) of a URL, None when it carries anything that could mislead a parser."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except ValueError:
        return None
    if parts.username is not None or "\\" in parts.netloc or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port


def _retry_after(value):
    """Seconds asked by a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    value = (value or "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


class GraphClient:
    """Reads one tenant's directory through Microsoft Graph."""

    def __init__(self, graph_endpoint, token_provider, session=None, timeout=60,
                 max_attempts=5, backoff_base=5.0, max_wait=60.0, sleep=time.sleep,
                 jitter=random.random):
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self.token_provider = token_provider
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self.sleep = sleep
        self.jitter = jitter
        self.request_count = 0
        self._origin = _origin(self.graph_endpoint)
        self._token = None

    def limit_budget(self, max_attempts, max_wait):
        """Asks for a tighter retry budget (attempts per request, seconds of waiting for
        Microsoft), e.g. for an optional read that must not delay the sync; never a looser one."""
        self.max_attempts = min(self.max_attempts, max_attempts)
        self.max_wait = min(self.max_wait, max_wait)
        return self

    def iter_user_pages(self, select=USER_SELECT, top=PAGE_SIZE):
        """Yield each page of users (a list of dicts), one page in memory at a time."""
        yield from self._pages(f"{self.graph_endpoint}/v1.0/users?$select={','.join(select)}"
                               f"&$top={top}")

    def group_member_ids(self, group_id):
        """Object ids of the users in a group, nested groups included (transitive members)."""
        if not is_object_id(group_id):
            raise GroupNotFoundError(f"{group_id!r} is not a group object id.")
        group_id = str(uuid.UUID(group_id))
        url = (f"{self.graph_endpoint}/v1.0/groups/{group_id}/transitiveMembers/"
               f"microsoft.graph.user?$select=id&$top={PAGE_SIZE}")
        try:
            for page in self._pages(url):
                for member in page:
                    if isinstance(member, dict) and isinstance(member.get("id"), str):
                        yield member["id"]
        except PermissionDeniedError as exc:
            raise GroupPermissionError(exc.detail, status=exc.status, code=exc.code,
                                       request_id=exc.request_id) from exc
        except GraphError as exc:
            if exc.status == 404:
                raise GroupNotFoundError(exc.detail, status=404, code=exc.code,
                                         request_id=exc.request_id) from exc
            raise

    def probe(self):
        """Read one user id: proves the token and the permission work."""
        next(self._pages(f"{self.graph_endpoint}/v1.0/users?$top=1&$select=id"))

    def verified_domains(self):
        """Names of the tenant's verified domains (needs Domain.Read.All or Directory.Read.All)."""
        return [
            domain["id"]
            for page in self._pages(f"{self.graph_endpoint}/v1.0/domains")
            for domain in page
            if isinstance(domain, dict) and domain.get("isVerified") is True
            and isinstance(domain.get("id"), str)
        ]

    def _pages(self, url):
        followed = Counter()  # a nextLink that keeps coming back would page forever
        while url:
            followed[url] += 1
            if followed[url] > MAX_SAME_LINK:
                raise MalformedResponseError(
                    f"Graph keeps sending the same page link (a paging loop): {url[:200]}", status=200)
            body = self._get(url)
            if not isinstance(body.get("value"), list):
                raise MalformedResponseError("The response has no 'value' list.", status=200)
            url = body.get("@odata.nextLink")
            if url is not None and not isinstance(url, str):
                raise MalformedResponseError("'@odata.nextLink' is not a string.", status=200)
            yield body["value"]

    def _get(self, url):
        """GET a Graph URL: the one place for headers, timeouts, retries and error mapping."""
        if self._origin is None or _origin(url) != self._origin:
            raise UntrustedHostError(f"Refusing to call {url[:200]}: not {self.graph_endpoint}")
        request_id = str(uuid.uuid4())  # one id for all retries, so they read as one call in logs
        refreshed = failures = 0
        waited = 0.0
        while True:
            if self._token is None:
                self._token = self.token_provider(False)
            headers = {
                "Authorization": f"Bearer {self._token}",
                "Accept": "application/json",
                "client-request-id": request_id,
            }
            self.request_count += 1
            try:
                # A redirect could lead off the allow-list, so none is followed.
                response = self.session.get(url, headers=headers, timeout=self.timeout,
                                            allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as exc:
                error, asked = ServiceUnavailableError(str(exc) or type(exc).__name__), None
                if isinstance(exc, requests.exceptions.SSLError):  # a bad certificate stays bad
                    raise error from exc
            except requests.RequestException as exc:
                raise ServiceUnavailableError(str(exc) or type(exc).__name__) from exc
            else:
                if response.status_code == 200:
                    return self._json(response)
                if response.status_code == 401 and not refreshed:
                    refreshed, self._token = True, self.token_provider(True)
                    continue
                error = self._error(response)
                if response.status_code not in RETRYABLE_STATUSES:
                    raise error
                asked = _retry_after(response.headers.get("Retry-After"))
            failures += 1
            delay = asked if asked is not None else (
                self.backoff_base * 2 ** (failures - 1) + self.jitter() * self.backoff_base)
            error.retry_after = delay
            # The caller (an Odoo worker) reschedules instead of sleeping for minutes.
            if failures >= self.max_attempts or waited + delay > self.max_wait:
                raise error
            self.sleep(delay)
            waited += delay

    @staticmethod
    def _json(response):
        try:
            body = response.json()
        except ValueError as exc:
            raise MalformedResponseError(
                f"Graph answered non-JSON: {response.text[:200]!r}", status=response.status_code,
                request_id=response.headers.get("request-id")) from exc
        if not isinstance(body, dict):
            raise MalformedResponseError("Graph answered JSON that is not an object.", status=200)
        return body

    @staticmethod
    def _error(response):
        status = response.status_code
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        error = error if isinstance(error, dict) else {}
        code = error.get("code") if isinstance(error.get("code"), str) else None
        inner = error.get("innerError") if isinstance(error.get("innerError"), dict) else {}
        if status == 429:
            cls = ThrottledError
        elif status >= 500:
            cls = ServiceUnavailableError
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
