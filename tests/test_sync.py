"""The basic behaviour, end to end: real ORM and PostgreSQL, real MSAL and requests over
HTTPS to the fake Entra ID / Graph server."""

from urllib.parse import parse_qs, urlsplit

from psycopg2 import IntegrityError

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user
from odoo.tools.misc import verify_hash_signed

from odoo.addons.azure_ad_contacts.models.azure_ad_consent_mixin import CONSENT_STATE_SCOPE

from fake_entra.server import DEFAULT_CLIENT_ID

from .common import CONTOSO, CONTOSO_ID, FABRIKAM_ID, AzureAdCase, user


class TestSync(AzureAdCase):
    def test_connect_imports_every_user_that_passes_the_filters(self):
        result = self.connect()
        self.assertEqual(self.integration.state, "connected")
        self.assertEqual(self.integration.tenant_id, CONTOSO_ID)
        # Contoso: 21 users; 2 guests, 2 disabled, 1 without any email, 1 duplicate email.
        self.assertEqual(
            result,
            {
                "integration_id": self.integration.id,
                "created": 15,
                "updated": 0,
                "unchanged": 0,
                "skipped": 6,
                "archived": 0,
            },
        )
        log = self.integration.sync_log_ids
        self.assertEqual(len(log), 1)
        self.assertEqual((log.trigger, log.state, log.created, log.skipped), ("connect", "done", 15, 6))
        self.assertEqual(log.skip_reasons, {"guest": 2, "disabled": 2, "no_email": 1, "duplicate_email": 1})
        self.assertEqual(len(self.contacts()), 15)

    def test_created_contacts_are_persons_under_the_customer(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        self.assertRecordValues(
            adele,
            [
                {
                    "type": "contact",
                    "is_company": False,
                    "parent_id": self.customer.id,
                    "email": "adele.vance@contoso.example",
                    "name": "Adele Vance",
                    "azure_ad_synced": True,
                    "azure_ad_integration_id": self.integration.id,
                    "azure_ad_object_id": "f27609e2-827e-404b-bf93-1d0b96d8975b",
                }
            ],
        )

    def test_match_by_email_ignoring_case_and_blanks_and_overwrite(self):
        existing = self.env["res.partner"].create(
            {
                "name": "A. Vance",
                "parent_id": self.customer.id,
                "email": "  ADELE.Vance@contoso.EXAMPLE ",
                "function": "Old title",
                "mobile": "+1 000",
                "phone": "+49 30 1234",
                "comment": "<p>VIP</p>",
            }
        )
        self.set_users(
            [
                user(
                    "id-adele",
                    "adele.vance@contoso.example",
                    "Adele",
                    "Vance",
                    jobTitle="CFO",
                    mobilePhone=None,
                )
            ]
        )
        result = self.connect()
        self.assertEqual((result["created"], result["updated"]), (0, 1))
        self.assertRecordValues(
            existing,
            [
                {
                    "name": "Adele Vance",
                    "function": "CFO",
                    "mobile": False,  # Entra mirrors: empty in Entra empties the field
                    "phone": "+49 30 1234",  # not a synced field
                    "comment": "<p>VIP</p>",
                    "azure_ad_synced": True,
                    "azure_ad_object_id": "id-adele",
                }
            ],
        )
        self.assertEqual(existing.email, "  ADELE.Vance@contoso.EXAMPLE ", "the email is not rewritten")

    def test_archived_contacts_match_too(self):
        archived = self.env["res.partner"].create(
            {"name": "Old", "parent_id": self.customer.id, "email": "a@contoso.example", "active": False}
        )
        self.set_users([user("id-a", "a@contoso.example", "Ann", "A")])
        result = self.connect()
        self.assertEqual((result["created"], result["updated"]), (0, 1))
        self.assertEqual(archived.name, "Ann A")

    def test_only_this_customers_contacts_match(self):
        other_customer = self.env["res.partner"].create({"name": "Other", "is_company": True})
        elsewhere = self.env["res.partner"].create(
            {"name": "Elsewhere", "parent_id": other_customer.id, "email": "a@contoso.example"}
        )
        loose = self.env["res.partner"].create({"name": "Loose", "email": "a@contoso.example"})
        self.set_users([user("id-a", "a@contoso.example", "Ann", "A")])
        result = self.connect()
        self.assertEqual(result["created"], 1)
        self.assertEqual((elsewhere.name, loose.name), ("Elsewhere", "Loose"))
        self.assertFalse(elsewhere.azure_ad_synced or loose.azure_ad_synced)

    def test_two_customers_two_tenants_same_person_gives_two_contacts(self):
        fabrikam = self.env["res.partner"].create({"name": "Fabrikam", "is_company": True})
        fabrikam_integration = self.env["azure.ad.integration"].create({"partner_id": fabrikam.id})
        person = user("id-same", "pat@shared.example", "Pat", "Shared")
        self.set_users([person])
        self.set_users([{**person, "id": "id-other"}], tenant_id=FABRIKAM_ID)
        self.connect()
        self.connect(fabrikam_integration, FABRIKAM_ID)
        self.assertEqual(len(self.contacts()), 1)
        self.assertEqual(len(self.contacts(fabrikam)), 1)
        self.assertEqual(self.contacts(fabrikam).azure_ad_integration_id, fabrikam_integration)
        with self.assertRaises(IntegrityError), self.cr.savepoint():
            self.env["azure.ad.integration"].create({"partner_id": fabrikam.id})

    def test_contacts_not_in_entra_are_untouched(self):
        local = self.env["res.partner"].create(
            {"name": "Local Only", "parent_id": self.customer.id, "email": "local@contoso.example"}
        )
        self.connect()
        self.assertEqual(local.name, "Local Only")
        self.assertFalse(local.azure_ad_synced)

    def test_odoo_edits_are_overwritten_by_sync_now_without_signing_in(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        adele.write({"name": "Edited", "function": "Edited", "mobile": "Edited", "phone": "kept"})
        token_requests = self.fake.stats()["counts"].get("token", 0)
        action = self.integration.action_sync_now()
        self.assertEqual(action["tag"], "display_notification")
        self.assertEqual(action["params"]["type"], "success")
        self.assertIn("1 updated", action["params"]["message"])
        self.assertEqual(action["params"]["next"], {"type": "ir.actions.client", "tag": "soft_reload"})
        self.assertEqual(adele.name, "Adele Vance")
        self.assertEqual(adele.function, CONTOSO["users"][0]["jobTitle"])
        self.assertEqual(adele.phone, "kept")
        # The app token stored at connect time was reused: no new sign-in, not even a new token.
        self.assertEqual(self.fake.stats()["counts"].get("token", 0), token_requests)

    def test_email_changed_in_odoo_creates_a_new_contact(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        adele.email = "adele.private@example.com"
        result = self.integration.sync_contacts()[0]
        self.assertEqual(result["created"], 1)
        new_adele = self.contact("adele.vance@contoso.example")
        self.assertNotEqual(new_adele, adele)
        self.assertEqual(new_adele.azure_ad_object_id, "f27609e2-827e-404b-bf93-1d0b96d8975b")
        self.assertRecordValues(
            adele,
            [{"name": "Adele Vance", "azure_ad_synced": False, "azure_ad_object_id": False}],
        )
        self.assertEqual(self.integration.sync_contacts()[0]["created"], 0)

    def test_disconnect_forgets_the_token_keeps_contacts_and_needs_consent_again(self):
        self.connect()
        self.assertTrue(self.integration.token_cache)
        count = len(self.contacts())
        self.integration.action_disconnect()
        self.assertEqual(self.integration.state, "disconnected")
        self.assertFalse(self.integration.token_cache)
        self.assertEqual(len(self.contacts()), count)
        with self.assertRaisesRegex(UserError, "not connected"):
            self.integration.action_sync_now()
        action = self.integration.action_connect()
        self.assertTrue(action["url"].startswith(f"{self.fake.base_url}/organizations/v2.0/adminconsent?"))

    def test_excluded_customer_never_syncs(self):
        self.connect()
        self.integration.excluded = True
        for call in (self.integration.action_sync_now, self.integration.sync_contacts):
            with self.assertRaisesRegex(UserError, "excluded"):
                call()
        with self.assertRaisesRegex(UserError, "excluded"):
            self.integration.action_connect()

    def test_only_administrators(self):
        self.connect()
        integration = self.integration.with_user(self.plain_user)
        for method in ("action_sync_now", "sync_contacts", "action_disconnect", "action_connect"):
            with self.assertRaises(AccessError), self.cr.savepoint():
                getattr(integration, method)()
        with self.assertRaises(AccessError):
            integration.read(["state"])
        adele = self.contact("adele.vance@contoso.example").with_user(self.plain_user)
        self.assertTrue(adele.azure_ad_synced, "plain users see the mark")
        with self.assertRaises(AccessError):
            adele.read(["azure_ad_object_id"])

    def test_connect_hands_out_microsofts_consent_url_with_a_fresh_signed_state(self):
        action = self.integration.action_connect()
        url = urlsplit(action["url"])
        self.assertEqual(
            f"{url.scheme}://{url.netloc}{url.path}", f"{self.fake.base_url}/organizations/v2.0/adminconsent"
        )
        query = parse_qs(url.query)
        self.assertEqual(query["client_id"], [DEFAULT_CLIENT_ID])
        self.assertEqual(query["scope"], [f"{self.fake.base_url}/.default"])
        self.assertTrue(query["redirect_uri"][0].endswith("/azure_ad_contacts/oauth/callback"))
        state = verify_hash_signed(self.env(su=True), CONSENT_STATE_SCOPE, query["state"][0])
        self.assertEqual(
            state,
            {
                "integration": self.integration.id,
                "user": self.env.uid,
                "db": self.env.cr.dbname,
                "nonce": self.integration.consent_nonce,
            },
        )
        # Each click replaces the one before: only the newest state can complete.
        self.integration.action_connect()
        self.assertNotEqual(self.integration.consent_nonce, state["nonce"])

    def test_only_the_sync_sets_the_azure_ad_mark_and_link(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example")
        local = self.env["res.partner"].create(
            {"name": "Local", "parent_id": self.customer.id, "email": "local@contoso.example"}
        )
        admin = self.env.ref("base.user_admin")
        # An internal user who may edit contacts (Contact Creation), and an administrator.
        editor = new_test_user(
            self.env, login="contact_editor", groups="base.group_user,base.group_partner_manager"
        )
        for who in (editor, admin):
            as_user = self.env["res.partner"].with_user(who)
            for values in (
                {"azure_ad_synced": True},
                {"azure_ad_synced": False},
                {"azure_ad_object_id": "forged"},
                {"azure_ad_integration_id": self.integration.id},
            ):
                if set(values) != {"azure_ad_synced"} and who == editor:
                    continue  # the link fields are not even readable for them
                with self.subTest(user=who.login, values=values), self.assertRaises(AccessError):
                    as_user.browse((local | adele).ids).write(values)
            with self.subTest(user=who.login), self.assertRaises(AccessError):
                as_user.create({"name": "Forged", "parent_id": self.customer.id, "azure_ad_synced": True})
            # Other fields of a synced contact stay editable, and a plain create works.
            as_user.browse(adele.id).write({"comment": "VIP"})
            as_user.create(
                {"name": f"New {who.login}", "parent_id": self.customer.id, "azure_ad_synced": False}
            )
        self.assertFalse(local.azure_ad_synced)
        self.assertTrue(adele.azure_ad_synced)
        result = self.integration.sync_contacts()[0]
        self.assertEqual(result["created"] + result["updated"], 0)

    def test_the_customers_chatter_shows_no_tenant_id_or_microsoft_error(self):
        # The consent is proven, then the tenant revokes it before the first sync reads.
        self.fake.add_fault(kind="revoke", target="users", after=1)
        result = self.connect()
        self.assertIn("error", result)
        customer_posts = " ".join(self.customer.message_ids.mapped("body"))
        self.assertIn("first sync failed", customer_posts)
        for detail in (CONTOSO_ID, "AADSTS", result["error"][:40]):
            self.assertNotIn(detail, customer_posts)
        integration_posts = " ".join(self.integration.message_ids.mapped("body"))
        self.assertIn(CONTOSO_ID, integration_posts)
        self.assertIn(result["error"][:40], integration_posts)

    def test_sync_reports_counts_and_second_run_writes_nothing(self):
        self.connect()
        result = self.integration.sync_contacts()
        self.assertEqual(result[0], {**result[0], "created": 0, "updated": 0, "unchanged": 15, "skipped": 6})
        contacts = self.contacts()
        write_dates = contacts.mapped("write_date")
        self.env.flush_all()
        self.cr.execute("SELECT max(write_date) FROM res_partner")
        before = self.cr.fetchone()[0]
        self.integration.sync_contacts()
        self.env.flush_all()
        self.cr.execute("SELECT max(write_date) FROM res_partner")
        self.assertEqual(self.cr.fetchone()[0], before)
        self.assertEqual(contacts.mapped("write_date"), write_dates)

    def test_skips_no_email_guests_disabled_unless_included(self):
        users = [
            user("id-1", None, "No", "Mail", proxyAddresses=["smtp:secondary@contoso.example"]),
            user(
                "id-2",
                None,
                "Proxy",
                "Only",
                proxyAddresses=["smtp:x@contoso.example", "SMTP:Proxy@contoso.example"],
            ),
            user("id-3", "guest@ext.example", "Gue", "St", userType="Guest"),
            user("id-4", "off@contoso.example", "Dis", "Abled", accountEnabled=False),
        ]
        self.set_users(users)
        result = self.connect()
        self.assertEqual((result["created"], result["skipped"]), (1, 3))
        self.assertEqual(self.contacts().email, "Proxy@contoso.example")
        self.integration.write({"include_guests": True, "include_disabled": True})
        result = self.integration.sync_contacts()[0]
        self.assertEqual((result["created"], result["skipped"]), (2, 1))
        self.assertEqual(self.integration.sync_log_ids[0].skip_reasons, {"no_email": 1})

    def test_two_users_same_email_link_the_smallest_object_id(self):
        self.set_users(
            [
                user("bbbb", "Dup@contoso.example", "Second", "User"),
                user("aaaa", "dup@contoso.example ", "First", "User"),
            ]
        )
        result = self.connect()
        self.assertEqual((result["created"], result["skipped"]), (1, 1))
        self.assertRecordValues(self.contacts(), [{"azure_ad_object_id": "aaaa", "name": "First User"}])
        self.assertEqual(self.integration.sync_log_ids.skip_reasons, {"duplicate_email": 1})

    def test_two_users_same_email_the_contact_has_the_winners_spelling(self):
        # The first listed user gets its contact while the tenant is listed; the second one,
        # with the smaller id, wins the address: the contact is its, spelled as it is in Entra.
        def listed_in_reverse(client):  # Microsoft documents no order for /users
            fetch = client.iter_user_pages
            client.iter_user_pages = lambda *args, **kwargs: (page[::-1] for page in fetch(*args, **kwargs))

        self.adapt_graph_clients(listed_in_reverse)
        self.set_users(
            [
                user("bbbb", "dup.user@contoso.com", "Second", "User"),
                user("aaaa", "Dup.User@CONTOSO.COM", "First", "User"),
            ]
        )
        result = self.connect()
        self.assertEqual((result["created"], result["updated"], result["skipped"]), (1, 0, 1))
        self.assertRecordValues(
            self.contacts(),
            [{"azure_ad_object_id": "aaaa", "name": "First User", "email": "Dup.User@CONTOSO.COM"}],
        )
        self.assertEqual(self.integration.sync_contacts()[0]["unchanged"], 1)

    def test_several_contacts_share_the_email_update_the_linked_else_the_oldest(self):
        Partner = self.env["res.partner"]
        oldest, newer = Partner.create(
            [
                {"name": "Oldest", "parent_id": self.customer.id, "email": "x@contoso.example"},
                {"name": "Newer", "parent_id": self.customer.id, "email": "X@contoso.example"},
            ]
        )
        self.set_users([user("id-x", "x@contoso.example", "Xavier", "X")])
        result = self.connect()
        self.assertEqual((result["created"], result["updated"]), (0, 1))
        self.assertEqual((oldest.name, newer.name), ("Xavier X", "Newer"))
        # Once linked, the linked one wins even though it is no longer the oldest.
        oldest.azure_ad_object_id = False
        newer.write({"azure_ad_object_id": "id-x", "azure_ad_integration_id": self.integration.id})
        self.integration.sync_contacts()
        self.assertEqual(newer.name, "Xavier X")
        self.assertEqual(len(self.contacts()), 2)

    def test_name_falls_back_to_display_name_then_email(self):
        self.set_users(
            [
                user("id-1", "both@contoso.example", "  Given ", " Sur  "),
                user("id-2", "display@contoso.example", displayName="Reception Desk"),
                user("id-3", "mail.only@contoso.example", displayName=None),
                user("id-4", "given@contoso.example", "OnlyGiven"),
            ]
        )
        self.connect()
        self.assertEqual(
            sorted(self.contacts().mapped("name")),
            sorted(["Given Sur", "Reception Desk", "mail.only@contoso.example", "OnlyGiven"]),
        )

    def test_icon_mark_only_on_synced_contacts(self):
        local = self.env["res.partner"].create(
            {"name": "Local", "parent_id": self.customer.id, "email": "local@contoso.example"}
        )
        self.connect()
        self.assertTrue(all(self.contacts().filtered(lambda p: p != local).mapped("azure_ad_synced")))
        self.assertFalse(local.azure_ad_synced)
        synced = self.env["res.partner"].search([("azure_ad_synced", "=", True)])
        self.assertEqual(synced, self.contacts() - local)
