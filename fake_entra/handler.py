"""HTTP request handler: serves Entra ID and Graph requests, hands ``/_fake`` to control_api.

One handler instance serves one keep-alive connection (HTTP/1.1, every response has a
Content-Length). Faults are applied here, before the normal answer, for the endpoint kinds
``openid``, ``token``, ``users`` and ``domains``; error bodies follow Entra's shape on the login
side and Graph's shape on the Graph side.
"""

import base64
import binascii
import json
import logging
import re
import socket
import struct
import time
import uuid
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, quote, unquote, unquote_plus, urlsplit

from . import consent, control_api, protocol
from .faults import FOREIGN_NEXT_LINK, STATUS_KINDS
from .gdap_handler import USER_GRANTS, DelegatedHandler
from .state import DELTA_TOKEN_LIFETIME, HIDDEN_MEMBERS_ROLE

_logger = logging.getLogger("fake_entra")

MAX_TOP = 999
DEFAULT_TOP = 100
UNSUPPORTED_QUERY = ("$filter", "$orderby", "$search", "$count", "$expand", "$skip")
_T = r"([^/]+)"  # one path segment: tenant GUID, domain, organizations or common
ROUTES = [
    # (methods, path regex, endpoint kind, handler method)
    (("GET",), rf"/{_T}/v2\.0/\.well-known/openid-configuration", "openid", "_openid"),
    (("POST",), rf"/{_T}/oauth2/v2\.0/token", "token", "_token"),
    (("GET", "POST"), rf"/{_T}/oauth2/v2\.0/authorize", "authorize", "_authorize"),
    (("GET", "POST"), rf"/{_T}/(?:v2\.0/)?adminconsent", "consent", "_consent"),
    (("GET",), rf"/{_T}/discovery/v2\.0/keys", "keys", "_keys"),
    (("GET",), r"/common/discovery/instance", "instance", "_instance_discovery"),
    (("GET",), r"/v1\.0/users", "users", "_users"),
    (("GET",), r"/v1\.0/users/(?:\$|%24)count", "count", "_users_count"),
    (("GET",), r"/v1\.0/users/(?:microsoft\.graph\.)?delta", "delta", "_users_delta"),
    (("GET",), r"/v1\.0/users/([^/$][^/]*)", "user", "_user"),
    (("GET",), r"/v1\.0/domains", "domains", "_domains"),
    (("GET",), r"/v1\.0/tenantRelationships/delegatedAdminCustomers", "gdap", "_gdap_customers"),
    (("GET",), r"/v1\.0/tenantRelationships/delegatedAdminRelationships", "gdap",
     "_gdap_relationships"),
    (("GET",), r"/v1\.0/groups", "groups", "_groups"),
    (("GET",), r"/v1\.0/groups/([^/]+)", "groups", "_group"),
    (("GET",), r"/v1\.0/groups/([^/]+)/transitiveMembers(?:/microsoft\.graph\.(\w+))?", "groups",
     "_transitive_members"),
    (("GET", "POST", "PUT", "PATCH", "DELETE"), r"/_fake/(.*)", "control", "_control"),
]
ROUTES = [(m, re.compile(p + "$", re.IGNORECASE), k, h) for m, p, k, h in ROUTES]
GRAPH_KINDS = ("users", "user", "count", "domains", "groups", "delta", "gdap")
GRAPH_FAULT_CODES = {429: "TooManyRequests", 500: "InternalServerError", 502: "BadGateway",
                     503: "serviceNotAvailable", 504: "GatewayTimeout"}
FAULTABLE_KINDS = ("openid", "token", "users", "user", "count", "domains", "groups", "delta", "gdap")


def _route(path):
    for methods, pattern, kind, handler in ROUTES:
        match = pattern.match(path)
        if match:
            return methods, kind, handler, match
    return (), "unknown", None, None


class GraphRequestError(Exception):
    """A bad Graph query; becomes a 400 with this Graph error code."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


class EntraRequestHandler(DelegatedHandler, BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake_entra/1.0"
    sys_version = ""
    timeout = 60  # idle keep-alive connections are dropped after this many seconds

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def log_message(self, fmt, *args):
        _logger.info("%s %s", self.address_string(), fmt % args)

    # ------------------------------------------------------------------ plumbing
    @property
    def fake(self):
        return self.server.fake

    def _dispatch(self):
        self.received = time.monotonic()
        url = urlsplit(self.path)
        self.query = dict(parse_qsl(url.query, keep_blank_values=True))
        self.request_id = str(uuid.uuid4())
        self.client_request_id = self.headers.get("client-request-id") or str(uuid.uuid4())
        self.status = None
        self.fault = None
        self.body = self._read_body()
        methods, kind, handler, match = _route(url.path)
        self.kind, self.recorded = kind, False
        try:
            if handler is None:
                self._send_json(404, {"error": {"code": "NotFound", "message": url.path}})
            elif self.command not in methods:
                self._send_json(405, {"error": {"code": "MethodNotAllowed",
                                                "message": self.command}})
            elif kind in GRAPH_KINDS and self._wait_latency():
                self._reset_connection()  # the server is stopping: don't answer
            elif kind in FAULTABLE_KINDS and self._apply_fault(kind, match):
                pass  # the fault has answered (or dropped the connection)
            else:
                getattr(self, handler)(*[g if g is None else unquote(g) for g in match.groups()])
        except Exception:
            _logger.exception("fake_entra: error handling %s %s", self.command, self.path)
            if self.status is None:
                self._send_json(500, {"error": {"code": "FakeEntraBug", "message": "see log"}})
        finally:
            self._record()

    def _wait_latency(self):
        """Wait as long as Microsoft Graph takes to answer (see set_graph_latency); True if
        the server is stopping meanwhile."""
        delay = self.fake.graph_delay()
        return delay > 0 and self.server.stopping.wait(delay)

    def _record(self):
        """Count the request once, before the client can see the answer (no test races)."""
        if not self.recorded and self.kind != "control":
            self.recorded = True
            self.fake.record(self.kind, self.command, self.path, self.status, self.received)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _form(self):
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def _send(self, status, body, content_type, headers=()):
        self.status = status
        self._record()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store, no-cache")
        self.send_header("request-id", self.request_id)
        self.send_header("client-request-id", self.client_request_id)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status, payload, headers=()):
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _send_html(self, status, html):
        self._send(status, html.encode(), "text/html; charset=utf-8")

    def _redirect(self, location):
        self._send(302, b"", "text/html; charset=utf-8", [("Location", location)])

    def _graph_error(self, status, code, message, headers=()):
        body = protocol.graph_error(code, message, self.request_id, self.client_request_id)
        self._send_json(status, body, headers)

    def _reset_connection(self):
        """Drop the TCP connection with an RST and no response at all."""
        self.status = 0
        self._record()
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.connection.close()

    def _base_url(self):
        """Links use the host name the client used (127.0.0.1 or localhost) when it is ours."""
        host = (self.headers.get("Host") or "").lower()
        return f"https://{host}" if host in self.server.own_hosts else self.server.base_url

    # ------------------------------------------------------------------ faults
    def _fault_tenant(self, kind, match):
        """The tenant a request is about: from its bearer token (Graph) or its path (login)."""
        if kind in GRAPH_KINDS:
            return self.fake.token_tenant(self._bearer())
        segment = unquote(match.group(1))
        return self.fake.resolve_tenant(segment) or segment.lower()

    def _apply_fault(self, kind, match):
        """Serve the next matching fault; True if it has answered (or dropped) the request."""
        tenant_id = self._fault_tenant(kind, match)
        fault = self.fake.take_fault(kind, tenant_id)
        self.fault = fault
        if fault is None:
            return False
        _logger.info("fake_entra: fault %s on %s %s", fault.kind, self.command, self.path)
        if fault.kind in STATUS_KINDS:
            status = STATUS_KINDS[fault.kind]
            headers = [] if fault.retry_after is None else [("Retry-After", str(fault.retry_after))]
            if kind in GRAPH_KINDS:
                self._graph_error(status, GRAPH_FAULT_CODES[status],
                                  f"Injected fault: HTTP {status}.", headers)
            else:
                error = "temporarily_unavailable" if status in (429, 503) else "server_error"
                self._send_json(status, protocol.aad_error(error, 90033), headers)
            return True
        if fault.kind == "timeout":
            if self.fake.held_requests_released().wait(fault.delay):
                # Reset or stopping meanwhile: no answer, and not counted in the new stats.
                self.recorded = True
                self._reset_connection()
                return True
            return False
        if fault.kind == "reset":
            self._reset_connection()
            return True
        if fault.kind == "malformed":
            body = b'{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users",' \
                b'"value":[{"id":"'  # cut off mid-stream
            self._send(200, body, "application/json; charset=utf-8")
            return True
        if fault.kind == "wrong_shape":
            self._send_json(200, {"@odata.context": protocol.users_context(None),
                                  "value": {"unexpected": "an object instead of a list"}})
            return True
        if fault.kind == "identity_not_found":
            self._graph_error(401, "Authorization_IdentityNotFound",
                              "The identity of the calling application could not be established.",
                              [("WWW-Authenticate", 'Bearer realm=""')])
            return True
        if fault.kind == "app_disabled":
            form = self._form()
            app = self.fake.app(form.get("client_id")) or {}
            self._send_json(400, protocol.aad_error(
                "unauthorized_client", 7000112, client_id=form.get("client_id", ""),
                app_name=app.get("name", "")))
            return True
        if fault.kind == "resource_not_found":
            scope = self._form().get("scope", "")
            self._send_json(400, protocol.aad_error(
                "invalid_resource", 500011, resource=scope.removesuffix("/.default"),
                tenant=tenant_id))
            return True
        if fault.kind == "transient":
            self._send_json(400, protocol.aad_error("temporarily_unavailable", 90033))
            return True
        if fault.kind == "redirect":
            self._send(307, b"", "text/html; charset=utf-8", [("Location", fault.location)])
            return True
        if fault.kind == "revoke":
            self.fake.revoke_consent(tenant_id)
        return False  # revoke, foreign_next_link, repeat_page: answered by the endpoint

    def _page_fault(self, name):
        return self.fault is not None and self.fault.kind == name

    # ------------------------------------------------------------------ Entra ID
    def _openid(self, segment):
        if segment.lower() in ("organizations", "common", "consumers"):
            tenant = segment.lower()
        else:
            tenant = self.fake.resolve_tenant(segment)
            if tenant is None:
                return self._send_json(400, protocol.aad_error("invalid_tenant", 90002,
                                                               tenant=segment))
        self._send_json(200, protocol.openid_configuration(self._base_url(), tenant))

    def _keys(self, segment):
        self._send_json(200, {"keys": []})  # tokens are opaque; nothing to verify

    def _instance_discovery(self):
        authorize = self.query.get("authorization_endpoint", "")
        tenant = (urlsplit(authorize).path.strip("/").split("/") or ["common"])[0] or "common"
        base = self._base_url()
        host = base.split("://", 1)[1]
        self._send_json(200, {
            "tenant_discovery_endpoint": f"{base}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        })

    def _token(self, segment):
        form = self._form()
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        assertion = None
        if form.get("client_assertion"):  # certificate credentials (fake_entra.assertion)
            tenant_id = self.fake.resolve_tenant(segment) or segment
            audiences = {f"https://{host}/{tenant}/oauth2/v2.0/token".lower()
                         for host in self.server.own_hosts for tenant in {segment, tenant_id}}
            assertion = (form.get("client_assertion_type"), form["client_assertion"], audiences)
        basic = self.headers.get("Authorization", "")
        if basic.lower().startswith("basic "):  # client_secret_basic
            try:
                decoded = base64.b64decode(basic[6:]).decode("utf-8", "replace")
            except binascii.Error:
                decoded = ""
            user, _, password = decoded.partition(":")
            client_id, secret = client_id or unquote_plus(user), secret or unquote_plus(password)
        grant_type = form.get("grant_type", "")
        scope = form.get("scope", "")
        if not grant_type:
            return self._send_json(400, protocol.aad_error("invalid_request", 900144,
                                                           parameter="grant_type"))
        if grant_type in USER_GRANTS and client_id:
            return self._user_token(segment, form, client_id, secret, assertion)
        if grant_type != "client_credentials":
            return self._send_json(400, protocol.aad_error("unsupported_grant_type", 70003,
                                                           grant_type=grant_type))
        if not client_id:
            return self._send_json(400, protocol.aad_error("invalid_request", 900144,
                                                           parameter="client_id"))
        if not secret and not assertion:
            return self._send_json(401, protocol.aad_error("invalid_client", 7000218))
        if not scope:
            return self._send_json(400, protocol.aad_error("invalid_request", 900144,
                                                           parameter="scope"))
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return self._send_json(400, protocol.aad_error("invalid_scope", 1002012, scope=scope))
        resource = scopes[0][: -len("/.default")].rstrip("/").lower()
        if resource not in self.server.graph_resources:
            return self._send_json(400, protocol.aad_error("invalid_resource", 500011,
                                                           resource=resource, tenant=segment))
        status, payload = self.fake.issue_token(segment, client_id, secret, scopes[0][:-9], assertion)
        self._send_json(status, payload, [("Pragma", "no-cache")])

    def _consent(self, segment):
        params = dict(self.query)
        if self.command == "POST":
            params.update(self._form())
        app = self.fake.app(params.get("client_id"))
        path_tenant = None
        if segment.lower() not in ("organizations", "common"):
            path_tenant = self.fake.resolve_tenant(segment)
            if path_tenant is None:
                return self._send_html(400, consent.error_page(90002, tenant=segment))
        if app is None:
            return self._send_html(400, consent.error_page(
                700016, client_id=params.get("client_id", ""), tenant=segment))
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return self._send_html(400, consent.error_page(900144, parameter="redirect_uri"))
        if not consent.valid_redirect_uri(redirect_uri):
            return self._send_html(400, consent.error_page(50011, redirect_uri=redirect_uri))
        decision = params.get("decision") if self.command == "POST" else params.get("auto")
        if not decision:
            return self._send_html(200, consent.consent_page(
                self.path.split("?", 1)[0], app["name"], params, self.fake.tenant_choices(),
                path_tenant))
        state = params.get("state")
        if decision != "accept":
            return self._redirect(consent.declined_redirect(redirect_uri, state))
        tenant_id = self.fake.resolve_tenant(params.get("tenant") or path_tenant or "")
        if tenant_id is None:
            return self._send_html(400, consent.error_page(
                90002, tenant=params.get("tenant") or segment))
        self.fake.grant_consent(tenant_id, app["client_id"])
        self._redirect(consent.accepted_redirect(redirect_uri, tenant_id,
                                                 params.get("scope"), state))

    # ------------------------------------------------------------------ Graph
    def _bearer(self):
        header = self.headers.get("Authorization", "")
        return header[7:].strip() if header[:7].lower() == "bearer " else ""

    def _graph_tenant(self, needs=()):
        """The tenant of a valid bearer token whose roles hold one of ``needs``, or None after
        sending the 401/403."""
        token = self._bearer()
        if not token:
            self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty.",
                              [("WWW-Authenticate", 'Bearer realm=""')])
            return None
        problem = self.fake.check_token(token, needs)
        if problem:
            status, code, message = problem
            headers = [("WWW-Authenticate", 'Bearer realm=""')] if status == 401 else []
            self._graph_error(status, code, message, headers)
            return None
        return self.fake.token_tenant(token)

    def _query(self, name):
        """OData system query options may be given with or without the '$'."""
        return self.query.get(name, self.query.get(name.lstrip("$")))

    def _users_delta(self):
        """``GET /v1.0/users/delta``, as Microsoft documents it: the first request (optionally
        with ``$select``; no ``$top``, ``$filter`` here) starts a round listing every user,
        ``@odata.nextLink`` pages carry the round's state (and the ``$select``), the last page
        an ``@odata.deltaLink``. That link starts the next round: only users changed since,
        with all their selected properties that were ever set, or with ``Prefer:
        return=minimal`` only the changed ones (and the id); removed users as ``{"id",
        "@removed": {"reason": "changed"}}`` (restorable) or ``"deleted"`` (for good). A
        state token that expired (seven days) or that the service does not know any more is
        answered 410 ``resyncRequired`` with a Location to start over. Where Microsoft's
        documentation allows other answers, the fake gives them when asked (see
        EntraState.set_delta_quirks)."""
        tenant_id = self._graph_tenant(protocol.USERS_ROLES)
        if tenant_id is None:
            return
        for name in (*UNSUPPORTED_QUERY, "$top"):
            if self._query(name) is not None:
                return self._graph_error(400, "Request_UnsupportedQuery",
                                         f"{name} is not supported on users/delta.")
        skiptoken, deltatoken = self._query("$skiptoken"), self._query("$deltatoken")
        raw_select = self._query("$select")
        # "Sync from now" ($deltatoken=latest) is a first request: it takes the round's $select.
        if raw_select is not None and (skiptoken or (deltatoken and deltatoken != "latest")):
            return self._graph_error(400, "Request_UnsupportedQuery",
                                     "$select goes in the first request of a delta round; "
                                     "its links carry it.")
        version, epoch = self.fake.delta_version(tenant_id)
        quirks = self.fake.delta_quirks()
        since, round_version, after = None, version, ""
        try:
            if skiptoken:  # the next page of a round
                state = protocol.decode_state_token(skiptoken)
                since, round_version, after = state["since"], state["version"], state["after"]
            elif deltatoken == "latest":  # "sync from now": no users, just the link
                state = {"tenant": tenant_id, "version": version,
                         "select": protocol.parse_select(raw_select), "issued": time.time()}
                since = version
            elif deltatoken:  # a new round: the changes since the token's version
                state = protocol.decode_state_token(deltatoken)
                since = state["version"]
            else:
                state = {"tenant": tenant_id, "select": protocol.parse_select(raw_select),
                         "issued": time.time()}
            select, issued = state["select"], state["issued"]
            if not (isinstance(round_version, int) and isinstance(issued, int | float)
                    and (since is None or isinstance(since, int)) and isinstance(after, str)
                    and (select is None or isinstance(select, list))):
                raise ValueError("Invalid state token.")
        except (KeyError, ValueError) as exc:
            return self._graph_error(400, "Request_BadRequest", f"Invalid state token: {exc}")
        start = round_version if since is None else since
        if (state.get("tenant") != tenant_id or start < epoch or max(start, round_version) > version
                or time.time() - issued > DELTA_TOKEN_LIFETIME):
            return self._delta_expired(quirks["expired"], select)
        minimal = "return=minimal" in (self.headers.get("Prefer") or "").replace(" ", "").lower()

        tracked = set(select or protocol.DEFAULT_USER_PROPERTIES)

        def project(user, changed, restored):
            if changed is not None and not changed & tracked:
                return None  # only the selected properties are tracked
            if restored and (select or minimal) and quirks["restored"] != "full":
                return {"id": user["id"]} if quirks["restored"] == "id" else None
            return protocol.delta_properties(user, select, changed if minimal else None)

        base = {"tenant": tenant_id, "version": round_version, "select": select,
                "issued": issued}
        payload = {"@odata.context": protocol.users_context(select)}
        if quirks["empty_pages"] and deltatoken != "latest" and not state.get("padded"):
            # An empty page whose nextLink leads to the items this request stands for.
            token = protocol.encode_state_token(
                {**base, "since": since, "after": after, "padded": True})
            payload["@odata.nextLink"] = f"{self._base_url()}/v1.0/users/delta?$skiptoken={token}"
            payload["value"] = []
            return self._send_json(200, payload)
        page, more = ([], False) if deltatoken == "latest" else self.fake.delta_page(
            tenant_id, since, after, quirks["page_size"], project, replay=quirks["replay"])
        if more:
            token = protocol.encode_state_token(
                {**base, "since": since, "after": page[-1]["id"]})
            payload["@odata.nextLink"] = f"{self._base_url()}/v1.0/users/delta?$skiptoken={token}"
        else:
            token = protocol.encode_state_token({**base, "issued": time.time()})
            payload["@odata.deltaLink"] = \
                f"{self._base_url()}/v1.0/users/delta?$deltatoken={token}"
        payload["value"] = page
        self._send_json(200, payload)

    def _delta_expired(self, answer, select):
        """An expired or unknown state token: 410 resyncRequired with a Location that starts
        over, or (as Microsoft may answer too) 400 syncStateNotFound."""
        if answer == "syncStateNotFound":
            return self._graph_error(400, "syncStateNotFound", protocol.SYNC_STATE_NOT_FOUND)
        query = f"&$select={','.join(select)}" if select else ""
        return self._graph_error(
            410, "resyncRequired", protocol.RESYNC_REQUIRED,
            [("Location", f"{self._base_url()}/v1.0/users/delta?$deltatoken={query}")])

    def _eventual(self):
        """Whether the client sent the advanced query header ConsistencyLevel: eventual."""
        return (self.headers.get("ConsistencyLevel") or "").strip().lower() == "eventual"

    def _counted(self):
        """Whether this is an advanced query asking for @odata.count ($count=true + header)."""
        return self._eventual() and (self._query("$count") or "").lower() == "true"

    def _users(self):
        tenant_id = self._graph_tenant(protocol.USERS_ROLES)
        if tenant_id is None:
            return
        try:
            # $count=true without ConsistencyLevel: eventual is silently ignored on /users.
            selected, top, after_id = self._users_query(allowed=("$count",))
        except GraphRequestError as exc:
            return self._graph_error(400, exc.code, str(exc))
        properties = selected or list(protocol.DEFAULT_USER_PROPERTIES)
        page, has_more = self.fake.users_page(
            tenant_id, after_id, top, lambda user: protocol.project_user(user, properties))
        payload = {"@odata.context": protocol.users_context(selected)}
        if self._counted():
            payload["@odata.count"] = self.fake.user_count(tenant_id)
        if self._page_fault("foreign_next_link"):
            payload["@odata.nextLink"] = FOREIGN_NEXT_LINK
        elif self._page_fault("repeat_page"):
            payload["@odata.nextLink"] = self._users_link(top, after_id)  # this page, again
        elif has_more:
            payload["@odata.nextLink"] = self._users_link(top, page[-1]["id"])
        payload["value"] = page
        self._send_json(200, payload)

    def _user(self, user_id):
        """``GET /v1.0/users/{id}`` with ``$select``: one user as the listing gives it, or 404
        ``Request_ResourceNotFound`` (deleted, or never there)."""
        tenant_id = self._graph_tenant(protocol.USERS_ROLES)
        if tenant_id is None:
            return
        try:
            selected = protocol.parse_select(self._query("$select"))
        except ValueError as exc:
            return self._graph_error(400, "Request_BadRequest", str(exc))
        found = self.fake.user(tenant_id, user_id)
        if found is None:
            return self._graph_error(
                404, "Request_ResourceNotFound",
                f"Resource '{user_id}' does not exist or one of its queried reference-property "
                "objects are not present.")
        properties = selected or list(protocol.DEFAULT_USER_PROPERTIES)
        self._send_json(200, {"@odata.context": f"{protocol.users_context(selected)}/$entity",
                              **protocol.project_user(found, properties)})

    def _users_count(self):
        """``GET /v1.0/users/$count``: the number of users as ``text/plain``. Counting is an
        advanced query: without ``ConsistencyLevel: eventual`` Graph answers 400, and with it
        the number comes from an eventually consistent index (see set_index_lag). The body
        starts with a byte-order mark, which OData services may send in plain-text answers."""
        tenant_id = self._graph_tenant(protocol.USERS_ROLES)
        if tenant_id is None:
            return
        if not self._eventual():
            return self._graph_error(400, "Request_BadRequest", "$count is not currently supported.")
        body = f"\ufeff{self.fake.user_count(tenant_id)}".encode()
        self._send(200, body, "text/plain; charset=utf-8")

    def _users_query(self, allowed=()):
        """($select as a list or None, page size, id after which the page starts)."""
        top, after_id = self._page_query(allowed)
        try:
            return protocol.parse_select(self._query("$select")), top, after_id
        except ValueError as exc:
            raise GraphRequestError("Request_BadRequest", str(exc)) from exc

    def _page_query(self, allowed=()):
        """(page size, id after which the page starts); refuses query options the fake does
        not implement unless ``allowed``."""
        for name in UNSUPPORTED_QUERY:
            if name not in allowed and self._query(name) is not None:
                raise GraphRequestError("Request_UnsupportedQuery",
                                        f"fake_entra does not implement {name}.")
        raw_top = self._query("$top")
        top = DEFAULT_TOP
        if raw_top is not None:
            top = int(raw_top) if raw_top.strip().isdigit() else -1
            if not 1 <= top <= MAX_TOP:
                raise GraphRequestError(
                    "Request_UnsupportedQuery",
                    f"Invalid page size specified: '{raw_top}'. "
                    "Must be between 1 and 999 inclusive.")
        skiptoken = self._query("$skiptoken")
        try:
            return top, protocol.decode_skiptoken(skiptoken) if skiptoken is not None else ""
        except ValueError as exc:
            raise GraphRequestError("Request_BadRequest", str(exc)) from exc

    def _users_link(self, top, after_id):
        """An absolute nextLink that repeats the client's $select/$top, like Graph's."""
        query = []
        if self._query("$select") is not None:
            query.append(f"$select={self._query('$select')}")
        if self._query("$top") is not None:
            query.append(f"$top={top}")
        query.append(f"$skiptoken={protocol.encode_skiptoken(after_id)}")
        return f"{self._base_url()}/v1.0/users?{'&'.join(query)}"

    def _transitive_members(self, group_id, cast):
        """``GET /v1.0/groups/{id}/transitiveMembers[/microsoft.graph.user|group]``: members of
        the group and of its nested groups, paged like /users ($select, $top, $skiptoken).

        Without a cast every member carries its ``@odata.type``. Microsoft documents the OData
        cast on transitive member lists as an advanced query: it needs the header
        ``ConsistencyLevel: eventual`` and ``$count=true``, else Graph answers 400."""
        tenant_id = self._graph_tenant(protocol.GROUPS_ROLES)
        if tenant_id is None:
            return
        if cast not in (None, "user", "group"):
            return self._graph_error(400, "Request_UnsupportedQuery",
                                     f"The type cast 'microsoft.graph.{cast}' is not supported.")
        if not protocol.is_guid(group_id):
            return self._graph_error(400, "Request_BadRequest",
                                     f"Invalid object identifier '{group_id}'.")
        if cast is not None and not self._counted():
            return self._graph_error(400, "Request_UnsupportedQuery",
                                     protocol.advanced_query_error("OData cast"))
        if (self.fake.group_hides_members(tenant_id, group_id)
                and HIDDEN_MEMBERS_ROLE not in self.fake.token_roles(self._bearer())):
            # Hidden membership: GroupMember.Read.All is not enough, Member.Read.Hidden is needed.
            return self._graph_error(403, "Authorization_RequestDenied",
                                     "Insufficient privileges to complete the operation.")
        try:
            selected, top, after_id = self._users_query(allowed=("$count",))
        except GraphRequestError as exc:
            return self._graph_error(400, exc.code, str(exc))

        def project(kind, member):
            if cast is not None and kind != cast:
                return None
            if kind == "user":
                value = protocol.project_user(member, selected or protocol.DEFAULT_USER_PROPERTIES)
            else:
                value = {"id": member["id"], "displayName": member.get("displayName")}
            return value if cast else {"@odata.type": f"#microsoft.graph.{kind}", **value}

        try:
            page, has_more, last_id, count = self.fake.group_members_page(
                tenant_id, group_id, after_id, top, project, count=self._counted())
        except KeyError:
            return self._graph_error(
                404, "Request_ResourceNotFound",
                f"Resource '{group_id}' does not exist or one of its queried reference-property "
                "objects are not present.")
        context = "directoryObjects" if cast is None else f"{cast}s"
        payload = {"@odata.context": f"{protocol.GRAPH_METADATA}#{context}"}
        if count is not None:
            payload["@odata.count"] = count
        if has_more:
            base = self.path.split("?", 1)[0]
            query = [f"$select={self._query('$select')}"] if self._query("$select") else []
            query += ["$count=true"] if count is not None else []
            query += [f"$top={top}", f"$skiptoken={protocol.encode_skiptoken(last_id)}"]
            payload["@odata.nextLink"] = f"{self._base_url()}{base}?{'&'.join(query)}"
        payload["value"] = page
        self._send_json(200, payload)

    def _group(self, group_id):
        """``GET /v1.0/groups/{id}`` with ``$select``: a group's properties (id, displayName,
        visibility…), readable with GroupMember.Read.All even when its membership is hidden."""
        tenant_id = self._graph_tenant(protocol.GROUPS_ROLES)
        if tenant_id is None:
            return
        try:
            group = {"visibility": None, **self.fake.group(tenant_id, group_id)}
        except KeyError:
            return self._graph_error(
                404, "Request_ResourceNotFound",
                f"Resource '{group_id}' does not exist or one of its queried reference-property "
                "objects are not present.")
        selected = [name.strip() for name in (self._query("$select") or "").split(",") if name.strip()]
        fields = ["id", *[name for name in selected if name != "id"]] if selected else list(group)
        self._send_json(200, {"@odata.context": f"{protocol.GRAPH_METADATA}#groups/$entity",
                              **{name: group.get(name) for name in fields}})

    def _groups(self):
        """``GET /v1.0/groups[?$search="displayName:…"]`` with ``$select`` (id, displayName),
        ``$top`` and paging. ``$search`` on directory objects works only with the header
        ``ConsistencyLevel: eventual`` (Microsoft's 400 otherwise) and matches by tokens."""
        tenant_id = self._graph_tenant(protocol.GROUPS_ROLES)
        if tenant_id is None:
            return
        raw_search = self._query("$search")
        if raw_search is not None and not self._eventual():
            return self._graph_error(400, "Request_UnsupportedQuery",
                                     protocol.SEARCH_NEEDS_EVENTUAL)
        try:
            text = protocol.parse_search(raw_search) if raw_search is not None else None
            selected = [name.strip() for name in (self._query("$select") or "").split(",")
                        if name.strip()] or ["id", "displayName"]
            unknown = set(selected) - {"id", "displayName", "description", "mail"}
            if unknown:
                raise GraphRequestError(
                    "Request_BadRequest",
                    f"Could not find a property named '{min(unknown)}' on type "
                    "'microsoft.graph.group'.")
            top, after_id = self._page_query(allowed=("$count", "$search"))
        except ValueError as exc:
            return self._graph_error(400, "Request_UnsupportedQuery", str(exc))
        except GraphRequestError as exc:
            return self._graph_error(400, exc.code, str(exc))
        page, has_more = self.fake.groups_page(
            tenant_id,
            lambda group: text is None or protocol.search_matches(text, group.get("displayName")),
            after_id, top)
        payload = {"@odata.context": f"{protocol.GRAPH_METADATA}#groups({','.join(selected)})"}
        if has_more:
            query = [f"{name}={quote(self._query(name), safe=':,')}"
                     for name in ("$search", "$select") if self._query(name) is not None]
            query += [f"$top={top}", f"$skiptoken={protocol.encode_skiptoken(page[-1]['id'])}"]
            payload["@odata.nextLink"] = f"{self._base_url()}/v1.0/groups?{'&'.join(query)}"
        payload["value"] = [{name: group.get(name) for name in selected} for group in page]
        self._send_json(200, payload)

    def _domains(self):
        # Microsoft Graph "List domains" (GET /v1.0/domains, Domain.Read.All): domain objects
        # whose id is the name; a domain added but not yet proven by DNS has isVerified false
        # (and, like an unconfigured one, supports no service).
        tenant_id = self._graph_tenant(protocol.DOMAINS_ROLES)
        if tenant_id is None:
            return
        verified = self.fake.domains(tenant_id)
        value = [{
            "authenticationType": "Managed", "availabilityStatus": None, "id": domain,
            "isAdminManaged": True, "isDefault": index == 0 and is_verified,
            "isInitial": domain.lower().endswith(".onmicrosoft.com"), "isRoot": True,
            "isVerified": is_verified, "passwordNotificationWindowInDays": 14,
            "passwordValidityPeriodInDays": 2147483647, "state": None,
            "supportedServices": ["Email", "OfficeCommunicationsOnlineService"] if is_verified else [],
        } for index, (domain, is_verified) in enumerate(
            [(domain, True) for domain in verified]
            + [(domain, False) for domain in self.fake.unverified_domains(tenant_id)])]
        self._send_json(200, {"@odata.context": f"{protocol.GRAPH_METADATA}#domains",
                              "value": value})

    # ------------------------------------------------------------------ /_fake control
    def _control(self, path):
        try:
            payload = json.loads(self.body) if self.body else None
        except ValueError:
            return self._send_json(400, {"error": "body is not JSON"})
        self._send_json(*control_api.dispatch(self.fake, self.command, path.strip("/"), payload))
