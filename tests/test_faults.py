"""No half-applied sync, under fire: faults injected by the fake Microsoft at every point of a sync
(OpenID discovery, token endpoint, every Graph page), over real HTTPS with real MSAL.

Every scenario ends one of two ways:
- complete: the client retried through the fault and the result is exactly a clean run's;
- failed cleanly: nothing half-applied (every contact exactly as before), the run log and the
  integration say "failed" with a message that names the problem, and re-running once the
  fault is gone converges to the clean run's result. Never a duplicate contact.

The Graph client keeps its production retry policy (attempts, backoff 5 s × 2^n, Retry-After,
wait budget); only its `sleep` is recorded instead of slept, jitter is 0, and pages hold
PAGE_SIZE users so that a 23-user tenant has several pages to break.
"""

import functools
from contextlib import closing, contextmanager

from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin
from odoo.addons.azure_ad_contacts.utils import msal_app

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .common import CONTOSO_ID, AzureAdCase, user

PAGE_SIZE = 4
ADELE = "f27609e2-827e-404b-bf93-1d0b96d8975b"
ALEX = "4b895896-54e7-4034-a960-7933dca6c91b"
LEE = "2e4aeffc-3bae-46dc-9a1d-53a5b9616dfd"
NOTHING_CHANGED = "Nothing was changed"
UNAVAILABLE = "could not be reached or is unavailable"


class FaultCase(AzureAdCase):
    """A connected customer with work pending (creates, updates, an Odoo edit to overwrite,
    a user gone from Entra), and the clean run's outcome to compare every faulty run with."""

    def setUp(self):
        super().setUp()
        self.sleeps = []

        def fast(client):
            client.sleep = self.sleeps.append
            client.jitter = lambda: 0.0
            client.timeout = 1  # Odoo's test guard raises it to 10 s
            client.iter_user_pages = functools.partial(client.iter_user_pages, top=PAGE_SIZE)

        self.adapt_graph_clients(fast)
        # Every run lists the whole tenant (no changes-only round), so that it has pages to break.
        self.integration.full_sync_interval_days = 0
        self.connect()
        self.customer_contacts_before_changes = len(self.contacts())
        # Pending work for the next sync.
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "Chief Financial Officer"})
        self.fake.update_user(CONTOSO_ID, ALEX, {"mobilePhone": "+1 555 0100", "surname": "Wilber-Smith"})
        self.fake.add_user(
            CONTOSO_ID,
            [
                user("00000000-0000-4000-8000-000000000001", "new.one@contoso.example", "New", "One"),
                user("ffffffff-0000-4000-8000-000000000002", "new.two@contoso.example", "New", "Two"),
                user("77777777-0000-4000-8000-000000000003", "NEW.Three@Contoso.example", "New", "Three"),
            ],
        )
        self.fake.delete_user(CONTOSO_ID, LEE)  # stays in Odoo untouched
        self.contact("megan.bowen@contoso.example").name = "Megan (edited in Odoo)"  # overwritten again
        self.contact("joni.sherman@contoso.example").phone = "+49 30 999"  # not a synced field
        self.tenant_backup = self.fake.tenant(CONTOSO_ID)
        self.clean_result, self.clean_content = self.clean_run()
        self.assertEqual(
            {k: self.clean_result[k] for k in ("created", "updated", "skipped")},
            {"created": 3, "updated": 3, "skipped": 6},
        )
        self.sleeps.clear()

    # ------------------------------------------------------------------ helpers

    def clean_run(self):
        """What an undisturbed sync does from here (rolled back afterwards)."""
        with closing(self.env.cr.savepoint()):
            result = self.integration.sync_contacts()[0]
            content = self.content()
        self.env.invalidate_all()
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.assertNotIn("error", result)
        return result, content

    def snapshot(self):
        """Every column a sync could touch, of every contact of the customer, by id."""
        self.env.flush_all()
        self.env.cr.execute(
            """SELECT id, name, email, function, mobile, phone, active, type, azure_ad_object_id,
                      azure_ad_integration_id, azure_ad_synced, write_date
                 FROM res_partner WHERE parent_id = %s ORDER BY id""",
            [self.customer.id],
        )
        rows = self.env.cr.fetchall()
        self.env.cr.execute("SELECT count(*) FROM res_partner")
        return rows, self.env.cr.fetchone()[0]

    def content(self):
        """The contacts as a multiset, without ids and dates (new ids differ between runs)."""
        rows, _total = self.snapshot()
        return sorted(tuple("" if v is None else v for v in row[1:-1]) for row in rows)

    def assert_no_duplicates(self):
        contacts = self.contacts()
        emails = [c.email.strip().lower() for c in contacts if c.email]
        self.assertEqual(len(emails), len(set(emails)), "duplicate contacts")
        linked = [c.azure_ad_object_id for c in contacts if c.azure_ad_object_id]
        self.assertEqual(len(linked), len(set(linked)), "two contacts linked to one Entra user")

    def last_log(self):
        return self.env["azure.ad.sync.log"].search([("integration_id", "=", self.integration.id)], limit=1)

    def faults(self, *faults):
        for fault in faults:
            self.fake.add_fault(**{"target": "users", **fault})
        return self.fake.stats()["faults_fired"]

    def sync(self, trigger="api"):
        if trigger == "api":
            return self.integration.sync_contacts()[0]
        return self.integration._sync(trigger)._result()

    def assert_completes(self, *faults, sleeps=None, trigger="api", skipped_extra=0):
        """The client retries through the faults; the run equals a clean run."""
        fired = self.faults(*faults)
        result = self.sync(trigger)
        self.assertGreater(self.fake.stats()["faults_fired"], fired, "the fault never fired")
        self.assertNotIn("error", result, result.get("error"))
        self.assertEqual(
            result, {**self.clean_result, "skipped": self.clean_result["skipped"] + skipped_extra}
        )
        self.assertEqual(self.content(), self.clean_content)
        self.assertEqual(self.last_log().state, "done")
        self.assertEqual(self.integration.state, "connected")
        self.assertFalse(self.integration.last_error)
        if sleeps is not None:
            self.assertEqual(self.sleeps, sleeps)
        self.assert_no_duplicates()
        return result

    def assert_fails_cleanly(self, *faults, message, state="connected", trigger="api", fix=None, sleeps=None):
        """Nothing half-applied, a clear failure everywhere, then a re-run converges."""
        before = self.snapshot()
        last_sync = self.integration.last_sync_date
        runs = len(self.integration.sync_log_ids)
        fired = self.faults(*faults)
        result = self.sync(trigger)
        if faults:
            self.assertGreater(self.fake.stats()["faults_fired"], fired, "the fault never fired")
        self.assertIn("error", result, "the run should have failed")
        error = result["error"]
        for part in [message] if isinstance(message, str) else message:
            self.assertIn(part, error)
        self.assertEqual(self.snapshot(), before, "a failed sync changed contacts")
        log = self.last_log()
        self.assertEqual(len(self.integration.sync_log_ids), runs + 1)
        self.assertRecordValues(
            log, [{"state": "failed", "error": error, "created": 0, "updated": 0, "unchanged": 0}]
        )
        self.assertTrue(log.date_end)
        self.assertEqual(self.integration.last_error, error)
        self.assertEqual(self.integration.state, state)
        self.assertEqual(self.integration.last_sync_date, last_sync)
        self.assertTrue(result["integration_id"] == self.integration.id)
        if sleeps is not None:
            self.assertEqual(self.sleeps, sleeps)
        # The fault is gone (and MSAL's memory of it, which lasts 5 to 60 s): re-run.
        self.fake.clear_faults()
        if fix:
            fix()
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.sleeps.clear()
        result = self.sync()
        self.assertNotIn("error", result, result.get("error"))
        self.assertEqual(result, self.clean_result)
        self.assertEqual(self.content(), self.clean_content)
        self.assertEqual(self.integration.state, "connected")
        self.assertFalse(self.integration.last_error)
        self.assert_no_duplicates()
        return error

    @contextmanager
    def isolated(self):
        """One scenario of a subTest loop: its writes and its changes to the fake are undone."""
        with closing(self.env.cr.savepoint()):
            try:
                yield
            finally:
                self.fake.clear_faults()
                self.fake.put_tenant(self.tenant_backup)
                self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
                azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
                self.sleeps.clear()
        self.env.invalidate_all()

    def cold_token_cache(self):
        """The stored app token is gone (expired): the run must ask the token endpoint."""
        self.integration.sudo().token_cache = False


class TestGraphFaults(FaultCase):
    """Faults on GET /v1.0/users, the page given by `after` (pages of PAGE_SIZE users)."""

    def test_429_with_retry_after_is_honoured_and_the_run_completes(self):
        self.assert_completes({"kind": "429", "after": 2, "retry_after": 2}, sleeps=[2.0])

    def test_429_without_retry_after_backs_off_exponentially(self):
        self.assert_completes(
            {"kind": "429", "after": 1, "retry_after": None, "count": 2}, sleeps=[5.0, 10.0]
        )

    def test_429_storm_with_retry_after_fails_cleanly(self):
        error = self.assert_fails_cleanly(
            {"kind": "429", "after": 3, "retry_after": 1, "count": None},
            message=["Microsoft Graph is throttling requests for Contoso Ltd", NOTHING_CHANGED],
            sleeps=[1.0, 1.0, 1.0, 1.0],  # five attempts
        )
        self.assertIn("try again in 1 seconds", error)

    def test_429_storm_without_retry_after_fails_cleanly_within_the_wait_budget(self):
        # "Sync now" waits at most 30 s in all: 5 s + 10 s, and 20 s more would be too long.
        self.assert_fails_cleanly(
            {"kind": "429", "after": 2, "retry_after": None, "count": None},
            message="throttling",
            sleeps=[5.0, 10.0],
        )

    def test_429_storm_in_the_scheduled_job_waits_longer_then_fails_cleanly(self):
        self.integration.auto_sync = True
        self.assert_fails_cleanly(
            {"kind": "429", "after": 2, "retry_after": None, "count": None},
            message="throttling",
            trigger="cron",
            sleeps=[5.0, 10.0, 20.0, 40.0],
        )
        self.assertGreater(self.integration.next_sync_date, self.integration.last_sync_date)

    def test_retry_after_beyond_the_budget_fails_at_once(self):
        error = self.assert_fails_cleanly(
            {"kind": "429", "after": 1, "retry_after": 3600}, message="throttling", sleeps=[]
        )
        self.assertIn("3600 seconds", error)

    def test_5xx_once_mid_listing_is_retried(self):
        for kind in ("500", "502", "503", "504"):
            with self.subTest(kind=kind), self.isolated():
                self.assert_completes({"kind": kind, "after": 2}, sleeps=[5.0])

    def test_503_with_retry_after_is_honoured(self):
        self.assert_completes({"kind": "503", "after": 4, "retry_after": 3}, sleeps=[3.0])

    def test_5xx_storm_fails_cleanly(self):
        for kind in ("500", "502", "503", "504"):
            with self.subTest(kind=kind), self.isolated():
                self.assert_fails_cleanly(
                    {"kind": kind, "after": 3, "count": None},
                    message=[UNAVAILABLE, NOTHING_CHANGED, kind],
                    sleeps=[5.0, 10.0],
                )

    def test_503_on_the_first_page_fails_cleanly(self):
        self.assert_fails_cleanly({"kind": "503", "count": None}, message=UNAVAILABLE)

    def test_connection_reset_mid_page_is_retried(self):
        self.assert_completes({"kind": "reset", "after": 3}, sleeps=[5.0])

    def test_connection_resets_on_every_try_fail_cleanly(self):
        self.assert_fails_cleanly(
            {"kind": "reset", "after": 2, "count": None}, message=[UNAVAILABLE, NOTHING_CHANGED]
        )

    def test_timeout_mid_listing_is_retried(self):
        # The fake holds the answer 11 s; the client gives up after 10 s and retries.
        self.assert_completes({"kind": "timeout", "after": 1, "delay": 11}, sleeps=[5.0])

    def test_malformed_json_fails_cleanly(self):
        self.assert_fails_cleanly(
            {"kind": "malformed", "after": 2}, message=["malformed data", NOTHING_CHANGED]
        )

    def test_wrong_shape_fails_cleanly(self):
        self.assert_fails_cleanly({"kind": "wrong_shape", "after": 4}, message=["malformed data", "'value'"])

    def test_next_link_to_a_foreign_host_is_never_followed(self):
        error = self.assert_fails_cleanly(
            {"kind": "foreign_next_link", "after": 1}, message=["unexpected host", "nothing was changed"]
        )
        self.assertIn("graph.evil.example", error)
        paths = [r["path"] for r in self.fake.stats()["requests"]]
        self.assertFalse([p for p in paths if "evil" in p])

    def test_a_page_served_twice_is_counted_once(self):
        # Graph's nextLink points at the page just read: its users are skipped the second time.
        result = self.assert_completes({"kind": "repeat_page", "after": 2}, skipped_extra=PAGE_SIZE)
        self.assertEqual(self.last_log().skip_reasons.get("duplicate_user"), PAGE_SIZE)
        self.assertEqual(result["created"], 3)

    def test_a_page_link_that_loops_forever_fails_cleanly(self):
        self.assert_fails_cleanly(
            {"kind": "repeat_page", "after": 1, "count": None}, message=["malformed data", "loop"]
        )

    def test_consent_revoked_mid_sync_fails_cleanly_until_consent_is_granted_again(self):
        self.assert_fails_cleanly(
            {"kind": "revoke", "after": 3},
            message=["may not read the users of Contoso Ltd", "reconnect"],
            state="error",
            fix=lambda: self.fake.set_consent(CONTOSO_ID, True),
        )

    def test_every_page_can_fail_and_the_run_still_converges(self):
        pages = -(-self.fake.tenant(CONTOSO_ID)["users"].__len__() // PAGE_SIZE)
        self.assertGreaterEqual(pages, 6)
        for page in range(pages):
            with self.subTest(page=page), self.isolated():
                self.assert_fails_cleanly({"kind": "malformed", "after": page}, message="malformed data")

    def test_a_fault_on_every_page_each_retried_once(self):
        # Faults fire in order; `after=1` lets the retry of the previous page through, so
        # each fault lands on the first try of the next page.
        kinds = ("503", "reset", "429", "502", "504", "500")
        faults = [{"kind": kind, "after": 0 if n == 0 else 1} for n, kind in enumerate(kinds)]
        self.assert_completes(*faults, sleeps=[5.0, 5.0, 1.0, 5.0, 5.0, 5.0])
        self.assertEqual(self.fake.stats()["faults_fired"], len(kinds))
        # The pages and the retries, and the link for the next changes-only round.
        self.assertEqual(self.last_log().graph_requests, 6 + len(kinds) + 1)


class TestLoginFaults(FaultCase):
    """Faults on the token endpoint and OpenID discovery, and the MSP's and tenant's
    configuration going bad."""

    def test_token_endpoint_failing_once_is_retried_like_graph(self):
        # Microsoft's login service fails as Graph does; one failure must not fail the run.
        # "transient" is AADSTS90033 as an OAuth error answer (400), which MSAL would replay
        # from its HTTP cache for a minute: the retry must reach the login service again.
        for kind, sleeps in (("500", [5.0]), ("502", [5.0]), ("503", [5.0]), ("504", [5.0]),
                             ("429", [1.0]), ("reset", [5.0]), ("transient", [5.0])):
            with self.subTest(kind=kind), self.isolated():
                self.cold_token_cache()
                tokens = self.fake.stats()["counts"]["token"]
                self.assert_completes({"kind": kind, "target": "token"}, sleeps=sleeps)
                self.assertEqual(self.fake.stats()["counts"]["token"], tokens + 2, "one failed, one retried")

    def test_token_endpoint_down_fails_cleanly_within_the_wait_budget(self):
        for kind in ("503", "transient", "reset"):
            with self.subTest(kind=kind), self.isolated():
                self.cold_token_cache()
                self.assert_fails_cleanly(
                    {"kind": kind, "target": "token", "count": None}, message=UNAVAILABLE, sleeps=[5.0, 10.0]
                )

    def test_garbled_token_answer_is_not_retried(self):
        self.cold_token_cache()
        self.assert_fails_cleanly(
            {"kind": "malformed", "target": "token"}, message="malformed data", sleeps=[]
        )

    def test_token_endpoint_down_when_the_token_expires_mid_sync(self):
        # Graph answers 401 to the expired token; the client asks for a new one, which the
        # login service keeps refusing.
        self.fake.expire_tokens()
        self.assert_fails_cleanly({"kind": "503", "target": "token", "count": None}, message=UNAVAILABLE)

    def test_token_renewal_failing_once_mid_sync_is_retried(self):
        self.fake.expire_tokens()
        self.assert_completes({"kind": "503", "target": "token"}, sleeps=[5.0])

    def test_token_renewal_mid_sync_succeeds(self):
        self.fake.expire_tokens()
        fired = self.fake.stats()["counts"]["token"]
        result = self.sync()
        self.assertEqual(result, self.clean_result)
        self.assertEqual(self.fake.stats()["counts"]["token"], fired + 1)

    def test_token_answer_without_a_token_fails_cleanly(self):
        self.cold_token_cache()
        self.assert_fails_cleanly({"kind": "wrong_shape", "target": "token"}, message="malformed data")

    def test_token_endpoint_timeout_is_retried(self):
        self.cold_token_cache()
        self.patch_msal_timeout()
        self.assert_completes({"kind": "timeout", "target": "token", "delay": 11}, sleeps=[5.0])

    def test_token_endpoint_timeouts_fail_cleanly(self):
        self.cold_token_cache()
        self.patch_msal_timeout()
        self.assert_fails_cleanly(
            {"kind": "timeout", "target": "token", "delay": 11, "count": None}, message=UNAVAILABLE,
            sleeps=[5.0, 10.0],
        )

    def test_openid_discovery_failing_once_is_retried(self):
        for kind, sleeps in (("500", [5.0]), ("503", [5.0]), ("429", [1.0]), ("reset", [5.0])):
            with self.subTest(kind=kind), self.isolated():
                azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
                self.assert_completes({"kind": kind, "target": "openid"}, sleeps=sleeps)

    def test_openid_discovery_faults_fail_cleanly(self):
        for kind, count in (("503", None), ("reset", None), ("malformed", 1), ("wrong_shape", 1)):
            with self.subTest(kind=kind), self.isolated():
                azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
                message = "malformed data" if kind in ("malformed", "wrong_shape") else UNAVAILABLE
                self.assert_fails_cleanly({"kind": kind, "target": "openid", "count": count}, message=message)

    def test_openid_discovery_timeout_is_retried(self):
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.patch_msal_timeout()
        self.assert_completes({"kind": "timeout", "target": "openid", "delay": 11}, sleeps=[5.0])

    def test_consent_revoked_before_the_sync(self):
        self.cold_token_cache()
        self.fake.set_consent(CONTOSO_ID, False)
        self.assert_fails_cleanly(
            message=["not (or no longer) consented", "AADSTS700016", "Reconnect"],
            state="error",
            fix=lambda: self.fake.set_consent(CONTOSO_ID, True),
        )

    def test_invalid_client_secret(self):
        params = self.env["ir.config_parameter"].sudo()
        params.set_param("azure_ad_contacts.client_secret", "not-the-secret")
        self.cold_token_cache()
        self.assert_fails_cleanly(
            message=["client secret of your Azure AD app is invalid", "AADSTS7000215", "all customers"],
            state="error",
            fix=lambda: params.set_param("azure_ad_contacts.client_secret", DEFAULT_CLIENT_SECRET),
        )

    def test_expired_client_secret(self):
        self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, secret_expired=True)
        self.cold_token_cache()
        self.assert_fails_cleanly(
            message=["has expired", "AADSTS7000222"],
            state="error",
            fix=lambda: self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET),
        )

    def test_expired_secret_is_noticed_only_when_the_token_is_renewed(self):
        self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, secret_expired=True)
        self.assertEqual(self.sync(), self.clean_result)  # the stored app token still works

    def test_tenant_deleted_while_discovery_is_cached(self):
        self.fake.delete_tenant(CONTOSO_ID)
        self.assert_fails_cleanly(
            message=["does not know the tenant", CONTOSO_ID, "AADSTS90002"],
            state="error",
            fix=lambda: self.fake.put_tenant(self.tenant_backup),
        )

    def test_tenant_unknown_at_discovery(self):
        self.fake.delete_tenant(CONTOSO_ID)
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.cold_token_cache()
        self.assert_fails_cleanly(
            message=["does not know the tenant", "AADSTS90002"],
            state="error",
            fix=lambda: self.fake.put_tenant(self.tenant_backup),
        )

    def test_failed_sync_now_shows_a_sticky_danger_notification(self):
        self.faults({"kind": "503", "count": None})
        action = self.integration.action_sync_now()
        params = action["params"]
        self.assertEqual((params["type"], params["sticky"]), ("danger", True))
        self.assertIn(UNAVAILABLE, params["message"])
        self.assertIn("failed", params["title"])

    def patch_msal_timeout(self):
        """MSAL's session waits 30 s; 1 s here (which Odoo's test guard raises to 10 s)."""
        self.patch(msal_app, "LOGIN_TIMEOUT", 1)
