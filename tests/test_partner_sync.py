"""Customers connected through the partner tenant: confirming a match, syncing with every rule of
the addon through the partner's delegated access, one way or the other (never both), new
customers appearing by the daily job, relationships ending (warned 30 and 7 days before, ended
ones marked with the remedy), an expired sign-in, and a neutralized copy."""

from odoo import fields
from odoo.exceptions import AccessError, UserError
from odoo.modules.neutralize import neutralize_database
from odoo.tests import TransactionCase

from fake_entra.server import DEFAULT_CLIENT_ID

from .app_certificates import make_app_certificate
from .common import FakeTenantMixin
from .partner_common import (
    CONTOSO_ID,
    FABRIKAM_ID,
    PARTNER_ADMIN,
    PARTNER_ID,
    RELATIONSHIPS,
    TAILSPIN_ID,
    WINGTIP_ID,
    query_of,
    sign_in_at_microsoft,
)

ENDING = "azure_ad_contacts.mail_activity_type_partner_relationship_ending"
NEW_CUSTOMERS = "azure_ad_contacts.mail_activity_type_partner_customers"


class PartnerCase(FakeTenantMixin, TransactionCase):
    create_integration = False
    customer_name = "Contoso Ltd"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        Partner = cls.env["res.partner"]
        cls.customer.write({"website": "https://www.contoso.example"})
        cls.fabrikam = Partner.create(
            {"name": "Fabrikam", "is_company": True, "email": "info@fabrikam.example"}
        )
        cls.tailspin = Partner.create({"name": "Tailspin Toys Ltd.", "is_company": True})
        cls.wingtip = Partner.create({"name": "Wingtip", "is_company": True})

    def sign_in(self, login=PARTNER_ADMIN):
        """A partner administrator signs in (as the callback completes it)."""
        partner = self.env["azure.ad.partner.tenant"]._get_partner_tenant()
        location = sign_in_at_microsoft(partner.action_sign_in()["url"], login=login)
        partner._complete_sign_in(query_of(location))
        return partner

    def customer_of(self, partner, tenant_id):
        return partner.customer_ids.filtered(lambda c: c.tenant_id == tenant_id)

    def confirm(self, partner, tenant_id, company=None):
        customer = self.customer_of(partner, tenant_id)
        if company:
            customer.partner_id = company
        action = customer.action_confirm()
        self.assertEqual(action["params"]["type"], "success")
        return customer.integration_id

    def sync(self, integration):
        """The background run that confirming asked for (the scheduled job's)."""
        self.assertEqual(integration.sync_requested_by, self.env.user)
        return integration._cron_sync_one()


class TestPartnerSync(PartnerCase):
    def test_a_confirmed_customer_syncs_through_the_partner_with_every_rule(self):
        self.fake.set_opaque_tokens()  # as Microsoft documents them: nothing reads a token
        partner = self.sign_in()
        integration = self.confirm(partner, FABRIKAM_ID)
        self.assertRecordValues(
            integration,
            [
                {
                    "partner_id": self.fabrikam.id,
                    "tenant_id": FABRIKAM_ID,
                    "state": "connected",
                    "connection_method": "partner",
                    "partner_customer_id": self.customer_of(partner, FABRIKAM_ID).id,
                }
            ],
        )
        self.assertEqual(self.customer_of(partner, FABRIKAM_ID).match_state, "confirmed")
        self.fake.reset_stats()
        log = self.sync(integration)
        self.assertEqual((log.state, log.created, log.skipped), ("done", 7, 1), log.error)
        contacts = self.env["res.partner"].search([("parent_id", "=", self.fabrikam.id)])
        self.assertEqual(len(contacts), 7)
        self.assertTrue(all(contacts.mapped("azure_ad_synced")))
        # Only delegated tokens of the partner's user: Fabrikam never consented to the app itself.
        token_requests = [
            r for r in self.fake.stats()["requests"] if r["path"].endswith("/oauth2/v2.0/token")
        ]
        self.assertTrue(token_requests)
        self.assertFalse(self.fake.tenant(FABRIKAM_ID)["consented"])
        # Its own refresh token, refreshed and kept on the integration.
        self.assertIn('"RefreshToken"', integration.sudo().token_cache)
        self.assertNotEqual(integration.sudo().token_cache, partner.sudo().token_cache)
        # The helpdesk bridge reads the verified domains through the partner too.
        self.assertEqual(integration.email_domains_source, "graph")
        self.assertEqual(integration.email_domains, "fabrikam.example fabrikam.onmicrosoft.com")

        # Delta: Microsoft's changes only; a leaver archived; a pinned contact kept; a filter.
        christie = contacts.filtered(lambda c: c.email == "christie.cline@fabrikam.example")
        christie.sudo().azure_ad_never_overwrite = True
        integration.write(
            {
                "deleted_action": "archive",
                "archive_max_count": 0,
                "archive_max_percent": 0,
                "exclude_patterns": "nina.*",
            }
        )
        users = self.fake.tenant(FABRIKAM_ID)["users"]
        self.fake.update_user(FABRIKAM_ID, users[0]["id"], {"jobTitle": "Chief Buyer"})
        self.fake.delete_user(FABRIKAM_ID, users[1]["id"])
        preview, _skipped = integration._preview(limit=10)
        self.assertEqual(preview.archived, 2)  # the deleted user and the one filtered out now
        log = integration._sync("manual")
        self.assertEqual((log.state, log.archived), ("done", 2), log.error)
        self.assertNotEqual(christie.function, "Chief Buyer")  # pinned
        self.assertFalse(contacts.filtered(lambda c: c.email == users[1]["mail"]).active)
        self.assertEqual(integration._sync("manual").sync_mode, "delta")

    def test_the_group_filter_reads_group_members_through_the_partner(self):
        partner = self.sign_in()
        integration = self.confirm(partner, WINGTIP_ID, company=self.wingtip)
        users = self.fake.tenant(WINGTIP_ID)["users"]
        group = "0d5c3e6a-7b1f-4c2d-9e8a-1f2b3c4d5e6f"
        self.fake.set_groups(
            WINGTIP_ID, [{"id": group, "displayName": "Office", "members": [users[0]["id"]]}]
        )
        integration.group_ids = group
        log = self.sync(integration)
        self.assertEqual((log.state, log.created), ("done", 1), log.error)
        self.assertEqual(integration.partner_id.child_ids.mapped("email"), [users[0]["mail"]])

    def test_a_customer_is_connected_one_way_or_the_other(self):
        partner = self.sign_in()
        consented = self.env["azure.ad.integration"].create({"partner_id": self.fabrikam.id})
        self.fake.set_consent(FABRIKAM_ID, True)
        consented._complete_consent(FABRIKAM_ID)
        partner.action_refresh_customers()
        customer = self.customer_of(partner, FABRIKAM_ID)
        self.assertEqual((customer.match_reason, customer.partner_id), ("tenant", self.fabrikam))
        with self.assertRaisesRegex(UserError, "connected by its own consent"):
            customer.action_confirm()
        consented.action_disconnect()
        integration = self.confirm(partner, FABRIKAM_ID)
        self.assertEqual((integration, integration.connection_method), (consented, "partner"))
        with self.assertRaisesRegex(UserError, "connected through the partner tenant"):
            integration._complete_consent(FABRIKAM_ID)
        # Back to the customer's own consent after a disconnect: the partner is no longer used.
        integration.action_disconnect()
        integration._complete_consent(FABRIKAM_ID)
        self.assertRecordValues(
            integration,
            [{"connection_method": "consent", "partner_customer_id": False, "state": "connected"}],
        )
        # A tenant of another customer is refused.
        with self.assertRaisesRegex(UserError, "already connected to Fabrikam"):
            self.confirm(partner, FABRIKAM_ID, company=self.wingtip)

    def test_unmatched_customers_and_bad_choices_are_refused(self):
        partner = self.sign_in()
        wingtip = self.customer_of(partner, WINGTIP_ID)
        with self.assertRaisesRegex(UserError, "Choose the Odoo customer"):
            wingtip.action_confirm()
        wingtip.action_leave_unmatched()
        self.assertEqual(wingtip.match_state, "unmatched")
        partner.action_refresh_customers()  # a later reading does not propose it again
        self.assertRecordValues(wingtip, [{"match_state": "unmatched", "partner_id": False}])
        wingtip.action_propose_again()
        self.assertEqual(wingtip.match_state, "new")
        self.fake.set_relationship(RELATIONSHIPS[TAILSPIN_ID], status="approvalPending")
        partner.action_refresh_customers()
        tailspin = self.customer_of(partner, TAILSPIN_ID)
        with self.assertRaisesRegex(UserError, "cannot be connected through the partner"):
            tailspin.action_confirm()
        # Confirming several at once: the ones that cannot be connected are reported, the others are.
        fabrikam = self.customer_of(partner, FABRIKAM_ID)
        action = (fabrikam | tailspin | wingtip).action_confirm()
        self.assertEqual(action["params"]["type"], "warning")
        self.assertIn("Choose the Odoo customer of Wingtip Toys", action["params"]["message"])
        self.assertIn("Tailspin Toys cannot be connected", action["params"]["message"])
        self.assertEqual(fabrikam.integration_id.state, "connected")
        self.assertFalse((tailspin | wingtip).integration_id)

    def test_what_the_sign_in_and_the_listing_own_cannot_be_written_by_hand(self):
        partner = self.sign_in()
        admin = self.env.ref("base.user_admin")
        wingtip = self.customer_of(partner, WINGTIP_ID).with_user(admin)
        for record, values in (
            (partner.with_user(admin), {"state": "draft"}),
            (partner.with_user(admin), {"tenant_id": CONTOSO_ID}),
            (wingtip, {"match_state": "confirmed"}),
            (
                wingtip,
                {
                    "integration_id": self.env["azure.ad.integration"]
                    .create({"partner_id": self.wingtip.id})
                    .id
                },
            ),
        ):
            with self.assertRaisesRegex(AccessError, "set by the Azure AD sync itself"):
                record.write(values)
        with self.assertRaises(AccessError):
            self.env["azure.ad.partner.customer"].with_user(admin).create(
                {"partner_tenant_id": partner.id, "tenant_id": CONTOSO_ID, "match_state": "confirmed"}
            )
        wingtip.partner_id = self.wingtip  # the administrator's choice
        self.assertEqual(wingtip.partner_id, self.wingtip)

    def test_a_sign_in_outside_a_partner_tenant_says_so(self):
        self.fake.set_delegated_scopes(CONTOSO_ID, ["DelegatedAdminRelationship.Read.All"])
        partner = self.sign_in(login="adele.vance@contoso.example")
        self.assertEqual((partner.tenant_id, partner.customer_count), (CONTOSO_ID, 0))
        self.assertIn("no GDAP relationship of the tenant", partner.last_error)

    def test_a_tenant_the_app_is_not_authorized_in_says_so_before_and_after_confirming(self):
        self.fake.set_delegated_scopes(WINGTIP_ID, [])
        partner = self.sign_in()
        wingtip = self.customer_of(partner, WINGTIP_ID)
        self.assertIn("AADSTS90099", wingtip.access_problem)
        self.assertIn("Partner Center", wingtip.access_problem)
        integration = self.confirm(partner, WINGTIP_ID, company=self.wingtip)
        log = self.sync(integration)
        self.assertEqual(log.state, "failed")
        self.assertRecordValues(integration, [{"state": "error", "last_error_kind": "partner"}])
        self.assertIn("not authorized in the tenant of Wingtip", integration.last_error)


class TestPartnerLifecycle(PartnerCase):
    def test_new_customers_of_the_partner_appear_by_the_daily_job(self):
        partner = self.sign_in()
        self.assertFalse(partner.activity_ids)
        self.fake.add_relationship(PARTNER_ID, CONTOSO_ID, end_in_days=300)
        self.fake.set_delegated_scopes(CONTOSO_ID, ["User.Read.All", "Domain.Read.All"])
        self.env["azure.ad.partner.tenant"]._cron_refresh_partner_customers()
        contoso = self.customer_of(partner, CONTOSO_ID)
        self.assertRecordValues(
            contoso,
            [
                {
                    "name": "Contoso Ltd",
                    "match_state": "new",
                    "partner_id": self.customer.id,
                    "match_reason": "domain",
                }
            ],
        )
        activity = partner.activity_ids
        self.assertEqual(activity.activity_type_id, self.env.ref(NEW_CUSTOMERS))
        self.assertIn("Contoso Ltd", activity.note)
        # The next day's job finds nothing new and adds nothing.
        self.env["azure.ad.partner.tenant"]._cron_refresh_partner_customers()
        self.assertEqual(partner.activity_ids, activity)

    def test_an_ending_relationship_is_announced_30_and_7_days_before_once_each(self):
        partner = self.sign_in()
        integration = self.confirm(partner, TAILSPIN_ID)  # its relationship ends in 20 days
        tailspin = self.customer_of(partner, TAILSPIN_ID)
        activity = tailspin.activity_ids  # at once when confirming
        self.assertEqual(len(activity), 1)
        partner.action_refresh_customers()
        self.assertEqual(activity.activity_type_id, self.env.ref(ENDING))
        self.assertIn("ends in 20 days", activity.summary)
        self.assertEqual(activity.date_deadline, tailspin.access_end_date.date())
        self.assertEqual(tailspin.warned_days, 30)
        partner.action_refresh_customers()
        self.assertEqual(tailspin.activity_ids, activity)  # once per threshold
        self.fake.set_relationship(RELATIONSHIPS[TAILSPIN_ID], end_in_days=5)
        partner.action_refresh_customers()
        self.assertEqual(tailspin.warned_days, 7)
        self.assertEqual(len(tailspin.activity_ids), 1)
        self.assertIn("ends in 5 days", tailspin.activity_ids.summary)
        partner.action_refresh_customers()
        self.assertEqual(len(tailspin.activity_ids), 1)
        self.assertEqual(integration.state, "connected")
        # Auto-extension turned on: the warning is done, nothing more is announced.
        self.fake.set_relationship(RELATIONSHIPS[TAILSPIN_ID], autoExtendDuration="P180D")
        partner.action_refresh_customers()
        self.assertFalse(tailspin.activity_ids)
        self.assertFalse(tailspin.warned_end_date)

    def test_an_ended_relationship_marks_the_integration_with_the_remedy(self):
        partner = self.sign_in()
        integration = self.confirm(partner, WINGTIP_ID, company=self.wingtip)
        self.assertEqual(self.sync(integration).state, "done")
        self.fake.end_relationship(RELATIONSHIPS[WINGTIP_ID], "terminated")
        self.env["azure.ad.partner.tenant"]._cron_refresh_partner_customers()
        wingtip = self.customer_of(partner, WINGTIP_ID)
        self.assertEqual(wingtip.access_state, "ended")
        self.assertRecordValues(integration, [{"state": "error", "last_error_kind": "partner"}])
        self.assertIn("relationship with Wingtip Toys has ended", integration.last_error)
        self.assertIn("Partner Center", integration.last_error)
        # Once its token has expired, a sync says why it cannot read the tenant.
        self.fake.expire_tokens()
        log = integration._sync("manual")
        self.assertEqual(log.state, "failed")
        self.assertIn("no GDAP access", log.error)
        # A new relationship: the daily job sees it and the scheduled job tries again at once.
        self.fake.add_relationship(PARTNER_ID, WINGTIP_ID)
        self.env["azure.ad.partner.tenant"]._cron_refresh_partner_customers()
        self.assertLessEqual(integration.retry_date, fields.Datetime.now())
        self.env["azure.ad.integration"]._cron_sync_due()
        self.assertEqual(integration.sync_log_ids[0].state, "done", integration.sync_log_ids[0].error)
        self.assertEqual(integration.state, "connected")

    def test_an_expired_sign_in_asks_for_a_new_one(self):
        partner = self.sign_in()
        integration = self.confirm(partner, FABRIKAM_ID)
        self.fake.revoke_sign_in_sessions(PARTNER_ADMIN)
        self.fake.expire_tokens()
        log = self.sync(integration)
        self.assertEqual(log.state, "failed")
        self.assertIn("sign in again", integration.last_error)
        self.assertEqual(integration.last_error_kind, "partner")
        with self.assertRaisesRegex(UserError, "Sign in again as a partner administrator"):
            partner.action_refresh_customers()
        # Signing in again heals the customer too: tried again at once, on the new sign-in.
        self.sign_in()
        self.assertLessEqual(integration.retry_date, fields.Datetime.now())
        self.env["azure.ad.integration"]._cron_sync_due()
        self.assertEqual(integration.sync_log_ids[0].state, "done", integration.sync_log_ids[0].error)

    def test_the_partner_connection_signs_in_with_the_apps_certificate(self):
        certificate = make_app_certificate()
        self.fake.add_app(DEFAULT_CLIENT_ID, None, certificates=[certificate.certificate])
        self.env["res.config.settings"].create({"azure_ad_new_certificate": certificate.both}).execute()
        partner = self.sign_in()
        integration = self.confirm(partner, FABRIKAM_ID)
        log = self.sync(integration)
        self.assertEqual((log.state, log.created), ("done", 7), log.error)
        posted = [r for r in self.fake.stats()["requests"] if r["path"].endswith("/oauth2/v2.0/token")]
        self.assertTrue(posted and all(r["status"] == 200 for r in posted))

    def test_a_neutralized_copy_forgets_the_partner_sign_in(self):
        partner = self.sign_in()
        integration = self.confirm(partner, FABRIKAM_ID)
        partner.sudo().write({"sign_in_flow": '{"code_verifier": "x"}', "sign_in_nonce": "n"})
        self.env.flush_all()
        neutralize_database(self.env.cr)
        self.env.invalidate_all()
        self.assertRecordValues(
            partner.sudo(),
            [
                {
                    "token_cache": False,
                    "home_account_id": False,
                    "sign_in_flow": False,
                    "sign_in_nonce": False,
                    "state": "error",
                }
            ],
        )
        self.assertRecordValues(integration.sudo(), [{"token_cache": False, "state": "disconnected"}])
        with self.assertRaises(UserError):
            partner.action_refresh_customers()
        self.assertEqual(integration.connection_method, "partner")
