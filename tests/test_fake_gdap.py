"""The fake's partner tenant against real MSAL and requests over HTTPS: a partner administrator
signs in (authorization code with PKCE), its refresh token is redeemed against customer tenants
only where GDAP gives it a role, and the partner's relationships and customers are listed as
Microsoft Graph documents them.

Plain pytest functions, no Odoo: ``python -m pytest -p no:odoo tests/test_fake_gdap.py``.
"""

import sys
from datetime import datetime, timezone
from pathlib import Path

import msal
import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fake_entra import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FakeEntra,
    FakeEntraControl,
    load_tenant_files,
)
from fake_entra.gdap import DIRECTORY_READERS, EXCHANGE_ADMINISTRATOR, parse_iso
from tests.partner_common import (
    CONTOSO_ID,
    FABRIKAM_ID,
    OUTSIDER,
    PARTNER_ADMIN,
    PARTNER_ID,
    RELATIONSHIPS,
    TAILSPIN_ID,
    TECHNICIAN,
    WINGTIP_ID,
    query_of,
    sign_in_at_microsoft,
)

PARTNER, FABRIKAM, TAILSPIN, WINGTIP, CONTOSO = PARTNER_ID, FABRIKAM_ID, TAILSPIN_ID, WINGTIP_ID, CONTOSO_ID
ADMIN = PARTNER_ADMIN
REDIRECT = "https://odoo.example/azure_ad_contacts/partner/callback"
TAILSPIN_RELATIONSHIP = RELATIONSHIPS[TAILSPIN_ID]
# MSAL recommends form_post; these tests read the redirect's query, as Odoo does.
pytestmark = pytest.mark.filterwarnings("ignore:response_mode:UserWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with FakeEntra(cert_dir=str(tmp_path_factory.mktemp("certs")), tenants=load_tenant_files()) as fake:
        yield fake


@pytest.fixture
def fake(server, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", server.certs.bundle_file)
    server.reset()
    return server


def msal_app(fake, tenant="organizations", cache=None):
    return msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID,
        client_credential=DEFAULT_CLIENT_SECRET,
        authority=f"{fake.base_url}/{tenant}",
        instance_discovery=False,
        http_cache={},
        token_cache=cache,
    )


def gdap_scope(fake):
    return [f"{fake.base_url}/DelegatedAdminRelationship.Read.All"]


def authorize(fake, flow, login, decision="accept", organization=True):
    """The browser at Microsoft; the redirect's query, or the page that stopped there."""
    answer = sign_in_at_microsoft(flow["auth_uri"], login, decision, organization)
    if not isinstance(answer, str):
        return answer
    assert answer.startswith(REDIRECT)
    return query_of(answer)


def sign_in(fake, login=ADMIN):
    app = msal_app(fake)
    flow = app.initiate_auth_code_flow(gdap_scope(fake), redirect_uri=REDIRECT, state="state-1")
    result = app.acquire_token_by_auth_code_flow(flow, authorize(fake, flow, login))
    assert "access_token" in result, result
    return app, result


def customer_token(fake, cache, tenant, scopes=None):
    app = msal_app(fake, tenant, cache)
    account = app.get_accounts()[0]
    return app.acquire_token_silent_with_error(scopes or [f"{fake.base_url}/.default"], account)


def graph(fake, token, path):
    return requests.get(f"{fake.base_url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_partner_admin_signs_in_with_pkce_and_consents_for_the_partner_tenant(fake):
    app, result = sign_in(fake)
    claims = result["id_token_claims"]
    assert claims["tid"] == PARTNER and claims["preferred_username"] == ADMIN
    assert fake.delegated_scopes(PARTNER) == ["DelegatedAdminRelationship.Read.All"]
    account = app.get_accounts()[0]
    assert account["home_account_id"] == f"{claims['oid']}.{PARTNER}"
    # The code is for one redemption only, and a wrong verifier is refused.
    flow = app.initiate_auth_code_flow(gdap_scope(fake), redirect_uri=REDIRECT)
    answer = authorize(fake, flow, ADMIN)
    assert app.acquire_token_by_auth_code_flow(flow, answer)["access_token"]
    again = app.acquire_token_by_auth_code_flow({**flow}, answer)
    assert again["error"] == "invalid_grant" and again["error_codes"] == [54005]
    flow = app.initiate_auth_code_flow(gdap_scope(fake), redirect_uri=REDIRECT)
    answer = authorize(fake, flow, ADMIN)
    wrong = app.acquire_token_by_auth_code_flow({**flow, "code_verifier": "x" * 43}, answer)
    assert wrong["error_codes"] == [501481]


def test_only_an_administrator_can_consent_and_declining_returns_an_error(fake):
    app = msal_app(fake)
    flow = app.initiate_auth_code_flow(gdap_scope(fake), redirect_uri=REDIRECT, state="s")
    page = authorize(fake, flow, TECHNICIAN)
    assert page.status_code == 403 and "AADSTS90094" in page.text
    flow = app.initiate_auth_code_flow(gdap_scope(fake), redirect_uri=REDIRECT, state="s")
    declined = authorize(fake, flow, ADMIN, decision="cancel")
    assert declined["error"] == "access_denied" and declined["state"] == "s"
    assert "AADSTS65004" in declined["error_description"]
    assert fake.delegated_scopes(PARTNER) == []
    # Once an administrator consented for the organization, a technician signs in directly.
    sign_in(fake)
    sign_in(fake, TECHNICIAN)


def test_refresh_token_reaches_customers_only_through_gdap(fake):
    app, _result = sign_in(fake)
    cache = app.token_cache
    token = customer_token(fake, cache, FABRIKAM)
    assert token["id_token_claims"]["tid"] == FABRIKAM, token
    users = graph(fake, token["access_token"], "/v1.0/users?$select=id,mail")
    assert users.status_code == 200 and len(users.json()["value"]) == 8
    assert graph(fake, token["access_token"], "/v1.0/domains").status_code == 200
    # Contoso has no relationship with the partner: the user does not exist there.
    refused = customer_token(fake, cache, CONTOSO)
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [50020]
    # A user of the partner outside the GDAP group has no access either.
    outsider_app, _result = sign_in(fake, OUTSIDER)
    assert customer_token(fake, outsider_app.token_cache, FABRIKAM)["error_codes"] == [50020]


def test_the_app_must_be_authorized_in_the_customer_tenant(fake):
    app, _result = sign_in(fake)
    fake.set_delegated_scopes(TAILSPIN, [])
    refused = customer_token(fake, app.token_cache, TAILSPIN)
    assert refused["error"] == "invalid_grant" and refused["error_codes"] == [90099]
    fake.set_delegated_scopes(TAILSPIN, ["User.Read.All"])
    token = customer_token(fake, app.token_cache, TAILSPIN)
    assert graph(fake, token["access_token"], "/v1.0/users").status_code == 200
    # Domains need their own permission.
    assert graph(fake, token["access_token"], "/v1.0/domains").status_code == 403
    explicit = customer_token(fake, app.token_cache, WINGTIP, [f"{fake.base_url}/Directory.Read.All"])
    assert explicit["error_codes"] == [65001]


def test_a_role_that_cannot_read_users_gets_a_token_but_graph_refuses(fake):
    app, _result = sign_in(fake)
    fake.set_relationship(TAILSPIN_RELATIONSHIP, roles=[EXCHANGE_ADMINISTRATOR])
    token = customer_token(fake, app.token_cache, TAILSPIN)
    denied = graph(fake, token["access_token"], "/v1.0/users")
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"


def test_refresh_tokens_rotate_expire_after_90_days_and_die_with_revoked_sessions(fake):
    _app, result = sign_in(fake)
    first = result["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": first,
        "scope": f"{fake.base_url}/.default offline_access",
    }
    url = f"{fake.base_url}/{FABRIKAM}/oauth2/v2.0/token"
    second = requests.post(url, data=form, timeout=10).json()
    assert second["refresh_token"] != first
    # The old one is not revoked by its use.
    assert "access_token" in requests.post(url, data=form, timeout=10).json()
    fake.age_refresh_tokens(91)
    expired = requests.post(url, data=form, timeout=10).json()
    assert expired["error_codes"] == [700082]
    _app, result = sign_in(fake)
    fake.revoke_sign_in_sessions(ADMIN)
    revoked = requests.post(url, data={**form, "refresh_token": result["refresh_token"]}, timeout=10).json()
    assert revoked["error"] == "invalid_grant" and revoked["error_codes"] == [50173]


def test_relationships_and_customers_are_listed_as_graph_documents_them(fake):
    _app, result = sign_in(fake)
    token = result["access_token"]
    page = graph(fake, token, "/v1.0/tenantRelationships/delegatedAdminRelationships?$top=2")
    body = page.json()
    assert body["@odata.context"].endswith("/tenantRelationships/$metadata#delegatedAdminRelationships")
    assert len(body["value"]) == 2 and "@odata.nextLink" in body
    headers = {"Authorization": f"Bearer {token}"}
    rest = requests.get(body["@odata.nextLink"], headers=headers, timeout=10).json()
    relationships = body["value"] + rest["value"]
    assert "@odata.nextLink" not in rest and len(relationships) == 3
    tailspin = next(r for r in relationships if r["customer"]["tenantId"] == TAILSPIN)
    assert tailspin["@odata.type"] == "#microsoft.graph.delegatedAdminRelationship"
    assert tailspin["status"] == "active" and tailspin["autoExtendDuration"] == "PT0S"
    assert tailspin["accessDetails"] == {"unifiedRoles": [{"roleDefinitionId": DIRECTORY_READERS}]}
    assert tailspin["endDateTime"].endswith("Z") and "accessAssignments" not in tailspin
    customers = graph(fake, token, "/v1.0/tenantRelationships/delegatedAdminCustomers").json()["value"]
    assert {c["tenantId"] for c in customers} == {FABRIKAM, TAILSPIN, WINGTIP}
    assert all(c["id"] == c["tenantId"] for c in customers)
    assert {c["@odata.type"] for c in customers} == {"#microsoft.graph.delegatedAdminCustomer"}
    too_big = graph(fake, token, "/v1.0/tenantRelationships/delegatedAdminCustomers?$top=301")
    assert too_big.status_code == 400


def test_ended_and_expired_relationships_take_the_customer_away(fake):
    app, result = sign_in(fake)
    fake.end_relationship(TAILSPIN_RELATIONSHIP, "terminated")
    token = result["access_token"]
    customers = graph(fake, token, "/v1.0/tenantRelationships/delegatedAdminCustomers").json()["value"]
    assert TAILSPIN not in {c["tenantId"] for c in customers}
    assert customer_token(fake, app.token_cache, TAILSPIN)["error_codes"] == [50020]
    relationships = fake.relationships(PARTNER)
    assert next(r for r in relationships if r["id"] == TAILSPIN_RELATIONSHIP)["status"] == "terminated"
    # Time passing: a relationship at its end date expires, unless it auto-extends.
    wingtip = next(r for r in relationships if r["customer"]["tenantId"] == WINGTIP)
    fabrikam = next(r for r in relationships if r["customer"]["tenantId"] == FABRIKAM)
    fake.set_relationship(wingtip["id"], end_in_days=-1)
    fake.set_relationship(fabrikam["id"], end_in_days=-1)
    by_id = {r["id"]: r for r in fake.relationships(PARTNER)}
    assert by_id[wingtip["id"]]["status"] == "expired"
    extended = by_id[fabrikam["id"]]
    assert extended["status"] == "active"
    assert 177 <= (parse_iso(extended["endDateTime"]) - datetime.now(timezone.utc)).days < 180


def test_control_api_drives_relationships_over_http(fake):
    control = FakeEntraControl(fake.base_url, ca_file=fake.certs.bundle_file)
    added = control.add_relationship(PARTNER, CONTOSO, end_in_days=45)
    assert added["customer"] == {"tenantId": CONTOSO, "displayName": "Contoso Ltd"}
    assert any(r["id"] == added["id"] for r in control.relationships(PARTNER))
    control.set_delegated_scopes(CONTOSO, ["User.Read.All"])
    app, _result = sign_in(fake)
    assert "access_token" in customer_token(fake, app.token_cache, CONTOSO)
    assert control.end_relationship(added["id"], "expired")["status"] == "expired"
    control.remove_relationship(added["id"])
    assert all(r["id"] != added["id"] for r in control.relationships(PARTNER))
    control.revoke_sign_in_sessions(ADMIN)
    assert control.age_refresh_tokens(1) == {"aged": 1}
