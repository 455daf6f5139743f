"""The sync options (README "Beyond the basics"), end to end: real ORM and PostgreSQL, real MSAL
and requests over HTTPS to the fake Entra ID / Graph server. Each option is off by default."""

import json
from unittest.mock import patch
from urllib.parse import parse_qs, urlsplit

from psycopg2 import IntegrityError

from odoo import fields
from odoo.exceptions import AccessError, UserError, ValidationError

from odoo.addons.azure_ad_contacts.models import azure_ad_microsoft_mixin, azure_ad_sync_mixin

from fake_entra import generate_users

from .common import CONTOSO_ID, FABRIKAM_ID, AzureAdCase, user

LICENCE = [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": []}]
SALES = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a01"
SALES_EMEA = "5c7ee0b1-2a8e-4f3d-9e61-6f0d2b1c0a02"
CUSTOMER_FACING = "0d7c2f4e-3b1a-4e5f-9c8d-7a6b5c4d3e22"  # a group of fake_entra/tenants/contoso.json
NO_LIMIT = {"archive_max_count": 0, "archive_max_percent": 0}


class BeyondCase(AzureAdCase):
    def users_requests(self):
        """The query of each Graph /users request the fake served, parsed."""
        queries = [
            parse_qs(urlsplit(r["path"]).query)
            for r in self.fake.stats()["requests"]
            if urlsplit(r["path"]).path == "/v1.0/users"
        ]
        return [query for query in queries if query.get("$top") == ["999"]]  # not the consent probe

    def people(self, count, **extra):
        return [
            user(f"id-{n:02d}", f"p{n:02d}@contoso.example", f"P{n:02d}", "Person", **extra)
            for n in range(count)
        ]

    def sync(self):
        return self.integration.sync_contacts()[0]


class TestLeavers(BeyondCase):
    def test_leavers_are_kept_by_default(self):
        ann, bob = self.people(2)
        self.set_users([ann, bob])
        self.connect()
        self.set_users([{**ann, "accountEnabled": False}])
        result = self.sync()
        self.assertEqual((result["archived"], result["skipped"], result["updated"]), (0, 1, 0))
        self.assertTrue(all(self.contacts().mapped("active")))

    def test_disabled_and_deleted_users_are_archived_separately_and_come_back(self):
        ann, bob, cy = self.people(3)
        local = self.env["res.partner"].create(
            {"name": "Local", "parent_id": self.customer.id, "email": "local@contoso.example"}
        )
        self.set_users([ann, bob, cy])
        self.connect()
        self.integration.write({"disabled_action": "archive", **NO_LIMIT})
        self.set_users([{**ann, "accountEnabled": False}, cy])  # Ann disabled, Bob deleted
        result = self.sync()
        self.assertEqual((result["archived"], result["unchanged"]), (1, 1))
        ann_c, bob_c = self.contact(ann["mail"]), self.contact(bob["mail"])
        self.assertRecordValues(
            ann_c, [{"active": False, "azure_ad_archived": True, "azure_ad_synced": True}]
        )
        self.assertTrue(bob_c.active, "deleted users are kept unless their action says archive")
        log = self.integration._latest_log()
        self.assertEqual((log.state, log.archived), ("done", 1))

        self.integration.deleted_action = "archive"
        self.assertEqual(self.sync()["archived"], 1)
        self.assertRecordValues(bob_c, [{"active": False, "azure_ad_archived": True}])
        self.assertTrue(local.active, "contacts the sync never linked are never archived")
        self.assertEqual(self.sync()["archived"], 0, "archived once, not at every run")

        self.set_users([ann, bob, cy])  # both are back
        result = self.sync()
        self.assertEqual((result["updated"], result["archived"]), (2, 0))
        self.assertRecordValues(ann_c | bob_c, [{"active": True, "azure_ad_archived": False}] * 2)
        self.assertEqual(self.sync()["updated"], 0)

    def test_users_out_of_the_filters_are_deleted_leavers_and_pins_protect(self):
        ann, bob, cy = self.people(3)
        self.set_users([ann, bob, cy])
        self.connect()
        self.contact(cy["mail"]).azure_ad_never_archive = True
        self.integration.write({"deleted_action": "archive", **NO_LIMIT})
        self.set_users([{**ann, "userType": "Guest"}, bob])  # Ann became a guest, Cy was deleted
        self.assertEqual(self.sync()["archived"], 1)
        self.assertFalse(self.contact(ann["mail"]).active)
        self.assertTrue(self.contact(cy["mail"]).active, "never archive")
        # Someone archived by hand stays archived when the user is still there (matched by email all along).
        self.contact(bob["mail"]).active = False
        self.assertEqual(self.sync()["updated"], 0)
        self.assertFalse(self.contact(bob["mail"]).active)

    def test_a_run_over_the_threshold_stops_before_writing_and_asks(self):
        people = self.people(6)
        self.set_users(people)
        self.connect()
        self.integration.write(
            {"deleted_action": "archive", "archive_max_count": 2, "archive_max_percent": 0}
        )
        changed = {**people[0], "jobTitle": "CEO"}
        newcomer = user("id-new", "new@contoso.example", "New", "Person")
        self.set_users([changed, people[1], newcomer])  # 4 leavers, 1 change, 1 newcomer
        count_before = len(self.contacts())
        result = self.sync()
        self.assertIn("would archive 4 of its 6 synced contacts", result["needs_confirmation"])
        self.assertEqual(
            {k: result[k] for k in ("created", "updated", "archived")},
            dict.fromkeys(("created", "updated", "archived"), 0),
        )
        self.assertEqual(len(self.contacts()), count_before, "nothing was written")
        self.assertTrue(all(self.contacts().mapped("active")))
        self.assertFalse(self.contact(people[0]["mail"]).function)
        log = self.integration._latest_log()
        self.assertEqual((log.state, log.archive_pending, log.archived), ("confirm", 4, 0))
        self.assertEqual(self.integration.last_run_state, "confirm")
        self.assertEqual(self.integration.pending_confirmation, log.error)
        self.assertIn("would archive 4", self.integration.message_ids[0].body)
        action = self.integration.action_sync_now()
        self.assertEqual((action["params"]["type"], action["params"]["sticky"]), ("warning", True))

        action = self.integration.action_confirm_archive()
        self.assertEqual(action["params"]["type"], "success")
        log = self.integration._latest_log()
        self.assertEqual((log.state, log.created, log.updated, log.archived), ("done", 1, 1, 4))
        self.assertEqual(len(self.contacts().filtered("active")), 3)
        self.assertEqual(self.integration.archive_allowance, 0, "a confirmation is used once")
        with self.assertRaisesRegex(UserError, "No sync .* waits for a confirmation"):
            self.integration.action_confirm_archive()

    def test_percent_threshold_and_confirming_more_than_seen_asks_again(self):
        people = self.people(4)
        self.set_users(people)
        self.connect()
        self.integration.write(
            {"disabled_action": "archive", "archive_max_count": 0, "archive_max_percent": 50}
        )
        self.set_users([{**people[0], "accountEnabled": False}, *people[1:]])
        self.assertEqual(self.sync()["archived"], 1, "1 of 4: 25 %")
        self.set_users([{**p, "accountEnabled": False} for p in people[:2]] + people[2:])
        self.assertEqual(self.sync()["archived"], 1, "1 of the 3 still active: 33 %")
        self.set_users([{**p, "accountEnabled": False} for p in people])
        self.assertIn("would archive 2 of its 2", self.sync()["needs_confirmation"])
        stopped = self.integration._latest_log()
        stopped.integration_id.archive_allowance = 1  # confirmed fewer than the run now wants
        self.assertIn("needs_confirmation", self.sync())
        with self.assertRaisesRegex(UserError, "newer sync"):
            stopped.action_confirm_archive()
        self.integration._latest_log().action_confirm_archive()
        self.assertFalse(any(self.contacts().mapped("active")))

    def test_the_scheduled_job_never_confirms(self):
        people = self.people(3)
        self.set_users(people)
        self.connect()
        self.integration.write(
            {"deleted_action": "archive", "archive_max_count": 1, "archive_max_percent": 0, "auto_sync": True}
        )
        self.set_users(people[:1])
        self.integration.archive_allowance = 5  # even a confirmation waiting for "Sync now"
        self.integration.next_sync_date = fields.Datetime.now()
        cron = self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")
        _cron, progress = cron._add_progress()
        self.env["azure.ad.integration"].with_context(
            ir_cron_progress_id=progress.id, cron_id=progress.cron_id.id
        )._cron_sync_due()
        log = self.integration._latest_log()
        self.assertEqual((log.trigger, log.state, log.archive_pending), ("cron", "confirm", 2))
        self.assertTrue(all(self.contacts().mapped("active")))
        self.assertGreater(self.integration.next_sync_date, fields.Datetime.now(), "asks again next interval")
        self.assertEqual(self.integration.archive_allowance, 5, "kept for the administrator's run")

    def test_large_tenant_confirmation_runs_in_the_background(self):
        people = self.people(4)
        self.set_users(people)
        self.connect()
        self.integration.write(
            {"deleted_action": "archive", "archive_max_count": 1, "archive_max_percent": 0}
        )
        self.set_users(people[:1])
        cron = self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")

        def run_job():
            self.env["bus.bus"].search([]).unlink()
            _cron, progress = cron._add_progress()
            self.env["azure.ad.integration"].with_context(
                ir_cron_progress_id=progress.id, cron_id=progress.cron_id.id
            )._cron_sync_due()
            self.env.cr.precommit.run()  # the bus writes its notifications when the job commits
            [bus] = self.env["bus.bus"].search([("message", "like", "simple_notification")])
            return json.loads(bus.message)["payload"]

        with patch.object(azure_ad_sync_mixin, "BACKGROUND_SYNC_THRESHOLD", 2):
            self.assertEqual(self.integration.action_sync_now()["params"]["type"], "info")
            notification = run_job()  # "Sync now" of the requester: stops, and says so
            self.assertEqual((notification["type"], notification["sticky"]), ("warning", True))
            self.assertIn("would archive 3", notification["message"])
            self.assertEqual(self.integration.action_confirm_archive()["params"]["type"], "info")
            notification = run_job()
            self.assertEqual(notification["type"], "success")
            self.assertIn("3 archived", notification["message"])
        log = self.integration._latest_log()
        self.assertEqual((log.trigger, log.state, log.archived), ("manual", "done", 3))


class TestFilters(BeyondCase):
    def test_default_request_is_the_spec_one_and_options_add_only_what_they_need(self):
        self.connect()
        [query] = self.users_requests()
        self.assertEqual(
            query["$select"],
            [
                (
                    "id,givenName,surname,displayName,jobTitle,mobilePhone,businessPhones,mail,"
                    "userPrincipalName,proxyAddresses,otherMails,accountEnabled,userType"
                )
            ],
        )
        self.fake.reset_stats()
        self.integration.write({"licensed_only": True, "map_department": True, "map_business_phone": True})
        self.sync()
        [query] = self.users_requests()
        self.assertTrue(query["$select"][0].endswith(",userType,department,assignedLicenses"))

    def test_licensed_only(self):
        self.integration.licensed_only = True
        result = self.connect()  # Contoso: 3 enabled members without a licence
        self.assertEqual((result["created"], result["skipped"]), (14, 7))
        self.assertEqual(
            self.integration.sync_log_ids.skip_reasons, {"guest": 2, "disabled": 2, "unlicensed": 3}
        )
        self.assertIn("no licence: 3", self.integration.sync_log_ids.skip_summary)

    def test_service_and_shared_mailboxes_are_excluded_by_pattern(self):
        self.set_users(
            [
                user("id-1", "ann@contoso.example", "Ann", "A"),
                user("id-2", "NoReply@contoso.example", displayName="No Reply"),
                user("id-3", "b12@contoso.example", userPrincipalName="MeetingRoom.B12@contoso.example"),
                user("id-4", "scan1@contoso.example"),
            ]
        )
        self.integration.exclude_patterns = "noreply*\n*room*@*, scan?@*"
        result = self.connect()
        self.assertEqual((result["created"], result["skipped"]), (1, 3))
        self.assertEqual(self.contacts().email, "ann@contoso.example")
        self.assertEqual(self.integration.sync_log_ids.skip_reasons, {"excluded": 3})

    def test_group_filter_uses_transitive_members_over_pages(self):
        users = generate_users(1100, seed=8, domain="contoso.example", plain=True)
        self.set_users(users)
        self.fake.set_groups(
            CONTOSO_ID,
            [
                {"id": SALES, "members": [u["id"] for u in users[:600]] + [SALES_EMEA]},
                {"id": SALES_EMEA, "members": [u["id"] for u in users[500:1050]]},
            ],
        )
        self.integration.group_ids = SALES.upper()
        result = self.connect()
        self.assertEqual((result["created"], result["skipped"]), (1050, 50))
        self.assertEqual(self.integration.sync_log_ids.skip_reasons, {"not_in_group": 50})
        self.assertEqual(self.fake.stats()["counts"]["groups"], 2, "999 members per page")
        member_paths = [r["path"] for r in self.fake.stats()["requests"] if "/groups/" in r["path"]]
        self.assertTrue(
            member_paths[0].endswith(f"/v1.0/groups/{SALES}/transitiveMembers?$select=id&$top=999")
        )
        # Two groups: their union.
        self.fake.set_groups(
            CONTOSO_ID,
            [{"id": SALES, "members": [users[0]["id"]]}, {"id": SALES_EMEA, "members": [users[1]["id"]]}],
        )
        self.integration.write(
            {"group_ids": f"{SALES}\n{SALES_EMEA}", "deleted_action": "archive", **NO_LIMIT}
        )
        self.assertEqual(self.sync()["archived"], 1048)

    def test_group_filter_on_the_demo_tenant(self):
        self.integration.group_ids = CUSTOMER_FACING  # 3 users and the Marketing group (2 more)
        result = self.connect()
        self.assertEqual((result["created"], result["skipped"]), (5, 16))
        self.assertEqual(
            sorted(self.contacts().mapped("name")),
            ["Adele Vance", "Alex Wilber", "Isaiah Langer", "Lynne Robbins", "Megan Bowen"],
        )

    def test_group_errors_say_what_to_do_and_change_nothing(self):
        self.connect()
        count = len(self.contacts())
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.integration.group_ids = "sales team"
        self.integration.group_ids = SALES  # no such group in the tenant
        result = self.sync()
        self.assertIn("does not exist in its tenant", result["error"])
        self.assertEqual(self.integration._latest_log().state, "failed")
        self.fake.set_groups(CONTOSO_ID, [{"id": SALES, "members": []}])
        self.fake.set_groups_readable(CONTOSO_ID, False)
        self.fake.expire_tokens()  # the cached token keeps the permission until it expires
        result = self.sync()
        self.assertIn("GroupMember.Read.All", result["error"])
        self.assertEqual((self.integration.state, self.integration.last_error_kind), ("error", "consent"))
        self.assertEqual(len(self.contacts()), count)
        self.assertTrue(all(self.contacts().mapped("active")))


class TestGroupPicker(BeyondCase):
    """Groups chosen by name: a search of the tenant's groups (Microsoft Graph $search), the
    chosen ones shown by name, their ids kept in the filter."""

    def test_groups_are_found_by_name_and_kept_by_id(self):
        self.connect()
        picker = self.env["azure.ad.group.picker"].browse(self.integration.action_choose_groups()["res_id"])
        picker.search_text = "customer"
        picker.action_search()
        self.assertEqual(picker.line_ids.mapped("name"), ["Customer-facing"])
        search = [r for r in self.fake.stats()["requests"] if urlsplit(r["path"]).path == "/v1.0/groups"]
        self.assertEqual(parse_qs(urlsplit(search[-1]["path"]).query)["$search"], ['"displayName:customer"'])
        picker.line_ids.selected = True
        picker.action_add()
        self.assertEqual(self.integration.group_ids, CUSTOMER_FACING)
        self.assertEqual(self.integration.group_summary, "Customer-facing")
        # A group typed by id stays shown by its id; choosing again keeps both, once each.
        self.integration.group_ids = f"{CUSTOMER_FACING}\n{SALES}"
        picker.search_text = "Market"
        picker.action_search()
        picker.line_ids.selected = True
        picker.action_add()
        marketing = picker.line_ids.object_id
        self.assertEqual(self.integration.group_ids.split("\n"), [CUSTOMER_FACING, SALES, marketing])
        self.assertEqual(self.integration.group_summary, f"Customer-facing, {SALES}, Marketing")
        self.integration.group_ids = SALES_EMEA
        self.assertEqual(self.integration.group_summary, SALES_EMEA)

    def test_the_picker_needs_a_connection_and_a_name(self):
        picker = self.env["azure.ad.group.picker"].create({"integration_id": self.integration.id})
        with self.assertRaisesRegex(UserError, "not connected"):
            picker.write({"search_text": "Sales"})
            picker.action_search()
        self.connect()
        picker.search_text = " "
        with self.assertRaisesRegex(UserError, "group name"):
            picker.action_search()
        with self.assertRaises(AccessError):
            picker.with_user(self.plain_user).action_add()


class TestMicrosoftErrorsWithRemedy(BeyondCase):
    def test_app_disabled_identity_not_found_and_another_cloud_say_what_to_do(self):
        self.connect()
        cases = (
            ("app_disabled", "token", "consent", "AADSTS7000112"),
            ("identity_not_found", "delta", "consent", "Authorization_IdentityNotFound"),
            ("resource_not_found", "token", "other", "different Microsoft clouds"),
        )
        for kind, target, remedy, text in cases:
            with self.subTest(kind=kind):
                self.fake.clear_faults()
                self.fake.expire_tokens()  # so that the token endpoint is asked
                azure_ad_microsoft_mixin._MSAL_HTTP_CACHE.clear()  # MSAL replays failed answers
                self.fake.add_fault(kind=kind, target=target, count=None)
                result = self.sync()
                self.assertIn(text, result["error"])
                self.assertEqual(self.integration.last_error_kind, remedy)
                self.assertIn(text, self.integration.last_error)


class TestPinsHistoryMappings(BeyondCase):
    def test_never_overwrite_keeps_the_contact_as_edited(self):
        ann, bob = self.people(2)
        vip = self.env["res.partner"].create(
            {
                "name": "Dr. Bob",
                "parent_id": self.customer.id,
                "email": bob["mail"],
                "function": "Advisor",
                "azure_ad_never_overwrite": True,
            }
        )
        self.set_users([ann, bob])
        self.connect()
        self.assertRecordValues(
            vip,
            [
                {
                    "name": "Dr. Bob",
                    "function": "Advisor",
                    "azure_ad_synced": True,
                    "azure_ad_object_id": bob["id"],
                }
            ],
        )
        ann_c = self.contact(ann["mail"])
        ann_c.azure_ad_never_overwrite = True
        ann_c.name = "Annie"
        self.set_users([{**ann, "jobTitle": "CEO"}, bob])
        self.assertEqual(self.sync()["updated"], 0)
        self.assertRecordValues(ann_c, [{"name": "Annie", "function": False}])

    def test_pins_are_for_administrators_only(self):
        self.connect()
        adele = self.contact("adele.vance@contoso.example").with_user(self.plain_user)
        for name in ("azure_ad_never_overwrite", "azure_ad_never_archive", "azure_ad_synced_email"):
            with self.assertRaises(AccessError):
                adele.read([name])
        adele.read(["azure_ad_department"])  # Entra data is for everyone

    def test_change_history_in_the_chatter_and_the_run_log(self):
        Message = self.env["mail.message"]
        self.integration.write({"log_changes": True, "disabled_action": "archive", **NO_LIMIT})
        people = self.people(3)
        self.set_users(people)
        self.connect()
        contacts = self.contacts()
        notes = [("model", "=", "res.partner"), ("res_id", "in", contacts.ids)]
        self.assertEqual(Message.search_count(notes), 0, "a first sync logs no message per contact")
        self.assertFalse(self.integration.sync_log_ids.changed_partner_ids)

        self.set_users(
            [
                {**people[0], "jobTitle": "CEO", "mobilePhone": "+41 1"},
                {**people[1], "accountEnabled": False},
                people[2],
            ]
        )
        self.sync()
        first, second, third = (self.contact(p["mail"]) for p in people)
        log = self.integration._latest_log()
        self.assertEqual(log.changed_partner_ids, first | second)
        self.assertEqual(log.changed_count, 2)
        action = log.action_view_changed_contacts()
        self.assertEqual(
            self.env["res.partner"].with_context(active_test=False).search(action["domain"]), first | second
        )
        [message] = first.message_ids
        self.assertIn("Updated by Azure AD sync", message.body)
        tracked = {t.field_id.name: (t.old_value_char, t.new_value_char) for t in message.tracking_value_ids}
        self.assertEqual(tracked, {"function": ("", "CEO"), "mobile": ("", "+41 1")})
        self.assertEqual(message.subtype_id, self.env.ref("mail.mt_note"))
        [archived] = second.message_ids
        self.assertIn("disabled account", archived.body)
        self.assertEqual(
            [
                (t.field_id.name, t.old_value_integer, t.new_value_integer)
                for t in archived.tracking_value_ids
            ],
            [("active", 1, 0)],
        )
        self.assertFalse(third.message_ids)
        self.sync()
        self.assertEqual(Message.search_count(notes), 2, "a run that changes nothing logs nothing")

    def test_extra_mappings(self):
        ann = user(
            "id-a",
            "ann@contoso.example",
            "Ann",
            "A",
            businessPhones=["+1 425 555 0100"],
            department="Sales",
            companyName="Contoso Ltd",
            officeLocation="18/2111",
        )
        self.set_users([ann])
        self.connect()
        ann_c = self.contact(ann["mail"])
        self.assertFalse(ann_c.phone or ann_c.azure_ad_department, "off by default")
        self.integration.write(
            {"map_business_phone": True, "map_department": True, "map_company_name": True, "map_office": True}
        )
        self.assertEqual(self.sync()["updated"], 1)
        self.assertRecordValues(
            ann_c,
            [
                {
                    "phone": "+1 425 555 0100",
                    "azure_ad_department": "Sales",
                    "azure_ad_company_name": "Contoso Ltd",
                    "azure_ad_office": "18/2111",
                }
            ],
        )
        self.set_users([{**ann, "department": None, "businessPhones": []}])
        self.sync()
        self.assertRecordValues(
            ann_c, [{"phone": False, "azure_ad_department": False, "azure_ad_company_name": "Contoso Ltd"}]
        )
        self.assertEqual(self.sync()["unchanged"], 1)


class TestEmailChanges(BeyondCase):
    def test_contact_follows_an_email_changed_in_entra(self):
        ann = user("id-a", "ann@old.example", "Ann", "A")
        self.integration.follow_email_changes = True
        self.set_users([ann])
        self.connect()
        ann_c = self.contacts()
        self.assertEqual(ann_c.azure_ad_synced_email, "ann@old.example")
        self.set_users([{**ann, "mail": "Ann@New.example"}])
        result = self.sync()
        self.assertEqual((result["created"], result["updated"]), (0, 1))
        self.assertEqual(self.contacts(), ann_c)
        self.assertRecordValues(
            ann_c,
            [
                {
                    "email": "Ann@New.example",
                    "azure_ad_synced_email": "Ann@New.example",
                    "azure_ad_object_id": "id-a",
                }
            ],
        )
        # Still: an email changed in Odoo gives a new contact.
        ann_c.email = "ann.private@example.com"
        self.assertEqual(self.sync()["created"], 1)
        self.assertFalse(ann_c.azure_ad_synced)

    def test_without_the_option_an_entra_email_change_gives_a_new_contact(self):
        ann = user("id-a", "ann@old.example", "Ann", "A")
        self.set_users([ann])
        self.connect()
        self.assertFalse(self.contacts().azure_ad_synced_email)
        self.set_users([{**ann, "mail": "ann@new.example"}])
        self.assertEqual(self.sync()["created"], 1)
        # Switched on later: the next sync records the synced email, then emails follow.
        self.integration.follow_email_changes = True
        self.assertEqual(self.sync()["updated"], 1)
        self.set_users([{**ann, "mail": "ann@newer.example"}])
        self.assertEqual(self.sync()["created"], 0)


class TestSeveralTenants(BeyondCase):
    def setUp(self):
        super().setUp()
        self.pat_a = user("a-pat", "pat@shared.example", "Pat", "Contoso")
        self.pat_b = user("b-pat", "Pat@Shared.example", "Pat", "Fabrikam", jobTitle="CFO")
        self.set_users([self.pat_a, user("a-ann", "ann@contoso.example", "Ann", "A")])
        self.set_users([self.pat_b, user("b-bob", "bob@fabrikam.example", "Bob", "B")], FABRIKAM_ID)

    def test_a_second_tenant_only_when_added_explicitly(self):
        self.connect()
        with self.assertRaises(IntegrityError), self.cr.savepoint():
            self.env["azure.ad.integration"].create({"partner_id": self.customer.id})
        action = self.integration.action_add_tenant()
        second = self.customer.azure_ad_integration_ids - self.integration
        self.assertEqual(action["res_model"], "azure.ad.connect.wizard")
        self.assertTrue(second.additional_tenant)
        self.assertEqual(second.partner_id, self.customer)
        self.assertIn("(new tenant)", second.display_name)
        with self.assertRaises(ValidationError), self.cr.savepoint():
            self.connect(second, CONTOSO_ID)  # the same tenant twice for one customer

    def test_one_contact_per_person_across_tenants(self):
        self.connect()
        second = self.env["azure.ad.integration"].create(
            {"partner_id": self.customer.id, "additional_tenant": True}
        )
        result = self.connect(second, FABRIKAM_ID)
        self.assertEqual((result["created"], result["skipped"]), (1, 1))
        self.assertEqual(second.sync_log_ids.skip_reasons, {"other_tenant": 1})
        pat = self.contact("pat@shared.example")
        self.assertEqual(len(pat), 1)
        self.assertRecordValues(
            pat, [{"azure_ad_integration_id": self.integration.id, "name": "Pat Contoso"}]
        )
        self.assertEqual(self.contact("bob@fabrikam.example").azure_ad_integration_id, second)
        self.assertEqual(len(self.contacts()), 3)
        # No tug of war: both tenants synced again change nothing.
        for integration in (self.integration, second, self.integration):
            result = integration.sync_contacts()[0]
            self.assertEqual((result["created"], result["updated"]), (0, 0))
        # The first tenant lets Pat go (archived as a leaver): the second takes Pat over.
        self.integration.write({"deleted_action": "archive", **NO_LIMIT})
        self.set_users([user("a-ann", "ann@contoso.example", "Ann", "A")])
        self.assertEqual(self.integration.sync_contacts()[0]["archived"], 1)
        self.assertFalse(pat.active)
        self.assertEqual(second.sync_contacts()[0]["updated"], 1)
        self.assertRecordValues(
            pat,
            [
                {
                    "active": True,
                    "azure_ad_integration_id": second.id,
                    "azure_ad_object_id": "b-pat",
                    "function": "CFO",
                }
            ],
        )
        self.assertEqual(self.integration.sync_contacts()[0]["updated"], 0)
