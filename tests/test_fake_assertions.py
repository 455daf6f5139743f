"""The fake's token endpoint checks certificate credentials as Entra ID documents them
(learn.microsoft.com/entra/identity-platform/certificate-credentials), answers transient
failures as Entra does, and hides the members of hidden-membership groups. Plain pytest, no Odoo:
real MSAL and hand-made client assertions over HTTPS."""

import base64
import sys
import time
import uuid
from pathlib import Path

import jwt
import msal
import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from fake_entra import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEntra, load_tenant_files

from .app_certificates import make_app_certificate

CONTOSO = "9188040d-6c67-4c5b-b112-36a304b66dad"
GROUP = "6a8c1b2e-3d4f-4a5b-8c7d-9e0f1a2b3c4d"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CERT = make_app_certificate()
OTHER = make_app_certificate()


@pytest.fixture(scope="module")
def fake(tmp_path_factory, monkeypatch_module):
    with FakeEntra(cert_dir=str(tmp_path_factory.mktemp("certs")), tenants=load_tenant_files()) as server:
        monkeypatch_module.setenv("REQUESTS_CA_BUNDLE", server.certs.bundle_file)
        yield server


@pytest.fixture(scope="module")
def monkeypatch_module():
    patcher = pytest.MonkeyPatch()
    yield patcher
    patcher.undo()


@pytest.fixture(autouse=True)
def clean(fake):
    fake.reset()
    fake.set_consent(CONTOSO, True)
    fake.add_app(DEFAULT_CLIENT_ID, None, certificates=[CERT.certificate])


def token_endpoint(fake):
    return f"{fake.base_url}/{CONTOSO}/oauth2/v2.0/token"


def thumbprint(pem, algorithm):
    certificate = x509.load_pem_x509_certificate(pem.encode())
    return base64.urlsafe_b64encode(certificate.fingerprint(algorithm)).decode().rstrip("=")


def assertion(fake, key=CERT.key, certificate=CERT.certificate, alg="PS256", header=None, **claims):
    now = int(time.time())
    payload = {"aud": token_endpoint(fake), "iss": DEFAULT_CLIENT_ID, "sub": DEFAULT_CLIENT_ID,
               "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600, **claims}
    payload = {name: value for name, value in payload.items() if value is not None}
    headers = header if header is not None else (
        {"x5t#S256": thumbprint(certificate, hashes.SHA256())} if alg == "PS256"
        else {"x5t": thumbprint(certificate, hashes.SHA1())})
    return jwt.encode(payload, key, algorithm=alg, headers=headers)


def request_token(fake, client_assertion, assertion_type=JWT_BEARER, **form):
    return requests.post(token_endpoint(fake), data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
        "scope": f"{fake.base_url}/.default", "client_assertion_type": assertion_type,
        "client_assertion": client_assertion, **form}, timeout=10)


def refused(response, code):
    body = response.json()
    assert response.status_code == 401, body
    assert body["error"] == "invalid_client" and body["error_codes"] == [code], body
    return body["error_description"]


def test_msal_signs_with_the_certificate_as_microsoft_recommends(fake):
    app = msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID, authority=f"{fake.base_url}/{CONTOSO}", instance_discovery=False, http_cache={},
        client_credential={"private_key": CERT.key, "public_certificate": CERT.certificate})
    assert app.acquire_token_for_client([f"{fake.base_url}/.default"])["token_type"] == "Bearer"


def test_rs256_with_the_sha1_thumbprint_is_accepted_too(fake):
    sha1 = x509.load_pem_x509_certificate(CERT.certificate.encode()).fingerprint(hashes.SHA1()).hex()
    app = msal.ConfidentialClientApplication(
        DEFAULT_CLIENT_ID, authority=f"{fake.base_url}/{CONTOSO}", instance_discovery=False, http_cache={},
        client_credential={"private_key": CERT.key, "thumbprint": sha1})
    assert app.acquire_token_for_client([f"{fake.base_url}/.default"])["token_type"] == "Bearer"
    assert request_token(fake, assertion(fake, alg="RS256")).status_code == 200


def test_a_certificate_not_registered_on_the_app_is_refused(fake):
    description = refused(request_token(fake, assertion(fake, OTHER.key, OTHER.certificate)), 700027)
    assert "The key was not found" in description


def test_a_signature_by_another_key_is_refused(fake):
    description = refused(request_token(fake, assertion(fake, key=OTHER.key)), 700027)
    assert "signature value did not match" in description


def test_an_expired_registered_certificate_is_refused(fake):
    expired = make_app_certificate(valid_days=-1, starts_days=-30)
    fake.add_app(DEFAULT_CLIENT_ID, None, certificates=[expired.certificate])
    description = refused(request_token(fake, assertion(fake, expired.key, expired.certificate)), 700027)
    assert "The key used is expired" in description


@pytest.mark.parametrize(("claims", "code"), [
    ({"aud": "https://login.microsoftonline.com/common/oauth2/v2.0/token"}, 700023),
    ({"iss": str(uuid.uuid4())}, 700021),
    ({"sub": str(uuid.uuid4())}, 50048),
    ({"exp": int(time.time()) - 3600}, 700024),
    ({"nbf": int(time.time()) + 3600, "iat": None}, 700024),
    ({"jti": None}, 50027),
])
def test_the_assertion_claims_are_checked(fake, claims, code):
    refused(request_token(fake, assertion(fake, **claims)), code)


def test_an_unreadable_assertion_or_another_type_is_refused(fake):
    refused(request_token(fake, "not.a-jwt"), 50027)
    refused(request_token(fake, assertion(fake), assertion_type="urn:other"), 50027)
    refused(request_token(fake, assertion(fake, header={})), 700027)  # names no certificate


def test_a_secret_is_refused_when_the_app_has_only_certificates(fake):
    response = requests.post(token_endpoint(fake), data={
        "grant_type": "client_credentials", "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET, "scope": f"{fake.base_url}/.default"}, timeout=10)
    assert response.status_code == 401 and response.json()["error_codes"] == [7000215]


def test_transient_login_failures_as_entra_answers_them(fake):
    fake.add_fault(kind="503", target="token")
    fake.add_fault(kind="transient", target="token")
    first, second = (request_token(fake, assertion(fake)) for _ in range(2))
    assert first.status_code == 503 and first.json()["error"] == "temporarily_unavailable"
    assert second.status_code == 400 and second.json()["error"] == "temporarily_unavailable"
    assert first.json()["error_codes"] == second.json()["error_codes"] == [90033]
    assert request_token(fake, assertion(fake)).status_code == 200


def test_hidden_membership_needs_member_read_hidden(fake):
    tenant = fake.tenant(CONTOSO)
    member = tenant["users"][0]["id"]
    fake.set_groups(CONTOSO, [{"id": GROUP, "displayName": "Board", "visibility": "HiddenMembership",
                               "members": [member]}])
    url = f"{fake.base_url}/v1.0/groups/{GROUP}"

    def get(path, roles):
        fake.set_roles(CONTOSO, roles)
        token = request_token(fake, assertion(fake)).json()["access_token"]
        return requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    denied = get("/transitiveMembers?$select=id", ["User.Read.All", "GroupMember.Read.All"])
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "Authorization_RequestDenied"
    group = get("?$select=id,visibility", ["User.Read.All", "GroupMember.Read.All"])
    assert group.json()["visibility"] == "HiddenMembership"
    allowed = get("/transitiveMembers?$select=id",
                  ["User.Read.All", "GroupMember.Read.All", "Member.Read.Hidden"])
    assert [item["id"] for item in allowed.json()["value"]] == [member]
    assert get("?$select=id", ["User.Read.All"]).status_code == 403  # GroupMember.Read.All missing
