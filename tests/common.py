"""Shared test setup: one fake Entra ID / Graph server (real HTTPS on 127.0.0.1) for the whole
session, the addon's settings pointed at it, and a customer company with its integration."""

import atexit
import contextlib
import copy
import json
import os
import tempfile
from pathlib import Path

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import TransactionCase, get_db_name, new_test_user

from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin
from odoo.addons.azure_ad_contacts.utils import reconcile

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, FakeEntra
from fake_entra.state import load_tenant_files

TENANTS = Path(__file__).resolve().parent.parent / "fake_entra" / "tenants"
CONTOSO = json.loads((TENANTS / "contoso.json").read_text())
CONTOSO_ID = CONTOSO["tenant_id"]
FABRIKAM_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"  # the fake's second demo tenant

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


def outside_requests(case):
    """Lets a client outside the test (a script, `requests`) reach an HttpCase's server: Odoo
    19.0 serves only requests that carry the test's cookie unless told so; 18.0 serves all."""
    allow = getattr(case, "allow_requests", None)
    return allow(all_requests=True) if allow else contextlib.nullcontext()


def user(object_id, email, given="", surname="", **extra):
    """A Graph user object as the fake's /v1.0/users returns it."""
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


def graph_user(object_id, mail="", **fields):
    """A Graph user as the planner receives it from a $select (mail defaults to
    <id>@contoso.com), for the plain-Python tests of utils/reconcile.py."""
    return {
        "id": object_id,
        "mail": mail if mail != "" else f"{object_id}@contoso.com",
        "givenName": None,
        "surname": None,
        "displayName": object_id.upper(),
        "jobTitle": None,
        "mobilePhone": None,
        "proxyAddresses": [],
        "userPrincipalName": f"{object_id}@contoso.onmicrosoft.com",
        "accountEnabled": True,
        "userType": "Member",
        **fields,
    }


def build_web_client_assets():
    """Builds the web client's asset bundles once and keeps them, as a running Odoo does:
    otherwise every tour builds them again inside its rolled-back transaction (~9 s each)."""
    with Registry(get_db_name()).cursor() as cr:
        qweb = api.Environment(cr, SUPERUSER_ID, {})["ir.qweb"]
        for name in ("web.assets_web", "web.assets_tests", "web.assets_web_print"):
            bundle = qweb._get_asset_bundle(name)
            bundle.js()
            bundle.css()


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


class CommittedTransactions:
    """For tests of what other workers or servers see: new transactions (not the test's) on
    committed data, each committed when its block ends without error."""

    def committed(self, uid=SUPERUSER_ID):
        test = self

        class Transaction:
            def __enter__(self):
                self.cr = test.registry.cursor()
                return api.Environment(self.cr, uid, {})

            def __exit__(self, exc_type, *_exc):
                try:
                    if exc_type is None:
                        self.cr.commit()
                    else:
                        self.cr.rollback()
                finally:
                    self.cr.close()

        return Transaction()


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
    HttpCase (before it: class TestX(FakeTenantMixin, HttpCase))."""

    customer_name = "Contoso Ltd"
    # False: the customer gets its integration on first use, as on the customer form.
    create_integration = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fake = fake_entra()
        configure_addon(cls.env, cls.fake)
        cls.customer = cls.env["res.partner"].create({"name": cls.customer_name, "is_company": True})
        if cls.create_integration:
            cls.integration = cls.env["azure.ad.integration"].create({"partner_id": cls.customer.id})

    def setUp(self):
        super().setUp()
        self.fake.reset()
        # MSAL remembers failed token answers for 60 s in its HTTP cache: start each test clean.
        azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()
        self.check_plans_against_full_plans()

    def check_plans_against_full_plans(self):
        """For the whole test, every plan a sync makes without planning every stored user
        (changes only, or a first sync that created every contact as it listed them) is
        compared with the plan of all of them: what it writes, its counts, and why each
        user is skipped. A difference fails the test, even where the sync's caller swallows
        errors (the scheduled job)."""
        integration_class = type(self.env["azure.ad.integration"])
        plan_stored = integration_class._plan_stored
        differences = []

        def checked(integration, tenant_round, rules, early):
            plan, run = plan_stored(integration, tenant_round, rules, early)
            if run.planned_ids is None and not plan.precreated:
                return plan, run  # every stored user was planned as they are now
            difference = full_plan_difference(integration, tenant_round, rules, plan, run)
            if difference:
                differences.append(difference)
                raise AssertionError(difference)
            return plan, run

        self.patch(integration_class, "_plan_stored", checked)
        self.addCleanup(lambda: self.assertFalse(differences, "a partial plan is not the full plan"))


def full_plan_difference(integration, tenant_round, rules, plan, run):
    """How `plan` (of some of the stored users) differs from the plan of all of them, or ''."""
    directory = integration.env["azure.ad.directory.user"]
    contacts = reconcile.mark_new(integration._existing_contacts(), run.early_ids)
    skips = {}
    full = reconcile.build_plan(
        directory._pages(integration.id),
        contacts,
        rules=rules,
        on_skip=lambda object_id, _label, reason: skips.__setitem__(object_id, reason),
    )
    full.skipped.update(tenant_round.skipped)  # users a listing gave without a usable id, or twice
    if run.early_ids:  # created while listing: the plan of all users finds them unchanged
        full.count_precreated(run.early_ids)
    integration.env.cr.execute(
        "SELECT object_id, skip_reason FROM azure_ad_directory_user WHERE integration_id = %s",
        [integration.id],
    )
    planned = run.planned_ids
    recorded = {
        object_id: run.skips.get(object_id) if planned is None or object_id in planned else reason
        for object_id, reason in integration.env.cr.fetchall()
    }
    found = [
        (what, mine, theirs)
        for what, mine, theirs in (
            ("writes", plan.digest(), full.digest()),
            ("counts", plan.counts(), full.counts()),
            ("skips", {k: v for k, v in recorded.items() if v}, {k: v for k, v in skips.items() if k}),
            ("linked", plan.linked, full.linked),
            ("other edits", plan.other_edit_counts(), full.other_edit_counts()),
        )
        if mine != theirs
    ]
    return "; ".join(f"{what}: {mine} != {theirs}" for what, mine, theirs in found)


class SyncHelpers:
    """Helpers to drive the sync of a FakeTenantMixin test."""

    def set_users(self, users, tenant_id=CONTOSO_ID):
        self.fake.set_users(tenant_id, copy.deepcopy(users))

    def adapt_graph_clients(self, adapt):
        """For this test, every Graph client the sync builds passes through `adapt(client)`
        (the network edge stays real: only the client's settings or pages are changed)."""
        integration_class = type(self.env["azure.ad.integration"])
        production_client = integration_class._get_graph_client

        def graph_client(integration, *args, **kwargs):
            client = production_client(integration, *args, **kwargs)
            adapt(client)
            return client

        self.patch(integration_class, "_get_graph_client", graph_client)

    def connect(self, integration=None, tenant_id=CONTOSO_ID):
        """Consent as a customer admin would, then complete it as the callback does; the
        first sync's result as the public API states it."""
        integration = integration or self.integration
        self.fake.set_consent(tenant_id, True)
        return integration._complete_consent(tenant_id)._result()

    def contacts(self, customer=None):
        return (
            self.env["res.partner"]
            .with_context(active_test=False)
            .search([("parent_id", "=", (customer or self.customer).id)], order="id")
        )

    def contact(self, email):
        return self.contacts().filtered(lambda p: (p.email or "").strip().lower() == email.lower())


class AzureAdCase(SyncHelpers, FakeTenantMixin, TransactionCase):
    """Contoso against a fresh fake, with helpers to drive the sync."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.plain_user = new_test_user(cls.env, login="plain_user", groups="base.group_user")
