"""The options beyond S1-S19 in a real browser (headless Chromium, Odoo tours): the sync
options, the preview wizard and its Apply, the pins on a synced contact."""

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import HttpCase, get_db_name, tagged

from odoo.addons.azure_ad_contacts.models import azure_ad_integration

from .common import CONTOSO_ID, AddonTest, configure_addon, fake_entra, user


@tagged("post_install", "-at_install")
class TestBeyondTours(AddonTest, HttpCase):
    @classmethod
    def setUpClass(cls):
        # The asset bundles once, outside the tests' rolled-back transactions.
        with Registry(get_db_name()).cursor() as cr:
            qweb = api.Environment(cr, SUPERUSER_ID, {})["ir.qweb"]
            for name in ("web.assets_web", "web.assets_tests"):
                bundle = qweb._get_asset_bundle(name)
                bundle.js()
                bundle.css()
        super().setUpClass()
        cls.fake = fake_entra()
        configure_addon(cls.env, cls.fake)
        cls.customer = cls.env["res.partner"].create({"name": "Contoso Ltd", "is_company": True})
        cls.integration = cls.env["azure.ad.integration"].create({"partner_id": cls.customer.id})

    def setUp(self):
        super().setUp()
        self.fake.reset()
        azure_ad_integration._MSAL_HTTP_CACHE.clear()
        self.people = [
            user(f"id-{n}", f"p{n}@contoso.example", f"P{n}", "Person", department="Sales") for n in range(3)
        ]
        self.fake.set_users(CONTOSO_ID, self.people)
        self.fake.set_consent(CONTOSO_ID, True)
        self.integration._complete_consent(CONTOSO_ID)

    def test_preview_and_apply(self):
        self.fake.set_users(CONTOSO_ID, [{**self.people[0], "jobTitle": "CFO"}, self.people[1]])
        url = f"/odoo/azure.ad.integration/{self.integration.id}"
        self.start_tour(url, "azure_ad_contacts_preview", login="admin")
        self.env.invalidate_all()
        log = self.integration._latest_log()
        self.assertEqual((log.state, log.updated, log.archived), ("done", 1, 1))
        self.assertEqual(self.integration.deleted_action, "archive")
        gone = self.env["res.partner"].with_context(active_test=False).search(
            [("parent_id", "=", self.customer.id), ("email", "=", "p2@contoso.example")]
        )
        self.assertRecordValues(gone, [{"active": False, "azure_ad_archived": True}])

    def test_pins_on_the_contact_form(self):
        self.integration.map_department = True
        self.integration.sync_contacts()
        contact = self.customer.child_ids.filtered(lambda c: c.email == "p0@contoso.example")
        self.start_tour(f"/odoo/res.partner/{contact.id}", "azure_ad_contacts_pins", login="admin")
        self.env.invalidate_all()
        self.assertTrue(contact.azure_ad_never_overwrite)
