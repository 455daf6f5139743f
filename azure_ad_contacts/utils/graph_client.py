"""Microsoft Graph and MSAL access: the addon's only network code (plain Python, no Odoo)."""

import random
import re
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

import requests

# The errors and the MSAL side are part of this module's interface: callers name them
# graph_client.ConsentMissingError, graph_client.build_msal_app and so on.
from .graph_errors import (  # noqa: F401
    MAX_ERROR_TEXT,
    MAX_RETRY_AFTER,
    AppDisabledError,
    AuthenticationError,
    ClientSecretError,
    CloudMismatchError,
    ConsentMissingError,
    DeltaExpiredError,
    GraphError,
    GroupNotFoundError,
    GroupPermissionError,
    HiddenMembershipError,
    IdentityNotFoundError,
    MalformedResponseError,
    PagingLimitError,
    PermissionDeniedError,
    ServiceUnavailableError,
    TenantMismatchError,
    TenantNotFoundError,
    ThrottledError,
    UntrustedHostError,
    clean_error_text,
    graph_error,
)
from .graph_errors import retry_after_seconds as _retry_after
from .msal_app import (  # noqa: F401
    MsalSession,
    ThreadLocalHttpCache,
    acquire_app_token,
    app_scope,
    build_msal_app,
    token_claims,
)

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
# A paged listing stops with PagingLimitError past either bound: 2,000 pages are twenty
# times the largest tenant this addon is built for in pages of 999 users, and still four
# times it in the smaller pages of a delta round.
MAX_PAGES = 2000
PAGING_DEADLINE = 3600.0
GRAPH_USER_TYPE = "#microsoft.graph.user"
# Consent spreads through Microsoft's replicas for a while; a proof retries this long.
CONSENT_PROPAGATION_TIMEOUT = 60.0
CONSENT_RETRY_INTERVAL = 5.0
# Entra allows up to 5,000 domains per tenant; a tenant that claims more is not believed.
MAX_VERIFIED_DOMAINS = 5000
# A DNS host name (RFC 1123): letters, digits and inner hyphens per label, at least two labels.
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def domain_name(value):
    """`value` as a lower-case DNS host name, None when it is not one."""
    if not isinstance(value, str) or len(value) > 253:
        return None
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return name


def admin_consent_url(login_endpoint, client_id, scope, redirect_uri, state, tenant="organizations"):
    """Microsoft's admin-consent page for the app: a customer administrator signs in there and
    grants the app's application permissions for their tenant. `tenant` may name the tenant
    (an id or a verified domain) to skip Microsoft's account picker."""
    query = urlencode({"client_id": client_id, "scope": scope, "redirect_uri": redirect_uri, "state": state})
    return f"{login_endpoint.rstrip('/')}/{tenant}/v2.0/adminconsent?{query}"


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


class GraphClient:
    """Reads one tenant's directory through Microsoft Graph."""

    def __init__(self, graph_endpoint, token_provider, session=None, timeout=60,
                 max_attempts=5, backoff_base=5.0, max_wait=60.0, sleep=time.sleep,
                 jitter=random.random, max_pages=MAX_PAGES, paging_deadline=PAGING_DEADLINE,
                 clock=time.monotonic):
        self.graph_endpoint = graph_endpoint.rstrip("/")
        self.token_provider = token_provider
        self.session = session or requests.Session()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.max_wait = max_wait
        self.sleep = sleep
        self.jitter = jitter
        self.max_pages = max_pages
        self.paging_deadline = paging_deadline
        self.clock = clock
        self.request_count = 0
        self._origin = _origin(self.graph_endpoint)
        self._token = None
        self._closed = False
        # Two threads may send requests at once (see beside_first_page): one of them gets the
        # token, and every request is counted.
        self._token_lock = threading.Lock()
        self._count_lock = threading.Lock()

    def close(self):
        """The run is over: a thread still paging (a prefetch) sends nothing more, not even
        for a new token, and its connections are dropped."""
        self._closed = True
        self.session.close()

    def limit_budget(self, max_attempts, max_wait):
        """Asks for a tighter retry budget (attempts per request, seconds of waiting for
        Microsoft), e.g. for an optional read that must not delay the sync; never a looser one."""
        self.max_attempts = min(self.max_attempts, max_attempts)
        self.max_wait = min(self.max_wait, max_wait)
        return self

    def acquire_token(self):
        """Gets the app token now, in the calling thread, within the retries and waiting budget
        of a request (the login service fails as Graph does). Requests sent later from other
        threads then use it: the token provider may keep it only in its owner's thread."""
        self._get(None)

    def iter_user_pages(self, select=USER_SELECT, top=PAGE_SIZE):
        """Yield each page of users (a list of dicts), one page in memory at a time."""
        yield from self._pages(f"{self.graph_endpoint}/v1.0/users?$select={','.join(select)}"
                               f"&$top={top}")

    def get_user(self, object_id, select=USER_SELECT):
        """One user with the selected properties, as the listing gives it (`GET /users/{id}`),
        or None when the tenant has no such user (deleted meanwhile)."""
        try:
            body = self._get(f"{self.graph_endpoint}/v1.0/users/{quote(object_id, safe='')}"
                             f"?$select={','.join(select)}")
        except GraphError as exc:
            if exc.status == 404:
                return None
            raise
        return {name: value for name, value in body.items() if not name.startswith("@odata.")}

    @property
    def token_tenant_id(self):
        """The `tid` claim of the token used for the last request: None before any request,
        or when the token is not a readable JWT (access tokens are opaque to clients)."""
        return token_claims(self._token).get("tid") if self._token else None

    def group_member_ids(self, group_id):
        """Object ids of the users in a group, nested groups included (transitive members)."""
        if not is_object_id(group_id):
            raise GroupNotFoundError(f"{group_id!r} is not a group object id.")
        group_id = str(uuid.UUID(group_id))
        # Without the OData cast to microsoft.graph.user, which Microsoft documents as an
        # advanced query (ConsistencyLevel: eventual and $count=true, served from an
        # eventually consistent index): every member comes with its @odata.type.
        url = (f"{self.graph_endpoint}/v1.0/groups/{group_id}/transitiveMembers"
               f"?$select=id&$top={PAGE_SIZE}")
        try:
            for page in self._pages(url):
                for member in page:
                    if (isinstance(member, dict) and member.get("@odata.type") == GRAPH_USER_TYPE
                            and isinstance(member.get("id"), str)):
                        yield member["id"]
        except PermissionDeniedError as exc:
            raise self._members_denied(group_id, exc) from exc
        except GraphError as exc:
            if exc.status == 404:
                raise GroupNotFoundError(exc.detail, status=404, code=exc.code,
                                         request_id=exc.request_id) from exc
            raise

    def _members_denied(self, group_id, denied):
        """Why a group's members are refused: a group with hidden membership needs
        Member.Read.Hidden (Graph says the same 403 either way), any other GroupMember.Read.All."""
        try:
            group = self._get(f"{self.graph_endpoint}/v1.0/groups/{group_id}?$select=id,visibility")
        except GraphError:
            group = {}  # not even the group is readable: GroupMember.Read.All is missing
        hidden = str(group.get("visibility") or "").lower() == "hiddenmembership"
        cls = HiddenMembershipError if hidden else GroupPermissionError
        return cls(denied.detail, status=denied.status, code=denied.code, request_id=denied.request_id)

    def search_groups(self, text, limit=25):
        """Up to `limit` groups whose display name has a word starting with `text`, as
        `{"id", "displayName"}` dicts (Graph's $search, an advanced query)."""
        text = " ".join(str(text or "").split())
        if not text:
            return []
        # Inside the quoted $search clause Graph takes \" for a quote and \\ for a backslash.
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        clause = f'"displayName:{escaped}"'
        url = (f"{self.graph_endpoint}/v1.0/groups?$search={quote(clause, safe=':')}"
               f"&$select=id,displayName&$top={max(1, min(int(limit), PAGE_SIZE))}")
        body = self._get(url, {"ConsistencyLevel": "eventual"})
        if not isinstance(body.get("value"), list):
            raise MalformedResponseError("The response has no 'value' list.", status=200)
        return [
            {"id": group["id"], "displayName": group.get("displayName")
             if isinstance(group.get("displayName"), str) else ""}
            for group in body["value"]
            if isinstance(group, dict) and is_object_id(group.get("id"))
        ][:limit]

    def user_delta(self, delta_link=None, select=USER_SELECT, changed_properties_only=False,
                   from_now=False):
        """One round of Graph's delta query on users (see UserDeltaRound): every user when
        `delta_link` is None, else the changes since the round that returned it. `from_now`:
        no user, only the link for the changes from now on (Microsoft's "sync from now",
        `$deltatoken=latest`, for users and groups)."""
        return UserDeltaRound(self, delta_link, select, changed_properties_only, from_now)

    def probe(self):
        """Read one user id: proves the token and the permission work."""
        next(self._pages(f"{self.graph_endpoint}/v1.0/users?$top=1&$select=id"))

    def user_count(self):
        """How many users the tenant has, without reading them (`GET /users/$count`). An
        advanced query: served from an eventually consistent index, so the newest changes may
        not be counted yet; an estimate, never a promise."""
        return self._get(f"{self.graph_endpoint}/v1.0/users/$count",
                         {"ConsistencyLevel": "eventual", "Accept": "text/plain"}, parse=_count)

    def verified_domains(self, limit=MAX_VERIFIED_DOMAINS):
        """Names of the tenant's verified domains, lower-case, sorted (needs Domain.Read.All or
        Directory.Read.All). A domain's `id` is its name; anything that is not a host name is
        left out, and a list longer than `limit` is refused."""
        names = set()
        for page in self._pages(f"{self.graph_endpoint}/v1.0/domains"):
            for domain in page:
                if isinstance(domain, dict) and domain.get("isVerified") is True:
                    name = domain_name(domain.get("id"))
                    if name:
                        names.add(name)
            if len(names) > limit:
                raise MalformedResponseError(
                    f"The tenant lists more than {limit} verified domains.", status=200)
        return sorted(names)

    def _pages(self, url, extra_headers=None, on_body=None):
        followed = Counter()  # a nextLink that keeps coming back would page forever
        deadline = self.clock() + self.paging_deadline
        pages = 0
        while url:
            followed[url] += 1
            if followed[url] > MAX_SAME_LINK:
                raise MalformedResponseError(
                    f"Graph keeps sending the same page link (a paging loop): {url[:200]}", status=200)
            # New links each time are not caught above: a cap and a deadline end those too.
            if pages >= self.max_pages:
                raise PagingLimitError(
                    f"Graph sent more than {self.max_pages} pages; stopped (a paging loop?).",
                    status=200)
            if self.clock() > deadline:
                raise PagingLimitError(
                    f"Paging through Graph took more than {self.paging_deadline:.0f} s; stopped.",
                    status=200)
            pages += 1
            body = self._get(url, extra_headers)
            if not isinstance(body.get("value"), list):
                raise MalformedResponseError("The response has no 'value' list.", status=200)
            url = body.get("@odata.nextLink")
            if url is not None and not isinstance(url, str):
                raise MalformedResponseError("'@odata.nextLink' is not a string.", status=200)
            if on_body is not None:
                on_body(body)
            yield body["value"]

    def _get(self, url, extra_headers=None, parse=None):
        """GET a Graph URL: the one place for headers, timeouts, retries and error mapping.
        The app token is acquired (or renewed) within the same retries and waiting budget:
        Microsoft's login service fails as Graph does (5xx, timeouts, AADSTS90033). Returns
        the JSON object Graph answered, or what `parse(response)` makes of it; with no `url`,
        only the token is acquired (see acquire_token)."""
        if url is not None and (self._origin is None or _origin(url) != self._origin):
            raise UntrustedHostError(f"Refusing to call {url[:200]}: not {self.graph_endpoint}")
        request_id = str(uuid.uuid4())  # one id for all retries, so they read as one call in logs
        refreshed = renew = False
        denied = None  # a 403 that a new token may cure
        failures = 0
        waited = 0.0
        while True:
            if self._closed:
                raise ServiceUnavailableError("The sync this request belonged to has ended.")
            try:
                self._acquire_token(renew, denied)
            except ServiceUnavailableError as exc:  # the login service: down, slow or busy
                error, asked = exc, exc.retry_after
            else:
                renew = False
                if url is None:
                    return None
                response, error = self._send(url, request_id, extra_headers)
                asked = None
                if response is not None:
                    if response.status_code == 200:
                        return (parse or self._json)(response)
                    if response.status_code == 401 and not refreshed:
                        refreshed = renew = True
                        continue
                    error = self._error(response)
                    if type(error) is PermissionDeniedError and not refreshed:
                        # A token keeps the permissions it was issued with: one acquired before
                        # a permission was granted lacks it until it expires. Try a new one once.
                        refreshed = renew = True
                        denied = error
                        continue
                    if response.status_code not in RETRYABLE_STATUSES:
                        raise error
                    asked = _retry_after(response.headers.get("Retry-After"))
            failures += 1
            delay = asked if asked is not None else min(
                self.backoff_base * 2 ** (failures - 1) + self.jitter() * self.backoff_base,
                MAX_RETRY_AFTER)
            error.retry_after = delay
            # The caller (an Odoo worker) reschedules instead of sleeping for minutes.
            if failures >= self.max_attempts or waited + delay > self.max_wait:
                raise error
            self.sleep(delay)
            waited += delay

    def _acquire_token(self, renew, denied=None):
        """Keeps the token for the next request, or gets one (a new one when `renew`). A 403
        (`denied`) that a new token cannot cure is raised as itself."""
        with self._token_lock:
            if self._token is not None and not renew:
                return
            try:
                # Meanwhile another thread's request still goes out with the old token.
                self._token = self.token_provider(renew)
            except AuthenticationError as exc:
                self._token = None
                if denied is None:
                    raise
                raise denied from exc  # e.g. consent revoked meanwhile
            except BaseException:
                self._token = None
                raise

    def _send(self, url, request_id, extra_headers):
        """One GET with the current token: (response, None), or (None, the error) when Graph
        could not be reached and a retry may get through."""
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            "client-request-id": request_id,
            **(extra_headers or {}),
        }
        with self._count_lock:
            self.request_count += 1
        try:
            # A redirect could lead off the allow-list, so none is followed.
            return self.session.get(url, headers=headers, timeout=self.timeout,
                                    allow_redirects=False), None
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as exc:
            error = ServiceUnavailableError(str(exc) or type(exc).__name__)
            if _certificate_refused(exc):  # a bad certificate stays bad
                raise error from exc
            # Anything else is the network: e.g. a pooled connection the server closed
            # (ConnectionResetError, or SSLEOFError from the TLS layer).
            return None, error
        except requests.RequestException as exc:
            raise ServiceUnavailableError(str(exc) or type(exc).__name__) from exc

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

    _error = staticmethod(graph_error)


def _certificate_refused(exc):
    """Whether a connection failed because the server's certificate was refused (not worth a
    retry), rather than cut (worth one): the ssl error under requests' and urllib3's wrappers."""
    seen = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        reason = getattr(exc, "reason", None)  # urllib3's MaxRetryError
        nested = exc.args[0] if exc.args else None
        exc = reason if isinstance(reason, BaseException) else nested if isinstance(
            nested, BaseException) else exc.__cause__ or exc.__context__
    return False


def beside_first_page(pages, delta_round):
    """Yields the pages of a listing (`pages`, an iterator of GraphClient pages) while
    `delta_round` (a UserDeltaRound, e.g. "sync from now") is read in a thread of its own,
    its request sent together with the listing's first one, so that neither waits for the
    other's round trip. The second page is asked for only once the round is read (its
    `delta_link` set), and the listing's end is reached only then, too; what reading the
    round raised is raised here. Acquire the token first (GraphClient.acquire_token): both
    requests need it."""
    outcome = {}

    def read():
        try:
            for _page in delta_round:
                pass
        except Exception as error:  # noqa: BLE001 - raised in the listing's thread, below
            outcome["error"] = error

    reader = threading.Thread(target=read, name="azure-ad-delta-link", daemon=True)
    reader.start()
    pages = iter(pages)
    first = next(pages, None)
    if first is not None:
        yield first
    reader.join()
    if "error" in outcome:
        raise outcome["error"]
    yield from pages


def _count(response):
    """A count Graph answered as text/plain (OData services may start it with a byte-order mark)."""
    text = response.content.decode("utf-8-sig", "replace").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 9):
        raise MalformedResponseError(f"Graph answered a count that is not one: {text[:50]!r}",
                                     status=response.status_code)
    return int(text)


def removal_reason(item):
    """For an item of a delta page: "changed" (the user was deleted and can be restored for
    30 days), "deleted" (deleted for good), or None (the user exists)."""
    removed = item.get("@removed") if isinstance(item, dict) else None
    if removed is None:
        return None
    reason = removed.get("reason") if isinstance(removed, dict) else None
    return reason if reason in ("changed", "deleted") else "deleted"


class UserDeltaRound:
    """One round of `GET /v1.0/users/delta`. Iterating yields its pages (lists of user dicts);
    once the last page is read, `delta_link` holds the link that starts the next round.

    A full round (no `delta_link` given) lists every user with the selected properties. A
    later round lists only the users that changed: those that still exist with their
    selected properties that were ever set (only the changed ones and `id` when
    `changed_properties_only`, Microsoft's `Prefer: return=minimal`), removed ones as
    `{"id", "@removed": {"reason"}}` (see removal_reason). The same user may come more than
    once. An expired or unknown `delta_link` raises DeltaExpiredError: start a full round."""

    def __init__(self, client, delta_link=None, select=USER_SELECT, changed_properties_only=False,
                 from_now=False):
        self.client = client
        self.full = delta_link is None and not from_now
        self.url = delta_link or (
            f"{client.graph_endpoint}/v1.0/users/delta?$select={','.join(select)}"
            + ("&$deltatoken=latest" if from_now else ""))
        self.headers = {"Prefer": "return=minimal"} if changed_properties_only else None
        self.delta_link = None

    def __iter__(self):
        self.delta_link = None
        last = {}

        def remember(body):  # only the last page's link counts
            last["link"] = body.get("@odata.deltaLink")

        yield from self.client._pages(self.url, self.headers, on_body=remember)
        link = last.get("link")
        if not isinstance(link, str) or not link:
            raise MalformedResponseError(
                "The delta round ended without an '@odata.deltaLink'.", status=200)
        if _origin(link) != self.client._origin:  # it will be called next time
            raise UntrustedHostError(f"Refusing the deltaLink {link[:200]}: not "
                                     f"{self.client.graph_endpoint}")
        self.delta_link = link


@dataclass
class ConsentProof:
    """What a successful consent proof leaves: the tenant whose own authority issued the token,
    the MSAL app whose token cache holds that token, and the client that read Graph."""

    tenant_id: str
    app: object
    client: GraphClient
    attempts: int


def consent_not_spread(error):
    """Whether `error` is what Microsoft answers while a fresh consent spreads: the token
    endpoint does not know the app yet (AADSTS700016), Graph does not know its service
    principal (Authorization_IdentityNotFound), or the token lacks the new permission."""
    if isinstance(error, AppDisabledError):
        return False
    return isinstance(error, ConsentMissingError | PermissionDeniedError)


def prove_consent(app_factory, graph_endpoint, expected_tenant=None, *,
                  timeout=CONSENT_PROPAGATION_TIMEOUT, interval=CONSENT_RETRY_INTERVAL,
                  on_wait=None, sleep=time.sleep, clock=time.monotonic, client_options=None):
    """Prove an admin consent: an app token from the tenant's own authority and one Graph read
    with it, retried for up to `timeout` seconds while Microsoft spreads the consent.

    `app_factory(http_cache)` must build a new MSAL app over an empty token cache and the
    given (new, empty) MSAL HTTP cache: MSAL replays a failed token answer from its HTTP cache
    for 60 s, and a token from a failed try must never be kept. Only the returned
    ConsentProof's `app` holds a token. `on_wait(error, attempt, remaining_seconds)` is called
    before each wait (e.g. to tell the administrator that Microsoft is still busy).
    `expected_tenant`: the tenant the consent named. Access tokens are opaque to clients, so
    the proof rests on who issued the token: an app whose authority (the token endpoint its
    OpenID configuration names) is another tenant raises TenantMismatchError, and so does a
    token that happens to be a readable JWT naming another tenant (`tid`). Other errors, and
    the last one when time is up, are raised."""
    started = clock()
    attempt = 0
    while True:
        attempt += 1
        app = app_factory({})
        issuer = _authority_tenant(app)
        if expected_tenant is not None and issuer != expected_tenant.lower():
            raise TenantMismatchError(
                f"The login service of tenant {expected_tenant!r} names the tenant {issuer!r} "
                "for its tokens.", code="tenant_mismatch")
        client = GraphClient(
            graph_endpoint,
            lambda force_refresh, app=app: acquire_app_token(app, graph_endpoint, force_refresh),
            **(client_options or {}),
        )
        try:
            client.probe()
        except GraphError as error:
            app.remove_tokens_for_client()  # e.g. a token without the new permission
            remaining = timeout - (clock() - started)
            if not consent_not_spread(error) or remaining < interval:
                raise
            if on_wait is not None:
                on_wait(error, attempt, remaining)
            sleep(interval)
            continue
        claimed = client.token_tenant_id  # None for an opaque token: nothing to compare
        if claimed is not None and str(claimed).lower() != issuer:
            app.remove_tokens_for_client()
            raise TenantMismatchError(
                f"The token proving the consent is for tenant {claimed!r}, not {issuer!r}.",
                code="tenant_mismatch")
        return ConsentProof(tenant_id=issuer, app=app, client=client, attempts=attempt)


def _authority_tenant(app):
    """The tenant whose token endpoint issues `app`'s tokens (from its OpenID configuration)."""
    return str(getattr(getattr(app, "authority", None), "tenant", "") or "").lower()
