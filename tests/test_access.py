"""Only administrators (Settings rights) connect, sync, disconnect or see
integration details; nobody else reads tokens, the client secret or the run log — through the
ORM over real XML-RPC and JSON-RPC (read, search_read, export_data, read_group, web_read, on
every field), the web client's actions and menus, or the routes. The consent callback refuses
forged, expired, tampered, superseded and replayed states and never redirects off the Odoo
host. Secrets never reach the logs.
"""

import json
import logging
import xmlrpc.client
from contextlib import contextmanager
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from freezegun import freeze_time

from odoo.tests import HttpCase, new_test_user, tagged

from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin

from fake_entra.server import DEFAULT_CLIENT_SECRET

from .common import CONTOSO_ID, FakeTenantMixin, execute_kw_payload

PLAIN, PORTAL = "acc_plain", "acc_portal"
DENIED = ("odoo.exceptions.AccessError", "odoo.exceptions.AccessDenied")
SECRET_FIELDS = ("token_cache", "consent_nonce")
# Methods of the integration an RPC client could call (public names only).
INTEGRATION_ACTIONS = (
    "action_connect",
    "action_sync_now",
    "action_disconnect",
    "sync_contacts",
    "action_open_connect_wizard",
)
# Harmless for anyone: they only return a window action, without reading the integration.
NAVIGATION_ACTIONS = ("action_open", "action_view_contacts")
PARTNER_ACTIONS = ("action_azure_ad_connect", "action_azure_ad_manage", "action_azure_ad_sync")


@contextmanager
def every_log_record():
    """Every record any logger emits at DEBUG and above, Odoo's, MSAL's, urllib3's included."""
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Collect(logging.DEBUG)
    # Not odoo.sql_db: its DEBUG level (--log-sql) prints every query with its values, the
    # database's content; an operator switches it on knowingly, for a moment.
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    levels = {logger: logger.level for logger in loggers}
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    logging.getLogger("odoo.sql_db").setLevel(logging.INFO)
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)


@tagged("post_install", "-at_install")
class TestAccess(FakeTenantMixin, HttpCase):
    customer_name = "Access Customer"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain = new_test_user(cls.env, login=PLAIN, password=PLAIN + "_pw", groups="base.group_user")
        cls.portal = new_test_user(cls.env, login=PORTAL, password=PORTAL + "_pw", groups="base.group_portal")
        cls.admin = cls.env.ref("base.user_admin")

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())
        self.fake.set_consent(CONTOSO_ID, True)
        self.integration._complete_consent(CONTOSO_ID)
        self.integration._new_consent_nonce()
        self.contact = self.customer.child_ids[:1]
        self.assertTrue(self.contact.azure_ad_synced)
        cache = json.loads(self.integration.sudo().token_cache)
        self.secrets = {
            "access token": next(iter(cache["AccessToken"].values()))["secret"],
            "consent nonce": self.integration.sudo().consent_nonce,
            "client secret": DEFAULT_CLIENT_SECRET,
        }
        self.logs_before = self.integration.sync_log_ids
        self.integration_values = self.integration.sudo().read(["state", "token_cache", "tenant_id"])

    # ------------------------------------------------------------------ helpers

    def jsonrpc(self, login, model, method, args, kwargs=None):
        """Odoo's external JSON-RPC API (/jsonrpc, execute_kw): the whole response."""
        uid = {PLAIN: self.plain.id, PORTAL: self.portal.id}.get(login, self.env.ref("base.public_user").id)
        payload = execute_kw_payload(self.env.cr.dbname, uid, f"{login}_pw", model, method, args, kwargs)
        response = self.url_open(
            "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        return response.json()

    def call_kw(self, model, method, args, kwargs=None):
        """The web client's call (/web/dataset/call_kw) in the current session."""
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {"model": model, "method": method, "args": args, "kwargs": kwargs or {}},
        }
        response = self.url_open(
            f"/web/dataset/call_kw/{model}/{method}",
            data=json.dumps(payload),
            headers={"Content-Type": "application/json"},
        )
        return response.json()

    def assert_no_secret(self, text, what):
        for name, value in self.secrets.items():
            self.assertNotIn(value, text, f"{name} leaked: {what}")

    def assert_denied(self, response, what, allowed=DENIED):
        self.assert_no_secret(json.dumps(response), what)
        self.assertIn("error", response, f"not denied: {what} → {str(response)[:300]}")
        self.assertIn(response["error"]["data"]["name"], allowed, f"{what}: {response['error']['data']}")
        self.checks += 1

    def assert_nothing_changed(self):
        self.env.invalidate_all()
        self.assertEqual(self.integration.sync_log_ids, self.logs_before)
        self.assertEqual(
            self.integration.sudo().read(["state", "token_cache", "tenant_id"]), self.integration_values
        )

    def addon_models(self):
        data = self.env["ir.model.data"].search(
            [("module", "=", "azure_ad_contacts"), ("model", "=", "ir.model")]
        )
        models = [
            model
            for model in self.env["ir.model"].browse(data.mapped("res_id")).mapped("model")
            # Abstract mixins hold no records: their fields are checked on the integration.
            if self.env[model]._original_module == "azure_ad_contacts" and not self.env[model]._abstract
        ]
        self.assertIn("azure.ad.integration", models)
        self.assertIn("azure.ad.sync.log", models)
        return sorted(models)

    def sample_record(self, model):
        if model == "azure.ad.integration":
            return self.integration
        if model == "azure.ad.sync.log":
            return self.integration.sync_log_ids[:1]
        records = self.env[model].search([], limit=1)
        if not records and self.env[model]._transient and "integration_id" in self.env[model]._fields:
            records = self.env[model].create({"integration_id": self.integration.id})
        return records

    # ------------------------------------------------------------------ ORM over RPC

    def test_addon_models_are_closed_on_every_field_for_users_and_portal(self):
        self.checks = 0
        for model in self.addon_models():
            record = self.sample_record(model)
            fields = self.env[model]._fields
            for login in (PLAIN, PORTAL):
                self.assert_denied(
                    self.jsonrpc(login, model, "search_read", [[]]), f"{login} {model} search_read"
                )
                self.assert_denied(
                    self.jsonrpc(login, model, "search_count", [[]]), f"{login} {model} search_count"
                )
                self.assert_denied(
                    self.jsonrpc(login, model, "name_search", ["a"]), f"{login} {model} name_search"
                )
                self.assert_denied(
                    self.jsonrpc(login, model, "web_search_read", [[], {"id": {}}]),
                    f"{login} {model} web_search_read",
                )
                if login == PORTAL:  # one read of every field: the model is closed to portal
                    if record:
                        self.assert_denied(
                            self.jsonrpc(login, model, "read", [record.ids]), f"{login} {model} read"
                        )
                    continue
                for name, field in fields.items():
                    what = f"{login} {model}.{name}"
                    if record and name != "id":  # web_read of the id alone echoes the id
                        self.assert_denied(
                            self.jsonrpc(login, model, "read", [record.ids, [name]]), f"{what} read"
                        )
                        self.assert_denied(
                            self.jsonrpc(login, model, "web_read", [record.ids, {name: {}}]),
                            f"{what} web_read",
                        )
                        self.assert_denied(
                            self.jsonrpc(login, model, "export_data", [record.ids, [name]]),
                            f"{what} export_data",
                            allowed=(*DENIED, "odoo.exceptions.UserError"),
                        )
                    self.assert_denied(
                        self.jsonrpc(login, model, "search_read", [[(name, "!=", False)], [name]]),
                        f"{what} search_read",
                    )
                    if field.store and field.type not in ("text", "html", "binary", "json", "one2many"):
                        self.assert_denied(
                            self.jsonrpc(login, model, "read_group", [[], [name], [name]]),
                            f"{what} read_group",
                        )
        self.assertGreater(self.checks, 200)
        self.assert_nothing_changed()

    def test_partner_fields_of_the_addon_are_closed_except_the_mark(self):
        """Plain users see contacts and the Azure mark; the links, the object id
        and the customer's integration are for administrators."""
        self.checks = 0
        partner = self.env["res.partner"]
        restricted = [
            name
            for name, field in partner._fields.items()
            if name.startswith("azure_ad_") and field.groups and "base.group_system" in field.groups
        ]
        self.assertIn("azure_ad_object_id", restricted)
        self.assertIn("azure_ad_integration_ids", restricted)
        own = {PLAIN: self.plain.partner_id, PORTAL: self.portal.partner_id}
        for login in (PLAIN, PORTAL):
            for target in {self.contact, self.customer, own[login]}:
                for name in restricted:
                    what = f"{login} res.partner({target.id}).{name}"
                    self.assert_denied(self.jsonrpc(login, "res.partner", "read", [target.ids, [name]]), what)
                    self.assert_denied(
                        self.jsonrpc(login, "res.partner", "web_read", [target.ids, {name: {}}]),
                        what + " web_read",
                    )
                    self.assert_denied(
                        self.jsonrpc(login, "res.partner", "export_data", [target.ids, [name]]),
                        what + " export",
                        allowed=(*DENIED, "odoo.exceptions.UserError"),
                    )
            for name in restricted:
                what = f"{login} res.partner.{name}"
                field = partner._fields[name]
                if not field.store or field.type == "one2many":
                    continue  # not searchable, or see below
                self.assert_denied(
                    self.jsonrpc(login, "res.partner", "search_read", [[(name, "!=", False)], ["name"]]), what
                )
                self.assert_denied(
                    self.jsonrpc(login, "res.partner", "search", [[]], {"order": name}), what + " order"
                )
                self.assert_denied(
                    self.jsonrpc(login, "res.partner", "read_group", [[], [name], [name]]),
                    what + " read_group",
                )
            # Through a relation: the token by way of the customer's integration.
            for path in ("azure_ad_integration_ids.token_cache", "azure_ad_integration_id.consent_nonce"):
                self.assert_denied(
                    self.jsonrpc(login, "res.partner", "search", [[(path, "!=", False)]]), f"{login} {path}"
                )
            self.assert_denied(
                self.jsonrpc(
                    login,
                    "res.partner",
                    "export_data",
                    [self.customer.ids, ["azure_ad_integration_ids/token_cache"]],
                ),
                f"{login} export token",
                allowed=(*DENIED, "odoo.exceptions.UserError"),
            )
        # Odoo 18.0 checks no field groups on a one2many in a domain: a plain user can find the
        # customers that have an integration (which the Azure mark on their contacts tells
        # anyway), but nothing of the integration itself; Odoo 19.0 refuses the search.
        found = self.jsonrpc(
            PLAIN, "res.partner", "search_read", [[("azure_ad_integration_ids", "!=", False)], []]
        )
        if "error" in found:
            self.assert_denied(found, "search by integration")
        else:
            self.assert_no_secret(json.dumps(found), "search by integration")
            self.assertFalse({key for record in found["result"] for key in record} & set(restricted))
        # The fields the plain user is offered: the mark, nothing restricted; reading the addon's
        # ones among them shows nothing secret. (Reading every field fails on Odoo 19.0 for
        # reasons of its own: the contact's Discuss call sessions.)
        offered = self.jsonrpc(PLAIN, "res.partner", "fields_get", [], {"attributes": ["type"]})["result"]
        self.assertFalse(set(restricted) & set(offered))
        own_fields = [name for name in offered if name.startswith("azure_ad_")]
        response = self.jsonrpc(PLAIN, "res.partner", "read", [self.contact.ids, own_fields])
        self.assert_no_secret(json.dumps(response), "plain read of the addon's fields")
        record = response["result"][0]
        self.assertIs(record["azure_ad_synced"], True)
        self.assertFalse(set(restricted) & set(record))
        self.assertGreater(self.checks, 40)

    def test_secret_and_settings_are_closed(self):
        self.checks = 0
        for login in (PLAIN, PORTAL):
            params = "ir.config_parameter"
            self.assert_denied(
                self.jsonrpc(login, params, "get_param", ["azure_ad_contacts.client_secret"]), login
            )
            self.assert_denied(
                self.jsonrpc(login, params, "search_read", [[("key", "like", "azure_ad_contacts")]]), login
            )
            settings = "res.config.settings"
            for fields in (["azure_ad_client_secret"], ["azure_ad_client_id", "azure_ad_client_secret"], []):
                self.assert_denied(
                    self.jsonrpc(login, settings, "default_get", [fields]), f"{login} default_get"
                )
            self.assert_denied(
                self.jsonrpc(login, settings, "onchange", [[], {}, [], {"azure_ad_client_secret": {}}]), login
            )
            self.assert_denied(self.jsonrpc(login, settings, "create", [{}]), f"{login} settings create")
        # The administrator still gets the settings page.
        defaults = self.env["res.config.settings"].default_get(["azure_ad_client_secret"])
        self.assertEqual(defaults["azure_ad_client_secret"], DEFAULT_CLIENT_SECRET)

    def test_actions_are_refused_over_rpc_and_change_nothing(self):
        self.checks = 0
        for login in (PLAIN, PORTAL):
            for method in INTEGRATION_ACTIONS:
                self.assert_denied(
                    self.jsonrpc(login, "azure.ad.integration", method, [self.integration.ids]),
                    f"{login} {method}",
                )
            for method in NAVIGATION_ACTIONS:
                response = self.jsonrpc(login, "azure.ad.integration", method, [self.integration.ids])
                self.assert_no_secret(json.dumps(response), f"{login} {method}")
            for method in PARTNER_ACTIONS:
                self.assert_denied(
                    self.jsonrpc(login, "res.partner", method, [self.customer.ids]),
                    f"{login} {method}",
                    allowed=(*DENIED, "odoo.exceptions.UserError"),
                )
            # Writing the secrets or the state directly.
            self.assert_denied(
                self.jsonrpc(
                    login, "azure.ad.integration", "write", [self.integration.ids, {"token_cache": "x"}]
                ),
                login,
            )
            self.assert_denied(
                self.jsonrpc(login, "azure.ad.integration", "create", [{"partner_id": self.contact.id}]),
                login,
            )
            self.assert_denied(
                self.jsonrpc(login, "azure.ad.integration", "unlink", [self.integration.ids]), login
            )
        self.assert_nothing_changed()
        self.assertTrue(self.contact.exists())

    def test_public_visitor_gets_nothing_over_rpc(self):
        self.checks = 0
        for model, method, args in (
            ("azure.ad.integration", "search_read", [[]]),
            ("azure.ad.integration", "sync_contacts", [self.integration.ids]),
            ("azure.ad.sync.log", "search_read", [[]]),
            ("res.config.settings", "default_get", [["azure_ad_client_secret"]]),
            ("ir.config_parameter", "get_param", ["azure_ad_contacts.client_secret"]),
        ):
            self.assert_denied(self.jsonrpc("public", model, method, args), f"public {model}.{method}")
        # The web client's RPC without a session.
        response = self.call_kw("azure.ad.integration", "search_read", [[]])
        self.assertEqual(response["error"]["data"]["name"], "odoo.http.SessionExpiredException")
        self.assert_nothing_changed()

    def test_xmlrpc_refuses_too(self):
        db = self.env.cr.dbname
        for login, user in ((PLAIN, self.plain), (PORTAL, self.portal)):
            for model, method, args in (
                ("azure.ad.integration", "read", [self.integration.ids, ["token_cache"]]),
                ("azure.ad.integration", "search_read", [[], ["consent_nonce"]]),
                ("azure.ad.integration", "sync_contacts", [self.integration.ids]),
                ("azure.ad.sync.log", "search_read", [[]]),
                ("res.partner", "read", [self.contact.ids, ["azure_ad_object_id"]]),
                ("res.config.settings", "default_get", [["azure_ad_client_secret"]]),
                ("ir.config_parameter", "get_param", ["azure_ad_contacts.client_secret"]),
            ):
                with self.assertRaises(xmlrpc.client.Fault) as caught:
                    self.xmlrpc_object.execute_kw(db, user.id, f"{login}_pw", model, method, args)
                self.assertRegex(
                    caught.exception.faultString,
                    "not allowed|enough rights|Access Denied|Only administrators",
                )
                self.assert_no_secret(caught.exception.faultString, f"xmlrpc {login} {model}.{method}")
        # The administrator does read the run log over XML-RPC (the documented API).
        logs = self.xmlrpc_object.execute_kw(
            db,
            self.admin.id,
            "admin",
            "azure.ad.sync.log",
            "search_read",
            [[("integration_id", "=", self.integration.id)]],
        )
        self.assertEqual(logs[0]["state"], "done")
        self.assertNotIn("token_cache", json.dumps(logs, default=str))
        self.assert_nothing_changed()

    def test_mail_messages_of_the_integration_stay_with_administrators(self):
        self.integration.message_post(body="A note on the integration")
        for login in (PLAIN, PORTAL):
            response = self.jsonrpc(
                login, "mail.message", "search_read", [[("model", "=", "azure.ad.integration")], ["body"]]
            )
            self.assertEqual(response.get("result", []), [], response)

    # ------------------------------------------------------------------ web client

    def test_web_client_of_a_plain_user(self):
        """A plain user works with contacts normally: the form opens, shows the mark, and
        holds no Azure AD buttons, menus or restricted fields."""
        self.authenticate(PLAIN, PLAIN + "_pw")
        views = self.call_kw(
            "res.partner", "get_views", [[[False, "form"], [False, "list"], [False, "kanban"]]]
        )
        self.assertNotIn("error", views, views.get("error"))
        for view_type, view in views["result"]["views"].items():
            for hidden in (
                "action_azure_ad_connect",
                "action_azure_ad_manage",
                "azure_ad_state",
                "azure_ad_object_id",
            ):
                self.assertNotIn(hidden, view["arch"], f"{hidden} in the {view_type} view of a plain user")
        self.assertIn("azure_ad_synced", views["result"]["views"]["form"]["arch"])
        spec = {name: {} for name in views["result"]["models"]["res.partner"]["fields"]}
        opened = self.call_kw("res.partner", "web_read", [self.contact.ids, spec])
        self.assertNotIn("error", opened, opened.get("error"))
        self.assertIs(opened["result"][0]["azure_ad_synced"], True)
        self.assert_no_secret(json.dumps(opened), "contact form of a plain user")
        # The menu and the bound server action.
        menus = self.url_open("/web/webclient/load_menus/1").text
        self.assertNotIn("Azure AD", menus)
        action = self.env.ref("azure_ad_contacts.res_partner_action_sync_azure_ad")
        run = self.url_open(
            "/web/action/run",
            data=json.dumps(
                {"params": {"action_id": action.id, "context": {"active_ids": self.customer.ids}}}
            ),
            headers={"Content-Type": "application/json"},
        ).json()
        self.assertIn("error", run)
        self.assertEqual(run["error"]["data"]["name"], "odoo.exceptions.AccessError")
        bound = self.call_kw("res.partner", "get_views", [[[False, "list"]]], {"options": {"toolbar": True}})
        toolbar = json.dumps(bound["result"]["views"]["list"].get("toolbar", {}))
        self.assertNotIn("Sync contacts from Azure AD", toolbar)
        self.assert_nothing_changed()

    # ------------------------------------------------------------------ routes

    def start_connect(self):
        """The Connect button: the web client calls action_connect and opens Microsoft's URL."""
        action = self.call_kw("azure.ad.integration", "action_connect", [[self.integration.id]])
        self.assertIn("result", action, action)
        return parse_qs(urlsplit(action["result"]["url"]).query)["state"][0]

    def callback(self, state, **extra):
        params = {"admin_consent": "True", "tenant": CONTOSO_ID, "state": state, **extra}
        query = "&".join(f"{key}={value}" for key, value in params.items())
        return self.url_open(f"/azure_ad_contacts/oauth/callback?{query}", allow_redirects=False)

    def test_nobody_forges_the_azure_ad_mark_over_rpc(self):
        local = self.env["res.partner"].create({"name": "Local", "parent_id": self.customer.id})
        editor = new_test_user(
            self.env,
            login="acc_editor",
            password="acc_editor_pw",
            groups="base.group_user,base.group_partner_manager",
        )
        for login, uid, password in (
            (editor.login, editor.id, "acc_editor_pw"),
            ("admin", self.admin.id, "admin"),
        ):
            for method, args in (
                ("write", [[local.id], {"azure_ad_synced": True}]),
                ("create", [{"name": "Forged", "parent_id": self.customer.id, "azure_ad_synced": True}]),
            ):
                payload = execute_kw_payload(self.env.cr.dbname, uid, password, "res.partner", method, args)
                response = self.url_open(
                    "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
                ).json()
                self.assertEqual(
                    response.get("error", {}).get("data", {}).get("name"), DENIED[0], (login, method)
                )
        self.env.invalidate_all()
        self.assertFalse(local.azure_ad_synced)
        self.assertFalse(self.env["res.partner"].search([("name", "=", "Forged")]))

    def test_routes_refuse_users_portal_and_visitors(self):
        self.authenticate("admin", "admin")
        state = self.start_connect()
        for login in (PLAIN, PORTAL):
            self.authenticate(login, login + "_pw")
            connect = self.url_open(
                f"/azure_ad_contacts/connect/{self.integration.id}", allow_redirects=False
            )
            self.assertEqual(connect.status_code, 403, login)
            self.assertEqual(self.callback(state).status_code, 403, login)
        self.authenticate(None, None)
        for url in (f"/azure_ad_contacts/connect/{self.integration.id}", "/azure_ad_contacts/oauth/callback"):
            response = self.url_open(url, allow_redirects=False)
            self.assertIn(response.status_code, (302, 303))
            self.assertIn("/web/login", response.headers["Location"])
        self.assert_nothing_changed()
        # The admin's state is still good: nobody else could use (or burn) it.
        self.authenticate("admin", "admin")
        self.assertIn(self.callback(state).status_code, (302, 303))

    def test_tampered_superseded_and_replayed_states_are_refused(self):
        self.authenticate("admin", "admin")
        first = self.start_connect()
        second = self.start_connect()  # a second click: only the newest link is valid
        self.assertEqual(self.callback(first).status_code, 403)
        # Flip one character of the signature or of the payload.
        for position in (12, 30, len(second) - 3):
            flipped = second[:position] + ("A" if second[position] != "A" else "B") + second[position + 1 :]
            self.assertEqual(self.callback(flipped).status_code, 403, position)
        # A state signed for this integration by hand, without the secret: refused.
        forged = json.dumps(
            {"integration": self.integration.id, "user": self.admin.id, "db": self.env.cr.dbname}
        )
        self.assertEqual(self.callback(forged).status_code, 403)
        self.assertIn(self.callback(second).status_code, (302, 303))
        self.assertEqual(self.callback(second).status_code, 403, "replayed")
        # A declined consent burns its state too.
        third = self.start_connect()
        self.assertEqual(self.callback(third, error="access_denied", error_description="no").status_code, 400)
        self.assertEqual(self.callback(third).status_code, 403)

    def test_expired_state_is_refused(self):
        self.authenticate("admin", "admin")
        state = self.start_connect()
        with freeze_time(datetime.now() + timedelta(hours=1, minutes=1)):
            self.assertEqual(self.callback(state).status_code, 403)
        self.assertEqual(self.integration.sync_log_ids, self.logs_before)

    def test_the_callback_never_redirects_off_the_odoo_host(self):
        self.authenticate("admin", "admin")
        hostile = {
            "redirect_uri": "https://evil.example/",
            "redirect": "//evil.example",
            "next": "https://evil.example",
            "return_to": "https:%2F%2Fevil.example",
            "url": "javascript:alert(1)",
        }
        state = self.start_connect()
        response = self.callback(state, **hostile)
        self.assertIn(response.status_code, (302, 303))
        location = urlsplit(response.headers["Location"])
        self.assertIn(location.netloc, ("", urlsplit(self.base_url()).netloc))
        self.assertEqual(location.path, f"/odoo/contacts/{self.customer.id}")
        # The error page (declined consent) links back to the customer only.
        state = self.start_connect()
        response = self.callback(
            state, error="access_denied", error_description="<script>alert(1)</script>", **hostile
        )
        self.assertEqual(response.status_code, 400)
        self.assertNotIn("evil.example", response.text)
        self.assertNotIn("<script>alert(1)</script>", response.text)
        self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", response.text)

    # ------------------------------------------------------------------ logs

    def test_tokens_and_secrets_never_reach_the_logs(self):
        self.authenticate("admin", "admin")
        with every_log_record() as records:
            # A sync that gets a new token, one that fails at the token endpoint, one that
            # fails at Graph, and the whole consent callback.
            self.integration.sudo().token_cache = False
            self.assertNotIn("error", self.integration.sync_contacts()[0])
            self.secrets["new access token"] = next(
                iter(json.loads(self.integration.sudo().token_cache)["AccessToken"].values())
            )["secret"]
            self.integration.sudo().token_cache = False
            # Not retried (a garbled answer), unlike a 503 that the next try gets past.
            self.fake.add_fault(kind="malformed", target="token")
            self.assertIn("error", self.integration.sync_contacts()[0])
            azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
            self.fake.add_fault(kind="malformed", target="delta")  # a changes-only round
            self.assertIn("error", self.integration.sync_contacts()[0])
            self.env["ir.config_parameter"].sudo().set_param(
                "azure_ad_contacts.client_secret", "wrong-secret-value"
            )
            self.secrets["wrong secret"] = "wrong-secret-value"
            self.integration.sudo().token_cache = False
            self.assertIn("AADSTS7000215", self.integration.sync_contacts()[0]["error"])
            self.env["ir.config_parameter"].sudo().set_param(
                "azure_ad_contacts.client_secret", DEFAULT_CLIENT_SECRET
            )
            state = self.start_connect()
            self.secrets["consent nonce"] = self.integration.sudo().consent_nonce
            self.assertIn(self.callback(state).status_code, (302, 303))
            self.secrets["latest access token"] = next(
                iter(json.loads(self.integration.sudo().token_cache)["AccessToken"].values())
            )["secret"]
        text = "\n".join(records)
        self.assertIn("Azure AD sync of Access Customer", text)  # the capture did work
        self.assertGreater(len(records), 20)
        self.assert_no_secret(text, "the logs")
        # Nor the run log, which administrators read.
        self.assert_no_secret(json.dumps(self.integration.sync_log_ids.read(), default=str), "the run log")
