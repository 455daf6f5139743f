"""Connecting through the partner tenant over real HTTP, as a browser drives it: the "Sign in as
partner administrator" button (the web client's call of action_sign_in) → Microsoft's sign-in
and consent pages (the fake's) → Odoo's callback, which redeems the code with MSAL (PKCE), keeps
the sign-in and lists the partner's customers with the Odoo customer proposed for each."""

from datetime import timedelta
from urllib.parse import urlsplit

from odoo.exceptions import AccessError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.misc import hash_sign

from odoo.addons.azure_ad_contacts.models.azure_ad_partner_tenant import SIGN_IN_STATE_SCOPE

from .common import FakeTenantMixin
from .partner_common import (
    FABRIKAM_ID,
    PARTNER_ADMIN,
    PARTNER_ID,
    RELATIONSHIPS,
    TAILSPIN_ID,
    TECHNICIAN,
    WINGTIP_ID,
    query_of,
    sign_in_at_microsoft,
)


@tagged("post_install", "-at_install")
class TestPartnerSignIn(FakeTenantMixin, HttpCase):
    create_integration = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        # Fabrikam by its email domain (verified in its tenant), Tailspin by name, Wingtip: none.
        cls.fabrikam = Partner.create(
            {"name": "Fabrikam", "is_company": True, "email": "info@fabrikam.example"}
        )
        cls.tailspin = Partner.create({"name": "Tailspin Toys Ltd.", "is_company": True})
        cls.plain_user = new_test_user(cls.env, login="plain_partner", password="plain_partner_pw")

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())
        self.authenticate("admin", "admin")
        self.partner = self.env["azure.ad.partner.tenant"]._get_partner_tenant()

    def start_sign_in(self):
        action = self.make_jsonrpc_request(
            "/web/dataset/call_kw/azure.ad.partner.tenant/action_sign_in",
            {
                "model": "azure.ad.partner.tenant",
                "method": "action_sign_in",
                "args": [[self.partner.id]],
                "kwargs": {},
            },
        )
        self.assertEqual((action["type"], action["target"]), ("ir.actions.act_url", "self"))
        return action["url"]

    def back_to_odoo(self, location):
        self.assertTrue(
            location.startswith(f"{self.base_url()}/azure_ad_contacts/partner/callback"), location
        )
        return self.url_open(location.removeprefix(self.base_url()), allow_redirects=False)

    def test_one_sign_in_lists_every_customer_with_the_odoo_customer_proposed(self):
        auth_uri = self.start_sign_in()
        url = urlsplit(auth_uri)
        self.assertEqual(f"{url.scheme}://{url.netloc}", self.fake.base_url)
        query = query_of(auth_uri)
        self.assertEqual(query["code_challenge_method"], "S256")  # PKCE
        self.assertIn("DelegatedAdminRelationship.Read.All", query["scope"])
        self.assertEqual(query["redirect_uri"], f"{self.base_url()}/azure_ad_contacts/partner/callback")

        answer = self.back_to_odoo(sign_in_at_microsoft(auth_uri))
        self.assertEqual(answer.status_code, 303, answer.text[:500])
        self.assertTrue(
            answer.headers["Location"].endswith(f"/odoo/azure.ad.partner.tenant/{self.partner.id}")
        )

        self.partner.invalidate_recordset()
        self.assertRecordValues(
            self.partner,
            [
                {
                    "state": "connected",
                    "tenant_id": PARTNER_ID,
                    "signed_in_as": PARTNER_ADMIN,
                    "name": "northwind-it.example",
                    "last_error": False,
                }
            ],
        )
        self.assertIn('"RefreshToken"', self.partner.sudo().token_cache)
        self.assertFalse(self.partner.sudo().sign_in_flow)
        customers = {c.tenant_id: c for c in self.partner.customer_ids}
        self.assertEqual(set(customers), {FABRIKAM_ID, TAILSPIN_ID, WINGTIP_ID})
        self.assertRecordValues(
            customers[FABRIKAM_ID],
            [
                {
                    "name": "Fabrikam, Inc.",
                    "access_state": "active",
                    "auto_extend": True,
                    "match_state": "new",
                    "proposed_partner_id": self.fabrikam.id,
                    "partner_id": self.fabrikam.id,
                    "match_reason": "domain",
                    "verified_domains": "fabrikam.example, fabrikam.onmicrosoft.com",
                    "access_problem": False,
                }
            ],
        )
        self.assertIn("fabrikam.example (email)", customers[FABRIKAM_ID].match_detail)
        self.assertRecordValues(
            customers[TAILSPIN_ID],
            [
                {
                    "partner_id": self.tailspin.id,
                    "match_reason": "name",
                    "auto_extend": False,
                }
            ],
        )
        self.assertAlmostEqual(
            customers[TAILSPIN_ID].access_end_date,
            self.partner.signed_in_date + timedelta(days=20),
            delta=timedelta(minutes=5),
        )
        self.assertRecordValues(customers[WINGTIP_ID], [{"partner_id": False, "match_reason": False}])
        relationship = customers[TAILSPIN_ID].relationship_ids
        self.assertRecordValues(
            relationship,
            [
                {
                    "relationship_id": RELATIONSHIPS[TAILSPIN_ID],
                    "status": "active",
                    "role_names": "Directory Readers",
                    "reads_users": True,
                }
            ],
        )
        # Nothing is connected before an administrator confirms.
        self.assertFalse(self.env["azure.ad.integration"].search([]))

    def test_a_declined_sign_in_says_why_and_keeps_nothing(self):
        answer = self.back_to_odoo(sign_in_at_microsoft(self.start_sign_in(), decision="cancel"))
        self.assertEqual(answer.status_code, 400)
        self.assertIn("AADSTS65004", answer.text)
        self.partner.invalidate_recordset()
        self.assertEqual(self.partner.state, "draft")
        self.assertFalse(self.partner.sudo().token_cache)
        # A technician cannot consent for the organisation: Microsoft stops at its own page.
        stopped = sign_in_at_microsoft(self.start_sign_in(), login=TECHNICIAN)
        self.assertEqual(stopped.status_code, 403)
        self.assertIn("AADSTS90094", stopped.text)

    def test_forged_expired_replayed_and_foreign_states_are_refused(self):
        location = sign_in_at_microsoft(self.start_sign_in())
        code = query_of(location)["code"]

        def callback(state):
            return self.url_open(
                f"/azure_ad_contacts/partner/callback?code={code}&state={state}", allow_redirects=False
            )

        self.assertEqual(callback("forged").status_code, 403)
        env = self.env(su=True)
        values = {
            "partner": self.partner.id,
            "user": self.env.ref("base.user_admin").id,
            "db": self.env.cr.dbname,
            "nonce": self.partner.sudo().sign_in_nonce,
        }
        expired = hash_sign(env, SIGN_IN_STATE_SCOPE, values, expiration_hours=-1)
        self.assertEqual(callback(expired).status_code, 403)
        other_db = hash_sign(env, SIGN_IN_STATE_SCOPE, {**values, "db": "other"}, expiration_hours=1)
        self.assertEqual(callback(other_db).status_code, 403)
        # The real answer works once; the same state again is refused (its nonce is spent).
        self.assertEqual(self.back_to_odoo(location).status_code, 303)
        self.assertEqual(callback(query_of(location)["state"]).status_code, 403)
        # Another user (even an administrator) cannot finish a sign-in started by someone else.
        self.authenticate("plain_partner", "plain_partner_pw")
        self.assertEqual(callback(query_of(location)["state"]).status_code, 403)

    def test_only_administrators_see_or_start_it(self):
        for model in (
            "azure.ad.partner.tenant",
            "azure.ad.partner.customer",
            "azure.ad.partner.relationship",
        ):
            with self.assertRaises(AccessError):
                self.env[model].with_user(self.plain_user).search([])
        with self.assertRaises(AccessError):
            self.partner.with_user(self.plain_user).action_sign_in()
        for name in ("token_cache", "home_account_id", "sign_in_flow", "sign_in_nonce"):
            field = self.partner._fields[name]
            self.assertEqual((field.groups, field.copy), ("base.group_system", False), name)
