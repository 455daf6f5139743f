"""No state is terminal without a person's decision: a failed sync is tried again by the
scheduled job with a growing delay (at most a day apart), whether or not the customer syncs on
a schedule; new app credentials retry at once every customer that failed for them; after two
failures in a row an administrator gets an activity; only Disconnect and Exclude stop syncs.
Against the fake behaving as Microsoft documents: an expired secret (AADSTS7000222), consent
revoked and granted again (AADSTS700016), Graph not knowing the app (Authorization_IdentityNotFound),
throttling and Microsoft down."""

import importlib.util
from datetime import timedelta
from pathlib import Path

from odoo import fields

import odoo.addons.azure_ad_contacts as addon
from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .common import CONTOSO_ID, FABRIKAM_ID, AzureAdCase

NEW_SECRET = "the-new-secret"


class SelfHealingCase(AzureAdCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fabrikam = cls.env["res.partner"].create({"name": "Fabrikam", "is_company": True})
        cls.fabrikam_integration = cls.env["azure.ad.integration"].create({"partner_id": cls.fabrikam.id})
        cls.cron = cls.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")
        cls.admin = cls.env.ref("base.user_admin")

    def setUp(self):
        super().setUp()
        # Sleeping is recorded, not done: a test never waits for Microsoft's backoff.
        self.sleeps = []
        self.adapt_graph_clients(lambda client: setattr(client, "sleep", self.sleeps.append))

    def connect_both(self):
        self.connect()
        self.connect(self.fabrikam_integration, FABRIKAM_ID)
        self.both = self.integration | self.fabrikam_integration

    def run_cron(self):
        _cron, progress = self.cron._add_progress()
        self.env["azure.ad.integration"].with_context(
            ir_cron_progress_id=progress.id, cron_id=progress.cron_id.id
        )._cron_sync_due()
        return progress

    def time_passes(self, integrations=None):
        """The next try of the failed integrations has come (and MSAL's memory of failed
        answers, a minute at most, is gone)."""
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        for integration in integrations or self.both:
            if integration.retry_date:
                integration.retry_date = fields.Datetime.now() - timedelta(minutes=1)

    def forget_tokens(self, integrations=None):
        """The stored app tokens expired: the next run asks the login service."""
        (integrations or self.both).sudo().token_cache = False
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()

    def failing_activities(self, integration):
        return integration.activity_ids.filtered(
            lambda activity: (
                activity.activity_type_id == self.env.ref("azure_ad_contacts.mail_activity_type_sync_failing")
            )
        )

    def assert_retry_in(self, integration, hours):
        expected = fields.Datetime.now() + timedelta(hours=hours)
        self.assertAlmostEqual(integration.retry_date, expected, delta=timedelta(minutes=2))


class TestRetries(SelfHealingCase):
    def test_an_expired_secret_replaced_in_the_settings_heals_every_customer_at_once(self):
        """Point 1 of the issue: before, every customer stayed in error until someone clicked
        Sync now on each; the scheduled job only picked connected integrations."""
        self.connect_both()
        self.integration.write({"auto_sync": True, "sync_interval_hours": 24})  # Fabrikam: on demand only
        # Two years later: the secret expires (AADSTS7000222), and the app tokens with it.
        self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, secret_expired=True)
        self.forget_tokens()
        for integration in self.both:
            result = integration.sync_contacts()[0]
            self.assertIn("AADSTS7000222", result["error"])
        self.assertEqual(self.both.mapped("state"), ["error", "error"])
        self.assertEqual(self.both.mapped("last_error_kind"), ["secret", "secret"])
        # The administrator creates a new secret in the Azure portal and enters it in Odoo.
        self.fake.add_app(DEFAULT_CLIENT_ID, NEW_SECRET)
        self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)]).unlink()
        self.env["res.config.settings"].create({"azure_ad_client_secret": NEW_SECRET}).execute()
        for integration in self.both:
            self.assertLessEqual(integration.retry_date, fields.Datetime.now(), "retried at once")
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", self.cron.id)]), "job woken up")
        self.assertEqual(self.run_cron().done, 2)
        for integration in self.both:
            self.assertRecordValues(
                integration,
                [{"state": "connected", "last_error": False, "retry_date": False, "failed_runs": 0}],
            )
            self.assertEqual(integration.sync_log_ids[0].trigger, "cron")
            self.assertEqual(integration.sync_log_ids[0].state, "done")

    def test_saving_unrelated_settings_retries_nothing(self):
        self.connect_both()
        self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, secret_expired=True)
        self.forget_tokens()
        self.integration.sync_contacts()
        retry = self.integration.retry_date
        self.env["res.config.settings"].create({"azure_ad_client_secret": DEFAULT_CLIENT_SECRET}).execute()
        self.assertEqual(self.integration.retry_date, retry)

    def test_a_failed_sync_is_tried_again_with_a_growing_delay_until_it_works(self):
        """Consent revoked by the customer and granted again later: nobody clicks anything."""
        self.connect_both()
        self.fake.set_consent(CONTOSO_ID, False)
        self.forget_tokens(self.integration)
        self.assertIn("AADSTS700016", self.integration.sync_contacts()[0]["error"])
        self.assertEqual((self.integration.state, self.integration.failed_runs), ("error", 1))
        self.assert_retry_in(self.integration, 1)
        for failed_runs, hours in ((2, 2), (3, 4), (4, 8), (5, 16), (6, 24), (7, 24)):
            self.time_passes()
            self.assertEqual(self.run_cron().done, 1, "only the failed customer is due")
            self.assertEqual(self.integration.failed_runs, failed_runs)
            self.assert_retry_in(self.integration, hours)  # at most a day apart
            self.assertEqual(self.integration.sync_log_ids[0].trigger, "cron")
        self.assertEqual(self.run_cron().done, 0, "not before its time")
        # The customer's administrator grants consent again.
        self.fake.set_consent(CONTOSO_ID, True)
        self.time_passes()
        self.assertEqual(self.run_cron().done, 1)
        self.assertRecordValues(
            self.integration,
            [{"state": "connected", "retry_date": False, "failed_runs": 0, "last_error": False}],
        )
        self.assertEqual(self.run_cron().done, 0, "on demand only: nothing more is scheduled")

    def test_graph_not_knowing_the_app_heals_at_the_next_try(self):
        self.connect()
        self.fake.add_fault(kind="identity_not_found", target="delta", count=2)  # once, then with a new token
        self.integration.sync_contacts()
        self.assertEqual(self.integration.state, "error")
        self.assertEqual(self.integration.last_error_kind, "consent")
        self.time_passes(self.integration)
        self.assertEqual(self.run_cron().done, 1)
        self.assertEqual((self.integration.state, self.integration.retry_date), ("connected", False))

    def test_microsoft_down_or_throttling_is_tried_again_never_sooner_than_asked(self):
        self.connect()
        self.fake.add_fault(kind="503", target="delta", count=None)
        self.integration.sync_contacts()
        self.assertEqual(self.integration.last_error_kind, "throttled")
        self.assertEqual(self.integration.state, "connected")  # Microsoft's trouble, not the customer's
        self.assert_retry_in(self.integration, 1)
        self.fake.clear_faults()
        self.fake.add_fault(kind="429", target="delta", count=None, retry_after=3 * 3600)
        self.time_passes(self.integration)
        self.run_cron()
        self.assertEqual(self.integration.failed_runs, 2)
        self.assert_retry_in(self.integration, 2)  # what Microsoft asked is clamped to an hour
        self.fake.clear_faults()
        self.time_passes(self.integration)
        self.run_cron()
        self.assertEqual((self.integration.failed_runs, self.integration.retry_date), (0, False))

    def test_the_delay_grows_to_a_day_and_waits_for_what_microsoft_asked(self):
        delay = self.integration._retry_delay
        self.assertEqual(
            [delay(n) for n in range(1, 8)], [timedelta(hours=h) for h in (1, 2, 4, 8, 16, 24, 24)]
        )
        self.assertEqual(delay(1, retry_after=5400), timedelta(seconds=5400))
        self.assertEqual(delay(6, retry_after=5400), timedelta(days=1))

    def test_a_scheduled_customer_keeps_its_schedule_once_healed(self):
        self.connect()
        self.integration.write({"auto_sync": True, "sync_interval_hours": 6})
        self.fake.add_fault(kind="503", target="delta", count=None)
        self.integration.next_sync_date = fields.Datetime.now()
        self.assertEqual(self.run_cron().done, 1)
        self.assertEqual(self.run_cron().done, 0, "the next try waits, the schedule does not override it")
        self.fake.clear_faults()
        self.time_passes(self.integration)
        self.assertEqual(self.run_cron().done, 1)
        self.assertFalse(self.integration.retry_date)
        self.assertEqual(
            self.integration.next_sync_date, self.integration.last_sync_date + timedelta(hours=6)
        )

    def test_only_disconnect_and_exclude_stop_the_tries(self):
        self.connect_both()
        self.fake.set_consent(CONTOSO_ID, False)
        self.fake.set_consent(FABRIKAM_ID, False)
        self.forget_tokens()
        for integration in self.both:
            integration.sync_contacts()
        self.fake.set_consent(CONTOSO_ID, True)
        self.fake.set_consent(FABRIKAM_ID, True)
        self.integration.excluded = True
        self.fabrikam_integration.action_disconnect()
        self.assertFalse(self.fabrikam_integration.retry_date)
        self.time_passes()
        self.assertEqual(self.run_cron().done, 0)
        self.integration.excluded = False  # included again: the pending try runs
        self.assertEqual(self.run_cron().done, 1)
        self.assertEqual(self.integration.state, "connected")
        self.assertEqual(self.fabrikam_integration.state, "disconnected")

    def test_a_crash_is_tried_again_too(self):
        self.connect()
        integration_class = type(self.env["azure.ad.integration"])
        self.integration.write({"auto_sync": True, "next_sync_date": fields.Datetime.now()})

        def broken(integration, *args, **kwargs):
            raise RuntimeError("boom")

        with self.assertLogs("odoo.addons.azure_ad_contacts", "ERROR"):
            self.patch(integration_class, "_existing_contacts", broken)
            self.run_cron()
        self.assertEqual(self.integration.failed_runs, 1)
        self.assert_retry_in(self.integration, 1)

    def test_an_integration_left_failed_by_the_earlier_release_is_tried_again_after_the_upgrade(self):
        self.connect_both()
        self.env.cr.execute(
            "UPDATE azure_ad_integration SET state = 'error', last_error = 'AADSTS7000222', "
            "retry_date = NULL, failed_runs = 0 WHERE id = %s",
            [self.integration.id],
        )
        path = Path(addon.__file__).parent / "migrations" / "1.1.0" / "post-30-retry-failed-syncs.py"
        spec = importlib.util.spec_from_file_location("retry_failed_syncs", path)
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.migrate(self.env.cr, "18.0.1.0.0")
        self.env.invalidate_all()
        self.assertLessEqual(self.integration.retry_date, fields.Datetime.now())
        self.assertFalse(self.fabrikam_integration.retry_date, "a working one is left alone")
        self.assertEqual(self.run_cron().done, 1)
        self.assertEqual(self.integration.state, "connected")


class TestFailureActivity(SelfHealingCase):
    def test_two_failed_runs_in_a_row_give_the_administrator_one_activity(self):
        self.connect()
        self.fake.set_consent(CONTOSO_ID, False)
        self.forget_tokens(self.integration)
        self.integration.sync_contacts()
        self.assertFalse(self.failing_activities(self.integration), "one failure may be a blip")
        self.time_passes(self.integration)
        self.run_cron()
        activity = self.failing_activities(self.integration)
        self.assertEqual(len(activity), 1)
        self.assertEqual(activity.user_id, self.admin)
        self.assertIn("AADSTS700016", activity.note, "what failed")
        self.assertIn("Reconnect", activity.note, "what to do")
        self.assertIn("2 times in a row", activity.note)
        self.time_passes(self.integration)
        self.run_cron()
        activity = self.failing_activities(self.integration)
        self.assertEqual(len(activity), 1, "no second activity, the note is brought up to date")
        self.assertIn("3 times in a row", activity.note)
        # Consent is granted again: the next try succeeds and the activity is done.
        self.fake.set_consent(CONTOSO_ID, True)
        self.time_passes(self.integration)
        self.run_cron()
        self.assertFalse(self.failing_activities(self.integration))
        self.assertTrue([m for m in self.integration.message_ids if "Synced again" in m.body])

    def test_the_apps_credential_refused_for_every_customer_gives_one_activity_for_all(self):
        """An expired secret fails every customer alike, and one new secret heals them all: an
        MSP with 200 customers wants one to-do saying so, not 200 (one per customer), renewed
        at every try."""
        self.connect_both()
        self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, secret_expired=True)
        self.forget_tokens()
        self.both[0].sync_contacts()
        self.both[1].sync_contacts()
        anchor = self.integration._credential_activity_anchor()
        credential_type = self.env.ref("azure_ad_contacts.mail_activity_type_credential_failing")

        def credential_activities():
            return anchor.activity_ids.filtered(lambda activity: activity.activity_type_id == credential_type)

        self.assertFalse(credential_activities(), "one failure may be a blip")
        for _round in range(3):
            self.time_passes()
            self.assertEqual(self.run_cron().done, 2)
            self.assertEqual(self.both.mapped("last_error_kind"), ["secret", "secret"])
            for integration in self.both:
                self.assertFalse(self.failing_activities(integration))
            activities = credential_activities()
            # One for each administrator, as the expiry warnings: whoever is around replaces it.
            self.assertEqual(activities.user_id, self.integration._administrators())
            self.assertEqual(len(activities), len(activities.user_id))
        note = activities.filtered(lambda activity: activity.user_id == self.admin).note
        self.assertIn("AADSTS7000222", note, "what failed")
        self.assertIn("Settings", note, "what to do")
        self.assertIn("2 customers cannot sync", note)
        self.assertIn("Contoso Ltd, Fabrikam", note)
        # A new secret in the settings: every customer tried at once, and the activity is done.
        self.fake.add_app(DEFAULT_CLIENT_ID, NEW_SECRET)
        self.env["res.config.settings"].create({"azure_ad_client_secret": NEW_SECRET}).execute()
        self.assertEqual(self.run_cron().done, 2)
        self.assertEqual(self.both.mapped("state"), ["connected", "connected"])
        self.assertFalse(credential_activities())

    def test_disconnect_removes_the_activity(self):
        self.connect()
        self.fake.add_fault(kind="503", target="delta", count=None)
        self.integration.sync_contacts()
        self.integration.sync_contacts()
        self.assertTrue(self.failing_activities(self.integration))
        self.integration.action_disconnect()
        self.assertFalse(self.failing_activities(self.integration))
        self.assertEqual((self.integration.failed_runs, self.integration.retry_date), (0, False))

    def test_the_activity_goes_to_an_administrator(self):
        responsible = self.integration._responsible_administrator()
        self.assertTrue(responsible._is_system())
        self.assertIn(self.admin, self.integration._administrators())
        self.assertNotIn(self.plain_user, self.integration._administrators())
