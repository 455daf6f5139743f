"""The fake's partner tenant (tenants/northwind.json) and a browser at Microsoft's sign-in page,
for the tests of connecting customers through the partner (GDAP). No Odoo here: the fake's own
tests import it too."""

from urllib.parse import parse_qs, urlsplit

import requests

PARTNER_ID = "a1cef3e3-0c74-404d-aa19-eeb885f376c4"  # Northwind IT Services, the MSP
FABRIKAM_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
TAILSPIN_ID = "ce4ce420-5249-4523-99ad-247015454770"
WINGTIP_ID = "a9a1a6d6-36af-4bb7-a220-2149cf0b12a1"
CONTOSO_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"  # no relationship with the partner
PARTNER_ADMIN = "nancy.davolio@northwind-it.example"  # Global Administrator, in the GDAP group
TECHNICIAN = "andrew.fuller@northwind-it.example"  # in the GDAP group, no admin role
OUTSIDER = "janet.leverling@northwind-it.example"  # in neither
GDAP_GROUP = "6bb1b6d7-26c9-44d2-b4c4-dae83eb6f77a"
RELATIONSHIPS = {
    FABRIKAM_ID: "844ef4e4-21e4-4875-8b54-859d4fc39f61-ce2bc0f5-3b1e-461b-a5df-b9635faf0d44",
    TAILSPIN_ID: "61578982-dbf7-4b4f-9d47-61bf4a5e7941-f423c2fa-ff61-4b08-a911-0af95b47de6c",
    WINGTIP_ID: "72a0aec9-a548-4fa1-8afc-b2fe6e24a677-36acaaa4-22a9-454c-b586-092c4a0dd3a8",
}


def sign_in_at_microsoft(auth_uri, login=PARTNER_ADMIN, decision="accept", organization=True):
    """What the administrator's browser does on Microsoft's pages: the account, then (when the
    app lacks a permission) the "Permissions requested" page. Returns the redirect's URL, or the
    response of the page where it stopped."""
    page = requests.get(auth_uri, timeout=10)
    assert page.status_code == 200 and 'id="login"' in page.text, page.text[:300]
    action = auth_uri.split("?")[0]
    query = {k: v[0] for k, v in parse_qs(urlsplit(auth_uri).query).items()}
    answer = requests.post(
        action, data={**query, "login": login, "step": "sign_in"}, allow_redirects=False, timeout=10
    )
    if answer.status_code == 200 and 'id="accept"' in answer.text:
        data = {**query, "login": login, "step": "consent", "decision": decision}
        if organization:
            data["consent_org"] = "1"
        answer = requests.post(action, data=data, allow_redirects=False, timeout=10)
    return answer.headers["Location"] if answer.status_code == 302 else answer


def query_of(url):
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
