"""Connecting through the partner tenant in a real browser: an Odoo tour in headless Chromium from
Settings to Microsoft's sign-in page (the fake's) and back, then confirming a proposed customer."""

import json
from unittest.mock import patch

from odoo.tests import HttpCase, common, tagged

from .common import FakeTenantMixin, build_web_client_assets
from .partner_common import FABRIKAM_ID, PARTNER_ADMIN, PARTNER_ID
from .test_ui import CustomerAdminBrowser

# Runs in every page the browser opens; acts only on the fake Microsoft sign-in pages, where it
# does what the partner administrator does: type the account, then Accept the permissions.
PARTNER_ADMIN_SIGNS_IN = """
if (location.origin === %(origin)s && location.pathname.endsWith("/oauth2/v2.0/authorize")) {
    window.addEventListener("DOMContentLoaded", () => {
        const login = document.getElementById("login");
        if (login) {
            console.info("Sign-in page: signing in as", %(login)s);
            login.value = %(login)s;
            document.getElementById("next").click();
        } else if (document.getElementById("accept")) {
            console.info("Permissions page: accepting for the organization");
            document.getElementById("accept").click();
        }
    });
}
"""


class PartnerAdminBrowser(CustomerAdminBrowser):
    """Odoo's test Chromium as the partner administrator uses it on Microsoft's side: it trusts
    the fake Microsoft, lets its requests through (see CustomerAdminBrowser) and signs in there."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        script = PARTNER_ADMIN_SIGNS_IN % {
            "origin": json.dumps(self.microsoft_origin),
            "login": json.dumps(PARTNER_ADMIN),
        }
        self._websocket_request("Page.addScriptToEvaluateOnNewDocument", params={"source": script})


@tagged("post_install", "-at_install")
class TestPartnerTour(FakeTenantMixin, HttpCase):
    create_integration = False

    @classmethod
    def setUpClass(cls):
        build_web_client_assets()
        super().setUpClass()
        cls.startClassPatcher(patch.object(PartnerAdminBrowser, "microsoft_origin", cls.fake.base_url))
        cls.startClassPatcher(patch.object(common, "ChromeBrowser", PartnerAdminBrowser))
        cls.fabrikam = cls.env["res.partner"].create(
            {"name": "Fabrikam Inc", "is_company": True, "website": "https://www.fabrikam.example"}
        )
        cls.env["res.partner"].create({"name": "Tailspin Toys", "is_company": True})

    def setUp(self):
        super().setUp()
        self.env["ir.config_parameter"].sudo().set_param("web.base.url", self.base_url())

    def test_sign_in_at_microsoft_and_confirm_a_proposed_customer(self):
        self.start_tour("/odoo/settings#azure_ad_contacts", "azure_ad_contacts_partner", login="admin")
        self.env.invalidate_all()
        partner = self.env["azure.ad.partner.tenant"].search([])
        self.assertEqual((partner.state, partner.tenant_id), ("connected", PARTNER_ID))
        integration = self.env["azure.ad.integration"].search([("tenant_id", "=", FABRIKAM_ID)])
        self.assertRecordValues(
            integration,
            [
                {
                    "partner_id": self.fabrikam.id,
                    "connection_method": "partner",
                    "state": "connected",
                }
            ],
        )
        # The browser itself went through Microsoft's sign-in and permissions pages.
        pages = [
            (r["method"], r["status"])
            for r in self.fake.stats()["requests"]
            if r["path"].startswith("/organizations/oauth2/v2.0/authorize")
        ]
        self.assertEqual(pages, [("GET", 200), ("POST", 200), ("POST", 302)])
        # The first sync runs in the background (the scheduled job's): it reads Fabrikam.
        log = integration._cron_sync_one()
        self.assertEqual((log.state, log.created), ("done", 7), log.error)
