"""The consent flow over real HTTP, driven the way a browser drives it: Odoo's connect route →
the fake Microsoft consent page → Odoo's callback → back on the customer."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import requests

from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools.misc import hash_sign

from odoo.addons.azure_ad_contacts.controllers.main import STATE_SCOPE

from .common import CONTOSO_ID, FakeTenantMixin


@tagged("post_install", "-at_install")
class TestConsentFlow(FakeTenantMixin, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain_user = new_test_user(cls.env, login="plain_consent", password="plain_consent_pw")

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())
        self.authenticate("admin", "admin")

    # -- helpers: one hop at a time, as a browser does ---------------------------------------

    def start_connect(self):
        response = self.url_open(f"/azure_ad_contacts/connect/{self.integration.id}", allow_redirects=False)
        self.assertEqual(response.status_code, 302, response.text[:500])  # the documented redirect
        return response.headers["Location"]

    def consent_at_microsoft(self, consent_url, decision="accept", tenant=CONTOSO_ID):
        """The customer admin's browser on Microsoft's page: GET the form, POST the decision."""
        page = requests.get(consent_url, timeout=10)
        self.assertEqual(page.status_code, 200)
        self.assertIn('id="accept"', page.text)
        query = {k: v[0] for k, v in parse_qs(urlsplit(consent_url).query).items()}
        answer = requests.post(
            consent_url.split("?")[0],
            data={**query, "tenant": tenant, "decision": decision},
            allow_redirects=False,
            timeout=10,
        )
        self.assertEqual(answer.status_code, 302)
        return answer.headers["Location"]

    def back_to_odoo(self, callback_url):
        self.assertTrue(callback_url.startswith(self.base_url()), callback_url)
        return self.url_open(callback_url.removeprefix(self.base_url()), allow_redirects=False)

    def callback(self, **params):
        return self.url_open(
            "/azure_ad_contacts/oauth/callback?" + "&".join(f"{k}={v}" for k, v in params.items()),
            allow_redirects=False,
        )

    # -- tests ---------------------------------------------------------------------------------

    def test_connect_redirects_to_the_admin_consent_endpoint(self):
        location = self.start_connect()
        url = urlsplit(location)
        self.assertEqual(f"{url.scheme}://{url.netloc}", self.fake.base_url)
        self.assertEqual(url.path, "/organizations/v2.0/adminconsent")
        query = parse_qs(url.query)
        self.assertEqual(query["scope"], [f"{self.fake.base_url}/.default"])
        self.assertEqual(query["redirect_uri"], [f"{self.base_url()}/azure_ad_contacts/oauth/callback"])
        self.assertTrue(query["client_id"][0] and query["state"][0])

    def test_full_flow_connects_and_runs_the_first_sync(self):
        callback_url = self.consent_at_microsoft(self.start_connect())
        self.assertIn("admin_consent=True", callback_url)
        response = self.back_to_odoo(callback_url)
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        self.assertTrue(
            response.headers["Location"].endswith(
                f"/odoo/contacts/{self.customer.id}?azure_ad_connected=1"
            )
        )
        self.assertEqual(self.integration.state, "connected")
        self.assertEqual(self.integration.tenant_id, CONTOSO_ID)
        log = self.integration.sync_log_ids
        self.assertEqual((log.trigger, log.state, log.created), ("connect", "done", 15))
        self.assertEqual(len(self.customer.child_ids), 15)
        self.assertIn("15 created", self.customer.message_ids[0].body)
        # Replaying the same callback is refused: the state is single-use.
        self.assertEqual(self.back_to_odoo(callback_url).status_code, 403)

    def test_declined_consent_shows_the_error_and_changes_nothing(self):
        callback_url = self.consent_at_microsoft(self.start_connect(), decision="cancel")
        self.assertIn("error=access_denied", callback_url)
        response = self.back_to_odoo(callback_url)
        self.assertEqual(response.status_code, 400)
        self.assertIn("access_denied", response.text)
        self.assertIn("AADSTS65004", response.text)
        self.assertEqual(self.integration.state, "draft")
        self.assertFalse(self.customer.child_ids)

    def test_unproven_tenant_is_refused(self):
        """A tenant that did not consent (the callback's tenant value is no proof)."""
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        response = self.callback(
            admin_consent="True", tenant="72f988bf-86f1-41af-91ab-2d7cd011db47", state=state
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("AADSTS700016", self.integration.last_error)
        self.assertEqual(self.integration.state, "error")
        self.assertFalse(self.customer.child_ids)

    def test_unknown_tenant_is_refused(self):
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        response = self.callback(
            admin_consent="True", tenant="00000000-0000-0000-0000-000000000000", state=state
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("AADSTS90002", response.text)

    def test_missing_forged_expired_and_foreign_states_are_refused(self):
        self.start_connect()
        nonce = self.integration.consent_nonce
        good = {
            "integration": self.integration.id,
            "user": self.env.ref("base.user_admin").id,
            "db": self.env.cr.dbname,
            "nonce": nonce,
        }
        env = self.env(su=True)
        expired = hash_sign(env, STATE_SCOPE, good, expiration=datetime.now() - timedelta(seconds=10))
        forged = hash_sign(env, "another.scope", good, expiration_hours=1)
        other_user = hash_sign(env, STATE_SCOPE, {**good, "user": self.plain_user.id}, expiration_hours=1)
        other_db = hash_sign(env, STATE_SCOPE, {**good, "db": "other"}, expiration_hours=1)
        wrong_nonce = hash_sign(env, STATE_SCOPE, {**good, "nonce": "guess"}, expiration_hours=1)
        for state in ("", "garbage", "AAAA", forged, expired, other_user, other_db, wrong_nonce):
            response = self.callback(admin_consent="True", tenant=CONTOSO_ID, state=state)
            self.assertEqual(response.status_code, 403, state)
        self.assertEqual(self.integration.state, "draft")

    def test_non_admins_cannot_use_the_routes(self):
        location = self.start_connect()
        state = parse_qs(urlsplit(location).query)["state"][0]
        self.authenticate("plain_consent", "plain_consent_pw")
        response = self.url_open(f"/azure_ad_contacts/connect/{self.integration.id}", allow_redirects=False)
        self.assertEqual(response.status_code, 403)
        self.fake.set_consent(CONTOSO_ID, True)
        response = self.callback(admin_consent="True", tenant=CONTOSO_ID, state=state)
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.integration.state, "draft")
        # Logged out: Odoo sends the visitor to the login page, nothing runs.
        self.authenticate(None, None)
        response = self.url_open(f"/azure_ad_contacts/connect/{self.integration.id}", allow_redirects=False)
        self.assertIn("/web/login", response.headers.get("Location", ""))
