"""``FakeEntra``: a local Microsoft Entra ID + Microsoft Graph over real HTTPS on 127.0.0.1.

Serves what the addon needs (and what MSAL 1.39 calls): OpenID discovery, the client-credentials
token endpoint (a client secret, or a client assertion signed with a certificate registered on
the app: ``add_app(..., certificates=[pem])``, see :mod:`fake_entra.assertion`), the v2.0
admin-consent page, ``GET /v1.0/users`` with paging (and its count, ``GET /v1.0/users/$count``,
an advanced query from an eventually consistent index), ``GET
/v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user]`` (groups from the tenant's
``groups`` list, nested groups expanded, paged; the cast only as an advanced query), ``GET
/v1.0/groups?$search="displayName:…"`` (with ``ConsistencyLevel: eventual``), ``GET
/v1.0/groups/{id}`` (a group with ``"visibility": "HiddenMembership"`` shows its members only to
tokens with Member.Read.Hidden) and ``GET /v1.0/domains``; for a partner (GDAP): a user's sign-in
(``/authorize``, the authorization-code and refresh-token grants, see :mod:`fake_entra.delegated`)
and ``GET /v1.0/tenantRelationships/delegatedAdminCustomers|delegatedAdminRelationships`` (see
:mod:`fake_entra.gdap`); plus ``/_fake/*`` JSON control endpoints (see :mod:`fake_entra.control`).

Access tokens are JWTs (unsigned) with the claims of real app-only tokens: ``tid``, ``appid``
and ``roles``, the application permissions granted when the token was issued (``set_roles``):
a token keeps them until it expires, as real ones do; ``set_opaque_tokens`` makes them opaque
strings instead, as Microsoft may at any time. ``set_consent_delay`` makes a consent
take time to spread, with one of the symptoms Microsoft shows meanwhile.

Usage::

    with FakeEntra(tenants=[tenant_dict]) as fake:
        # requests lets this variable override any Session/MSAL `verify=` setting, so set it
        # (or make sure it is unset before relying on verify=fake.certs.bundle_file).
        os.environ["REQUESTS_CA_BUNDLE"] = fake.certs.bundle_file
        app = msal.ConfidentialClientApplication(
            DEFAULT_CLIENT_ID, client_credential=DEFAULT_CLIENT_SECRET,
            authority=f"{fake.base_url}/{tenant_id}", instance_discovery=False, http_cache={})
        app.acquire_token_for_client([f"{fake.base_url}/.default"])

The Graph resource of this fake is its own base URL: the token scope must be
``{base_url}/.default`` (``https://localhost:PORT`` and Graph's app id are accepted too).

How real MSAL 1.39.0 reacts (checked against this fake; ``instance_discovery=False`` is required,
otherwise MSAL first asks login.microsoftonline.com about the unknown host and fails offline):

* Unknown tenant: discovery answers 400 ``invalid_tenant`` (AADSTS90002) and
  ``ConfidentialClientApplication(...)`` itself raises ``ValueError("Unable to get authority
  configuration for {authority}. … Also please double check your tenant name or GUID is
  correct.")``. The AADSTS text survives only in ``exc.__context__`` (MSAL's inner
  ``ValueError("OIDC Discovery failed on … HTTP status: 400, Error: {…}")``).
* Discovery 500/502/503/504 raise ``msal.exceptions.MsalServiceError("HTTP Error: 503")`` at
  construction; a non-JSON body raises the same ``ValueError`` as above; a JSON body without
  ``authorization_endpoint`` raises ``KeyError``. MSAL's requests session uses
  ``HTTPAdapter(max_retries=1)``: urllib3 silently retries a GET once after a connection reset,
  and after a 429/503 *that carries Retry-After* (sleeping that long first).
* Token errors are *returned* by ``acquire_token_for_client`` as a dict with ``error``,
  ``error_description``, ``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``,
  ``error_uri``: AADSTS700016 (``unauthorized_client``: unknown app or no consent),
  AADSTS7000215 / 7000222 (``invalid_client``), AADSTS90002 (``invalid_request``: tenant deleted
  after construction), 429 (``temporarily_unavailable``). MSAL replays a 400 answer from
  ``http_cache`` for 60 s, and a 429/5xx answer for its Retry-After (default 5 s), without
  sending a request; use a fresh ``http_cache`` per attempt in tests.
* Token 5xx raises ``MsalServiceError("HTTP Error: 5xx")``; a reset raises
  ``requests.exceptions.ConnectionError`` (POSTs are not retried); a non-JSON body raises
  ``json.JSONDecodeError`` (a ``ValueError``).
* Success: ``{"token_type", "expires_in", "ext_expires_in", "access_token",
  "token_source": "identity_provider"}``; the next call answers from MSAL's cache
  (``token_source == "cache"``) without any request.
"""

import ipaddress
import logging
import os
import socket
import ssl
import sys
import tempfile
import threading
from http.server import ThreadingHTTPServer

from .certs import ensure_certs
from .delegated import DelegatedState
from .gdap import GdapState
from .handler import EntraRequestHandler
from .protocol import GRAPH_APP_ID
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, EntraState  # noqa: F401 (re-export)

_logger = logging.getLogger("fake_entra")
DEFAULT_CERT_DIR = os.environ.get(
    "FAKE_ENTRA_CERT_DIR", os.path.join(tempfile.gettempdir(), "fake_entra_certs"))
HANDSHAKE_TIMEOUT = 10


def check_loopback(host):
    """Only loopback: the fake has no authentication and its certificate names 127.0.0.1."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host) == ipaddress.ip_address("127.0.0.1"):
            return
    except ValueError:
        pass
    raise ValueError(f"fake_entra only binds 127.0.0.1/localhost, not {host!r}")


class _HttpsServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes live connections itself

    def __init__(self, address, fake, ssl_context):
        super().__init__(address, EntraRequestHandler)
        self.fake = fake
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        self._connections = set()
        self._connections_lock = threading.Lock()
        port = self.server_address[1]
        self.base_url = f"https://127.0.0.1:{port}"
        self.own_hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        self.graph_resources = {f"https://{host}" for host in self.own_hosts} | {GRAPH_APP_ID}

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so that a slow or
        # broken client cannot block the accept loop.
        request.settimeout(HANDSHAKE_TIMEOUT)
        # Headers and body go out as separate writes; without NODELAY, Nagle + delayed ACK
        # add ~40 ms to every keep-alive response.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.fake.take_cut_handshake():
            request.close()  # before the TLS handshake: the client reads an unexpected EOF
            return
        try:
            conn = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            _logger.debug("fake_entra: TLS handshake failed: %s", exc)
            request.close()
            return
        with self._connections_lock:
            self._connections.add(conn)
        self.fake.count_connection()
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(conn)
            conn.close()

    def handle_error(self, request, client_address):
        # Clients dropping keep-alive connections are normal here; keep stderr quiet.
        _logger.debug("fake_entra: connection error from %s: %s", client_address,
                      sys.exc_info()[1])

    def close_connections(self):
        """Closes every open connection, as a server ending idle keep-alive connections does."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes up handler threads blocked in recv()
            except OSError:
                pass


class FakeEntra(DelegatedState, GdapState, EntraState):
    """The fake service; control methods are inherited from :class:`EntraState`, and for users
    signing in and partners' GDAP relationships from :class:`DelegatedState` and
    :class:`GdapState`.

    :param host: ``127.0.0.1`` or ``localhost`` (anything else raises ValueError)
    :param port: 0 picks a free port; read it back from ``base_url`` after ``start()``
    :param cert_dir: where :func:`~fake_entra.certs.ensure_certs` keeps the CA and server cert
    :param apps: ``[{"client_id", "client_secret", "secret_expired"?, "name"?, "certificates"?}]``;
        default: the one app ``DEFAULT_CLIENT_ID`` / ``DEFAULT_CLIENT_SECRET``
    :param tenants: tenant dicts or paths of tenant JSON files (``reset()`` returns to these)
    :param graph_latency_ms: each Graph request is answered after this long (± 10 %), as
        Microsoft Graph takes its time; ``set_graph_latency()`` changes it
    """

    def __init__(self, host="127.0.0.1", port=0, cert_dir=DEFAULT_CERT_DIR, apps=None,
                 tenants=None, graph_latency_ms=0):
        check_loopback(host)
        super().__init__(apps=apps, tenants=tenants, graph_latency_ms=graph_latency_ms)
        self.host, self.port = "127.0.0.1", port
        self.certs = ensure_certs(cert_dir)
        self._server = None
        self._thread = None

    @property
    def base_url(self):
        if self._server is None:
            raise RuntimeError("FakeEntra is not started")
        return self._server.base_url

    def start(self):
        if self._server is not None:
            return self
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.cert_file, self.certs.key_file)
        self._server = _HttpsServer((self.host, self.port), self, context)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"fake_entra:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()  # releases requests sleeping in a 'timeout' fault
        self.held_requests_released().set()
        server.shutdown()
        server.server_close()
        server.close_connections()
        self._thread.join(timeout=5)

    def close_connections(self):
        """The server closes its open connections (e.g. idle keep-alive ones, after its
        timeout): a client's pooled connection is gone, its next request opens a new one."""
        if self._server is not None:
            self._server.close_connections()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
