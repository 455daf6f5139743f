"""MSAL for app-only tokens (plain Python, no Odoo): its HTTP transport (timeouts, no
redirects), its HTTP cache per thread, one confidential client per tenant, the token source a
Graph client retries, and typed errors."""

import base64
import binascii
import json
import threading
import weakref
from collections.abc import MutableMapping
from urllib.parse import urlsplit

import msal
import requests

from .graph_errors import (
    MalformedResponseError,
    ServiceUnavailableError,
    UntrustedHostError,
    discovery_error,
    retry_after_seconds,
    token_error,
)

LOGIN_TIMEOUT = 30  # seconds per request to the login service


class MsalSession(requests.Session):
    """MSAL's transport. MSAL's default session has no timeout, and its urllib3 retry sleeps
    for whatever Retry-After a 429/503 asks, however long; this one does neither. Nor does it
    follow redirects: a 307 from a token endpoint would re-send the client secret elsewhere.
    `retry_after` keeps what the last answer asked (MSAL's errors do not say it)."""

    def __init__(self, timeout=None):
        super().__init__()
        self.timeout = timeout or LOGIN_TIMEOUT
        self.retry_after = None

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        kwargs["allow_redirects"] = False
        self.retry_after = None
        response = super().request(method, url, *args, **kwargs)
        self.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if response.is_redirect:
            raise UntrustedHostError(
                f"{urlsplit(url).netloc} redirected a {method} request to "
                f"{response.headers['Location'][:200]}: not followed.",
                status=response.status_code)
        return response


class _ThreadDict(dict):
    """A dict that can be referenced weakly (a plain dict cannot)."""

    __slots__ = ("__weakref__",)


class ThreadLocalHttpCache(MutableMapping):
    """An MSAL `http_cache` with one dict per thread.

    MSAL keeps discovery documents and throttling answers in it, each app under its own lock:
    one dict shared by the apps of all of Odoo's threads would be changed by several at
    once. A thread's dict lives as long as the thread (a threaded server starts and ends
    threads all the time); MSAL itself caps each at 1,024 entries. `clear()` empties the
    dicts of every live thread (tests start clean with it)."""

    def __init__(self):
        self._local = threading.local()
        self._all = weakref.WeakValueDictionary()  # id -> a live thread's dict, for clear()
        self._all_lock = threading.Lock()

    @property
    def _dict(self):
        mapping = getattr(self._local, "mapping", None)
        if mapping is None:
            mapping = self._local.mapping = _ThreadDict()
            with self._all_lock:
                self._all[id(mapping)] = mapping
        return mapping

    def __getitem__(self, key):
        return self._dict[key]

    def __setitem__(self, key, value):
        self._dict[key] = value

    def __delitem__(self, key):
        del self._dict[key]

    def __iter__(self):
        return iter(self._dict)

    def __len__(self):
        return len(self._dict)

    def clear(self):
        with self._all_lock:
            mappings = list(self._all.values())
        for mapping in mappings:
            mapping.clear()

    @property
    def thread_count(self):
        """How many threads' dicts are alive."""
        return len(self._all)


def build_msal_app(client_id, credential, login_endpoint, tenant_id, token_cache=None,
                   http_cache=None, http_client=None):
    """A ConfidentialClientApplication for one tenant; MSAL fetches its OpenID config here.
    `credential`: the client secret, or MSAL's dict for a certificate
    (credentials.AppCertificate.msal_credential)."""
    try:
        return msal.ConfidentialClientApplication(
            client_id,
            client_credential=credential,
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
        raise discovery_error(exc) from exc
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
    raise token_error(result)


class AppTokens:
    """A Graph client's token provider for one tenant: `tokens(force_refresh)` returns an
    app-only token. The MSAL app is built on first use (`build_app(http_cache, token_cache,
    http_client)`), so that its OpenID discovery is retried with the token requests. After a
    transient failure (ServiceUnavailableError, carrying the Retry-After the login service
    asked) the next call builds the app again over a fresh HTTP cache and the same token
    cache: MSAL would otherwise replay the failure from its HTTP cache (for the Retry-After,
    5 s by default, or a minute for a 400 answer) instead of asking Microsoft again."""

    def __init__(self, build_app, graph_endpoint):
        self.build_app = build_app
        self.graph_endpoint = graph_endpoint
        self.app = None
        self._session = None
        self._after_failure = False
        self._lock = threading.Lock()  # the prefetching thread and the request's share it

    def __call__(self, force_refresh=False):
        with self._lock:
            try:
                if self.app is None or self._after_failure:
                    self._session = MsalSession()
                    self.app = self.build_app(
                        http_cache={} if self._after_failure else None,
                        token_cache=self.app.token_cache if self.app is not None else None,
                        http_client=self._session,
                    )
                    self._after_failure = False
                return acquire_app_token(self.app, self.graph_endpoint, force_refresh)
            except ServiceUnavailableError as error:
                self._after_failure = True
                error.retry_after = self._session.retry_after
                raise


def token_claims(access_token):
    """The claims of an access token (a JWT), read without verifying it: for what the token
    says about itself (`tid`, `roles`), never to decide whom to trust. {} if not a JWT."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (AttributeError, IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
