"""The customer form in a real browser: Odoo tours in headless Chromium against the fake
Microsoft Entra ID, plus checks of what the server sends to whom."""

import json
from unittest.mock import patch

from lxml import etree

from odoo.tests import HttpCase, common, new_test_user, tagged
from odoo.tools import config

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .common import (
    CONTOSO_ID,
    AddonTest,
    AzureAdCase,
    FakeTenantMixin,
    build_web_client_assets,
    user,
)

# Runs in every page the browser opens; acts only on the fake Microsoft consent page, where
# it does what the customer's administrator does: read the request, click Accept.
CUSTOMER_ADMIN_ACCEPTS = """
if (location.origin === %(origin)s && location.pathname.endsWith("/adminconsent")) {
    window.addEventListener("DOMContentLoaded", () => {
        console.info("Consent page: accepting for", document.getElementById("app-name").textContent);
        document.getElementById("accept").click();
    });
}
"""


class CustomerAdminBrowser(common.ChromeBrowser):
    """Odoo's test Chromium, as the customer's administrator uses it on Microsoft's side:
    it trusts the fake Microsoft (whose CA Chromium does not know), lets its requests through
    (Odoo's test browser answers 404 to anything but Odoo) and clicks Accept on the consent page."""

    microsoft_origin = None

    def _spawn_chrome(self, cmd):
        return super()._spawn_chrome([cmd[0], "--ignore-certificate-errors", *cmd[1:]])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        script = CUSTOMER_ADMIN_ACCEPTS % {"origin": json.dumps(self.microsoft_origin)}
        self._websocket_request("Page.addScriptToEvaluateOnNewDocument", params={"source": script})

    def _handle_request_paused(self, **params):
        if params["request"]["url"].startswith(self.microsoft_origin + "/"):
            self._websocket_send("Fetch.continueRequest", params={"requestId": params["requestId"]})
        else:
            super()._handle_request_paused(**params)


@tagged("post_install", "-at_install")
class TestCustomerFormTours(FakeTenantMixin, HttpCase):
    create_integration = False  # the customer form creates it on first use

    @classmethod
    def setUpClass(cls):
        build_web_client_assets()
        super().setUpClass()
        cls.startClassPatcher(patch.object(CustomerAdminBrowser, "microsoft_origin", cls.fake.base_url))
        cls.startClassPatcher(patch.object(common, "ChromeBrowser", CustomerAdminBrowser))
        # In Odoo before the first sync and not in Entra: never touched, no icon.
        cls.env["res.partner"].create(
            {"name": "External Auditor", "parent_id": cls.customer.id, "email": "auditor@audit.example"}
        )
        cls.plain_user = new_test_user(cls.env, login="plain_tour", groups="base.group_user")

    def setUp(self):
        super().setUp()
        # The consent redirect URI is built from it: Microsoft must send the browser back here.
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())

    @property
    def integration(self):
        return self.customer.azure_ad_integration_ids

    def connect(self):
        self.fake.set_consent(CONTOSO_ID, True)
        return self.customer._azure_ad_integration()._complete_consent(CONTOSO_ID)

    def customer_url(self):
        return f"/odoo/contacts/{self.customer.id}"

    def test_connect_through_microsoft_consent(self):
        self.start_tour(self.customer_url(), "azure_ad_contacts_connect", login="admin")
        self.env.invalidate_all()
        self.assertEqual(self.integration.state, "connected")
        self.assertEqual(self.integration.tenant_id, CONTOSO_ID)
        self.assertEqual(self.integration.sync_log_ids.mapped("trigger"), ["connect"])
        synced = self.customer.child_ids.filtered("azure_ad_synced")
        self.assertEqual(len(synced), 15)
        # The browser itself went through Microsoft's consent page and clicked Accept there.
        consent_requests = [
            (r["method"], r["status"])
            for r in self.fake.stats()["requests"]
            if r["path"].startswith("/organizations")
        ]
        self.assertEqual(consent_requests, [("GET", 200), ("POST", 302)])

    def test_connect_while_microsoft_still_spreads_the_consent(self):
        """The same clicks, but Microsoft refuses the app a token for seconds after the Accept:
        the browser shows the waiting page (time waited, Check again), whose checks go on until
        Microsoft confirms the consent, and then on to the customer, where the tour finds the
        same confirmation."""
        self.fake.set_consent_delay(8, symptom="token")
        self.start_tour(self.customer_url(), "azure_ad_contacts_connect_waiting", login="admin")
        self.env.invalidate_all()
        self.assertEqual((self.integration.state, self.integration.tenant_id), ("connected", CONTOSO_ID))
        self.assertFalse(self.integration.consent_waiting_since)
        self.assertEqual(len(self.customer.child_ids.filtered("azure_ad_synced")), 15)
        requests = self.fake.stats()["requests"]
        refused = [r for r in requests if r["path"].endswith("/token") and r["status"] == 400]
        self.assertGreaterEqual(len(refused), 2, "the callback's try and at least the Check again click")

    def test_connect_a_tenant_too_slow_for_a_request(self):
        """Microsoft answers slowly and a worker may run a second: the first sync goes to the
        background. The customer shows it running, then (once the scheduled job ran it) its
        counts and the contacts, without a reload."""
        self.fake.set_graph_latency(400, jitter=0)
        with patch.dict(config.options, {"limit_time_real": 4}):
            self.start_tour(self.customer_url(), "azure_ad_contacts_connect_background", login="admin")
        self.env.invalidate_all()
        log = self.integration.sync_log_ids
        self.assertEqual((log.trigger, log.state, log.created), ("connect", "done", 15))
        self.assertFalse(self.integration.first_sync_pending_since)

    def test_sync_now_and_disconnect(self):
        self.connect()
        self.fake.add_user(CONTOSO_ID, user("id-new-hire", "new.hire@contoso.example", "New", "Hire"))
        # Microsoft throttles once and asks for 2 s: long enough to see "Sync now" in progress.
        self.fake.add_fault(kind="429", target="delta", count=1, retry_after=2)  # a changes-only round
        self.start_tour(self.customer_url(), "azure_ad_contacts_sync_and_disconnect", login="admin")
        self.env.invalidate_all()
        self.assertEqual(self.integration.state, "disconnected")
        self.assertEqual(self.integration.sync_log_ids.mapped("trigger"), ["manual", "connect"])
        self.assertFalse(self.integration.sudo().token_cache)
        # Disconnecting kept every imported contact.
        self.assertEqual(len(self.customer.child_ids.filtered("azure_ad_synced")), 16)

    def test_icons_filter_and_tooltip(self):
        self.connect()
        # The kanban asked for: 19.0 opens the contacts as a list.
        self.start_tour("/odoo/contacts?view_type=kanban", "azure_ad_contacts_icons", login="admin")

    def test_user_without_settings_rights_sees_no_menu(self):
        self.connect()
        self.start_tour(self.customer_url(), "azure_ad_contacts_no_menu", login="plain_tour")

    def test_german(self):
        self.env["res.lang"]._activate_lang("de_DE")
        self.env["ir.module.module"]._load_module_terms(["base", "azure_ad_contacts"], ["de_DE"])
        self.env.ref("base.user_admin").lang = "de_DE"
        self.connect()
        self.start_tour(self.customer_url(), "azure_ad_contacts_german", login="admin")
        self.assertEqual(self.integration.state, "connected")  # "Abbrechen" disconnected nothing

    def test_consent_revoked_offers_reconnect(self):
        self.connect()
        self.fake.set_consent(CONTOSO_ID, False)
        self.fake.expire_tokens()
        result = self.integration.sync_contacts()[0]
        self.assertIn("AADSTS700016", result["error"])
        self.assertEqual((self.integration.state, self.integration.last_error_kind), ("error", "consent"))
        self.start_tour(self.customer_url(), "azure_ad_contacts_error_consent", login="admin")

    def test_expired_secret_points_to_the_settings(self):
        self.connect()
        self.fake.add_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, secret_expired=True)
        self.fake.expire_tokens()
        result = self.integration.sync_contacts()[0]
        self.assertIn("AADSTS7000222", result["error"])
        self.assertEqual((self.integration.state, self.integration.last_error_kind), ("error", "secret"))
        self.start_tour(self.customer_url(), "azure_ad_contacts_error_secret", login="admin")

    def test_throttling_says_when_to_try_again(self):
        self.connect()
        self.fake.add_fault(kind="429", target="delta", count=None, retry_after=120)  # changes only
        result = self.integration.sync_contacts()[0]
        self.assertIn("120 seconds", result["error"])
        # Throttling is not the connection's fault: it stays connected.
        self.assertEqual(
            (self.integration.state, self.integration.last_error_kind), ("connected", "throttled")
        )
        self.start_tour(self.customer_url(), "azure_ad_contacts_error_throttled", login="admin")


@tagged("post_install", "-at_install")
class TestSyncOptionTours(FakeTenantMixin, HttpCase):
    """The sync options in a real browser: the preview wizard and its Apply, the pins on a
    synced contact."""

    @classmethod
    def setUpClass(cls):
        build_web_client_assets()
        super().setUpClass()

    def setUp(self):
        super().setUp()
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
        gone = (
            self.env["res.partner"]
            .with_context(active_test=False)
            .search([("parent_id", "=", self.customer.id), ("email", "=", "p2@contoso.example")])
        )
        self.assertRecordValues(gone, [{"active": False, "azure_ad_archived": True}])

    def test_pins_on_the_contact_form(self):
        self.integration.map_department = True
        self.integration.sync_contacts()
        contact = self.customer.child_ids.filtered(lambda c: c.email == "p0@contoso.example")
        self.start_tour(f"/odoo/res.partner/{contact.id}", "azure_ad_contacts_pins", login="admin")
        self.env.invalidate_all()
        self.assertTrue(contact.azure_ad_never_overwrite)


@tagged("post_install", "-at_install")
class TestCustomerFormAccess(AddonTest, HttpCase):
    """Administrators only, on the server side: the Sync contacts menu and the integration's fields are not
    even sent to users without Settings rights."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain_user = new_test_user(cls.env, login="plain_view", groups="base.group_user")

    def form_arch(self, env):
        return etree.fromstring(env["res.partner"].get_views([(False, "form")])["views"]["form"]["arch"])

    def test_admin_receives_the_menu(self):
        arch = self.form_arch(self.env)
        self.assertTrue(arch.xpath("//widget[@name='azure_ad_sync_contacts']"))
        # The widget declares the integration's fields it reads (fieldDependencies): the web
        # client asks for them with the customer, and an administrator gets them.
        customer = self.env["res.partner"].create({"name": "Menu Customer", "is_company": True})
        [values] = customer.web_read({"azure_ad_last_error": {}, "azure_ad_last_error_kind": {}})
        self.assertEqual(
            values, {"id": customer.id, "azure_ad_last_error": False, "azure_ad_last_error_kind": False}
        )

    def test_plain_user_receives_neither_menu_nor_integration_fields(self):
        env = self.env(user=self.plain_user)
        arch = self.form_arch(env)
        self.assertFalse(arch.xpath("//widget[@name='azure_ad_sync_contacts']"))
        self.assertFalse(arch.xpath("//*[contains(@class, 'o_azure_ad_sync_contacts')]"))
        fields = {node.get("name") for node in arch.iter("field")}
        partner_fields = env["res.partner"]._fields
        admin_only = {
            name for name, field in partner_fields.items() if "base.group_system" in (field.groups or "")
        }
        self.assertIn("azure_ad_last_error", admin_only)
        self.assertEqual(fields & admin_only, set())
        # The mark itself stays visible to everybody.
        self.assertIn("azure_ad_synced", fields)


class TestWizards(AzureAdCase):
    """The two dialogs of the customer form, without a browser."""

    def test_connect_dialog_warns_when_the_app_is_not_configured(self):
        wizard = self.env["azure.ad.connect.wizard"].create({"integration_id": self.integration.id})
        self.assertEqual((wizard.app_configured, wizard.reconnect), (True, False))
        self.env["ir.config_parameter"].sudo().set_param("azure_ad_contacts.client_id", "")
        wizard.invalidate_recordset()
        self.assertFalse(wizard.app_configured)

    def test_connect_dialog_says_reconnect_after_an_error(self):
        self.connect()
        self.integration.state = "error"
        wizard = self.env["azure.ad.connect.wizard"].create({"integration_id": self.integration.id})
        self.assertTrue(wizard.reconnect)
        action = wizard.action_connect()
        # A reconnect names the tenant connected before: Microsoft asks one of its administrators.
        self.assertTrue(action["url"].startswith(f"{self.fake.base_url}/{CONTOSO_ID}/v2.0/adminconsent?"))

    def test_disconnect_dialog_keeps_the_contacts_and_says_so(self):
        self.connect()
        contacts = self.contacts().filtered("azure_ad_synced")
        wizard = self.env["azure.ad.disconnect.wizard"].create({"integration_id": self.integration.id})
        action = wizard.action_disconnect()
        self.assertEqual(self.integration.state, "disconnected")
        self.assertFalse(self.integration.sudo().token_cache)
        self.assertEqual(self.contacts().filtered("azure_ad_synced"), contacts)
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn(f"Its {len(contacts)} imported contacts were kept", action["params"]["message"])
        self.assertEqual(action["params"]["next"], {"type": "ir.actions.act_window_close"})
