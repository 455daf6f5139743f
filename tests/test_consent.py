"""The consent flow over real HTTP, driven the way a browser drives it: the Connect button (the
web client's call of action_connect) → the fake Microsoft consent page → Odoo's callback → back
on the customer."""

import json
import re
import time
from datetime import datetime, timedelta
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

import requests

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tests.common import JsonRpcException
from odoo.tools.misc import hash_sign

from odoo.addons.azure_ad_contacts.controllers.main import PENDING_SCOPE, STATE_SCOPE
from odoo.addons.azure_ad_contacts.models import azure_ad_consent_mixin
from odoo.addons.azure_ad_contacts.utils import graph_client

from .common import CONTOSO_ID, FABRIKAM_ID, FakeTenantMixin

PROVE = "/azure_ad_contacts/consent/prove"


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
        """The Connect button: the web client calls action_connect and opens its URL."""
        action = self.make_jsonrpc_request(
            "/web/dataset/call_kw/azure.ad.integration/action_connect",
            {
                "model": "azure.ad.integration",
                "method": "action_connect",
                "args": [[self.integration.id]],
                "kwargs": {},
            },
        )
        self.assertEqual((action["type"], action["target"]), ("ir.actions.act_url", "self"))
        return action["url"]

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

    def connect_wizard(self, **values):
        """The connect dialog, as the administrator signed in to the browser opens it."""
        admin = self.env.ref("base.user_admin")
        return (
            self.env["azure.ad.connect.wizard"]
            .with_user(admin)
            .create({"integration_id": self.integration.id, **values})
        )

    def check(self, pending):
        """One check of the waiting page's script: (HTTP status, what the page reads)."""
        response = self.url_open(
            PROVE,
            data=json.dumps({"jsonrpc": "2.0", "method": "call", "params": {"pending": pending}}),
            headers={"Content-Type": "application/json"},
        )
        body = response.json()
        return response.status_code, body.get("result", body)

    def pending_of(self, waiting_page):
        self.assertEqual(waiting_page.status_code, 200, waiting_page.text[:500])
        self.assertIn("Waiting for Microsoft", waiting_page.text)
        self.assertIn('id="azure_ad_consent_check_again"', waiting_page.text)
        return re.search(r'data-pending="([^"]+)"', waiting_page.text).group(1)

    def prove_pending(self, waiting_page, max_checks=40):
        """What the waiting page's script does: check again (here every half second instead of
        every few) until Microsoft confirms the consent or the check fails; the last answer."""
        pending = self.pending_of(waiting_page)
        for _check in range(max_checks):
            status, answer = self.check(pending)
            self.assertEqual(status, 200, answer)
            if not answer.get("waiting"):
                return answer
            self.assertLess(answer["waited"], 60)
            pending = answer["pending"]
            time.sleep(0.5)
        self.fail(f"still waiting after {max_checks} checks")

    def pending_token(self, **changes):
        """A waiting page's token, signed as Odoo signs them, for the consent under way."""
        values = {
            "integration": self.integration.id,
            "user": self.env.ref("base.user_admin").id,
            "db": self.env.cr.dbname,
            "nonce": self.integration._new_consent_nonce(),
            "tenant": CONTOSO_ID,
            "hint": None,
            "since": fields.Datetime.to_string(fields.Datetime.now()),
            **changes,
        }
        return hash_sign(self.env(su=True), PENDING_SCOPE, values, expiration_hours=1)

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
            response.headers["Location"].endswith(f"/odoo/contacts/{self.customer.id}?azure_ad_connected=1")
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
        """A tenant that did not consent (the callback's tenant value is no proof): Microsoft's
        answer is the same as for a consent that is still spreading, so Odoo waits for it, then
        gives up with Microsoft's reason."""
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        waiting = self.callback(admin_consent="True", tenant=FABRIKAM_ID, state=state)
        with patch.object(azure_ad_consent_mixin, "CONSENT_WAIT", timedelta(seconds=2)):
            answer = self.prove_pending(waiting)
        self.assertNotIn("redirect", answer)
        self.assertIn("AADSTS700016", answer["error"])
        self.assertIn("AADSTS700016", self.integration.last_error)
        self.assertEqual(self.integration.state, "error")
        self.assertFalse(self.integration.consent_waiting_since)
        self.assertFalse(self.integration.tenant_id)  # written only once proven
        self.assertFalse(self.integration.sudo().token_cache)
        self.assertFalse(self.customer.child_ids)

    def test_a_consent_still_spreading_shows_a_waiting_page_then_connects(self):
        for symptom in ("token", "graph", "roles"):
            with self.subTest(symptom=symptom):
                self.fake.reset()
                self.integration.sudo().write({"state": "draft", "tenant_id": False, "token_cache": False})
                # Right after consent, Microsoft answers as if there were none for a few seconds.
                self.fake.set_consent_delay(3, symptom=symptom)
                callback_url = self.consent_at_microsoft(self.start_connect())
                waiting = self.back_to_odoo(callback_url)
                self.assertTrue(self.integration.consent_waiting_since)
                self.assertEqual(self.integration.state, "draft")  # waiting is not failing
                answer = self.prove_pending(waiting)
                self.assertEqual(
                    urlsplit(answer["redirect"]).path, f"/odoo/contacts/{self.customer.id}", answer
                )
                self.assertEqual(
                    (self.integration.state, self.integration.tenant_id), ("connected", CONTOSO_ID)
                )
                self.assertFalse(self.integration.consent_waiting_since)
                self.assertTrue(self.customer.child_ids)
                # The token kept is one issued after the consent spread: it has the permission.
                cache = json.loads(self.integration.sudo().token_cache)
                (token,) = [entry["secret"] for entry in cache["AccessToken"].values()]
                self.assertIn("User.Read.All", graph_client.token_claims(token)["roles"])

    def test_a_consent_is_waited_for_minutes_visibly_then_given_up(self):
        """Microsoft documents no upper bound for a consent to spread: five minutes in, the
        integration still shows that it waits for Microsoft (not an error) and each check
        answers at once with the time waited; only past ten minutes does the check fail, with
        what to do."""
        self.start_connect()
        self.fake.set_consent_delay(3600)  # the admin accepted; Microsoft is slow to confirm it
        self.fake.set_consent(CONTOSO_ID, True)
        started = time.monotonic()
        five_minutes_ago = fields.Datetime.now() - timedelta(minutes=5)
        status, answer = self.check(self.pending_token(since=fields.Datetime.to_string(five_minutes_ago)))
        self.assertLess(time.monotonic() - started, 10)  # one try, no worker held for minutes
        self.assertEqual(status, 200, answer)
        self.assertTrue(answer["waiting"], answer)
        self.assertGreaterEqual(answer["waited"], 300)
        self.assertEqual(answer["next_check"], 30)
        self.assertTrue(answer["pending"])
        self.assertEqual(self.integration.state, "draft")
        self.assertFalse(self.integration.last_error)
        self.assertEqual(self.integration.consent_waiting_since, five_minutes_ago)
        self.assertTrue(self.integration.consent_waiting)
        self.assertTrue(self.customer.azure_ad_consent_waiting)
        # The next check, past ten minutes: given up, and the integration says what to do.
        too_long = fields.Datetime.now() - timedelta(minutes=11)
        status, answer = self.check(self.pending_token(since=fields.Datetime.to_string(too_long)))
        self.assertEqual(status, 200, answer)
        self.assertIn("within 10 minutes", answer["error"])
        self.assertIn("AADSTS700016", answer["error"])
        self.assertEqual((self.integration.state, self.integration.last_error_kind), ("error", "consent"))
        self.assertFalse(self.integration.consent_waiting_since)
        self.assertFalse(self.customer.azure_ad_consent_waiting)
        # A waiting page left behind checks no more: past the wait, nothing says it waits.
        self.integration.consent_waiting_since = too_long
        self.assertFalse(self.integration.consent_waiting)

    def test_the_waiting_pages_token_is_used_once_and_only_for_its_consent(self):
        """Each check uses up the token it was given (the answer brings the next one); a token
        is refused once the consent is complete, after Disconnect, after a new Connect, and
        for another user. Bad input gets a 400, for any logged-in user."""
        self.fake.set_consent_delay(3600)
        waiting = self.back_to_odoo(self.consent_at_microsoft(self.start_connect()))
        first = self.pending_of(waiting)
        status, answer = self.check(first)
        self.assertTrue(answer["waiting"], answer)
        self.assertEqual(self.check(first)[0], 403)  # replayed
        second = answer["pending"]
        self.integration.action_disconnect()
        status, answer = self.check(second)
        self.assertEqual(status, 403)
        self.assertIn("start the connection again", answer["error"])
        # A new Connect invalidates the token of the consent before it.
        stale = self.pending_token()
        self.start_connect()
        self.assertEqual(self.check(stale)[0], 403)
        # Once the consent is proven and connected, the token that did it is spent.
        self.fake.set_consent_delay(0)
        self.fake.reset()
        self.fake.set_consent(CONTOSO_ID, True)
        done = self.pending_token()
        status, answer = self.check(done)
        self.assertIn("redirect", answer)
        self.assertEqual(self.integration.state, "connected")
        self.integration.action_disconnect()
        self.assertEqual(self.check(done)[0], 403)
        self.assertEqual(self.integration.state, "disconnected")
        # Another administrator may not use it.
        other_admin = new_test_user(self.env, login="other_admin", password="other_admin_pw",
                                    groups="base.group_user,base.group_system")
        foreign = self.pending_token(user=other_admin.id)
        self.assertEqual(self.check(foreign)[0], 403)
        for bad in ({"nonce": "x"}, ["a"], 7, None, True):
            refused = (400, {"error": "Invalid request: the consent to check is missing."})
            self.assertEqual(self.check(bad), refused)
        self.authenticate("plain_consent", "plain_consent_pw")
        self.assertEqual(self.check({"a": 1})[0], 400)
        self.assertEqual(self.check("garbage")[0], 403)

    def test_connect_with_opaque_access_tokens(self):
        """Microsoft's access tokens are opaque to clients and may be no JWT: the proof decodes
        nothing, and connects."""
        self.fake.set_opaque_tokens(True)
        response = self.back_to_odoo(self.consent_at_microsoft(self.start_connect()))
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("connected", CONTOSO_ID))
        self.assertEqual(len(self.customer.child_ids), 15)
        cache = json.loads(self.integration.sudo().token_cache)
        (token,) = [entry["secret"] for entry in cache["AccessToken"].values()]
        self.assertEqual(graph_client.token_claims(token), {})

    def test_the_tenant_must_be_a_guid_and_the_one_named_when_connecting(self):
        self.fake.set_consent(CONTOSO_ID, True)
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        response = self.callback(admin_consent="True", tenant="contoso.example", state=state)
        self.assertEqual(response.status_code, 400)
        self.assertIn("no valid tenant ID", response.text)
        # The connect dialog named Fabrikam; Microsoft reports Contoso's consent.
        wizard = self.connect_wizard(tenant_hint=FABRIKAM_ID)
        url = wizard.action_connect()["url"]
        self.assertEqual(urlsplit(url).path, f"/{FABRIKAM_ID}/v2.0/adminconsent")
        state = parse_qs(urlsplit(url).query)["state"][0]
        response = self.callback(admin_consent="True", tenant=CONTOSO_ID, state=state)
        self.assertEqual(response.status_code, 400)
        self.assertIn("not for", response.text)
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("draft", False))

    def test_a_named_domain_sends_the_administrator_to_that_tenant(self):
        self.fake.set_consent(CONTOSO_ID, True)
        wizard = self.connect_wizard(tenant_hint=" Contoso.Example ")
        url = wizard.action_connect()["url"]
        self.assertEqual(urlsplit(url).path, "/contoso.example/v2.0/adminconsent")
        response = self.back_to_odoo(self.consent_at_microsoft(url))
        self.assertIn(response.status_code, (302, 303), response.text[:500])
        self.assertEqual(self.integration.tenant_id, CONTOSO_ID)
        with self.assertRaisesRegex(UserError, "neither a tenant ID"):
            wizard.tenant_hint = "not a domain!"
            wizard.action_connect()

    def test_a_tenant_connected_to_another_customer_is_refused(self):
        fabrikam_ltd = self.env["res.partner"].create({"name": "Other Customer", "is_company": True})
        other = self.env["azure.ad.integration"].create({"partner_id": fabrikam_ltd.id})
        other.sudo().write({"tenant_id": CONTOSO_ID, "state": "connected"})
        self.fake.set_consent(CONTOSO_ID, True)
        response = self.back_to_odoo(self.consent_at_microsoft(self.start_connect()))
        self.assertEqual(response.status_code, 400)
        self.assertIn("already connected to Other Customer", response.text)
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("draft", False))

    def test_a_failed_proof_leaves_a_working_connection_as_it_was(self):
        self.fake.set_consent(CONTOSO_ID, True)
        self.back_to_odoo(self.consent_at_microsoft(self.start_connect()))
        self.assertEqual(self.integration.state, "connected")
        token_cache = self.integration.sudo().token_cache
        # A reconnect whose proof fails for good (the app was disabled in the tenant meanwhile).
        self.fake.add_fault(kind="app_disabled", target="token", count=None)
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        response = self.callback(admin_consent="True", tenant=CONTOSO_ID, state=state)
        self.assertEqual(response.status_code, 400)
        self.assertIn("AADSTS7000112", response.text)
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("connected", CONTOSO_ID))
        self.assertEqual(self.integration.sudo().token_cache, token_cache)

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

    def test_a_cross_site_link_to_the_old_connect_route_starts_nothing(self):
        """A GET anybody can make the administrator's browser send: no new state, no trip to
        Microsoft, just the integration's page; a consent already under way stays valid."""
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        nonce = self.integration.consent_nonce
        response = self.url_open(
            f"/azure_ad_contacts/connect/{self.integration.id}",
            allow_redirects=False,
            headers={"Referer": "https://evil.example/", "Sec-Fetch-Site": "cross-site"},
        )
        self.assertIn(response.status_code, (302, 303))
        self.assertEqual(
            urlsplit(response.headers["Location"]).path, f"/odoo/azure.ad.integration/{self.integration.id}"
        )
        self.assertEqual(self.integration.consent_nonce, nonce)
        self.assertEqual(self.fake.stats()["counts"]["consent"], 0)
        self.fake.set_consent(CONTOSO_ID, True)
        self.assertIn(
            self.callback(admin_consent="True", tenant=CONTOSO_ID, state=state).status_code, (302, 303)
        )
        self.assertEqual(self.integration.state, "connected")

    def test_access_rights_without_settings_may_not_connect(self):
        """Administration › Access Rights is not Settings: no consent for such a user."""
        rights_only = new_test_user(
            self.env,
            login="rights_only",
            password="rights_only_pw",
            groups="base.group_user,base.group_erp_manager",
        )
        self.assertTrue(self.env(user=rights_only).is_admin())
        with self.assertRaises(AccessError):
            self.integration.with_user(rights_only)._check_admin()
        state = parse_qs(urlsplit(self.start_connect()).query)["state"][0]
        self.authenticate("rights_only", "rights_only_pw")
        with self.assertRaisesRegex(JsonRpcException, "AccessError"):
            self.start_connect()
        self.assertEqual(
            self.url_open(
                f"/azure_ad_contacts/connect/{self.integration.id}", allow_redirects=False
            ).status_code,
            403,
        )
        self.fake.set_consent(CONTOSO_ID, True)
        self.assertEqual(self.callback(admin_consent="True", tenant=CONTOSO_ID, state=state).status_code, 403)
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
