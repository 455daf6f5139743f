"""Shared test setup: one fake Entra ID / Graph server (real HTTPS on 127.0.0.1) for the whole
session, the addon's settings pointed at it, and a customer company with its integration."""

import atexit
import copy
import json
import os
import tempfile
from pathlib import Path

from odoo.tests import TransactionCase, new_test_user

from odoo.addons.azure_ad_contacts.models import azure_ad_integration

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEntra
from fake_entra.state import load_tenant_files

TENANTS = Path(__file__).resolve().parent.parent / "fake_entra" / "tenants"
CONTOSO = json.loads((TENANTS / "contoso.json").read_text())
CONTOSO_ID = CONTOSO["tenant_id"]

_fake = None


def fake_entra():
    """The session's fake server, started on first use."""
    global _fake
    if _fake is None:
        _fake = FakeEntra(cert_dir=tempfile.mkdtemp(prefix="fake-entra-certs-"), tenants=load_tenant_files())
        _fake.start()
        # Odoo, MSAL and requests trust the fake's CA through the standard variable.
        os.environ["REQUESTS_CA_BUNDLE"] = _fake.certs.bundle_file
        atexit.register(_fake.stop)
    return _fake


def user(object_id, email, given="", surname="", **extra):
    """A Graph user object as /v1.0/users returns it."""
    return {
        "id": object_id,
        "givenName": given or None,
        "surname": surname or None,
        "displayName": f"{given} {surname}".strip() or None,
        "mail": email,
        "userType": "Member",
        "accountEnabled": True,
        **extra,
    }


def execute_kw_payload(db, uid, password, model, method, args, kwargs=None):
    """The JSON-RPC body of one external API call (/jsonrpc, object.execute_kw)."""
    return {
        "jsonrpc": "2.0",
        "method": "call",
        "id": 1,
        "params": {
            "service": "object",
            "method": "execute_kw",
            "args": [db, uid, password, model, method, args, kwargs or {}],
        },
    }


def configure_addon(env, fake):
    params = env["ir.config_parameter"].sudo()
    params.set_param("azure_ad_contacts.client_id", DEFAULT_CLIENT_ID)
    params.set_param("azure_ad_contacts.client_secret", DEFAULT_CLIENT_SECRET)
    params.set_param("azure_ad_contacts.login_endpoint", fake.base_url)
    params.set_param("azure_ad_contacts.graph_endpoint", fake.base_url)


class AddonTest:
    """What Odoo's test metaclass gives classes under odoo.addons.*: this suite lives in the
    project's top-level tests/ folder, so it says so itself."""

    test_tags = {"standard", "at_install"}
    test_module = "azure_ad_contacts"
    test_sequence = 0

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.test_class = cls.__name__


class FakeTenantMixin(AddonTest):
    """A customer whose integration is not connected yet, the settings pointed at the
    session's fake Entra ID, and a fresh fake for every test. Mix into TransactionCase or
    HttpCase."""

    customer_name = "Contoso Ltd"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fake = fake_entra()
        configure_addon(cls.env, cls.fake)
        cls.customer = cls.env["res.partner"].create({"name": cls.customer_name, "is_company": True})
        cls.integration = cls.env["azure.ad.integration"].create({"partner_id": cls.customer.id})

    def setUp(self):
        super().setUp()
        self.fake.reset()
        # MSAL remembers failed token answers for 60 s in its HTTP cache: start each test clean.
        azure_ad_integration._MSAL_HTTP_CACHE.clear()


class AzureAdCase(FakeTenantMixin, TransactionCase):
    """Contoso against a fresh fake, with helpers to drive the sync."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain_user = new_test_user(cls.env, login="plain_user", groups="base.group_user")

    def set_users(self, users, tenant_id=CONTOSO_ID):
        self.fake.set_users(tenant_id, copy.deepcopy(users))

    def connect(self, integration=None, tenant_id=CONTOSO_ID):
        """Consent as a customer admin would, then complete it as the callback does."""
        integration = integration or self.integration
        self.fake.set_consent(tenant_id, True)
        return integration._complete_consent(tenant_id)

    def contacts(self, customer=None):
        return (
            self.env["res.partner"]
            .with_context(active_test=False)
            .search([("parent_id", "=", (customer or self.customer).id)], order="id")
        )

    def contact(self, email):
        return self.contacts().filtered(lambda p: (p.email or "").strip().lower() == email.lower())
