"""GraphClient against a scripted local HTTP server; MSAL glue over a fake MSAL transport."""

import base64
import json
import socket
import ssl
import threading
import time
import uuid
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import msal
import pytest
import requests
import urllib3

from odoo.addons.azure_ad_contacts.utils import graph_client as gc


class FakeGraph:
    """Answers queued replies in order on 127.0.0.1 and records each request's path and headers."""

    def __init__(self):
        self.replies = []
        self.requests = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake.requests.append((self.path, dict(self.headers)))
                status, headers, body, delay = (
                    fake.replies.pop(0) if fake.replies else (599, {}, "unscripted", 0)
                )
                time.sleep(delay)
                payload = (body if isinstance(body, str) else json.dumps(body)).encode()
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up waiting (timeout tests)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, status=200, body=None, headers=None, delay=0):
        self.replies.append((status, headers or {}, {"value": []} if body is None else body, delay))

    @property
    def paths(self):
        return [path for path, _headers in self.requests]


@pytest.fixture(scope="module")
def graph_server():
    fake = FakeGraph()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


@pytest.fixture
def graph(graph_server):
    graph_server.replies.clear()
    graph_server.requests.clear()
    return graph_server


class Recorder:
    """Token provider and sleep stand-in that remember how they were called."""

    def __init__(self):
        self.token_calls = []
        self.sleeps = []

    def token(self, force_refresh):
        self.token_calls.append(force_refresh)
        return f"tok-{len(self.token_calls) - 1}"


@pytest.fixture
def rec():
    return Recorder()


def make_client(endpoint, rec, **kwargs):
    kwargs = {"sleep": rec.sleeps.append, "jitter": lambda: 0.5, **kwargs}
    return gc.GraphClient(endpoint, rec.token, **kwargs)


def users_path():
    return f"/v1.0/users?$select={','.join(gc.USER_SELECT)}&$top=999"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Paging


def test_pages_follow_next_link_verbatim(graph, rec):
    next_link = f"{graph.url}/v1.0/users?$select=id&$top=999&$skiptoken=RFNwdAI%2BAAAA%3D%3D"
    graph.reply(body={"value": [{"id": "1"}, {"id": "2"}], "@odata.nextLink": next_link})
    graph.reply(body={"value": [{"id": "3"}]})
    client = make_client(graph.url + "/", rec)

    assert list(client.iter_user_pages()) == [[{"id": "1"}, {"id": "2"}], [{"id": "3"}]]
    assert graph.paths == [users_path(), next_link.removeprefix(graph.url)]
    assert client.request_count == 2
    assert rec.token_calls == [False]  # one token for the whole run


def test_request_headers(graph, rec):
    graph.reply()
    list(make_client(graph.url, rec).iter_user_pages())
    headers = graph.requests[0][1]
    assert headers["Authorization"] == "Bearer tok-0"
    assert headers["Accept"] == "application/json"
    uuid.UUID(headers["client-request-id"])


def test_pages_are_fetched_one_at_a_time(graph, rec):
    graph.reply(body={"value": [{"id": "1"}], "@odata.nextLink": f"{graph.url}/v1.0/users?p=2"})
    graph.reply(body={"value": [{"id": "2"}]})
    client = make_client(graph.url, rec)
    pages = client.iter_user_pages()
    assert next(pages) == [{"id": "1"}]
    assert client.request_count == 1
    assert next(pages) == [{"id": "2"}]
    assert client.request_count == 2


def test_probe_and_verified_domains(graph, rec):
    graph.reply(body={"value": [{"id": "1"}]})
    graph.reply(
        body={
            "value": [
                {"id": "contoso.com", "isVerified": True},
                {"id": "pending.com", "isVerified": False},
                {"id": 7, "isVerified": True},
                "junk",
            ]
        }
    )
    client = make_client(graph.url, rec)
    client.probe()
    assert client.verified_domains() == ["contoso.com"]
    assert graph.paths == ["/v1.0/users?$top=1&$select=id", "/v1.0/domains"]


def test_verified_domains_are_host_names_only(graph, rec):
    graph.reply(
        body={
            "value": [
                {"id": "Contoso.COM", "isVerified": True},
                {"id": "contoso.com.", "isVerified": True},
                {"id": "sub.contoso.com", "isVerified": True},
                {"id": "evil.example contoso.com", "isVerified": True},
                {"id": "a" * 64 + ".example", "isVerified": True},
                {"id": ("a" * 60 + ".") * 5 + "example", "isVerified": True},
                {"id": "-bad.example", "isVerified": True},
                {"id": "localhost", "isVerified": True},
                {"id": "x@y.example", "isVerified": True},
                {"id": "line\nbreak.example", "isVerified": True},
            ]
        }
    )
    assert make_client(graph.url, rec).verified_domains() == ["contoso.com", "sub.contoso.com"]


def test_a_tenant_with_too_many_verified_domains_is_not_believed(graph, rec):
    graph.reply(body={"value": [{"id": f"d{n}.example", "isVerified": True} for n in range(6)]})
    with pytest.raises(gc.MalformedResponseError):
        make_client(graph.url, rec).verified_domains(limit=5)


def test_microsoft_error_text_is_one_line_and_capped(graph, rec):
    hostile = "Denied.\r\n2025-01-01 INFO odoo: admin logged in\x1b[31m" + "x" * 5000
    graph.reply(403, {"error": {"code": "Authorization_RequestDenied\nforged", "message": hostile}})
    with pytest.raises(gc.GraphError) as caught:
        make_client(graph.url, rec).probe()
    error = caught.value
    assert error.detail.startswith("Denied. 2025-01-01 INFO odoo: admin logged in [31mxxx")
    assert len(error.detail) == gc.MAX_ERROR_TEXT
    assert str(error) == error.detail
    assert error.code == "Authorization_RequestDenied forged"
    for text in (error.detail, error.code):
        assert text.isprintable()


def test_token_error_text_is_cleaned_too():
    app = StubApp(aad("invalid_client", 7000215, "AADSTS7000215: bad secret\nTrace ID: 1\n" * 100))
    with pytest.raises(gc.ClientSecretError) as caught:
        gc.acquire_app_token(app, "https://graph.microsoft.com")
    assert "\n" not in caught.value.detail
    assert len(caught.value.detail) <= gc.MAX_ERROR_TEXT


def test_admin_consent_url():
    url = gc.admin_consent_url(
        "https://login.microsoftonline.com/",
        "app-id",
        "https://graph.microsoft.com/.default",
        "https://odoo.example/azure_ad_contacts/oauth/callback",
        "signed&state=x",
    )
    assert url == (
        "https://login.microsoftonline.com/organizations/v2.0/adminconsent?client_id=app-id"
        "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
        "&redirect_uri=https%3A%2F%2Fodoo.example%2Fazure_ad_contacts%2Foauth%2Fcallback"
        "&state=signed%26state%3Dx"
    )
    hinted = gc.admin_consent_url("https://login.example", "a", "s", "r", "t", tenant="contoso.com")
    assert hinted.startswith("https://login.example/contoso.com/v2.0/adminconsent?")


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v1.0/users?$skiptoken=x",
        "https://127.0.0.1:{port}/v1.0/users",  # other scheme
        "http://127.0.0.1:1/v1.0/users",  # other port
        "http://localhost:{port}/v1.0/users",  # other host name
        "http://127.0.0.1:{port}@evil.example/v1.0/users",  # userinfo trick
        "http://evil.example\\@127.0.0.1:{port}/v1.0/users",
        "/v1.0/users?$skiptoken=relative",
        "http://127.0.0.1:99999/v1.0/users",  # invalid port
    ],
)
def test_next_link_off_the_graph_host_is_refused(graph, rec, link):
    port = graph.server.server_port
    graph.reply(body={"value": [], "@odata.nextLink": link.format(port=port)})
    client = make_client(graph.url, rec)
    with pytest.raises(gc.UntrustedHostError):
        list(client.iter_user_pages())
    assert client.request_count == 1


def test_default_port_counts_as_the_same_origin(rec):
    client = make_client("https://graph.microsoft.com", rec, session=object())
    assert client._origin == gc._origin("https://GRAPH.microsoft.com:443/v1.0/users?$skiptoken=x")


# Throttling, retries and the wait budget


def test_429_honours_retry_after_seconds(graph, rec):
    graph.reply(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "7"})
    graph.reply()
    client = make_client(graph.url, rec)
    assert list(client.iter_user_pages()) == [[]]
    assert rec.sleeps == [7.0]
    assert client.request_count == 2
    assert graph.paths == [users_path(), users_path()]


def test_429_honours_retry_after_http_date(graph, rec):
    graph.reply(429, headers={"Retry-After": formatdate(time.time() + 30, usegmt=True)})
    graph.reply()
    list(make_client(graph.url, rec).iter_user_pages())
    assert len(rec.sleeps) == 1 and 27 <= rec.sleeps[0] <= 30


def test_429_without_retry_after_backs_off(graph, rec):
    graph.reply(429)
    graph.reply(429, headers={"Retry-After": "soon"})  # unusable: backoff too
    graph.reply()
    list(make_client(graph.url, rec).iter_user_pages())
    assert rec.sleeps == [7.5, 12.5]  # 5 * 2**n + 0.5 * 5


def test_503_exponential_backoff_with_jitter(graph, rec):
    for status in (503, 500, 502, 504):
        graph.reply(status, "<html>busy</html>")
    graph.reply()
    client = make_client(graph.url, rec, max_wait=1000)
    assert list(client.iter_user_pages()) == [[]]
    assert rec.sleeps == [7.5, 12.5, 22.5, 42.5]
    assert client.request_count == 5


def test_503_honours_retry_after(graph, rec):
    graph.reply(503, headers={"Retry-After": "2"})
    graph.reply()
    list(make_client(graph.url, rec).iter_user_pages())
    assert rec.sleeps == [2.0]


def test_wait_beyond_budget_raises_at_once(graph, rec):
    graph.reply(
        429,
        {"error": {"code": "TooManyRequests", "message": "Slow down"}},
        {"Retry-After": "120", "request-id": "req-9"},
    )
    client = make_client(graph.url, rec)
    with pytest.raises(gc.ThrottledError) as caught:
        list(client.iter_user_pages())
    assert rec.sleeps == []
    assert client.request_count == 1
    error = caught.value
    assert (error.retry_after, error.status, error.code, error.request_id, error.detail) == (
        120.0,
        429,
        "TooManyRequests",
        "req-9",
        "Slow down",
    )


def test_budget_counts_all_waits_of_one_call(graph, rec):
    for _ in range(5):
        graph.reply(503)
    client = make_client(graph.url, rec)  # max_wait=60: 7.5 + 12.5 + 22.5, then 42.5 is too much
    with pytest.raises(gc.ServiceUnavailableError) as caught:
        list(client.iter_user_pages())
    assert rec.sleeps == [7.5, 12.5, 22.5]
    assert client.request_count == 4
    assert caught.value.retry_after == 42.5


def test_429_retries_exhausted(graph, rec):
    for _ in range(3):
        graph.reply(429, headers={"Retry-After": "1"})
    client = make_client(graph.url, rec, max_attempts=3)
    with pytest.raises(gc.ThrottledError) as caught:
        list(client.iter_user_pages())
    assert rec.sleeps == [1.0, 1.0]
    assert client.request_count == 3
    assert caught.value.retry_after == 1.0


def test_a_tighter_budget_gives_up_sooner_and_never_loosens(graph, rec):
    for _ in range(5):
        graph.reply(503)
    client = make_client(graph.url, rec).limit_budget(max_attempts=2, max_wait=600)
    assert (client.max_attempts, client.max_wait) == (2, 60.0)  # 600 s would loosen the wait
    with pytest.raises(gc.ServiceUnavailableError):
        list(client.iter_user_pages())
    assert client.request_count == 2
    assert rec.sleeps == [7.5]


def test_budget_is_per_call(graph, rec):
    graph.reply(429, headers={"Retry-After": "40"}, body={"value": []})
    graph.reply(body={"value": [], "@odata.nextLink": f"{graph.url}/v1.0/users?p=2"})
    graph.reply(429, headers={"Retry-After": "40"})
    graph.reply()
    assert len(list(make_client(graph.url, rec).iter_user_pages())) == 2
    assert rec.sleeps == [40.0, 40.0]


def test_connection_errors_back_off_then_fail(rec):
    client = make_client(f"http://127.0.0.1:{free_port()}", rec, max_attempts=2)
    with pytest.raises(gc.ServiceUnavailableError):
        list(client.iter_user_pages())
    assert rec.sleeps == [7.5]
    assert client.request_count == 2


def test_timeout_is_retried(graph, rec):
    graph.reply(delay=1)
    graph.reply(body={"value": [{"id": "1"}]})
    client = make_client(graph.url, rec, timeout=(2, 0.2))
    assert list(client.iter_user_pages()) == [[{"id": "1"}]]
    assert rec.sleeps == [7.5]
    assert client.request_count == 2


def test_timeouts_exhausted(graph, rec):
    graph.reply(delay=1)
    graph.reply(delay=1)
    client = make_client(graph.url, rec, timeout=(2, 0.2), max_attempts=2)
    with pytest.raises(gc.ServiceUnavailableError):
        list(client.iter_user_pages())


def _ssl_error(reason):
    return requests.exceptions.SSLError(urllib3.exceptions.MaxRetryError(
        None, "/v1.0/users", urllib3.exceptions.SSLError(reason)))


class ScriptedSession:
    """A Session stand-in that raises the given exceptions, then answers an empty page."""

    def __init__(self, *exceptions):
        self.exceptions = list(exceptions)

    def get(self, url, **kwargs):
        if self.exceptions:
            raise self.exceptions.pop(0)
        response = requests.Response()
        response.status_code, response._content = 200, b'{"value": []}'
        return response


@pytest.mark.parametrize(
    ("exception", "retried"),
    [
        (requests.exceptions.ChunkedEncodingError("connection dropped mid-body"), True),
        (requests.exceptions.ConnectTimeout("no answer"), True),
        # What requests raises: urllib3's errors around the ssl module's.
        (_ssl_error(ssl.SSLCertVerificationError(1, "CERTIFICATE_VERIFY_FAILED")), False),
        # A pooled connection the server closed: the TLS layer's EOF, or a reset.
        (_ssl_error(ssl.SSLEOFError(8, "EOF occurred in violation of protocol")), True),
        (requests.exceptions.ConnectionError(
            urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))),
         True),
        (requests.exceptions.InvalidHeader("bad header"), False),
    ],
)
def test_transport_errors(rec, exception, retried):
    client = make_client("https://graph.example", rec, session=ScriptedSession(exception))
    if retried:
        assert list(client.iter_user_pages()) == [[]]
        assert (client.request_count, rec.sleeps) == (2, [7.5])
    else:
        with pytest.raises(gc.ServiceUnavailableError):
            client.probe()
        assert (client.request_count, rec.sleeps) == (1, [])


# Authentication and errors


def test_401_refreshes_the_token_once(graph, rec):
    graph.reply(401, {"error": {"code": "InvalidAuthenticationToken"}})
    graph.reply()
    client = make_client(graph.url, rec)
    list(client.iter_user_pages())
    assert rec.token_calls == [False, True]
    assert [h["Authorization"] for _p, h in graph.requests] == ["Bearer tok-0", "Bearer tok-1"]
    assert rec.sleeps == []


def test_second_401_is_an_authentication_error(graph, rec):
    graph.reply(401, {"error": {"code": "InvalidAuthenticationToken", "message": "Expired"}})
    graph.reply(401, {"error": {"code": "InvalidAuthenticationToken", "message": "Expired"}})
    client = make_client(graph.url, rec)
    with pytest.raises(gc.AuthenticationError) as caught:
        list(client.iter_user_pages())
    assert (caught.value.status, caught.value.code) == (401, "InvalidAuthenticationToken")
    assert rec.token_calls == [False, True]
    assert client.request_count == 2


def test_token_provider_errors_propagate(graph, rec):
    def token(force_refresh):
        raise gc.ConsentMissingError("AADSTS700016: gone", code="AADSTS700016")

    client = gc.GraphClient(graph.url, token)
    with pytest.raises(gc.ConsentMissingError):
        client.probe()
    assert client.request_count == 0


def test_token_errors_are_retried_within_the_budget_and_a_closed_client_sends_nothing(graph, rec):
    answers = [gc.ServiceUnavailableError("AADSTS90033", retry_after=2.0), gc.ServiceUnavailableError("503")]

    def token(force_refresh):
        if answers:
            raise answers.pop(0)
        return rec.token(force_refresh)

    graph.reply(body={"value": [{"id": "1"}]})
    client = gc.GraphClient(graph.url, token, sleep=rec.sleeps.append, jitter=lambda: 0.0)
    client.probe()
    assert rec.sleeps == [2.0, 10.0]  # what the login service asked, then the backoff
    assert rec.token_calls == [False] and client.request_count == 1
    client.close()
    with pytest.raises(gc.ServiceUnavailableError, match="has ended"):
        client.probe()
    assert rec.token_calls == [False] and client.request_count == 1


def test_403_request_denied_is_permission_denied(graph, rec):
    for _ in range(2):  # a new token is tried once: it may carry a permission granted since
        graph.reply(
            403,
            {
                "error": {
                    "code": "Authorization_RequestDenied",
                    "message": "Insufficient privileges to complete the operation.",
                    "innerError": {"request-id": "r-1", "date": "2025-01-01T00:00:00"},
                }
            },
        )
    with pytest.raises(gc.PermissionDeniedError) as caught:
        make_client(graph.url, rec).probe()
    assert rec.token_calls == [False, True]
    assert [h["Authorization"] for _p, h in graph.requests] == ["Bearer tok-0", "Bearer tok-1"]
    error = caught.value
    assert (error.status, error.request_id) == (403, "r-1")
    assert error.code == "Authorization_RequestDenied"
    assert error.detail == "Insufficient privileges to complete the operation."


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (403, {"error": {"code": "Forbidden", "message": "No"}}, "Forbidden"),
        (400, {"error": {"code": "Request_BadRequest", "message": "Bad $top"}}, "Request_BadRequest"),
        (404, "not json", None),
        (302, "", None),  # a redirect is not followed
    ],
)
def test_other_client_errors_are_graph_errors(graph, rec, status, body, code):
    graph.reply(status, body, {"Location": "https://evil.example/"} if status == 302 else None)
    client = make_client(graph.url, rec)
    with pytest.raises(gc.GraphError) as caught:
        client.probe()
    assert type(caught.value) is gc.GraphError
    assert (caught.value.status, caught.value.code) == (status, code)
    assert client.request_count == 1
    assert rec.sleeps == []


@pytest.mark.parametrize(
    "body",
    [
        "<html>proxy</html>",
        [{"id": "1"}],
        {"value": {"id": "1"}},
        {"no": "value"},
        {"value": [], "@odata.nextLink": 42},
    ],
)
def test_malformed_responses(graph, rec, body):
    graph.reply(200, body)
    with pytest.raises(gc.MalformedResponseError):
        list(make_client(graph.url, rec).iter_user_pages())


def test_own_session_has_no_retries(rec):
    client = make_client("https://graph.microsoft.com", rec)
    assert isinstance(client.session, requests.Session)
    assert client.session.get_adapter("https://graph.microsoft.com").max_retries.total == 0


# MSAL glue


class FakeResponse:
    def __init__(self, status, body, headers=None):
        self.status_code = status
        self.text = body if isinstance(body, str) else json.dumps(body)
        self.headers = headers or {}

    def raise_for_status(self):
        if self.status_code >= 400:
            raise requests.HTTPError(str(self.status_code))


class FakeLogin:
    """An MSAL http_client: answers OpenID discovery and token POSTs, records every call."""

    def __init__(self, discovery=None, token=None):
        self.calls = []
        self.discovery = discovery
        self.token = token or FakeResponse(
            200, {"access_token": "at-1", "token_type": "Bearer", "expires_in": 3600}
        )

    def get(self, url, params=None, headers=None, **kwargs):
        self.calls.append(("GET", url))
        if "/discovery/instance" in url:  # what MSAL asks login.microsoftonline.com
            return FakeResponse(404, "not answered")
        if isinstance(self.discovery, Exception):
            raise self.discovery
        base = url.split("/v2.0/")[0]
        return self.discovery or FakeResponse(
            200,
            {
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "token_endpoint": f"{base}/oauth2/v2.0/token",
            },
        )

    def post(self, url, params=None, data=None, headers=None, **kwargs):
        self.calls.append(("POST", url, data.get("scope")))
        if isinstance(self.token, Exception):
            raise self.token
        return self.token

    def close(self):
        pass


def build(login, endpoint="https://127.0.0.1:8443"):
    return gc.build_msal_app("client", "secret", endpoint + "/", "tenant-1", http_cache={}, http_client=login)


def test_build_msal_app_for_an_emulator_skips_instance_discovery():
    login = FakeLogin()
    app = build(login)
    assert login.calls == [("GET", "https://127.0.0.1:8443/tenant-1/v2.0/.well-known/openid-configuration")]
    assert app.authority.token_endpoint == "https://127.0.0.1:8443/tenant-1/oauth2/v2.0/token"


def test_build_msal_app_for_the_public_cloud():
    login = FakeLogin()
    build(login, "https://login.microsoftonline.com")
    assert login.calls == [
        ("GET", "https://login.microsoftonline.com/tenant-1/v2.0/.well-known/openid-configuration")
    ]


@pytest.mark.parametrize(
    ("discovery", "error_class"),
    [
        (
            FakeResponse(
                400,
                {
                    "error": "invalid_tenant",
                    "error_codes": [90002],
                    "error_description": "AADSTS90002: Tenant 'tenant-1' not found.",
                },
            ),
            gc.TenantNotFoundError,
        ),
        (FakeResponse(404, "<html>not here</html>"), gc.AuthenticationError),
        (FakeResponse(503, "busy"), gc.ServiceUnavailableError),
        (FakeResponse(200, "<html>captive portal</html>"), gc.MalformedResponseError),
        (FakeResponse(200, {"issuer": "x"}), gc.MalformedResponseError),
        (requests.ConnectionError("refused"), gc.ServiceUnavailableError),
        (requests.Timeout("slow"), gc.ServiceUnavailableError),
    ],
)
def test_build_msal_app_errors(discovery, error_class):
    with pytest.raises(error_class) as caught:
        build(FakeLogin(discovery))
    assert type(caught.value) is error_class


def test_build_msal_app_tenant_not_found_details():
    login = FakeLogin(
        FakeResponse(
            400,
            {
                "error": "invalid_tenant",
                "error_codes": [90002],
                "error_description": "AADSTS90002: Tenant not found.",
                "trace_id": "trace-1",
            },
        )
    )
    with pytest.raises(gc.TenantNotFoundError) as caught:
        build(login)
    error = caught.value
    assert (error.status, error.code, error.request_id) == (400, "AADSTS90002", "trace-1")
    assert error.detail == "AADSTS90002: Tenant not found."


def test_build_msal_app_gives_msal_a_session_that_never_sleeps(monkeypatch):
    seen = {}
    monkeypatch.setattr(
        msal, "ConfidentialClientApplication", lambda client_id, **kwargs: seen.update(kwargs)
    )
    gc.build_msal_app("client", "secret", "https://login.microsoftonline.com", "tenant-1")
    assert isinstance(seen["http_client"], gc.MsalSession)
    assert seen["instance_discovery"] is False
    assert seen["authority"] == "https://login.microsoftonline.com/tenant-1"


def test_msal_session_neither_retries_nor_hangs(graph):
    session = gc.MsalSession(timeout=(2, 0.2))
    graph.reply(503, "busy", {"Retry-After": "30"})
    started = time.monotonic()
    assert session.get(graph.url + "/t/v2.0/.well-known/openid-configuration").status_code == 503
    assert time.monotonic() - started < 5 and len(graph.requests) == 1
    graph.reply(delay=1)
    with pytest.raises(requests.Timeout):
        session.get(graph.url + "/slow")


def test_build_msal_app_refuses_plain_http():
    with pytest.raises(gc.AuthenticationError):
        build(FakeLogin(), "http://127.0.0.1:8080")


def test_acquire_app_token_uses_msal_cache_and_force_refresh():
    login = FakeLogin()
    app = build(login, "https://login.microsoftonline.com")
    assert gc.acquire_app_token(app, "https://graph.microsoft.com/") == "at-1"
    assert gc.acquire_app_token(app, "https://graph.microsoft.com") == "at-1"
    posts = [call for call in login.calls if call[0] == "POST"]
    assert posts == [
        (
            "POST",
            "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token",
            "https://graph.microsoft.com/.default",
        )
    ]
    login.token = FakeResponse(200, {"access_token": "at-2", "expires_in": 3600})
    assert gc.acquire_app_token(app, "https://graph.microsoft.com", force_refresh=True) == "at-2"
    # Only discovery and two token requests: no instance-discovery lookup for aliases.
    assert [call[0] for call in login.calls] == ["GET", "POST", "POST"]


@pytest.mark.parametrize("login_endpoint", ["https://127.0.0.1:8443", "https://login.microsoftonline.com"])
def test_acquire_app_token_maps_real_msal_errors(login_endpoint):
    login = FakeLogin(
        token=FakeResponse(
            400,
            {
                "error": "unauthorized_client",
                "error_codes": [700016],
                "error_description": "AADSTS700016: Application with identifier 'client' was not found.",
            },
        )
    )
    with pytest.raises(gc.ConsentMissingError):
        gc.acquire_app_token(build(login, login_endpoint), "https://graph.microsoft.com")
    assert not [call for call in login.calls if "/discovery/instance" in call[1]]


class StubApp:
    """Returns MSAL-shaped results (or raises) like ConfidentialClientApplication."""

    client_id = "client"

    def __init__(self, result):
        self.result = result
        self.scopes = []
        self.token_cache = msal.TokenCache()

    def acquire_token_for_client(self, scopes):
        self.scopes.append(scopes)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def aad(error, code, text=None):
    return {
        "error": error,
        "error_codes": [code],
        "trace_id": "t-1",
        "error_description": text or f"AADSTS{code}: something went wrong",
    }


@pytest.mark.parametrize(
    ("result", "error_class", "code"),
    [
        (aad("unauthorized_client", 700016), gc.ConsentMissingError, "AADSTS700016"),
        (aad("invalid_grant", 65001), gc.ConsentMissingError, "AADSTS65001"),
        (aad("invalid_client", 7000215), gc.ClientSecretError, "AADSTS7000215"),
        (aad("invalid_client", 7000222), gc.ClientSecretError, "AADSTS7000222"),
        (aad("invalid_request", 90002), gc.TenantNotFoundError, "AADSTS90002"),
        (
            {"error": "invalid_tenant", "error_description": "no such tenant"},
            gc.TenantNotFoundError,
            "invalid_tenant",
        ),
        (aad("invalid_request", 50000), gc.AuthenticationError, "AADSTS50000"),
        (aad("temporarily_unavailable", 90033), gc.ServiceUnavailableError, "AADSTS90033"),
        ({"error": "temporarily_unavailable"}, gc.ServiceUnavailableError, "temporarily_unavailable"),
        # The text is never used to decide: Microsoft says it may change.
        (
            aad("invalid_client", 7000215, "AADSTS700016: looks like consent"),
            gc.ClientSecretError,
            "AADSTS7000215",
        ),
        ({}, gc.MalformedResponseError, None),
        (None, gc.MalformedResponseError, None),
        ({"token_type": "Bearer"}, gc.MalformedResponseError, None),
    ],
)
def test_acquire_app_token_error_mapping(result, error_class, code):
    app = StubApp(result)
    with pytest.raises(error_class) as caught:
        gc.acquire_app_token(app, "https://graph.microsoft.com")
    assert type(caught.value) is error_class
    assert caught.value.code == code
    assert app.scopes == [["https://graph.microsoft.com/.default"]]


def test_client_secret_error_tells_expired_from_invalid():
    for code, expired in ((7000215, False), (7000222, True)):
        with pytest.raises(gc.ClientSecretError) as caught:
            gc.acquire_app_token(StubApp(aad("invalid_client", code)), "https://graph")
        assert caught.value.expired is expired
        assert caught.value.request_id == "t-1"
        assert caught.value.detail == f"AADSTS{code}: something went wrong"


@pytest.mark.parametrize(
    ("exception", "error_class"),
    [
        (requests.ConnectionError("refused"), gc.ServiceUnavailableError),
        (requests.Timeout("slow"), gc.ServiceUnavailableError),
        (
            msal.exceptions.MsalServiceError(
                "HTTP Error: 503", error="http_error", error_description="HTTP Error: 503"
            ),
            gc.ServiceUnavailableError,
        ),
        (json.JSONDecodeError("Expecting value", "<html>", 0), gc.MalformedResponseError),
    ],
)
def test_acquire_app_token_transport_errors(exception, error_class):
    with pytest.raises(error_class):
        gc.acquire_app_token(StubApp(exception), "https://graph.microsoft.com")


def test_acquire_app_token_returns_the_access_token():
    app = StubApp({"access_token": "at", "token_type": "Bearer", "token_source": "cache"})
    assert gc.acquire_app_token(app, "https://graph.microsoft.com") == "at"


def test_error_hierarchy():
    for cls in (gc.ConsentMissingError, gc.ClientSecretError, gc.TenantNotFoundError):
        assert issubclass(cls, gc.AuthenticationError)
    for cls in (
        gc.AuthenticationError,
        gc.PermissionDeniedError,
        gc.ThrottledError,
        gc.ServiceUnavailableError,
        gc.MalformedResponseError,
        gc.UntrustedHostError,
    ):
        assert issubclass(cls, gc.GraphError)


# What Microsoft sends is input: waits, paging, identities


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 30 ", 30.0),
        ("²", None),  # a Unicode digit: "²".isdigit() is True, float("²") fails
        ("٣", None),
        ("1e3", None),
        ("-5", None),
        ("999999", 3600.0),  # 11.6 days asked: an hour at most
        ("9" * 20, 3600.0),  # float() of it would be 1e20, and timedelta overflows
        ("9" * 5000, 3600.0),  # int() refuses strings this long
        ("0" * 30 + "12", 12.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 3600.0),
        ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
        ("", None),
        ("soon", None),
    ],
)
def test_retry_after_is_ascii_seconds_or_a_date_clamped_to_an_hour(header, expected):
    assert gc._retry_after(header) == expected


def test_hostile_retry_after_reaches_the_caller_finite_and_clamped(graph, rec):
    graph.reply(429, headers={"Retry-After": "9" * 20})
    client = make_client(graph.url, rec)
    with pytest.raises(gc.ThrottledError) as caught:
        client.probe()
    assert caught.value.retry_after == gc.MAX_RETRY_AFTER
    assert rec.sleeps == []  # beyond the wait budget: raised at once, no sleep
    graph.reply(429, headers={"Retry-After": "²"})  # unusable: the normal backoff
    graph.reply()
    client.probe()
    assert rec.sleeps == [7.5]


def test_paging_stops_at_the_page_cap_with_new_links_each_time(graph, rec):
    for n in range(4):  # a new skiptoken each time: the same-link guard never fires
        graph.reply(
            body={"value": [{"id": str(n)}], "@odata.nextLink": f"{graph.url}/v1.0/users?$skiptoken={n}"}
        )
    client = make_client(graph.url, rec, max_pages=3)
    pages = client.iter_user_pages()
    assert [next(pages) for _ in range(3)] == [[{"id": "0"}], [{"id": "1"}], [{"id": "2"}]]
    with pytest.raises(gc.PagingLimitError, match="more than 3 pages"):
        next(pages)
    assert client.request_count == 3
    assert issubclass(gc.PagingLimitError, gc.MalformedResponseError)


def test_paging_stops_at_the_overall_deadline(graph, rec):
    now = [0.0]
    for n in range(3):
        graph.reply(body={"value": [], "@odata.nextLink": f"{graph.url}/v1.0/users?p={n}"})
    client = make_client(graph.url, rec, paging_deadline=100, clock=lambda: now[0])
    pages = client.iter_user_pages()
    next(pages)
    now[0] = 60.0
    next(pages)
    now[0] = 101.0
    with pytest.raises(gc.PagingLimitError, match="more than 100 s"):
        next(pages)
    assert client.request_count == 2


def test_403_then_no_token_at_all_raises_the_403(graph, rec):
    graph.reply(403, {"error": {"code": "Authorization_RequestDenied", "message": "No"}})

    def token(force_refresh):
        if force_refresh:
            raise gc.ConsentMissingError("AADSTS700016: gone", code="AADSTS700016")
        return "tok"

    with pytest.raises(gc.PermissionDeniedError) as caught:
        gc.GraphClient(graph.url, token).probe()
    assert isinstance(caught.value.__cause__, gc.ConsentMissingError)
    assert len(graph.requests) == 1


@pytest.mark.parametrize("status", [401, 403])
def test_identity_not_found_means_consent_missing(graph, rec, status):
    body = {
        "error": {
            "code": "Authorization_IdentityNotFound",
            "message": "The identity of the calling application could not be established.",
        }
    }
    graph.reply(status, body)
    graph.reply(status, body)
    with pytest.raises(gc.IdentityNotFoundError) as caught:
        make_client(graph.url, rec).probe()
    assert isinstance(caught.value, gc.ConsentMissingError)
    assert (caught.value.status, caught.value.code) == (status, "Authorization_IdentityNotFound")


def test_token_claims_and_the_tenant_of_the_token_used(graph):
    def jwt(claims):
        part = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        return f"eyJhbGciOiJSUzI1NiJ9.{part}.sig"

    assert gc.token_claims(jwt({"tid": "t-1", "roles": ["User.Read.All"]}))["roles"] == ["User.Read.All"]
    for opaque in ("opaque", "a.!!!.c", "a.WzFd.c", None, jwt(["not", "a", "dict"])):
        assert gc.token_claims(opaque) == {}
    graph.reply()
    client = gc.GraphClient(graph.url, lambda force_refresh: jwt({"tid": "t-1"}))
    assert client.token_tenant_id is None
    client.probe()
    assert client.token_tenant_id == "t-1"


def test_search_groups_request(graph, rec):
    group = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a01"
    graph.reply(
        body={
            "value": [
                {"id": group, "displayName": "Sales"},
                {"id": "junk"},
                "junk",
                {"id": group.upper(), "displayName": 7},
            ]
        }
    )
    client = make_client(graph.url, rec)
    assert client.search_groups('  Say  "hi" \\ ', limit=5) == [
        {"id": group, "displayName": "Sales"},
        {"id": group.upper(), "displayName": ""},
    ]
    path, headers = graph.requests[0]
    assert path == (
        "/v1.0/groups?$search=%22displayName:Say%20%5C%22hi%5C%22%20%5C%5C%22&$select=id,displayName&$top=5"
    )
    assert headers["ConsistencyLevel"] == "eventual"
    assert client.search_groups("   ") == [] and len(graph.requests) == 1


def test_thread_local_http_cache_is_one_dict_per_thread():
    cache = gc.ThreadLocalHttpCache()
    cache["discovery"] = "main"
    seen = {}

    def other():
        seen["before"] = cache.get("discovery")
        cache["discovery"] = "other"
        seen["after"] = dict(cache)

    thread = threading.Thread(target=other)
    thread.start()
    thread.join()
    assert seen == {"before": None, "after": {"discovery": "other"}}
    assert dict(cache) == {"discovery": "main"} and len(cache) == 1
    assert cache.pop("discovery") == "main" and "discovery" not in cache
    cache["x"] = 1
    cache.clear()  # every live thread's dict: tests start clean whichever thread filled it
    assert len(cache) == 0 and cache.thread_count == 1  # the other thread's dict died with it


def test_thread_local_http_cache_forgets_the_dicts_of_ended_threads():
    """A threaded server starts and ends threads all the time: their dicts must not pile up."""
    cache = gc.ThreadLocalHttpCache()
    cache["discovery"] = "main"
    started = threading.Barrier(21)
    proceed = threading.Event()

    def short_lived(number):
        cache["discovery"] = number
        started.wait()
        proceed.wait()

    try:
        for _round in range(10):  # 200 threads in all, 20 alive at a time
            threads = [threading.Thread(target=short_lived, args=(n,), daemon=True) for n in range(20)]
            for thread in threads:
                thread.start()
            started.wait(timeout=10)
            assert cache.thread_count == 21  # while they live, each has its own dict
            proceed.set()
            for thread in threads:
                thread.join()
            proceed.clear()
            started.reset()
    finally:
        proceed.set()  # a failed assertion leaves no thread waiting
    assert cache.thread_count == 1 and dict(cache) == {"discovery": "main"}


@pytest.mark.parametrize(
    ("last_page", "error"),
    [
        ({"value": []}, gc.MalformedResponseError),
        ({"value": [], "@odata.deltaLink": 7}, gc.MalformedResponseError),
        (
            {"value": [], "@odata.deltaLink": "https://evil.example/v1.0/users/delta?$deltatoken=x"},
            gc.UntrustedHostError,
        ),
    ],
)
def test_a_delta_round_must_end_with_a_delta_link_on_the_graph_host(graph, rec, last_page, error):
    graph.reply(
        body={
            "value": [{"id": "1"}],
            "@odata.nextLink": f"{graph.url}/v1.0/users/delta?p=2",
            "@odata.deltaLink": f"{graph.url}/v1.0/users/delta?$deltatoken=early",
        }
    )
    graph.reply(body=last_page)
    delta = make_client(graph.url, rec).user_delta(select=("id", "mail"), changed_properties_only=True)
    with pytest.raises(error):
        list(delta)
    assert delta.delta_link is None
    assert graph.paths[0] == "/v1.0/users/delta?$select=id,mail"
    assert all(headers["Prefer"] == "return=minimal" for _path, headers in graph.requests)


def test_removal_reason():
    assert gc.removal_reason({"id": "1"}) is None
    assert gc.removal_reason({"id": "1", "@removed": {"reason": "changed"}}) == "changed"
    assert gc.removal_reason({"id": "1", "@removed": {"reason": "deleted"}}) == "deleted"
    assert gc.removal_reason({"id": "1", "@removed": {}}) == "deleted"  # unknown: gone
    assert gc.removal_reason({"id": "1", "@removed": "yes"}) == "deleted"
    assert gc.removal_reason("junk") is None
