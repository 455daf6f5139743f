"""What the integration form shows read-only (its state, tenant, errors, verified domains, …) is
written by the code that owns it — the consent's proof, the sync, Disconnect — and by nobody
else: an administrator's write or create over XML-RPC is refused, while every button and
dialog of the form keeps working for that administrator."""

import json
import xmlrpc.client
from urllib.parse import parse_qs, urlsplit

from odoo import fields, models
from odoo.tests import HttpCase, tagged

from .common import CONTOSO_ID, FABRIKAM_ID, FakeTenantMixin, user

OTHER_TENANT = "00000000-0000-4000-8000-00000000beef"
RPC_FAULT_CODE_ACCESS_ERROR = 4  # Odoo's XML-RPC fault of an AccessError (base on 18.0, rpc on 19.0)


def forged_value(integration, name):
    """A value for the field `name` that differs from the integration's own."""
    field = integration._fields[name]
    current = integration.sudo()[name]
    if field.type == "selection":
        return next(key for key, _label in field._description_selection(integration.env) if key != current)
    if field.type == "boolean":
        return not current
    if field.type == "integer":
        return (current or 0) + 999
    if field.type == "datetime":
        return "2001-02-03 04:05:06"
    if field.type == "many2one":
        if field.comodel_name == "res.users":
            return integration.env.ref("base.user_admin").id
        return integration.env[field.comodel_name].sudo().search([("id", "!=", current.id)], limit=1).id
    if field.type == "json":
        return {"forged": "value"}
    return f"forged {OTHER_TENANT}"  # char and text


@tagged("post_install", "-at_install")
class TestIntegrationOwnedFields(FakeTenantMixin, HttpCase):
    customer_name = "Owned Fields Customer"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.admin = cls.env.ref("base.user_admin")
        cls.Integration = cls.env["azure.ad.integration"]

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())
        self.fake.set_consent(CONTOSO_ID, True)
        self.integration._complete_consent(CONTOSO_ID)

    def as_admin(self, model, method, *args, **kwargs):
        """One call of Odoo's external XML-RPC API as the administrator (Settings rights)."""
        return self.xmlrpc_object.execute_kw(
            self.env.cr.dbname, self.admin.id, "admin", model, method, list(args), kwargs
        )

    def assert_refused(self, model, method, *args):
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            self.as_admin(model, method, *args)
        # Odoo's XML-RPC fault code of an AccessError.
        self.assertEqual(
            caught.exception.faultCode, RPC_FAULT_CODE_ACCESS_ERROR, caught.exception.faultString
        )
        self.assertIn("set by the Azure AD sync", caught.exception.faultString, (method, args))

    def owned(self):
        return self.Integration._azure_ad_owned_fields()

    def test_every_field_shown_read_only_is_owned_by_the_code(self):
        """Each stored field the addons declare read-only, and the secrets, are in the list
        that writes check (a field added later without it fails here)."""
        declared = {
            name
            for name, field in self.Integration._fields.items()
            if field.store
            and field.readonly
            and not field.compute
            and not field.related
            and name not in models.MAGIC_COLUMNS
            and any(module.startswith("azure_ad_contacts") for module in field._modules)
        }
        self.assertTrue({"state", "tenant_id", "last_sync_date", "email_domains"} <= declared)
        self.assertEqual(declared - set(self.owned()), set())
        self.assertTrue({"partner_id", "token_cache", "consent_nonce"} <= set(self.owned()))

    def test_an_administrator_writes_none_of_them_over_rpc(self):
        values_before = self.integration.sudo().read(self.owned())[0]
        for name in self.owned():
            with self.subTest(field=name):
                self.assert_refused(
                    "azure.ad.integration",
                    "write",
                    self.integration.ids,
                    {name: forged_value(self.integration, name)},
                )
        # Nor hidden among fields an administrator may write.
        self.assert_refused(
            "azure.ad.integration",
            "write",
            self.integration.ids,
            {"include_guests": True, "state": "connected", "tenant_id": OTHER_TENANT},
        )
        self.env.invalidate_all()
        self.assertEqual(self.integration.sudo().read(self.owned())[0], values_before)
        self.assertFalse(self.integration.include_guests)

    def test_an_administrator_creates_no_connected_integration_over_rpc(self):
        other = self.env["res.partner"].create({"name": "Forged Customer", "is_company": True})
        for forged in (
            {"state": "connected", "tenant_id": FABRIKAM_ID},
            {"tenant_id": FABRIKAM_ID},
            {"email_domains": "contoso.example", "email_domains_source": "graph"},
            {"additional_tenant": True},
            {"last_sync_date": "2001-02-03 04:05:06"},
        ):
            with self.subTest(values=forged):
                self.assert_refused("azure.ad.integration", "create", {"partner_id": other.id, **forged})
        self.assertFalse(self.Integration.search([("partner_id", "=", other.id)]))
        # The customer form's way: a new integration, never connected.
        created = self.as_admin("azure.ad.integration", "create", {"partner_id": other.id, "auto_sync": True})
        self.assertRecordValues(
            self.Integration.browse(created), [{"state": "draft", "tenant_id": False, "auto_sync": True}]
        )

    def test_the_forms_buttons_and_dialogs_work_for_an_administrator(self):
        model = "azure.ad.integration"
        ids = self.integration.ids
        # The options an administrator edits.
        self.as_admin(model, "write", ids, {"include_guests": True, "excluded": False, "log_changes": True})
        self.assertEqual(self.as_admin(model, "sync_contacts", ids)[0]["integration_id"], self.integration.id)
        self.assertEqual(self.as_admin(model, "action_sync_now", ids)["params"]["type"], "success")
        self.assertEqual(self.as_admin(model, "action_full_sync", ids)["params"]["type"], "success")
        # Preview, then Apply.
        preview = self.as_admin(model, "action_preview", ids)
        self.as_admin(preview["res_model"], "action_apply", [preview["res_id"]])
        # Choose groups: search by name, add one.
        picker = self.as_admin(model, "action_choose_groups", ids)
        self.as_admin(picker["res_model"], "write", [picker["res_id"]], {"search_text": "customer"})
        self.as_admin(picker["res_model"], "action_search", [picker["res_id"]])
        lines = self.as_admin("azure.ad.group.picker.line", "search", [("picker_id", "=", picker["res_id"])])
        self.as_admin("azure.ad.group.picker.line", "write", lines, {"selected": True})
        self.as_admin(picker["res_model"], "action_add", [picker["res_id"]])
        self.env.invalidate_all()
        self.assertEqual(self.integration.group_summary, "Customer-facing")
        self.as_admin(model, "write", ids, {"group_ids": False})
        # Leavers beyond the threshold: the run stops, "Archive them" confirms.
        self.as_admin(
            model,
            "write",
            ids,
            {"deleted_action": "archive", "archive_max_count": 1, "archive_max_percent": 0},
        )
        self.fake.set_users(CONTOSO_ID, [user("only-1", "only.one@contoso.example", "Only", "One")])
        self.assertEqual(self.as_admin(model, "sync_contacts", ids)[0]["archived"], 0)
        self.as_admin(model, "action_confirm_archive", ids)
        self.env.invalidate_all()
        self.assertEqual(self.integration.last_log_id.state, "done")
        self.assertGreater(self.integration.last_log_id.archived, 1)
        self.assertEqual(self.integration.sudo().archive_allowance, 0)
        # Another tenant for the customer.
        added = self.as_admin(model, "action_add_tenant", ids)
        other = self.Integration.search(
            [("partner_id", "=", self.customer.id), ("additional_tenant", "=", True)]
        )
        self.assertEqual(added["context"]["default_integration_id"], other.id)
        # Disconnect (the dialog), then Connect again: the signed consent and its callback.
        wizard = self.as_admin(
            "azure.ad.disconnect.wizard", "create", {"integration_id": self.integration.id}
        )
        self.as_admin("azure.ad.disconnect.wizard", "action_disconnect", [wizard])
        self.env.invalidate_all()
        self.assertEqual(self.integration.state, "disconnected")
        self.authenticate("admin", "admin")
        action = self.url_open(
            "/web/dataset/call_kw/azure.ad.integration/action_connect",
            data=json.dumps(
                {"params": {"model": model, "method": "action_connect", "args": [ids], "kwargs": {}}}
            ),
            headers={"Content-Type": "application/json"},
        ).json()["result"]
        state = parse_qs(urlsplit(action["url"]).query)["state"][0]
        callback = self.url_open(
            f"/azure_ad_contacts/oauth/callback?admin_consent=True&tenant={CONTOSO_ID}&state={state}",
            allow_redirects=False,
        )
        self.assertIn(callback.status_code, (302, 303), callback.text[:300])
        self.env.invalidate_all()
        self.assertRecordValues(self.integration, [{"state": "connected", "tenant_id": CONTOSO_ID}])
        self.assertLessEqual(self.integration.last_sync_date, fields.Datetime.now())
