"""graph_client against the fake Entra ID / Graph (real MSAL, real HTTPS): what Microsoft does
after a consent, with permissions, groups, other clouds and redirects."""

import threading
import time

import certifi
import msal
import pytest
import requests

from odoo.addons.azure_ad_contacts.utils import graph_client as gc

from fake_entra import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, generate_users

from .common import CONTOSO_ID, fake_entra

SALES = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a01"
SALES_EMEA = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a02"


@pytest.fixture
def fake():
    server = fake_entra()  # sets REQUESTS_CA_BUNDLE for MSAL and requests
    server.reset()
    server.set_consent(CONTOSO_ID, True)
    yield server
    server.reset()


def new_app(fake, http_cache=None, token_cache=None, tenant=CONTOSO_ID):
    return gc.build_msal_app(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        fake.base_url,
        tenant,
        token_cache=token_cache or msal.SerializableTokenCache(),
        http_cache={} if http_cache is None else http_cache,
    )


def new_client(fake, app=None, graph=None, **kwargs):
    app = app or new_app(fake)
    graph = graph or fake.base_url
    return gc.GraphClient(
        graph,
        lambda force_refresh: gc.acquire_app_token(app, graph, force_refresh),
        sleep=lambda seconds: None,
        **kwargs,
    )


def token_requests(fake):
    return fake.stats()["counts"]["token"]


# ---------------------------------------------------------------------- tokens and permissions
def test_the_tenant_of_the_token_used(fake):
    client = new_client(fake)
    client.probe()
    assert client.token_tenant_id == CONTOSO_ID


def test_a_permission_granted_after_the_token_was_issued_is_picked_up_once(fake):
    fake.set_roles(CONTOSO_ID, ["Domain.Read.All"])
    app = new_app(fake)
    gc.acquire_app_token(app, fake.base_url)  # cached, without User.Read.All
    fake.set_roles(CONTOSO_ID, ["User.Read.All"])  # the customer's admin grants it now
    fake.reset_stats()
    new_client(fake, app).probe()
    # 403 Authorization_RequestDenied → the cached token dropped, a new one, the read again.
    assert [(r["path"].split("?")[0].split("/")[-1], r["status"]) for r in fake.stats()["requests"]] == [
        ("users", 403),
        ("token", 200),
        ("users", 200),
    ]


def test_a_permission_never_granted_is_refused_after_one_new_token(fake):
    fake.set_roles(CONTOSO_ID, ["Domain.Read.All"])
    client = new_client(fake)
    with pytest.raises(gc.PermissionDeniedError) as caught:
        client.probe()
    assert caught.value.code == "Authorization_RequestDenied"
    assert token_requests(fake) == 2 and client.request_count == 2


# ---------------------------------------------------------------------- errors with a remedy
def test_identity_not_found(fake):
    fake.add_fault(kind="identity_not_found", target="users", count=2)  # the new token too
    with pytest.raises(gc.IdentityNotFoundError) as caught:
        new_client(fake).probe()
    assert (caught.value.status, caught.value.code) == (401, "Authorization_IdentityNotFound")
    assert isinstance(caught.value, gc.ConsentMissingError)  # remedy: reconnect


def test_app_disabled_in_the_tenant(fake):
    fake.add_fault(kind="app_disabled", target="token")
    with pytest.raises(gc.AppDisabledError) as caught:
        new_client(fake).probe()
    assert caught.value.code == "AADSTS7000112"
    assert isinstance(caught.value, gc.ConsentMissingError)  # remedy: reconnect


def test_graph_endpoint_of_another_cloud(fake):
    # The token endpoint knows no resource https://graph.microsoft.us in this cloud.
    client = new_client(fake, graph="https://graph.microsoft.us")
    with pytest.raises(gc.CloudMismatchError) as caught:
        client.probe()
    assert caught.value.code == "AADSTS500011"
    assert client.request_count == 0
    fake.add_fault(kind="resource_not_found", target="token")
    with pytest.raises(gc.CloudMismatchError):
        new_client(fake).probe()


def test_msal_follows_no_redirect(fake):
    # Followed, this 307 would re-send the client secret to where it points (here: the fake
    # itself under another name, which would then issue a token).
    moved_to = fake.base_url.replace("127.0.0.1", "localhost") + f"/{CONTOSO_ID}/oauth2/v2.0/token"
    fake.add_fault(kind="redirect", target="token", location=moved_to)
    with pytest.raises(gc.UntrustedHostError, match="redirected a POST request"):
        new_client(fake).probe()
    assert token_requests(fake) == 1


# ---------------------------------------------------------------------- groups
def test_group_members_by_the_documented_query_keep_only_users(fake):
    users = generate_users(1200, seed=3, domain="contoso.example", plain=True)
    fake.set_users(CONTOSO_ID, users)
    fake.set_groups(
        CONTOSO_ID,
        [
            {"id": SALES, "members": [u["id"] for u in users[:1000]] + [SALES_EMEA]},
            {"id": SALES_EMEA, "members": [u["id"] for u in users[900:1100]]},
        ],
    )
    fake.reset_stats()
    ids = list(new_client(fake).group_member_ids(SALES.upper()))
    assert sorted(ids) == sorted(u["id"] for u in users[:1100])  # no group among them
    paths = [r["path"] for r in fake.stats()["requests"] if "/groups/" in r["path"]]
    assert paths[0] == f"/v1.0/groups/{SALES}/transitiveMembers?$select=id&$top=999"
    assert len(paths) == 2


def test_group_errors(fake):
    fake.set_groups(CONTOSO_ID, [{"id": SALES, "members": []}])
    with pytest.raises(gc.GroupNotFoundError):
        list(new_client(fake).group_member_ids(SALES_EMEA))
    fake.set_groups_readable(CONTOSO_ID, False)
    with pytest.raises(gc.GroupPermissionError):
        list(new_client(fake).group_member_ids(SALES))


def test_search_groups(fake):
    fake.set_groups(
        CONTOSO_ID,
        [
            {"id": SALES, "displayName": "Sales Team", "members": []},
            {"id": SALES_EMEA, "displayName": 'Sales "EMEA"', "members": []},
        ],
    )
    client = new_client(fake)
    assert client.search_groups("sal") == [
        {"id": SALES, "displayName": "Sales Team"},
        {"id": SALES_EMEA, "displayName": 'Sales "EMEA"'},
    ]
    assert client.search_groups('"emea"') == [{"id": SALES_EMEA, "displayName": 'Sales "EMEA"'}]
    assert client.search_groups("team", limit=1) == [{"id": SALES, "displayName": "Sales Team"}]
    assert client.search_groups("marketing") == []
    fake.set_groups_readable(CONTOSO_ID, False)
    with pytest.raises(gc.PermissionDeniedError):
        new_client(fake).search_groups("sal")


# ---------------------------------------------------------------------- paging and waits
def test_paging_cap_against_the_fake(fake):
    fake.set_users(CONTOSO_ID, generate_users(30, seed=1, domain="contoso.example", plain=True))
    client = new_client(fake, max_pages=2)
    pages = client.iter_user_pages(top=10)
    assert [len(next(pages)) for _ in range(2)] == [10, 10]
    with pytest.raises(gc.PagingLimitError):
        next(pages)


def test_retry_after_from_the_fake_is_clamped(fake):
    fake.add_fault(kind="429", target="users", retry_after="9" * 20)
    with pytest.raises(gc.ThrottledError) as caught:
        new_client(fake).probe()
    assert caught.value.retry_after == gc.MAX_RETRY_AFTER


# ---------------------------------------------------------------------- MSAL's HTTP cache
def test_thread_local_http_cache_with_real_msal(fake):
    cache = gc.ThreadLocalHttpCache()
    new_app(fake, http_cache=cache)
    new_app(fake, http_cache=cache)  # the discovery document comes from this thread's cache
    assert fake.stats()["counts"]["openid"] == 1
    thread = threading.Thread(target=new_app, args=(fake, cache))
    thread.start()
    thread.join()
    assert fake.stats()["counts"]["openid"] == 2  # another thread, its own cache
    cache.clear()
    new_app(fake, http_cache=cache)
    assert fake.stats()["counts"]["openid"] == 3


# ---------------------------------------------------------------------- consent proof
class Factory:
    """An app_factory for prove_consent that records what it was given and built."""

    def __init__(self, fake, tenant=CONTOSO_ID):
        self.fake, self.tenant = fake, tenant
        self.http_caches, self.apps = [], []

    def __call__(self, http_cache):
        assert http_cache == {} and all(http_cache is not seen for seen in self.http_caches)
        self.http_caches.append(http_cache)
        self.apps.append(new_app(self.fake, http_cache=http_cache, tenant=self.tenant))
        return self.apps[-1]


def prove(fake, factory=None, **kwargs):
    waits = []
    proof = gc.prove_consent(
        factory or Factory(fake),
        fake.base_url,
        CONTOSO_ID,
        timeout=kwargs.pop("timeout", 10),
        interval=0.2,
        on_wait=lambda error, attempt, remaining: waits.append((type(error), attempt)),
        **kwargs,
    )
    return proof, waits


@pytest.mark.parametrize(
    ("symptom", "error"),
    [
        ("token", gc.ConsentMissingError),  # AADSTS700016 from the token endpoint
        ("graph", gc.IdentityNotFoundError),  # Graph 401 Authorization_IdentityNotFound
        ("roles", gc.PermissionDeniedError),  # a token without the new permission
    ],
)
def test_prove_consent_waits_while_microsoft_spreads_it(fake, symptom, error):
    fake.set_consent(CONTOSO_ID, False)
    fake.set_consent_delay(1.5, symptom)
    fake.set_consent(CONTOSO_ID, True)  # the admin has just clicked Accept
    factory = Factory(fake)
    proof, waits = prove(fake, factory)
    assert proof.tenant_id == CONTOSO_ID and proof.attempts == len(factory.apps) > 1
    assert waits and all(wait == (error, n + 1) for n, wait in enumerate(waits))
    assert proof.app is factory.apps[-1]
    # Only the proof's own app holds a token; the failed tries left none.
    assert [
        bool(app.token_cache.find(msal.TokenCache.CredentialType.ACCESS_TOKEN)) for app in factory.apps
    ] == [False] * (len(factory.apps) - 1) + [True]


def test_prove_consent_gives_up_after_the_timeout(fake):
    fake.set_consent(CONTOSO_ID, False)
    fake.set_consent_delay(30)
    fake.set_consent(CONTOSO_ID, True)
    with pytest.raises(gc.ConsentMissingError) as caught:
        prove(fake, timeout=0.5)
    assert caught.value.code == "AADSTS700016"


@pytest.mark.parametrize("fault", ["app_disabled", "resource_not_found"])
def test_prove_consent_does_not_retry_what_time_does_not_fix(fake, fault):
    fake.add_fault(kind=fault, target="token")
    factory = Factory(fake)
    with pytest.raises(gc.AuthenticationError):
        prove(fake, factory)
    assert len(factory.apps) == 1


def test_prove_consent_refuses_a_token_of_another_tenant(fake):
    other = fake.tenants()[1]["tenant_id"]
    assert other != CONTOSO_ID
    fake.set_consent(other, True)
    with pytest.raises(gc.TenantMismatchError):
        prove(fake, Factory(fake, tenant=other))
    fake.set_opaque_tokens(True)  # the authority decides, not what a token says
    with pytest.raises(gc.TenantMismatchError):
        prove(fake, Factory(fake, tenant=other))


def test_prove_consent_with_opaque_tokens(fake):
    """Access tokens are opaque to clients and may be no JWT at all: the proof rests on the
    tenant's own authority and a Graph read, and decodes nothing."""
    fake.set_opaque_tokens(True)
    proof, _waits = prove(fake)
    assert proof.tenant_id == CONTOSO_ID and proof.client.token_tenant_id is None
    assert "." not in proof.client._token


def test_prove_consent_refuses_a_readable_token_that_names_another_tenant(fake):
    """The Contoso authority hands out a JWT whose `tid` is another tenant's: refused, and
    the token is not kept."""
    other = fake.tenants()[1]["tenant_id"]
    fake.set_consent(other, True)
    foreign = new_app(fake, tenant=other)

    def factory(http_cache):
        app = new_app(fake, http_cache=http_cache)
        app.acquire_token_for_client = foreign.acquire_token_for_client
        return app

    with pytest.raises(gc.TenantMismatchError, match="is for tenant"):
        gc.prove_consent(factory, fake.base_url, CONTOSO_ID, timeout=0)


def test_user_count(fake):
    """`GET /users/$count` as an advanced query; the count Microsoft's index has."""
    fake.set_users(CONTOSO_ID, generate_users(1234, seed=3, domain="contoso.example", plain=True))
    client = new_client(fake)
    assert client.user_count() == 1234
    assert client.request_count == 1 and fake.stats()["counts"]["count"] == 1
    time.sleep(0.3)
    fake.set_index_lag(0.25)
    fake.set_users(CONTOSO_ID, generate_users(40, seed=4, domain="contoso.example", plain=True))
    assert client.user_count() == 1234  # the index has not seen the change yet


# ---------------------------------------------------------------------- delta query
def test_user_delta_rounds(fake):
    users = generate_users(450, seed=5, domain="contoso.example", plain=True)
    fake.set_users(CONTOSO_ID, users)
    client = new_client(fake)
    first = client.user_delta()
    pages = list(first)
    assert first.full and [len(page) for page in pages] == [200, 200, 50]
    assert {u["id"] for page in pages for u in page} == {u["id"] for u in users}
    assert set(pages[0][0]) <= {*gc.USER_SELECT} and "id" in pages[0][0]
    assert first.delta_link.startswith(f"{fake.base_url}/v1.0/users/delta?$deltatoken=")
    fake.update_user(CONTOSO_ID, users[0]["id"], {"jobTitle": "Chief"})
    fake.delete_user(CONTOSO_ID, users[1]["id"])
    fake.delete_user(CONTOSO_ID, users[2]["id"], permanent=True)
    fake.reset_stats()
    later = client.user_delta(first.delta_link, changed_properties_only=True)
    items = {item["id"]: item for page in later for item in page}
    assert not later.full and fake.stats()["counts"]["delta"] == 1
    assert items[users[0]["id"]] == {"id": users[0]["id"], "jobTitle": "Chief"}
    assert [gc.removal_reason(items[u["id"]]) for u in users[:3]] == [None, "changed", "deleted"]
    nothing = client.user_delta(later.delta_link)
    assert list(nothing) == [[]] and nothing.delta_link
    assert later.delta_link != first.delta_link


def test_user_delta_expired(fake):
    client = new_client(fake)
    delta = client.user_delta()
    list(delta)
    fake.expire_delta_tokens(CONTOSO_ID)
    with pytest.raises(gc.DeltaExpiredError) as caught:
        list(client.user_delta(delta.delta_link))
    assert (caught.value.status, caught.value.code) == (410, "resyncRequired")
    assert client.request_count == 2  # not retried: a full round is what helps


def test_user_delta_from_now_keeps_the_select(fake):
    """Microsoft's "sync from now": `$deltatoken=latest` on the first request (which takes the
    round's query parameters) answers no user, only the link for the changes from then on."""
    client = new_client(fake)
    now = client.user_delta(from_now=True)
    assert list(now) == [[]] and not now.full
    assert "$deltatoken=latest" in fake.stats()["requests"][-1]["path"]
    assert "$select=" in fake.stats()["requests"][-1]["path"]
    adele = fake.tenant(CONTOSO_ID)["users"][0]["id"]
    fake.update_user(CONTOSO_ID, adele, {"jobTitle": "Chief"})
    later = client.user_delta(now.delta_link)
    [[item]] = list(later)
    # Every selected property the user has, not only Microsoft's defaults.
    assert item["jobTitle"] == "Chief" and "accountEnabled" in item and "userType" in item


def listing_requests(fake):
    return [r for r in fake.stats()["requests"] if r["path"].startswith("/v1.0/users?")]


def test_the_link_from_now_is_read_beside_the_first_page_and_before_the_second(fake):
    """A first round's two round trips before its first page become one: "sync from now" and
    the first page are in flight together (the fake's log: received, answered), and every
    later page is asked for once the link is in hand."""
    fake.set_users(CONTOSO_ID, generate_users(12, seed=3, domain="contoso.example", plain=True))
    fake.set_graph_latency(150, jitter=0)
    client = new_client(fake)
    client.acquire_token()
    assert (token_requests(fake), client.request_count) == (1, 0)
    now = client.user_delta(from_now=True)
    pages = list(gc.beside_first_page(client.iter_user_pages(top=5), now))
    assert [len(page) for page in pages] == [5, 5, 2] and now.delta_link
    [link] = [r for r in fake.stats()["requests"] if "$deltatoken=latest" in r["path"]]
    first, *later = listing_requests(fake)
    assert link["received"] < first["answered"] and first["received"] < link["answered"]
    assert len(later) == 2 and all(page["received"] > link["answered"] for page in later)
    assert (token_requests(fake), client.request_count) == (1, 4)  # one token for both threads


def test_a_link_from_now_that_fails_ends_the_listing_before_its_second_page(fake):
    fake.set_users(CONTOSO_ID, generate_users(12, seed=3, domain="contoso.example", plain=True))
    fake.add_fault(kind="malformed", target="delta")
    client = new_client(fake)
    client.acquire_token()
    listing = gc.beside_first_page(client.iter_user_pages(top=5), client.user_delta(from_now=True))
    assert len(next(listing)) == 5
    with pytest.raises(gc.MalformedResponseError):
        next(listing)
    assert len(listing_requests(fake)) == 1


def test_a_listing_of_no_page_still_waits_for_the_link(fake):
    client = new_client(fake)
    client.acquire_token()
    now = client.user_delta(from_now=True)
    assert list(gc.beside_first_page(iter([]), now)) == [] and now.delta_link


# ---------------------------------------------------------------------- dropped connections
def test_a_dropped_connection_is_retried_like_a_timeout_on_graph_and_the_token_endpoint(fake):
    """The server closes the pooled keep-alive connections, and the new connection is cut
    before its TLS handshake (SSLEOFError): a network failure like a timeout, retried within
    the same budget, whether it meets a Graph request or a token request."""
    sleeps = []
    app = new_app(fake)
    client = new_client(fake, app, jitter=lambda: 0.0)
    client.sleep = sleeps.append
    client.probe()
    fake.close_connections()
    fake.cut_handshakes(1)
    client.probe()  # Graph
    assert sleeps == [5.0]
    app.remove_tokens_for_client()
    client._token = None
    fake.close_connections()
    fake.cut_handshakes(1)
    client.probe()  # the token endpoint
    assert sleeps == [5.0, 5.0]
    fake.close_connections()
    fake.cut_handshakes(100)
    with pytest.raises(gc.ServiceUnavailableError, match="EOF"):
        client.probe()
    assert sleeps == [5.0, 5.0, 5.0, 10.0, 20.0] and fake.stats()["counts"]["users"] == 3


def test_a_refused_certificate_is_not_retried(fake):
    """A server certificate that does not verify stays refused: no retry."""
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would trust the fake's CA
    session.verify = certifi.where()
    sleeps = []
    client = new_client(fake, session=session, jitter=lambda: 0.0)
    client.sleep = sleeps.append
    with pytest.raises(gc.ServiceUnavailableError, match="CERTIFICATE_VERIFY_FAILED"):
        client.probe()
    assert sleeps == [] and client.request_count == 1
