"""App credentials as Microsoft recommends: a certificate with its private key (in the settings,
or a file named in odoo.conf) instead of the client secret, MSAL signing the client assertion
that the fake checks as Entra does; the key for administrators only and dropped by a
neutralized copy; the expiry of the certificate or of the secret known, with activities 30 and
7 days before and a banner on every integration once it has passed."""

import os
import tempfile
from datetime import timedelta
from unittest.mock import patch

from cryptography.hazmat.primitives.asymmetric import ec

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.modules.neutralize import neutralize_database
from odoo.tools import config

from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin
from odoo.addons.azure_ad_contacts.utils import credentials

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .app_certificates import make_app_certificate
from .common import AzureAdCase

CERTIFICATE_PARAM = "azure_ad_contacts.client_certificate"
EXPIRY_ACTIVITY = "azure_ad_contacts.mail_activity_type_credential_expiry"


class CertificateCase(AzureAdCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certificate = make_app_certificate()
        cls.other = make_app_certificate()

    def registered(self, *certificates, secret=None):
        """The app registration in Entra has these certificates (and this secret, if any)."""
        self.fake.add_app(DEFAULT_CLIENT_ID, secret, certificates=[c.certificate for c in certificates])

    def save_settings(self, **values):
        self.env["res.config.settings"].create(values).execute()

    def settings(self):
        return self.env["res.config.settings"].create({})

    def cold_start(self, integrations=None):
        (integrations or self.integration).sudo().token_cache = False
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()

    def expiry_activities(self):
        partner = self.env.ref("base.main_company").partner_id
        return partner.activity_search([EXPIRY_ACTIVITY])


class TestCertificateLogin(CertificateCase):
    def test_the_settings_take_a_certificate_and_every_sync_signs_in_with_it(self):
        self.connect()
        # The MSP moves to a certificate: the app registration keeps no secret.
        self.registered(self.certificate)
        self.cold_start()
        failed = self.integration.sync_contacts()[0]
        self.assertIn("AADSTS7000215", failed["error"])
        self.assertEqual(self.integration.last_error_kind, "secret")
        self.save_settings(azure_ad_new_certificate=self.certificate.both)
        self.assertLessEqual(self.integration.retry_date, fields.Datetime.now(), "tried again at once")
        result = self.integration.sync_contacts()[0]
        self.assertNotIn("error", result)
        self.assertEqual(self.integration.state, "connected")
        # The settings show which certificate is used, never its private key.
        settings = self.settings()
        expected = credentials.load_certificate(self.certificate.both)
        self.assertEqual(settings.azure_ad_certificate_thumbprint, expected.thumbprint)
        self.assertEqual(settings.azure_ad_certificate_expiry, expected.not_after)
        self.assertFalse(settings.azure_ad_new_certificate)
        self.assertNotIn("PRIVATE KEY", str(settings.read()))

    def test_a_certificate_the_app_registration_does_not_know_is_refused_with_its_remedy(self):
        self.connect()
        self.registered(self.other)
        self.save_settings(azure_ad_new_certificate=self.certificate.both)
        self.cold_start()
        error = self.integration.sync_contacts()[0]["error"]
        self.assertIn("AADSTS700027", error)
        self.assertIn("certificate of your Azure AD app", error)
        self.assertIn("Settings › Azure AD Contacts", error)
        self.assertRecordValues(self.integration, [{"state": "error", "last_error_kind": "secret"}])
        # Uploaded to the app registration: the next try works.
        self.registered(self.certificate, self.other)
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.assertNotIn("error", self.integration.sync_contacts()[0])

    def test_a_certificate_expired_at_microsoft_says_so(self):
        self.connect()
        expired = make_app_certificate(valid_days=-1, starts_days=-400)
        self.registered(expired)
        # Given long ago (the settings refuse an expired one today).
        self.env["ir.config_parameter"].sudo().set_param(CERTIFICATE_PARAM, expired.both)
        self.cold_start()
        error = self.integration.sync_contacts()[0]["error"]
        self.assertIn("The key used is expired", error)
        self.assertIn("expired on", self.integration.credential_warning)

    def test_removing_the_certificate_falls_back_to_the_secret(self):
        self.connect()
        self.registered(self.certificate, secret=DEFAULT_CLIENT_SECRET)
        self.save_settings(azure_ad_new_certificate=self.certificate.both)
        self.assertTrue(self.settings().azure_ad_certificate_thumbprint)
        self.settings().action_azure_ad_remove_certificate()
        self.assertFalse(self.env["ir.config_parameter"].sudo().get_param(CERTIFICATE_PARAM))
        self.registered(secret=DEFAULT_CLIENT_SECRET)
        self.cold_start()
        self.assertNotIn("error", self.integration.sync_contacts()[0])

    def test_a_certificate_file_named_in_odoo_conf_wins(self):
        self.connect()
        self.registered(self.certificate)
        self.save_settings(azure_ad_new_certificate=self.other.both)  # not registered: loses
        with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as pem_file:
            pem_file.write(self.certificate.both)
        self.addCleanup(os.unlink, pem_file.name)
        with patch.dict(config.options, {"azure_ad_contacts_client_certificate": pem_file.name}):
            settings = self.settings()
            self.assertTrue(settings.azure_ad_certificate_in_config)
            self.assertEqual(
                settings.azure_ad_certificate_thumbprint,
                credentials.load_certificate(self.certificate.both).thumbprint,
            )
            self.cold_start()
            self.assertNotIn("error", self.integration.sync_contacts()[0])
        with patch.dict(config.options, {"azure_ad_contacts_client_certificate": "/nonexistent/app.pem"}):
            self.assertIn("/nonexistent/app.pem", self.settings().azure_ad_certificate_error)
            with self.assertRaisesRegex(UserError, "cannot read the certificate file"):
                self.integration.sync_contacts()

    def test_the_secret_of_odoo_conf_still_wins_without_a_certificate(self):
        self.connect()
        self.registered(secret="the-conf-secret")
        self.env["ir.config_parameter"].sudo().set_param("azure_ad_contacts.client_secret", "stale")
        self.cold_start()
        with patch.dict(config.options, {"azure_ad_contacts_client_secret": "the-conf-secret"}):
            self.assertNotIn("error", self.integration.sync_contacts()[0])

    def test_bad_input_gets_a_clear_error_and_loses_nothing(self):
        self.save_settings(azure_ad_new_certificate=self.certificate.both)
        stored = self.env["ir.config_parameter"].sudo().get_param(CERTIFICATE_PARAM)
        weak = make_app_certificate(key_size=1024)
        elliptic = make_app_certificate(curve=ec.SECP256R1())
        expired = make_app_certificate(valid_days=-1, starts_days=-30)
        encrypted = self.certificate.key.replace("BEGIN PRIVATE KEY", "BEGIN ENCRYPTED PRIVATE KEY").replace(
            "END PRIVATE KEY", "END ENCRYPTED PRIVATE KEY"
        )
        cases = {
            "not PEM at all": ("with its private key", "hello"),
            "the certificate alone": ("with its private key", self.certificate.certificate),
            "the key alone": ("no certificate with it", self.certificate.key),
            "a key and another certificate": (
                "belongs to the private key",
                self.certificate.key + self.other.certificate,
            ),
            "an encrypted key": ("encrypted", encrypted + self.certificate.certificate),
            "an elliptic-curve key": ("RSA key", elliptic.both),
            "a 1024-bit key": ("at least 2048 bits", weak.both),
            "an expired certificate": ("expired on", expired.both),
        }
        for case, (message, pem) in cases.items():
            with self.subTest(case), self.assertRaisesRegex(ValidationError, message):
                self.save_settings(azure_ad_new_certificate=pem)
            self.assertEqual(self.env["ir.config_parameter"].sudo().get_param(CERTIFICATE_PARAM), stored)

    def test_the_private_key_is_for_administrators_only_and_a_neutralized_copy_drops_it(self):
        self.save_settings(azure_ad_new_certificate=self.certificate.both)
        plain_env = self.env(user=self.plain_user)
        with self.assertRaises(AccessError):
            plain_env["ir.config_parameter"].get_param(CERTIFICATE_PARAM)
        with self.assertRaises(AccessError):
            plain_env["res.config.settings"].default_get(["azure_ad_new_certificate"])
        self.env.flush_all()
        neutralize_database(self.env.cr)
        self.env.invalidate_all()
        self.env.registry.clear_all_caches()
        self.assertFalse(self.env["ir.config_parameter"].sudo().get_param(CERTIFICATE_PARAM))
        self.assertFalse(self.settings().azure_ad_certificate_thumbprint)


class TestExpiryWarnings(CertificateCase):
    def setUp(self):
        super().setUp()
        self.administrators = self.env["azure.ad.integration"]._administrators()
        self.today = fields.Date.context_today(self.integration)

    def warn(self, days_before):
        """The daily job, run `days_before` days before the expiry date."""
        expiry = self.env["azure.ad.integration"]._credential_expiry()[2]
        self.env["azure.ad.integration"]._cron_warn_credential_expiry(
            today=expiry - timedelta(days=days_before)
        )

    def test_a_secret_warns_30_and_7_days_before_it_expires_once_each(self):
        self.save_settings(azure_ad_client_secret_expiry=self.today + timedelta(days=400))
        self.warn(45)
        self.assertFalse(self.expiry_activities(), "too early")
        self.warn(30)
        activities = self.expiry_activities()
        self.assertEqual(set(activities.user_id.ids), set(self.administrators.ids))
        self.assertEqual(len(activities), len(self.administrators), "one activity per administrator")
        self.assertIn("client secret expires in 30 days", activities[0].summary)
        self.assertIn("Certificates &amp; secrets", activities[0].note)
        self.warn(29)
        self.warn(30)
        self.assertEqual(self.expiry_activities(), activities, "no duplicates, however often the job runs")
        activities.action_feedback(feedback="on it")
        self.warn(20)
        self.assertFalse(self.expiry_activities(), "done is done until the next threshold")
        self.warn(7)
        activities = self.expiry_activities()
        self.assertEqual(len(activities), len(self.administrators))
        self.assertIn("expires in 7 days", activities[0].summary)
        self.warn(3)
        self.assertEqual(self.expiry_activities(), activities)

    def test_a_certificate_warns_from_its_own_date_and_its_replacement_closes_the_warnings(self):
        soon = make_app_certificate(valid_days=20)
        self.save_settings(azure_ad_new_certificate=soon.both)  # announced at once, not tomorrow
        activities = self.expiry_activities()
        self.assertEqual(len(activities), len(self.administrators))
        self.assertIn("certificate expires in", activities[0].summary)
        self.assertEqual(
            activities[0].date_deadline, credentials.load_certificate(soon.both).not_after.date()
        )
        self.save_settings(azure_ad_new_certificate=self.certificate.both)
        self.assertFalse(self.expiry_activities(), "about a certificate no longer in use")

    def test_without_a_known_date_nothing_is_announced(self):
        self.env["azure.ad.integration"]._cron_warn_credential_expiry()
        self.assertFalse(self.expiry_activities())

    def test_every_integration_shows_a_banner_once_the_secret_has_expired(self):
        other_customer = self.env["res.partner"].create({"name": "Fabrikam", "is_company": True})
        other = self.env["azure.ad.integration"].create({"partner_id": other_customer.id})
        integrations = self.integration | other
        self.save_settings(azure_ad_client_secret_expiry=self.today + timedelta(days=1))
        self.assertEqual(integrations.mapped("credential_warning"), [False, False])
        self.save_settings(azure_ad_client_secret_expiry=self.today)
        integrations.invalidate_recordset(["credential_warning"])
        for warning in integrations.mapped("credential_warning"):
            self.assertIn("client secret of your Azure AD app expired on", warning)
            self.assertIn("Settings › Azure AD Contacts", warning)
        arch = self.env["azure.ad.integration"].get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn("o_azure_ad_credential_expired", arch)
