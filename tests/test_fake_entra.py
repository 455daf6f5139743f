"""The fake Entra ID + Graph server (fake_entra) against real MSAL and requests over HTTPS.

Plain pytest functions, no Odoo: run with ``python -m pytest -p no:odoo tests/test_fake_entra.py``.
"""

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import certifi
import msal
import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (unlike `python -m pytest`) doesn't add the cwd
    sys.path.insert(0, str(ROOT))

from fake_entra import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeEntra,
    FakeEntraControl,
    ensure_certs,
    generate_tenant,
    generate_users,
    load_tenant_files,
)

CONTOSO = "9188040d-6c67-4c5b-b112-36a304b66dad"
FABRIKAM = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BIG = "0b5e7a3c-2f1d-4c6b-9e8a-7d6c5b4a3f21"
UNKNOWN = "00000000-0000-4000-8000-000000000000"
SELECT = (
    "id,givenName,surname,displayName,jobTitle,mobilePhone,businessPhones,mail,"
    "userPrincipalName,proxyAddresses,otherMails,accountEnabled,userType"
)
EXPIRED_APP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fake_entra_certs"))


@pytest.fixture(scope="module")
def server(cert_dir):
    big = generate_tenant(2500, seed=42, tenant_id=BIG, name="Big Corp", domain="big.example", consented=True)
    with FakeEntra(cert_dir=cert_dir, tenants=[*load_tenant_files(), big]) as fake:
        yield fake


@pytest.fixture
def fake(server, monkeypatch):
    # requests lets REQUESTS_CA_BUNDLE override a Session's `verify` (MSAL's `verify=` too),
    # so processes that talk to the fake point this variable at the bundle.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.certs.bundle_file)
    server.reset()
    server.add_app(EXPIRED_APP, "old-secret", secret_expired=True)
    return server


def msal_app(fake, tenant=CONTOSO, client_id=DEFAULT_CLIENT_ID, secret=DEFAULT_CLIENT_SECRET):
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"{fake.base_url}/{tenant}",
        instance_discovery=False,
        http_cache={},
        verify=fake.certs.bundle_file,
    )


def scopes(fake):
    return [f"{fake.base_url}/.default"]


def token_response(fake, tenant):
    return requests.post(
        f"{fake.base_url}/{tenant}/oauth2/v2.0/token",
        verify=fake.certs.bundle_file,
        data={
            "grant_type": "client_credentials",
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "scope": f"{fake.base_url}/.default",
        },
    )


def token(fake, tenant):
    response = token_response(fake, tenant)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def graph(fake, tenant=BIG):
    session = requests.Session()
    session.verify = fake.certs.bundle_file
    session.headers["Authorization"] = f"Bearer {token(fake, tenant)}"
    return session


def users_url(fake, top=999, select=SELECT):
    return f"{fake.base_url}/v1.0/users?$select={select}&$top={top}"


def fetch_all(session, url, limit=20):
    pages = []
    while url and len(pages) < limit:
        response = session.get(url, timeout=5)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = pages[-1].get("@odata.nextLink")
    return pages


# ---------------------------------------------------------------------------- certificates, TLS
def test_certs_are_reused_and_bundle_trusts_ca_and_public_roots(cert_dir):
    first = ensure_certs(cert_dir)
    before = Path(first.cert_file).read_bytes()
    second = ensure_certs(cert_dir)
    assert second == first and Path(second.cert_file).read_bytes() == before
    bundle = Path(first.bundle_file).read_text()
    assert Path(first.ca_file).read_text().strip() in bundle
    assert bundle.count("BEGIN CERTIFICATE") > 50  # certifi's roots are still there


def test_certs_are_recreated_when_broken(tmp_path):
    paths = ensure_certs(tmp_path)
    Path(paths.key_file).write_text("garbage")
    again = ensure_certs(tmp_path)
    assert "PRIVATE KEY" in Path(again.key_file).read_text()


def test_https_verifies_against_bundle_only(fake):
    ok = requests.get(f"{fake.base_url}/_fake/health", verify=fake.certs.bundle_file)
    assert ok.json()["status"] == "ok"
    localhost = fake.base_url.replace("127.0.0.1", "localhost")
    assert requests.get(f"{localhost}/_fake/health", verify=fake.certs.ca_file).ok
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{fake.base_url}/_fake/health", verify=certifi.where())


def test_keep_alive_reuses_one_connection(fake):
    session = graph(fake)
    fake.reset_stats()
    fetch_all(session, users_url(fake))
    stats = fake.stats()
    assert stats["counts"]["users"] == 3
    assert stats["connections"] == 1


def test_non_loopback_is_refused():
    with pytest.raises(ValueError, match="only binds"):
        FakeEntra(host="0.0.0.0")


# ---------------------------------------------------------------------------- MSAL
def test_msal_token_success_then_cache(fake):
    fake.set_consent(CONTOSO, True)
    app = msal_app(fake)
    result = app.acquire_token_for_client(scopes(fake))
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3599
    assert result["token_source"] == "identity_provider"
    assert app.acquire_token_for_client(scopes(fake))["token_source"] == "cache"
    assert fake.stats()["counts"]["token"] == 1


def test_msal_700016_before_consent_is_returned(fake):
    result = msal_app(fake).acquire_token_for_client(scopes(fake))
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith(
        f"AADSTS700016: Application with identifier '{DEFAULT_CLIENT_ID}' was not found in the "
        "directory 'Contoso Ltd'"
    )
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_msal_7000215_wrong_secret(fake):
    fake.set_consent(CONTOSO, True)
    result = msal_app(fake, secret="wrong").acquire_token_for_client(scopes(fake))
    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000215])


def test_msal_7000222_expired_secret(fake):
    fake.set_consent(CONTOSO, True)
    app = msal_app(fake, client_id=EXPIRED_APP, secret="old-secret")
    result = app.acquire_token_for_client(scopes(fake))
    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000222])


def test_msal_90002_unknown_tenant_raises_at_construction(fake):
    with pytest.raises(ValueError, match="Unable to get authority configuration") as caught:
        msal_app(fake, tenant=UNKNOWN)
    assert "AADSTS90002" in str(caught.value.__context__)


def test_msal_90002_from_token_endpoint_is_returned(fake):
    app = msal_app(fake)
    fake.delete_tenant(CONTOSO)
    result = app.acquire_token_for_client(scopes(fake))
    assert (result["error"], result["error_codes"]) == ("invalid_request", [90002])


def test_msal_token_503_raises(fake):
    fake.set_consent(CONTOSO, True)
    app = msal_app(fake)
    fake.add_fault(kind="503", target="token")
    with pytest.raises(msal.exceptions.MsalServiceError, match="HTTP Error: 503"):
        app.acquire_token_for_client(scopes(fake))


# ---------------------------------------------------------------------------- login endpoints
@pytest.mark.parametrize("segment", [CONTOSO, "contoso.example", "organizations", "common"])
def test_openid_configuration(fake, segment):
    response = requests.get(
        f"{fake.base_url}/{segment}/v2.0/.well-known/openid-configuration", verify=fake.certs.bundle_file
    )
    config = response.json()
    tenant = CONTOSO if segment == "contoso.example" else segment
    assert config["token_endpoint"] == f"{fake.base_url}/{tenant}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{fake.base_url}/{tenant}/oauth2/v2.0/authorize"
    assert config["jwks_uri"] and config["issuer"].startswith(fake.base_url)


def test_openid_configuration_unknown_tenant(fake):
    response = requests.get(
        f"{fake.base_url}/{UNKNOWN}/v2.0/.well-known/openid-configuration", verify=fake.certs.bundle_file
    )
    body = response.json()
    assert response.status_code == 400 and body["error"] == "invalid_tenant"
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith(f"AADSTS90002: Tenant '{UNKNOWN}' not found.")


@pytest.mark.parametrize(
    "changes, status, code",
    [
        ({"grant_type": "password"}, 400, 70003),
        ({"scope": "User.Read.All"}, 400, 1002012),
        ({"scope": "https://graph.microsoft.com/.default"}, 400, 500011),
        ({"client_secret": ""}, 401, 7000218),
    ],
)
def test_token_request_validation(fake, changes, status, code):
    fake.set_consent(CONTOSO, True)
    data = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": f"{fake.base_url}/.default",
        **changes,
    }
    response = requests.post(
        f"{fake.base_url}/{CONTOSO}/oauth2/v2.0/token", data=data, verify=fake.certs.bundle_file
    )
    assert (response.status_code, response.json()["error_codes"]) == (status, [code])


# ---------------------------------------------------------------------------- Graph /users
def test_users_paging_2500_users_in_three_pages(fake):
    pages = fetch_all(graph(fake), users_url(fake))
    assert [len(page["value"]) for page in pages] == [999, 999, 502]
    for page in pages[:-1]:
        link = page["@odata.nextLink"]
        assert link.startswith(f"{fake.base_url}/v1.0/users?$select={SELECT}&$top=999&$skiptoken=")
    assert "@odata.nextLink" not in pages[-1]
    assert pages[0]["@odata.context"] == (f"https://graph.microsoft.com/v1.0/$metadata#users({SELECT})")
    ids = [user["id"] for page in pages for user in page["value"]]
    assert len(set(ids)) == 2500 and ids == sorted(ids)  # stable order, nothing twice


def test_users_default_page_size_and_properties(fake):
    page = graph(fake).get(f"{fake.base_url}/v1.0/users").json()
    assert len(page["value"]) == 100 and "$top" not in page["@odata.nextLink"]
    assert set(page["value"][0]) == {
        "businessPhones",
        "displayName",
        "givenName",
        "jobTitle",
        "mail",
        "mobilePhone",
        "officeLocation",
        "preferredLanguage",
        "surname",
        "userPrincipalName",
        "id",
    }


def test_users_select_projection_nulls_and_empty_collections(fake):
    fake.set_consent(CONTOSO, True)
    users = {
        u["displayName"]: u
        for u in fetch_all(
            graph(fake, CONTOSO),
            users_url(fake, select="displayName,jobTitle,mail,otherMails,accountEnabled,preferredLanguage"),
        )[0]["value"]
    }
    assert len(users) == 21
    reception = users["Reception Desk"]
    assert set(reception) == {
        "id",
        "displayName",
        "jobTitle",
        "mail",
        "otherMails",
        "accountEnabled",
        "preferredLanguage",
    }
    assert reception["jobTitle"] is None and reception["preferredLanguage"] is None
    assert reception["otherMails"] == []
    assert users["Grady Archie"]["accountEnabled"] is False


def test_users_select_unknown_property(fake):
    response = graph(fake).get(users_url(fake, select="id,shoeSize"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_BadRequest"


@pytest.mark.parametrize("top", ["0", "1000", "abc"])
def test_users_top_validation(fake, top):
    response = graph(fake).get(users_url(fake, top=top))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "Request_UnsupportedQuery"
    assert error["message"] == (f"Invalid page size specified: '{top}'. Must be between 1 and 999 inclusive.")


def test_graph_401_missing_invalid_expired_token(fake):
    url = users_url(fake)
    missing = requests.get(url, verify=fake.certs.bundle_file, headers={"client-request-id": "c1"})
    assert missing.status_code == 401
    assert missing.headers["client-request-id"] == "c1" and missing.headers["request-id"]
    error = missing.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    assert error["innerError"]["client-request-id"] == "c1"
    invalid = requests.get(url, verify=fake.certs.bundle_file, headers={"Authorization": "Bearer nope"})
    assert invalid.status_code == 401
    session = graph(fake)
    fake.expire_tokens()
    expired = session.get(url)
    assert expired.status_code == 401
    assert expired.json()["error"]["message"] == "Access token has expired or is not yet valid."


def test_graph_403_when_consent_revoked(fake):
    session = graph(fake)
    fake.set_consent(BIG, False)
    response = session.get(users_url(fake))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"


def test_token_is_bound_to_its_tenant(fake):
    fake.set_consent(CONTOSO, True)
    page = graph(fake, CONTOSO).get(users_url(fake)).json()
    assert {u["mail"] for u in page["value"]} >= {"adele.vance@contoso.example"}
    assert len(page["value"]) == 21


def test_domains(fake):
    fake.set_consent(CONTOSO, True)
    value = graph(fake, CONTOSO).get(f"{fake.base_url}/v1.0/domains").json()["value"]
    assert [(d["id"], d["isDefault"], d["isVerified"]) for d in value] == [
        ("contoso.example", True, True),
        ("contoso.onmicrosoft.com", False, True),
    ]


def test_domains_added_but_not_verified(fake):
    fake.put_tenant({**fake.tenant(CONTOSO), "unverified_domains": ["fabrikam.example"]})
    fake.set_consent(CONTOSO, True)
    value = graph(fake, CONTOSO).get(f"{fake.base_url}/v1.0/domains").json()["value"]
    assert [(d["id"], d["isVerified"], d["supportedServices"]) for d in value][2:] == [
        ("fabrikam.example", False, [])
    ]
    assert fake.tenant(CONTOSO)["unverified_domains"] == ["fabrikam.example"]


# ---------------------------------------------------------------------------- groups, licences
SALES = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a01"
SALES_EMEA = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a02"
LOOP = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a03"


def members_url(fake, group, cast="/microsoft.graph.user", query="?$select=id&$top=999&$count=true"):
    return f"{fake.base_url}/v1.0/groups/{group}/transitiveMembers{cast}{query}"


def eventual(session):
    """The session sends the advanced query header."""
    session.headers["ConsistencyLevel"] = "eventual"
    return session


def test_group_transitive_members_paged_with_nested_groups_and_casts(fake):
    users = fake.tenant(BIG)["users"]
    fake.set_groups(
        BIG,
        [
            {
                "id": SALES,
                "displayName": "Sales",
                "members": [u["id"] for u in users[:1500]] + [SALES_EMEA, "not-an-existing-object"],
            },
            {
                "id": SALES_EMEA,
                "displayName": "Sales EMEA",
                "members": [u["id"] for u in users[1400:1700]] + [LOOP],
            },
            {"id": LOOP, "displayName": "Loop", "members": [SALES, users[2000]["id"]]},
        ],
    )
    session = eventual(graph(fake))
    pages = fetch_all(session, members_url(fake, SALES))
    assert [len(p["value"]) for p in pages] == [999, 702]  # 1,700 + 1 via the loop, users only
    assert [p["@odata.count"] for p in pages] == [1701, 1701]
    assert all(set(member) == {"id"} for p in pages for member in p["value"])
    ids = [member["id"] for p in pages for member in p["value"]]
    expected = {u["id"] for u in users[:1700]} | {users[2000]["id"]}
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert "$select=id" in pages[0]["@odata.nextLink"] and "$count=true" in pages[0]["@odata.nextLink"]
    assert pages[0]["@odata.nextLink"].startswith(
        f"{fake.base_url}/v1.0/groups/{SALES}/transitiveMembers/microsoft.graph.user?"
    )
    everything = fetch_all(session, members_url(fake, SALES_EMEA, cast="", query=""))
    types = Counter(m["@odata.type"] for p in everything for m in p["value"])
    # Sales EMEA -> Loop -> Sales -> everyone; a cycle ends where it began.
    assert types == {"#microsoft.graph.user": 1701, "#microsoft.graph.group": 2}
    groups = fetch_all(session, members_url(fake, LOOP, "/microsoft.graph.group", "?$count=true"))
    assert sorted(g["displayName"] for g in groups[0]["value"]) == ["Sales", "Sales EMEA"]
    assert fake.stats()["counts"]["groups"] == len(pages) + len(everything) + 1


def test_group_member_cast_is_an_advanced_query(fake):
    """Microsoft documents the OData cast on transitive member lists as an advanced query:
    ConsistencyLevel: eventual and $count=true, else 400 Request_UnsupportedQuery. Without
    the cast, members come with their @odata.type and need neither."""
    user_id = fake.tenant(BIG)["users"][0]["id"]
    fake.set_groups(
        BIG,
        [
            {"id": SALES, "displayName": "Sales", "members": [user_id, SALES_EMEA]},
            {"id": SALES_EMEA, "displayName": "Sales EMEA", "members": []},
        ],
    )
    session = graph(fake)
    for query in ("?$select=id", "?$select=id&$count=true"):
        refused = session.get(members_url(fake, SALES, query=query))
        assert refused.status_code == 400, query
        assert refused.json()["error"]["code"] == "Request_UnsupportedQuery"
        assert "ConsistencyLevel:eventual" in refused.json()["error"]["message"]
    eventual(session)
    assert session.get(members_url(fake, SALES, query="?$select=id")).status_code == 400
    assert [m["id"] for m in session.get(members_url(fake, SALES)).json()["value"]] == [user_id]
    del session.headers["ConsistencyLevel"]
    mixed = session.get(members_url(fake, SALES, cast="", query="?$select=id")).json()
    assert "@odata.count" not in mixed
    assert sorted((m["@odata.type"], m["id"]) for m in mixed["value"]) == sorted(
        [("#microsoft.graph.user", user_id), ("#microsoft.graph.group", SALES_EMEA)]
    )


def test_group_members_errors(fake):
    fake.set_groups(BIG, [{"id": SALES, "members": []}])
    session = eventual(graph(fake))
    assert session.get(members_url(fake, SALES)).json()["value"] == []
    unknown = session.get(members_url(fake, UNKNOWN))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "Request_ResourceNotFound"
    malformed = session.get(members_url(fake, "sales"))
    assert malformed.status_code == 400 and "Invalid object identifier" in malformed.text
    device = session.get(members_url(fake, SALES, "/microsoft.graph.device"))
    assert device.status_code == 400 and device.json()["error"]["code"] == "Request_UnsupportedQuery"
    fake.set_groups_readable(BIG, False)
    assert session.get(members_url(fake, SALES)).status_code == 200  # its token still has it
    session = eventual(graph(fake))
    denied = session.get(members_url(fake, SALES))
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    fake.add_fault(kind="429", target="groups", retry_after=2)
    fake.set_groups_readable(BIG, True)
    session = eventual(graph(fake))
    throttled = session.get(members_url(fake, SALES))
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "2"
    assert session.get(users_url(fake, top=1)).status_code == 200  # the fault was for groups only
    with pytest.raises(ValueError, match="GUID"):
        fake.set_groups(BIG, [{"id": "sales"}])


def test_group_control_over_http_and_tenant_files(fake):
    control = FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file)
    user_id = fake.tenant(BIG)["users"][0]["id"]
    assert control.set_groups(BIG, [{"id": SALES, "members": [user_id]}]) == {"count": 1}
    assert fake.tenant(BIG)["groups"] == [{"id": SALES, "displayName": None, "members": [user_id]}]
    assert control.set_groups_readable(BIG, False)["readable"] is False
    assert graph(fake).get(members_url(fake, SALES)).status_code == 403
    tid = "3f2504e0-4f89-41d3-9a0c-0305e82c3302"
    fake.put_tenant(
        {
            "tenant_id": tid,
            "consented": True,
            "users": [{"id": "u1"}, {"id": "u2"}],
            "groups": [{"id": SALES, "members": ["u2"]}],
        }
    )
    page = eventual(graph(fake, tid)).get(members_url(fake, SALES)).json()
    assert page["value"] == [{"id": "u2"}]
    fake.delete_user(tid, "u2")  # the membership goes with the user
    assert eventual(graph(fake, tid)).get(members_url(fake, SALES)).json()["value"] == []


def test_assigned_licenses_only_when_selected(fake):
    session = graph(fake)
    plain = session.get(users_url(fake, top=50)).json()["value"]
    assert all("assignedLicenses" not in u for u in plain)
    licensed = session.get(users_url(fake, top=200, select=SELECT + ",assignedLicenses")).json()
    users = licensed["value"]
    assert all(isinstance(u["assignedLicenses"], list) for u in users)
    assert all(not u["assignedLicenses"] for u in users if u["userType"] == "Guest")
    assert any(u["assignedLicenses"] and u["assignedLicenses"][0]["skuId"] for u in users)


# ---------------------------------------------------------------------------- /users/delta
DELTA_SELECT = "givenName,surname,displayName,jobTitle,mail,accountEnabled"


def delta_round(session, url, limit=50, headers=None):
    """All pages of a delta round: (items, deltaLink, pages)."""
    pages = []
    while url and len(pages) < limit:
        response = session.get(url, timeout=10, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url = pages[-1].get("@odata.nextLink")
    assert "@odata.deltaLink" in pages[-1] and all("@odata.deltaLink" not in p for p in pages[:-1])
    return [item for page in pages for item in page["value"]], pages[-1]["@odata.deltaLink"], pages


def test_users_delta_first_round(fake):
    session = graph(fake)
    items, delta_link, pages = delta_round(
        session, f"{fake.base_url}/v1.0/users/delta?$select={DELTA_SELECT}"
    )
    assert [len(p["value"]) for p in pages] == [200] * 12 + [100]  # 2,500 users
    users = {u["id"]: u for u in fake.tenant(BIG)["users"]}
    assert sorted(item["id"] for item in items) == sorted(users)
    first = items[0]
    assert first == {
        name: users[first["id"]][name]
        for name in (*DELTA_SELECT.split(","), "id")
        if name in users[first["id"]]
    }
    # The links carry the $select in their opaque state token, never in the clear.
    for link in [p["@odata.nextLink"] for p in pages[:-1]] + [delta_link]:
        assert link.startswith(f"{fake.base_url}/v1.0/users/delta?$")
        assert "$select" not in link and ("$skiptoken=" in link or "$deltatoken=" in link)
    assert pages[0]["@odata.context"].endswith(
        "#users(id,givenName,surname,displayName,jobTitle,mail,accountEnabled)"
    )
    nothing = session.get(delta_link).json()
    assert nothing["value"] == [] and "@odata.deltaLink" in nothing
    assert fake.stats()["counts"]["delta"] == len(pages) + 1


def test_users_delta_later_rounds_send_only_the_changes(fake):
    session = graph(fake)
    _items, delta_link, _pages = delta_round(
        session, f"{fake.base_url}/v1.0/users/delta?$select={DELTA_SELECT}"
    )
    ann, bob, cid, dan, eve = fake.tenant(BIG)["users"][:5]
    fake.update_user(BIG, ann["id"], {"jobTitle": "Chief Cook", "givenName": None})
    fake.update_user(BIG, bob["id"], {"city": "Berlin"})  # not selected: not tracked
    fake.update_user(BIG, dan["id"], {"jobTitle": dan.get("jobTitle")})  # no change at all
    fake.delete_user(BIG, cid["id"])  # restorable for 30 days
    FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file).delete_user_permanently(BIG, eve["id"])
    new = fake.add_user(BIG, {"displayName": "New Hire", "mail": "new@big.example"})

    items, _next, _pages = delta_round(session, delta_link)
    by_id = {item["id"]: item for item in items}
    assert set(by_id) == {ann["id"], cid["id"], eve["id"], new["id"]}
    expected_ann = {name: ann.get(name) for name in DELTA_SELECT.split(",") if name in ann}
    assert by_id[ann["id"]] == {**expected_ann, "jobTitle": "Chief Cook", "givenName": None, "id": ann["id"]}
    assert by_id[cid["id"]] == {"id": cid["id"], "@removed": {"reason": "changed"}}
    assert by_id[eve["id"]] == {"id": eve["id"], "@removed": {"reason": "deleted"}}
    assert by_id[new["id"]] == {"displayName": "New Hire", "mail": "new@big.example", "id": new["id"]}
    # Prefer: return=minimal: only what changed, and the id.
    minimal, next_link, _pages = delta_round(session, delta_link, headers={"Prefer": "return=minimal"})
    assert {item["id"]: item for item in minimal}[ann["id"]] == {
        "jobTitle": "Chief Cook",
        "givenName": None,
        "id": ann["id"],
    }
    # Restored (added again with its id): a user again, no annotation.
    fake.add_user(BIG, cid)
    assert delta_round(session, next_link)[0] == [
        {**{name: cid[name] for name in DELTA_SELECT.split(",") if name in cid}, "id": cid["id"]}
    ]


def test_users_delta_from_now_and_many_changes_paged(fake):
    session = graph(fake)
    latest = session.get(f"{fake.base_url}/v1.0/users/delta?$deltatoken=latest").json()
    assert latest["value"] == [] and "@odata.deltaLink" in latest
    for user in fake.tenant(BIG)["users"][:450]:
        fake.update_user(BIG, user["id"], {"jobTitle": "Updated"})
    items, _link, pages = delta_round(session, latest["@odata.deltaLink"])
    assert [len(p["value"]) for p in pages] == [200, 200, 50]
    assert {item["jobTitle"] for item in items} == {"Updated"}


def test_users_delta_expired_and_unknown_tokens(fake):
    from fake_entra import protocol

    session = graph(fake)
    _items, delta_link, _pages = delta_round(session, f"{fake.base_url}/v1.0/users/delta")
    FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file).expire_delta_tokens(BIG)
    gone = session.get(delta_link, allow_redirects=False)
    assert gone.status_code == 410
    assert gone.json()["error"]["code"] == "resyncRequired"
    assert gone.json()["error"]["message"] == (
        "The delta token is no longer valid, and the app must reset the sync state."
    )
    assert gone.headers["Location"] == f"{fake.base_url}/v1.0/users/delta?$deltatoken="
    items, delta_link, _pages = delta_round(session, gone.headers["Location"])  # a new full round
    assert len(items) == 2500
    state = protocol.decode_state_token(delta_link.split("$deltatoken=")[1])
    for stale in (
        {**state, "issued": time.time() - 8 * 24 * 3600},  # older than seven days
        {**state, "tenant": CONTOSO},  # another tenant's
        {**state, "version": state["version"] + 1000},
    ):  # a state never reached
        token = protocol.encode_state_token(stale)
        response = session.get(f"{fake.base_url}/v1.0/users/delta?$deltatoken={token}")
        assert response.status_code == 410, stale
    garbled = session.get(f"{fake.base_url}/v1.0/users/delta?$deltatoken=nonsense")
    assert garbled.status_code == 400 and garbled.json()["error"]["code"] == "Request_BadRequest"


@pytest.mark.parametrize("query", ["$top=10", "$filter=id eq 'x'", "$orderby=id"])
def test_users_delta_refuses_what_microsoft_does_not_support(fake, query):
    response = graph(fake).get(f"{fake.base_url}/v1.0/users/delta?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "Request_UnsupportedQuery"


def test_users_delta_select_only_on_the_first_request(fake):
    session = graph(fake)
    first = session.get(f"{fake.base_url}/v1.0/users/delta?$select=mail").json()
    again = session.get(first["@odata.nextLink"] + "&$select=mail")
    assert again.status_code == 400
    fake.set_roles(BIG, ["Domain.Read.All"])
    assert graph(fake).get(f"{fake.base_url}/v1.0/users/delta").status_code == 403


@pytest.mark.parametrize("restored", ["id", "none"])
def test_users_delta_restored_users_as_microsoft_may_send_them(fake, restored):
    """microsoft-graph-docs-contrib#6555: with $select (or Prefer: return=minimal) a restored
    user may come back as its id only, or not at all."""
    session = graph(fake)
    _items, delta_link, _pages = delta_round(
        session, f"{fake.base_url}/v1.0/users/delta?$select={DELTA_SELECT}"
    )
    ann, bob = fake.tenant(BIG)["users"][:2]
    fake.delete_user(BIG, ann["id"])
    _items, delta_link, _pages = delta_round(session, delta_link)
    fake.set_delta_quirks(restored=restored)
    fake.add_user(BIG, ann)  # restored with its id
    fake.add_user(BIG, {"displayName": "New Hire", "mail": "new@big.example"})  # not restored: whole
    fake.update_user(BIG, bob["id"], {"jobTitle": "Baker"})
    items, _link, _pages = delta_round(session, delta_link)
    by_id = {item["id"]: item for item in items}
    assert by_id.get(ann["id"]) == ({"id": ann["id"]} if restored == "id" else None)
    assert by_id[bob["id"]]["jobTitle"] == "Baker"
    assert any(item.get("mail") == "new@big.example" for item in items)


def test_users_delta_expired_token_answered_sync_state_not_found(fake):
    session = graph(fake)
    _items, delta_link, _pages = delta_round(session, f"{fake.base_url}/v1.0/users/delta")
    fake.set_delta_quirks(expired="syncStateNotFound")
    fake.expire_delta_tokens(BIG)
    gone = session.get(delta_link, allow_redirects=False)
    assert gone.status_code == 400 and "Location" not in gone.headers
    assert gone.json()["error"]["code"] == "syncStateNotFound"


def test_users_delta_replays_and_empty_pages(fake):
    session = graph(fake)
    latest = session.get(f"{fake.base_url}/v1.0/users/delta?$deltatoken=latest").json()
    users = fake.tenant(BIG)["users"][:5]
    for user in users:
        fake.update_user(BIG, user["id"], {"jobTitle": "Updated"})
    fake.set_delta_quirks(replay=True, empty_pages=True, page_size=2)
    items, _link, pages = delta_round(session, latest["@odata.deltaLink"])
    assert [len(page["value"]) for page in pages] == [0, 2, 0, 2, 0, 2, 0, 2]
    ids = sorted(user["id"] for user in users)
    # Each page starts with the item the page before ended with.
    assert [item["id"] for item in items] == [ids[0], *[i for i in ids[1:4] for _ in "12"], ids[4]]
    with pytest.raises(ValueError):
        fake.set_delta_quirks(replay=True, page_size=1)


def listed_user(session, fake, user_id):
    pages = fetch_all(session, users_url(fake))
    return next(u for page in pages for u in page["value"] if u["id"] == user_id)


def test_one_user_by_id_and_a_listing_behind_the_delta_query(fake):
    session = graph(fake)
    ann = fake.tenant(BIG)["users"][0]
    one = session.get(f"{fake.base_url}/v1.0/users/{ann['id']}?$select={SELECT}")
    assert one.status_code == 200
    listed = listed_user(session, fake, ann["id"])
    assert {k: v for k, v in one.json().items() if not k.startswith("@odata")} == listed
    missing = session.get(f"{fake.base_url}/v1.0/users/{UNKNOWN}?$select=id")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "Request_ResourceNotFound"
    assert fake.stats()["counts"]["user"] == 2
    # A listing from a replica that lags: it misses the change the delta query already has.
    fake.set_stale_listing(BIG)
    latest = session.get(f"{fake.base_url}/v1.0/users/delta?$deltatoken=latest").json()
    fake.update_user(BIG, ann["id"], {"jobTitle": "Moved on"})
    listed = listed_user(session, fake, ann["id"])
    assert listed["jobTitle"] == ann.get("jobTitle")
    items, _link, _pages = delta_round(session, latest["@odata.deltaLink"])
    assert [item["jobTitle"] for item in items] == ["Moved on"]
    fake.set_stale_listing(BIG, False)
    listed = listed_user(session, fake, ann["id"])
    assert listed["jobTitle"] == "Moved on"


# ---------------------------------------------------------------------------- latency
def test_graph_latency_with_jitter_on_graph_only(fake):
    session = graph(fake)
    FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file).set_graph_latency(200)
    durations = []
    for _ in range(3):
        started = time.monotonic()
        assert session.get(users_url(fake, top=1)).status_code == 200
        durations.append(time.monotonic() - started)
    assert all(0.18 <= d < 1.5 for d in durations), durations
    assert 0.18 <= fake.graph_delay() <= 0.22 and len({fake.graph_delay() for _ in range(5)}) > 1
    fake.set_graph_latency(3000)
    started = time.monotonic()
    token(fake, BIG)  # the login side answers without Graph's latency
    assert time.monotonic() - started < 2
    fake.set_graph_latency(100, jitter=0)
    assert fake.graph_delay() == 0.1
    with pytest.raises(ValueError):
        fake.set_graph_latency(-1)
    fake.reset()
    assert fake.graph_delay() == 0


# ---------------------------------------------------------------------------- tokens, consent
def claims(access_token):
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_tokens_carry_tenant_app_and_permissions_as_claims(fake):
    found = claims(token(fake, BIG))
    assert found["tid"] == BIG and found["appid"] == DEFAULT_CLIENT_ID
    assert found["idtyp"] == "app" and found["aud"] == fake.base_url
    assert found["roles"] == ["Domain.Read.All", "GroupMember.Read.All", "User.Read.All"]
    assert found["exp"] - found["iat"] == 3599
    fake.set_roles(BIG, [])
    assert "roles" not in claims(token(fake, BIG))  # none granted: no claim at all


def test_permissions_are_frozen_into_each_token(fake):
    """A token keeps the permissions of the moment it was issued, like a real one: granted
    later, a permission is missing from it until a new token is acquired."""
    fake.set_roles(BIG, ["Domain.Read.All"])
    before = graph(fake)
    denied = before.get(users_url(fake, top=1))
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "Authorization_RequestDenied"
    assert before.get(f"{fake.base_url}/v1.0/domains").status_code == 200
    FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file).set_roles(BIG, ["User.Read.All"])
    assert before.get(users_url(fake, top=1)).status_code == 403  # the old token still lacks it
    after = graph(fake)
    assert after.get(users_url(fake, top=1)).status_code == 200
    assert after.get(f"{fake.base_url}/v1.0/domains").status_code == 403
    assert fake.tenant(BIG)["roles"] == ["User.Read.All"]
    with pytest.raises(TypeError):
        fake.set_roles(BIG, "User.Read.All")


def test_opaque_tokens_work_like_jwts_but_say_nothing(fake):
    """Microsoft documents access tokens as opaque to clients: the fake can issue tokens that
    are no JWT at all, with the same rights and the same tenant binding."""
    control = FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file)
    assert control.set_opaque_tokens(True) == {"opaque": True}
    fake.set_consent(CONTOSO, True)
    for tenant in (BIG, CONTOSO):
        session = graph(fake, tenant)
        opaque = session.headers["Authorization"].removeprefix("Bearer ")
        assert "." not in opaque and not opaque.startswith("ey")
        [first] = session.get(users_url(fake, top=1)).json()["value"]
        assert first["id"] == min(u["id"] for u in fake.tenant(tenant)["users"])
    fake.reset()
    assert claims(token(fake, BIG))["tid"] == BIG


def test_user_count_is_an_advanced_query_with_a_lagging_index(fake):
    """``GET /users/$count`` as Microsoft documents it: only with ``ConsistencyLevel:
    eventual`` (else 400 ``Request_BadRequest``), answered as text/plain (here with the
    byte-order mark OData services may send), from an eventually consistent index that may
    not count the newest users yet."""
    session = graph(fake)
    url = f"{fake.base_url}/v1.0/users/$count"
    refused = session.get(url)
    assert refused.status_code == 400
    assert refused.json()["error"] == {**refused.json()["error"], "code": "Request_BadRequest",
                                       "message": "$count is not currently supported."}
    counted = session.get(url, headers={"ConsistencyLevel": "eventual"})
    assert counted.status_code == 200 and counted.headers["Content-Type"].startswith("text/plain")
    assert counted.content.decode("utf-8-sig") == "2500"
    assert session.get(f"{fake.base_url}/v1.0/users/%24count",
                       headers={"ConsistencyLevel": "eventual"}).content.decode("utf-8-sig") == "2500"
    assert fake.stats()["counts"]["count"] == 3
    FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file).set_index_lag(0.5)
    # A tenant loaded just now (not when the fixture reset the fake: a busy machine may take
    # longer than the lag to get here) is not indexed yet.
    fake.put_tenant(fake.tenant(BIG))
    assert fake.user_count(BIG) == 0
    time.sleep(0.6)
    assert fake.user_count(BIG) == 2500
    fake.add_user(BIG, [{"id": f"new-{n}"} for n in range(3)])
    fake.delete_user(BIG, fake.tenant(BIG)["users"][0]["id"])
    assert fake.user_count(BIG) == 2500  # the index has seen neither change yet
    time.sleep(0.6)
    assert fake.user_count(BIG) == 2502
    with pytest.raises(ValueError):
        fake.set_index_lag(-1)


def test_consent_delay_token_endpoint_does_not_know_the_app_yet(fake):
    fake.set_consent_delay(1.5)
    fake.set_consent(CONTOSO, True)
    early = token_response(fake, CONTOSO)
    assert early.status_code == 400 and early.json()["error_codes"] == [700016]
    time.sleep(1.6)
    assert token_response(fake, CONTOSO).status_code == 200
    fake.set_consent(CONTOSO, True)  # already consented: nothing spreads again
    assert token_response(fake, CONTOSO).status_code == 200


def test_consent_delay_graph_does_not_know_the_identity_yet(fake):
    control = FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file)
    control.set_consent_delay(1.5, "graph")
    fake.grant_consent(CONTOSO, DEFAULT_CLIENT_ID)  # as the consent page does
    session = graph(fake, CONTOSO)  # a token is issued, with its tid
    assert claims(session.headers["Authorization"][7:])["tid"] == CONTOSO
    early = session.get(users_url(fake, top=1))
    assert early.status_code == 401
    assert early.json()["error"] == {
        **early.json()["error"],
        "code": "Authorization_IdentityNotFound",
        "message": "The identity of the calling application could not be established.",
    }
    time.sleep(1.6)
    assert session.get(users_url(fake, top=1)).status_code == 200  # the same token now works


def test_consent_delay_tokens_lack_the_new_permissions(fake):
    fake.set_consent_delay(1.5, "roles")
    fake.set_consent(CONTOSO, True)
    early = graph(fake, CONTOSO)
    assert "roles" not in claims(early.headers["Authorization"][7:])
    assert early.get(users_url(fake, top=1)).status_code == 403
    time.sleep(1.6)
    assert early.get(users_url(fake, top=1)).status_code == 403  # frozen into that token
    assert graph(fake, CONTOSO).get(users_url(fake, top=1)).status_code == 200
    with pytest.raises(ValueError, match="symptom"):
        fake.set_consent_delay(1, "sometimes")
    fake.reset()  # back to no delay
    fake.set_consent(CONTOSO, True)
    assert token_response(fake, CONTOSO).status_code == 200


# ---------------------------------------------------------------------------- group search
GROUPS = [
    {"id": SALES, "displayName": "Sales Team", "members": []},
    {"id": SALES_EMEA, "displayName": "SalesEMEA", "members": []},
    {"id": LOOP, "displayName": "Helpdesk-Tier2", "members": []},
]


def search_url(fake, text, query="&$select=id,displayName"):
    return f'{fake.base_url}/v1.0/groups?$search="displayName:{text}"{query}'


def test_group_search_needs_consistency_level_eventual(fake):
    fake.set_groups(BIG, GROUPS)
    session = graph(fake)
    refused = session.get(search_url(fake, "sales"))
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        **refused.json()["error"],
        "code": "Request_UnsupportedQuery",
        "message": "Request with $search query parameter only works through MSGraph with a "
        "special request header: 'ConsistencyLevel: eventual'",
    }
    found = eventual(session).get(search_url(fake, "sales")).json()
    assert found["value"] == [
        {"id": SALES, "displayName": "Sales Team"},
        {"id": SALES_EMEA, "displayName": "SalesEMEA"},
    ]
    assert found["@odata.context"].endswith("#groups(id,displayName)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("team", [SALES]),  # any word, not only the first
        ("TEAM sal", [SALES]),  # every word, in any order, any case
        ("emea", [SALES_EMEA]),  # a change from lower to upper case starts a word
        ("helpdeskt", [LOOP]),  # words joined by symbols also count as one
        ("tier", [LOOP]),
        ("ales", []),  # no "contains"
    ],
)
def test_group_search_matches_tokens_as_documented(fake, text, expected):
    fake.set_groups(BIG, GROUPS)
    found = eventual(graph(fake)).get(search_url(fake, text)).json()["value"]
    assert [group["id"] for group in found] == expected


def test_group_search_pages_escapes_and_permissions(fake):
    fake.set_groups(BIG, [*GROUPS, {"id": UNKNOWN, "displayName": 'Say "hi"', "members": []}])
    session = eventual(graph(fake))
    pages = fetch_all(session, search_url(fake, "s", "&$top=1"))
    assert [[g["id"] for g in p["value"]] for p in pages] == [[UNKNOWN], [SALES], [SALES_EMEA]]
    assert set(pages[0]["value"][0]) == {"id", "displayName"}
    quoted = session.get(search_url(fake, '\\"hi\\"')).json()["value"]
    assert [g["displayName"] for g in quoted] == ['Say "hi"']
    assert session.get(search_url(fake, "sales", "&$select=owners")).status_code == 400
    unquoted = session.get(f"{fake.base_url}/v1.0/groups?$search=sales")
    assert unquoted.status_code == 400
    fake.set_groups_readable(BIG, False)
    assert eventual(graph(fake)).get(search_url(fake, "sales")).status_code == 403


# ---------------------------------------------------------------------------- faults
@pytest.mark.parametrize(
    "kind, retry_after, header",
    [
        ("429", 7, "7"),
        ("429", None, None),
        ("500", None, None),
        ("502", None, None),
        ("503", 3, "3"),
        ("504", None, None),
    ],
)
def test_status_faults_use_graph_error_shape(fake, kind, retry_after, header):
    session = graph(fake)
    fake.add_fault(kind=kind, target="users", retry_after=retry_after)
    response = session.get(users_url(fake))
    assert response.status_code == int(kind)
    assert response.headers.get("Retry-After") == header
    assert set(response.json()["error"]) == {"code", "message", "innerError"}
    assert session.get(users_url(fake)).status_code == 200  # count=1: consumed


def test_fault_after_count_and_tenant(fake):
    fake.set_consent(CONTOSO, True)
    contoso, big = graph(fake, CONTOSO), graph(fake, BIG)
    fake.add_fault(kind="500", target="users", tenant=BIG, after=1, count=2)
    assert contoso.get(users_url(fake)).status_code == 200  # other tenant: no match
    statuses = [big.get(users_url(fake)).status_code for _ in range(4)]
    assert statuses == [200, 500, 500, 200]
    assert fake.stats()["faults_fired"] == 2


def test_timeout_fault_delays_then_answers(fake):
    session = graph(fake)
    fake.add_fault(kind="timeout", target="users", delay=0.4)
    with pytest.raises(requests.exceptions.ReadTimeout):
        session.get(users_url(fake), timeout=0.1)
    fake.add_fault(kind="timeout", target="users", delay=0.2)
    started = time.monotonic()
    assert session.get(users_url(fake), timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.2


def test_stop_does_not_hang_on_timeout_fault(cert_dir):
    fake = FakeEntra(cert_dir=cert_dir, tenants=load_tenant_files()).start()
    fake.add_fault(kind="timeout", target="openid", delay=30)
    url = f"{fake.base_url}/{CONTOSO}/v2.0/.well-known/openid-configuration"
    errors = []

    def call():
        try:
            requests.get(url, verify=fake.certs.bundle_file, timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    client = threading.Thread(target=call)
    client.start()
    time.sleep(0.2)
    started = time.monotonic()
    fake.stop()
    client.join(5)
    assert time.monotonic() - started < 3 and not client.is_alive()
    assert errors  # the sleeping request was dropped, not answered


def test_reset_ends_the_requests_a_timeout_fault_holds_uncounted(fake):
    """A request held by a 'timeout' fault belongs to the test that asked for it: a reset ends
    it unanswered, and it never shows in the stats that follow (it would land in another
    test's counts whenever its delay ends)."""
    fake.add_fault(kind="timeout", target="token", delay=30)
    outcome = []

    def call():
        try:
            outcome.append(token_response(fake, CONTOSO).status_code)
        except requests.RequestException as exc:
            outcome.append(exc)

    client = threading.Thread(target=call)
    client.start()
    while not fake.stats()["faults_fired"]:
        time.sleep(0.01)
    fake.reset()
    client.join(35)
    assert len(outcome) == 1 and isinstance(outcome[0], requests.ConnectionError), outcome
    assert fake.stats()["counts"]["token"] == 0 and not fake.stats()["requests"]


def test_dropped_connections_and_cut_handshakes(fake):
    """What a client sees when a server drops connections: its pooled one is gone, and a new
    one cut before the TLS handshake fails with an SSL EOF (requests' SSLError)."""
    session = graph(fake)
    assert session.get(users_url(fake, top=1)).status_code == 200
    fake.close_connections()
    fake.cut_handshakes(1)
    with pytest.raises(requests.exceptions.SSLError, match="EOF"):
        session.get(users_url(fake, top=1))
    assert session.get(users_url(fake, top=1)).status_code == 200
    FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file).cut_handshakes(1)
    with pytest.raises(requests.exceptions.SSLError, match="EOF"):
        requests.get(users_url(fake, top=1), verify=fake.certs.bundle_file)


def test_reset_fault_drops_connection(fake):
    session = graph(fake)
    fake.add_fault(kind="reset", target="users")
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(users_url(fake))
    assert session.get(users_url(fake)).status_code == 200
    assert fake.stats()["requests"][-2]["status"] == 0


def test_microsoft_answers_a_fake_tenant_cannot_produce_by_itself(fake):
    session = graph(fake)
    fake.add_fault(kind="identity_not_found", target="users")
    unknown = session.get(users_url(fake, top=1))
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "Authorization_IdentityNotFound"
    assert session.get(users_url(fake, top=1)).status_code == 200
    fake.add_fault(kind="app_disabled", target="token")
    fake.add_fault(kind="resource_not_found", target="token")
    disabled = token_response(fake, BIG).json()
    assert (disabled["error"], disabled["error_codes"]) == ("unauthorized_client", [7000112])
    assert (
        f"Application '{DEFAULT_CLIENT_ID}'(Odoo Azure AD Contacts) is disabled."
        in disabled["error_description"]
    )
    other_cloud = token_response(fake, BIG).json()
    assert (other_cloud["error"], other_cloud["error_codes"]) == ("invalid_resource", [500011])
    assert (
        f"The resource principal named {fake.base_url} was not found in the tenant"
        in other_cloud["error_description"]
    )


def test_redirect_fault(fake):
    fake.add_fault(kind="redirect", target="token", location="https://127.0.0.1:1/stolen")
    moved = requests.post(
        f"{fake.base_url}/{BIG}/oauth2/v2.0/token",
        data={"client_secret": "s"},
        verify=fake.certs.bundle_file,
        allow_redirects=False,
    )
    assert (moved.status_code, moved.headers["Location"]) == (307, "https://127.0.0.1:1/stolen")


def test_malformed_and_wrong_shape_faults(fake):
    session = graph(fake)
    fake.add_fault(kind="malformed", target="users")
    fake.add_fault(kind="wrong_shape", target="users")
    malformed = session.get(users_url(fake))
    assert malformed.status_code == 200
    with pytest.raises(ValueError):
        malformed.json()
    wrong = session.get(users_url(fake)).json()
    assert not isinstance(wrong["value"], list)


def test_foreign_next_link_fault(fake):
    fake.add_fault(kind="foreign_next_link", target="users", after=1)
    pages = fetch_all(graph(fake), users_url(fake), limit=2)
    assert pages[1]["@odata.nextLink"] == "https://graph.evil.example/v1.0/users?$skiptoken=x"
    assert len(pages[1]["value"]) == 999  # the page itself is normal


def test_repeat_page_fault_serves_a_page_twice(fake):
    fake.add_fault(kind="repeat_page", target="users", after=1)
    pages = fetch_all(graph(fake), users_url(fake))
    first_ids = [page["value"][0]["id"] for page in pages]
    assert len(pages) == 4 and first_ids[1] == first_ids[2]
    assert len({u["id"] for page in pages for u in page["value"]}) == 2500


def test_revoke_fault_revokes_consent_now(fake):
    session = graph(fake)
    fake.add_fault(kind="revoke", target="users", after=1)
    pages = session.get(users_url(fake)).json()
    response = session.get(pages["@odata.nextLink"])
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "Authorization_RequestDenied"
    assert not fake.tenant(BIG)["consented"]


def test_openid_fault_and_unknown_fault_kind(fake):
    fake.add_fault(kind="502", target="openid", tenant=CONTOSO)
    with pytest.raises(msal.exceptions.MsalServiceError):
        msal_app(fake)
    msal_app(fake)  # consumed
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.add_fault(kind="418")


# ---------------------------------------------------------------------------- admin consent
def consent_url(fake, tenant="organizations", redirect="https://odoo.example/cb", **extra):
    params = {
        "client_id": DEFAULT_CLIENT_ID,
        "scope": f"{fake.base_url}/.default",
        "redirect_uri": redirect,
        "state": "s t&1",
        **extra,
    }
    return requests.Request("GET", f"{fake.base_url}/{tenant}/v2.0/adminconsent", params=params).prepare().url


def test_consent_page_form(fake):
    page = requests.get(consent_url(fake, tenant=FABRIKAM), verify=fake.certs.bundle_file)
    html = page.text
    assert page.status_code == 200 and "Permissions requested" in html
    assert "Read all users' full profiles" in html
    assert f'<option value="{FABRIKAM}" selected>' in html
    assert '<button id="accept" name="decision" value="accept">Accept</button>' in html
    assert '<button id="cancel" name="decision" value="cancel">Cancel</button>' in html
    assert f'action="/{FABRIKAM}/v2.0/adminconsent"' in html
    assert 'name="state" value="s t&amp;1"' in html


def post_consent(fake, decision, redirect="https://odoo.example/cb?db=x"):
    form = {
        "client_id": DEFAULT_CLIENT_ID,
        "scope": f"{fake.base_url}/.default",
        "redirect_uri": redirect,
        "state": "s t&1",
        "tenant": CONTOSO,
        "decision": decision,
    }
    return requests.post(
        f"{fake.base_url}/organizations/v2.0/adminconsent",
        data=form,
        verify=fake.certs.bundle_file,
        allow_redirects=False,
    )


def test_consent_accept_redirects_and_grants(fake):
    response = post_consent(fake, "accept")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.netloc == "odoo.example" and location.path == "/cb"
    assert parse_qs(location.query) == {
        "db": ["x"],
        "admin_consent": ["True"],
        "tenant": [CONTOSO],
        "scope": [f"{fake.base_url}/.default"],
        "state": ["s t&1"],
    }
    assert fake.tenant(CONTOSO)["consented"]
    assert msal_app(fake).acquire_token_for_client(scopes(fake))["access_token"]


def test_consent_cancel_redirects_with_access_denied(fake):
    response = post_consent(fake, "cancel", redirect="https://odoo.example/cb")
    location = response.headers["Location"]
    assert location.startswith(
        "https://odoo.example/cb?error=access_denied&error_description="
        "AADSTS65004%3A+User+declined+to+consent"
    )
    assert parse_qs(urlsplit(location).query)["state"] == ["s t&1"]
    assert not fake.tenant(CONTOSO)["consented"]


def test_consent_auto_accept_and_unknown_client(fake):
    auto = requests.get(
        consent_url(fake, auto="accept", tenant=FABRIKAM),
        verify=fake.certs.bundle_file,
        allow_redirects=False,
    )
    assert parse_qs(urlsplit(auto.headers["Location"]).query)["tenant"] == [FABRIKAM]
    assert fake.tenant(FABRIKAM)["consented"]
    unknown = requests.get(
        consent_url(fake).replace(DEFAULT_CLIENT_ID, UNKNOWN),
        verify=fake.certs.bundle_file,
        allow_redirects=False,
    )
    assert unknown.status_code == 400 and "Location" not in unknown.headers
    assert "AADSTS700016" in unknown.text
    assert fake.stats()["counts"]["consent"] == 2


# ---------------------------------------------------------------------------- control over HTTP
def test_control_endpoints(fake):
    control = FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file)
    assert control.health()["status"] == "ok"
    tid = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    control.put_tenant(
        {
            "tenant_id": tid,
            "display_name": "Tailspin",
            "domains": ["ts.example"],
            "users": [{"id": "u1", "displayName": "One", "mail": "one@ts.example"}],
        }
    )
    assert {
        "tenant_id": tid,
        "display_name": "Tailspin",
        "consented": False,
        "domains": ["ts.example"],
        "user_count": 1,
    } in control.tenants()
    [added] = control.add_user(tid, {"displayName": "Two"})
    assert control.add_user(tid, [{"id": "u3"}, {"id": "u4"}]) == ["u3", "u4"]
    assert control.update_user(tid, "u1", {"jobTitle": "Boss"})["jobTitle"] == "Boss"
    control.delete_user(tid, "u3")
    control.set_consent(tid, True)
    control.add_app("99999999-0000-4000-8000-000000000000", "s2")
    control.add_fault(kind="503", target="users", tenant=tid)
    session = graph(fake, tid)
    assert session.get(users_url(fake)).status_code == 503
    page = session.get(users_url(fake)).json()
    assert sorted(u["id"] for u in page["value"]) == sorted(["u1", "u4", added])
    control.expire_tokens()
    assert session.get(users_url(fake)).status_code == 401
    stats = control.stats()
    assert stats["counts"]["users"] == 3 and stats["requests"][-1]["status"] == 401
    assert control.reset_stats() and control.stats()["counts"]["users"] == 0
    control.add_fault(kind="500")
    control.clear_faults()
    assert control.stats()["faults_pending"] == []
    with pytest.raises(RuntimeError, match="404"):
        control.update_user(tid, "nobody", {})
    control.reset()
    assert tid not in {t["tenant_id"] for t in control.tenants()}


def test_control_rejects_bad_input(fake):
    url = f"{fake.base_url}/_fake/faults"
    bad = requests.post(url, json={"kind": "nope"}, verify=fake.certs.bundle_file)
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]
    missing = requests.post(f"{fake.base_url}/_fake/nothing", verify=fake.certs.bundle_file)
    assert missing.status_code == 404


# ---------------------------------------------------------------------------- data
def test_demo_tenants():
    tenants = {t["tenant_id"]: t for t in load_tenant_files()}
    contoso, fabrikam = tenants[CONTOSO], tenants[FABRIKAM]
    assert contoso["display_name"] == "Contoso Ltd" and not contoso["consented"]
    assert len(fabrikam["users"]) == 8 and not fabrikam["consented"]
    users = contoso["users"]
    assert sum(u["userType"] == "Guest" for u in users) == 2
    assert sum(not u["accountEnabled"] for u in users) == 2
    assert any(u["mail"] is None and any(p.startswith("SMTP:") for p in u["proxyAddresses"]) for u in users)
    assert any(u["mail"] is None and not u["proxyAddresses"] and not u["otherMails"] for u in users)
    mails = [u["mail"] for u in users if u["mail"]]
    assert len({m.lower() for m in mails}) == len(mails) - 1 and len(set(mails)) == len(mails)
    assert any(not u["givenName"] and not u["surname"] and u["displayName"] for u in users)


def test_generator_is_deterministic_fast_and_mixed():
    assert generate_users(50, seed=3) == generate_users(50, seed=3)
    assert generate_users(50, seed=3) != generate_users(50, seed=4)
    assert generate_users(10, seed=3) == generate_users(50, seed=3)[:10]
    started = time.monotonic()
    users = generate_users(50_000, seed=1, domain="big.example")
    assert time.monotonic() - started < 10
    assert len({u["id"] for u in users}) == 50_000

    def share(predicate):
        return sum(map(predicate, users)) / len(users)

    assert 0.02 < share(lambda u: u["userType"] == "Guest") < 0.04
    assert 0.02 < share(lambda u: not u["accountEnabled"]) < 0.04
    assert 0.005 < share(lambda u: u["mail"] is None and not u["proxyAddresses"]) < 0.015
    guest = next(u for u in users if u["userType"] == "Guest")
    assert "#EXT#@big.onmicrosoft.com" in guest["userPrincipalName"]
    assert not guest["mail"].endswith("@big.example")
    plain = generate_users(2000, seed=1, plain=True)
    assert all(u["mail"] and u["accountEnabled"] and u["userType"] == "Member" for u in plain)


def test_generate_cli(tmp_path):
    out = tmp_path / "t.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fake_entra.generate",
            "--users",
            "30",
            "--seed",
            "5",
            "--tenant-id",
            UNKNOWN,
            "--name",
            "Gen",
            "--domain",
            "gen.example",
            "--out",
            str(out),
            "--plain",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    tenant = json.loads(out.read_text())
    assert tenant["tenant_id"] == UNKNOWN and len(tenant["users"]) == 30
    assert tenant["users"] == generate_users(30, seed=5, domain="gen.example", plain=True, company="Gen")


def test_server_cli_runs_and_stops_on_sigterm(cert_dir):
    with socket.socket() as probe:  # a free port, so the CLI can print it back
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fake_entra",
            "--port",
            str(port),
            "--cert-dir",
            cert_dir,
            "--graph-latency-ms",
            "300",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    try:
        url = proc.stdout.readline().strip()
        bundle = proc.stdout.readline().strip()
        assert url == f"FAKE_ENTRA_URL=https://127.0.0.1:{port}"
        bundle = bundle.split("=", 1)[1]
        tenants = requests.get(f"{url.split('=', 1)[1]}/_fake/tenants", verify=bundle).json()
        assert {t["tenant_id"] for t in tenants} == {t["tenant_id"] for t in load_tenant_files()}
        started = time.monotonic()  # Graph takes its time: no token, still 300 ms
        assert requests.get(f"{url.split('=', 1)[1]}/v1.0/users", verify=bundle).status_code == 401
        assert time.monotonic() - started >= 0.27
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    refused = subprocess.run(
        [sys.executable, "-m", "fake_entra", "--host", "0.0.0.0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2 and "only binds" in refused.stderr


def test_a_tenant_file_is_held_once_and_read_again_at_reset(tmp_path):
    """A 400,000-user tenant file is most of the fake's memory: the state keeps the live
    tenant only, and a reset reads the file again (changes made since are gone)."""
    import tracemalloc

    from fake_entra.state import EntraState, Tenant

    data = generate_tenant(5_000, seed=7)
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(data))
    tenant_id = data["tenant_id"]
    first_id = data["users"][0]["id"]
    del data

    def held(build):
        tracemalloc.start()
        try:
            kept = build()
            size = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
        del kept
        return size

    tenant_alone = held(lambda: Tenant(json.loads(path.read_text())))
    state = held(lambda: EntraState(tenants=[path]))
    # Held twice, the user dicts alone came to 1.17 × (their values are shared).
    assert state < 1.08 * tenant_alone, (state, tenant_alone)

    state = EntraState(tenants=[path])
    state.set_users(tenant_id, [])
    assert state.tenant(tenant_id)["users"] == []
    state.reset()
    users = state.tenant(tenant_id)["users"]
    assert len(users) == 5_000 and users[0]["id"] == first_id
