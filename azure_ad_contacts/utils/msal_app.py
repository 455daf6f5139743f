"""MSAL for app-only tokens (plain Python, no Odoo): its HTTP transport (timeouts, no
redirects), its HTTP cache per thread, one confidential client per tenant, and typed errors."""

import base64
import binascii
import json
import threading
from collections.abc import MutableMapping
from urllib.parse import urlsplit

import msal
import requests

from .graph_errors import (
    MalformedResponseError,
    ServiceUnavailableError,
    UntrustedHostError,
    discovery_error,
    token_error,
)


class MsalSession(requests.Session):
    """MSAL's transport. MSAL's default session has no timeout, and its urllib3 retry sleeps
    for whatever Retry-After a 429/503 asks, however long; this one does neither. Nor does it
    follow redirects: a 307 from a token endpoint would re-send the client secret elsewhere."""

    def __init__(self, timeout=30):
        super().__init__()
        self.timeout = timeout

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        kwargs["allow_redirects"] = False
        response = super().request(method, url, *args, **kwargs)
        if response.is_redirect:
            raise UntrustedHostError(
                f"{urlsplit(url).netloc} redirected a {method} request to "
                f"{response.headers['Location'][:200]}: not followed.",
                status=response.status_code)
        return response


class ThreadLocalHttpCache(MutableMapping):
    """An MSAL `http_cache` with one dict per thread.

    MSAL keeps discovery documents and throttling answers in it, each app under its own lock:
    one dict shared by the apps of all of Odoo's threads would be changed by several at
    once. `clear()` empties the dicts of every thread (tests start clean with it)."""

    def __init__(self):
        self._local = threading.local()
        self._all = []
        self._all_lock = threading.Lock()

    @property
    def _dict(self):
        mapping = getattr(self._local, "mapping", None)
        if mapping is None:
            mapping = self._local.mapping = {}
            with self._all_lock:
                self._all.append(mapping)
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
            for mapping in self._all:
                mapping.clear()


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


def token_claims(access_token):
    """The claims of an access token (a JWT), read without verifying it: for what the token
    says about itself (`tid`, `roles`), never to decide whom to trust. {} if not a JWT."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (AttributeError, IndexError, ValueError, binascii.Error):
        return {}
    return claims if isinstance(claims, dict) else {}
