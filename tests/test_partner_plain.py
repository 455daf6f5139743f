"""The plain-Python side of connecting through the partner tenant: GDAP relationships as Graph
sends them (hostile input included), what they give per customer, the matching of tenants to
Odoo customers, and the delegated sign-in and tokens with real MSAL against the fake."""

from datetime import datetime, timedelta
from unittest.mock import patch

import msal
import pytest

from odoo.addons.azure_ad_contacts.utils import delegated_auth, gdap, graph_client
from odoo.addons.azure_ad_contacts.utils.partner_matching import (
    Company,
    Matcher,
    Proposal,
    normalized_name,
    website_domain,
)

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .common import fake_entra
from .partner_common import (
    CONTOSO_ID,
    FABRIKAM_ID,
    PARTNER_ADMIN,
    PARTNER_ID,
    RELATIONSHIPS,
    TAILSPIN_ID,
    WINGTIP_ID,
    query_of,
    sign_in_at_microsoft,
)

READERS = gdap.DIRECTORY_READERS
EXCHANGE = "29232cdf-9323-42fd-ade2-1d097af3e4de"
REDIRECT = "https://odoo.example/azure_ad_contacts/partner/callback"


def relationship(
    status="active",
    end="2027-01-31T10:00:00.1234567Z",
    extend="PT0S",
    roles=(READERS,),
    tenant=FABRIKAM_ID,
    **extra,
):
    return {
        "id": f"rel-{status}-{end}",
        "displayName": "Fabrikam",
        "status": status,
        "customer": {"tenantId": tenant, "displayName": "Fabrikam, Inc."},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": role} for role in roles]},
        "endDateTime": end,
        "autoExtendDuration": extend,
        **extra,
    }


# ------------------------------------------------------------------ relationships


def test_relationships_are_parsed_as_graph_sends_them():
    parsed = gdap.parse_relationship(relationship())
    assert parsed.customer_tenant_id == FABRIKAM_ID and parsed.status == "active"
    assert parsed.end == datetime(2027, 1, 31, 10, 0, 0, 123456)
    assert parsed.reads_users and not parsed.auto_extend and parsed.role_names == ["Directory Readers"]
    assert gdap.parse_relationship(relationship(extend="P180D")).auto_extend
    assert gdap.parse_datetime("2027-01-31T12:00:00+02:00") == datetime(2027, 1, 31, 10, 0)
    assert gdap.parse_relationship(relationship(end=None)).end is None


@pytest.mark.parametrize(
    "item",
    [
        None,
        [],
        "x",
        {"id": "r"},
        relationship(tenant="not-a-guid"),
        {**relationship(), "id": 5},
        {**relationship(), "customer": "Fabrikam"},
    ],
)
def test_what_is_not_a_relationship_is_left_out(item):
    assert gdap.parse_relationship(item) is None


def test_hostile_relationship_fields_are_tamed():
    parsed = gdap.parse_relationship(
        relationship(
            status="superActive",
            end="yesterday",
            roles=(READERS, "x", None),
            extend=["P180D"],
            displayName="A\x00B" + "c" * 1000,
        )
    )
    assert parsed.status == "unknownFutureValue" and not parsed.reads_users
    assert parsed.end is None and parsed.roles == {READERS} and not parsed.auto_extend
    assert "\x00" not in parsed.name and len(parsed.name) <= 200
    assert gdap.parse_customer({"tenantId": FABRIKAM_ID.upper(), "displayName": None}) == (FABRIKAM_ID, "")
    assert gdap.parse_customer({"tenantId": "nope"}) is None


def test_what_the_relationships_of_one_customer_give():
    def access(*items):
        return gdap.customer_access(gdap.parse_relationship(item) for item in items)

    later = relationship(end="2028-06-01T00:00:00Z")
    assert access(relationship(), later) == gdap.CustomerAccess("active", datetime(2028, 6, 1), False)
    assert access(
        relationship(), relationship(extend="P180D", end="2026-01-01T00:00:00Z")
    ) == gdap.CustomerAccess("active", None, True)
    # An ended relationship beside an active one does not end the access.
    assert access(relationship(status="terminated"), later).state == "active"
    assert access(relationship(roles=(EXCHANGE,))).state == "no_role"
    assert access(relationship(status="approvalPending", end=None)).state == "pending"
    ended = gdap.CustomerAccess("ended", datetime(2027, 1, 31, 10, 0, 0, 123456))
    assert access(relationship(status="expired")) == ended
    assert gdap.customer_access([]).state == "ended"


# ------------------------------------------------------------------ matching


def test_a_verified_domain_decides_before_the_name():
    contoso = Company(1, "Contoso Ltd")
    contoso.add_domain(website_domain("https://www.contoso.example/contact"), "website")
    fabrikam = Company(2, "Fabrikam")
    fabrikam.add_domain("mail.fabrikam.example", "email")
    same_name = Company(3, "Fabrikam, Inc.")
    matcher = Matcher([contoso, fabrikam, same_name])
    proposal = matcher.propose(["contoso.example", "contoso.onmicrosoft.com"], "Totally Different")
    assert (proposal.company_id, proposal.reason) == (1, "domain")
    assert "contoso.example" in proposal.detail
    # A subdomain of a verified domain is that tenant's; the name would have pointed elsewhere.
    assert matcher.propose(["fabrikam.example"], "Fabrikam, Inc.").company_id == 2
    # No domain: the name, legal forms and punctuation left out, when only one company has it.
    assert matcher.propose(["other.example"], "CONTOSO Limited").company_id == 1
    assert matcher.propose([], "Wingtip Toys") == Proposal()


def test_two_companies_with_the_domain_or_the_name_propose_nobody():
    first, second = Company(1, "Tailspin Toys"), Company(2, "Tailspin Toys GmbH")
    first.add_domain("tailspintoys.example", "website")
    second.add_domain("tailspintoys.example", "contact")
    proposal = Matcher([first, second]).propose(["tailspintoys.example"], "Tailspin Toys")
    assert proposal.company_id is None and proposal.candidates == (1, 2)
    matcher = Matcher([Company(1, "Tailspin Toys"), Company(2, "Tailspin-Toys Inc.")])
    proposal = matcher.propose([], "Tailspin Toys")
    assert proposal.company_id is None and proposal.candidates == (1, 2)
    assert normalized_name("Société Générale & Co. KG") == "societe generale"
    assert website_domain("not a url") is None and website_domain("contoso.example") == "contoso.example"


# ------------------------------------------------------------------ delegated access, real MSAL


@pytest.fixture
def fake():
    fake = fake_entra()
    fake.reset()
    return fake


def msal_app(fake, tenant="organizations", cache=None):
    return graph_client.build_msal_app(
        DEFAULT_CLIENT_ID,
        DEFAULT_CLIENT_SECRET,
        fake.base_url,
        tenant,
        token_cache=cache or msal.SerializableTokenCache(),
        http_cache={},
    )


def signed_in(fake):
    app = msal_app(fake)
    flow = delegated_auth.start_sign_in(app, fake.base_url, REDIRECT, "signed-state")
    claims = delegated_auth.finish_sign_in(app, flow, query_of(sign_in_at_microsoft(flow["auth_uri"])))
    return app, claims


def test_sign_in_leaves_a_refresh_token_that_reaches_gdap_customers(fake):
    app, claims = signed_in(fake)
    assert claims["tid"] == PARTNER_ID and claims["preferred_username"] == PARTNER_ADMIN
    cache = app.token_cache.serialize()
    customer = msal_app(fake, FABRIKAM_ID, _cache(cache))
    token = delegated_auth.acquire_delegated_token(
        customer, delegated_auth.customer_scopes(fake.base_url), claims["home_account_id"]
    )
    client = graph_client.GraphClient(fake.base_url, lambda force: token)
    assert len(next(client.iter_user_pages())) == 8
    assert client.token_tenant_id == FABRIKAM_ID
    assert client.verified_domains() == ["fabrikam.example", "fabrikam.onmicrosoft.com"]
    with pytest.raises(delegated_auth.PartnerAccessError):  # Contoso: no relationship
        delegated_auth.acquire_delegated_token(
            msal_app(fake, CONTOSO_ID, _cache(cache)),
            delegated_auth.customer_scopes(fake.base_url),
            claims["home_account_id"],
        )
    fake.set_delegated_scopes(WINGTIP_ID, [])
    with pytest.raises(delegated_auth.PartnerAppNotAuthorizedError):
        delegated_auth.acquire_delegated_token(
            msal_app(fake, WINGTIP_ID, _cache(cache)),
            delegated_auth.customer_scopes(fake.base_url),
            claims["home_account_id"],
        )
    fake.revoke_sign_in_sessions(PARTNER_ADMIN)
    with pytest.raises(delegated_auth.SignInRequiredError):
        delegated_auth.acquire_delegated_token(
            msal_app(fake, TAILSPIN_ID, _cache(cache)),
            delegated_auth.customer_scopes(fake.base_url),
            claims["home_account_id"],
        )


def _cache(serialized):
    cache = msal.SerializableTokenCache()
    cache.deserialize(serialized)
    return cache


def test_a_declined_or_forged_sign_in_is_refused(fake):
    app = msal_app(fake)
    flow = delegated_auth.start_sign_in(app, fake.base_url, REDIRECT, "signed-state")
    declined = query_of(sign_in_at_microsoft(flow["auth_uri"], decision="cancel"))
    with pytest.raises(delegated_auth.SignInFailedError):
        delegated_auth.finish_sign_in(app, flow, declined)
    flow = delegated_auth.start_sign_in(app, fake.base_url, REDIRECT, "signed-state")
    answer = query_of(sign_in_at_microsoft(flow["auth_uri"]))
    with pytest.raises(delegated_auth.SignInFailedError):
        delegated_auth.finish_sign_in(app, flow, {**answer, "state": "another"})
    with pytest.raises(delegated_auth.SignInRequiredError):
        delegated_auth.acquire_delegated_token(msal_app(fake), ["x"], "nobody.nowhere")


def test_the_partner_lists_customers_and_relationships_page_by_page(fake):
    app, claims = signed_in(fake)

    def token(force_refresh=False):
        return delegated_auth.acquire_delegated_token(
            app, delegated_auth.sign_in_scopes(fake.base_url), claims["home_account_id"], force_refresh
        )

    client = gdap.PartnerGraphClient(fake.base_url, token)
    with patch.object(gdap, "PAGE_SIZE", 1):
        customers = dict(client.delegated_admin_customers())
        relationships = list(client.delegated_admin_relationships())
    assert client.request_count == 3 + 3
    assert customers == {
        FABRIKAM_ID: "Fabrikam, Inc.",
        TAILSPIN_ID: "Tailspin Toys",
        WINGTIP_ID: "Wingtip Toys",
    }
    by_tenant = {r.customer_tenant_id: r for r in relationships}
    assert by_tenant[TAILSPIN_ID].relationship_id == RELATIONSHIPS[TAILSPIN_ID]
    assert by_tenant[FABRIKAM_ID].auto_extend and not by_tenant[TAILSPIN_ID].auto_extend
    soon = by_tenant[TAILSPIN_ID].end - gdap.utcnow()
    assert timedelta(days=19) < soon <= timedelta(days=20)
