"""The preview (dry run) wizard: what a sync would do, nothing written; "Apply" does exactly
that or refuses when Azure AD or the contacts changed since. Real ORM, real HTTPS to the fake."""

from odoo.exceptions import AccessError, UserError

from .common import CONTOSO_ID, AzureAdCase, user


class TestPreview(AzureAdCase):
    def setUp(self):
        super().setUp()
        self.people = [user(f"id-{n}", f"p{n}@contoso.example", f"P{n}", "Person") for n in range(4)]
        self.set_users(self.people)
        self.connect()
        self.integration.write(
            {"deleted_action": "archive", "archive_max_count": 1, "archive_max_percent": 0}
        )
        # Since the last sync: a new job title, a newcomer, a guest, two users deleted.
        self.set_users(
            [
                {**self.people[0], "jobTitle": "CFO"},
                self.people[1],
                user("id-new", "new@contoso.example", "New", "Comer"),
                user("id-guest", "guest@partner.example", "Gue", "St", userType="Guest"),
            ]
        )

    def open_preview(self):
        action = self.integration.action_preview()
        self.assertEqual((action["res_model"], action["target"]), ("azure.ad.preview.wizard", "new"))
        return self.env["azure.ad.preview.wizard"].browse(action["res_id"])

    def snapshot(self):
        self.env.flush_all()
        self.cr.execute(
            "SELECT id, name, email, function, active, azure_ad_object_id FROM res_partner "
            "WHERE parent_id = %s ORDER BY id",
            [self.customer.id],
        )
        return self.cr.fetchall(), len(self.integration.sync_log_ids)

    def test_preview_lists_everything_and_writes_nothing(self):
        before = self.snapshot()
        wizard = self.open_preview()
        self.assertEqual(self.snapshot(), before, "a preview writes no contact and no run log")
        self.assertRecordValues(
            wizard,
            [
                {
                    "to_create": 1,
                    "to_update": 1,
                    "unchanged": 1,
                    "skipped": 1,
                    "to_archive": 2,
                    "beyond_threshold": True,
                    "truncated": False,
                    "outdated_message": False,
                }
            ],
        )
        self.assertEqual(wizard.skip_summary, "guest account: 1")
        [create] = wizard.create_line_ids
        self.assertEqual((create.name, create.email), ("New Comer", "new@contoso.example"))
        [update] = wizard.update_line_ids
        self.assertEqual(update.partner_id, self.contact("p0@contoso.example"))
        self.assertEqual(update.changes, "Job Position: – → CFO")
        self.assertEqual(
            sorted((line.partner_id.email, line.reason) for line in wizard.archive_line_ids),
            [
                ("p2@contoso.example", "deleted from Azure AD"),
                ("p3@contoso.example", "deleted from Azure AD"),
            ],
        )
        [skip] = wizard.skip_line_ids
        self.assertEqual((skip.name, skip.reason), ("guest@partner.example", "guest account"))

    def test_apply_does_exactly_what_was_shown(self):
        wizard = self.open_preview()
        action = wizard.action_apply()
        self.assertEqual(action["params"]["type"], "success")
        log = self.integration._latest_log()
        self.assertEqual(
            (log.state, log.trigger, log.created, log.updated, log.unchanged, log.skipped, log.archived),
            ("done", "manual", 1, 1, 1, 1, 2),
            "the preview confirmed the archives beyond the threshold",
        )
        self.assertEqual(self.contact("p0@contoso.example").function, "CFO")
        self.assertEqual(
            self.contacts().filtered(lambda c: not c.active).mapped("email"),
            ["p2@contoso.example", "p3@contoso.example"],
        )
        self.assertEqual(self.open_preview().to_update, 0, "a second preview has nothing to do")

    def test_apply_refuses_when_the_tenant_changed_and_shows_the_new_plan(self):
        wizard = self.open_preview()
        self.fake.add_user(CONTOSO_ID, user("id-late", "late@contoso.example", "Late", "Comer"))
        before = self.snapshot()
        action = wizard.action_apply()
        self.assertEqual(self.snapshot(), before, "nothing written, not even a run log")
        self.assertEqual((action["res_model"], action["res_id"]), ("azure.ad.preview.wizard", wizard.id))
        self.assertIn("to create 1 → 2", wizard.outdated_message)
        self.assertEqual(wizard.to_create, 2)
        self.assertEqual(
            sorted(wizard.create_line_ids.mapped("email")), ["late@contoso.example", "new@contoso.example"]
        )
        # Other values, the same numbers: refused too, and said so.
        self.fake.update_user(CONTOSO_ID, "id-new", {"surname": "Name"})
        wizard.action_apply()
        self.assertIn("the same numbers, but other contacts or values", wizard.outdated_message)
        self.assertEqual(sorted(wizard.create_line_ids.mapped("name")), ["Late Comer", "New Name"])
        # Changed in Odoo: the preview's plan no longer restores it, so it is refused.
        self.contact("p1@contoso.example").function = "Edited"
        wizard.action_apply()
        self.assertIn("to update 1 → 2", wizard.outdated_message)
        self.assertIn("Job Position: Edited → –", wizard.update_line_ids.mapped("changes"))
        self.assertEqual(self.snapshot()[1], before[1], "still no run log")
        wizard.action_apply()  # the new preview, applied
        log = self.integration._latest_log()
        self.assertEqual((log.created, log.updated, log.archived), (2, 2, 2))
        self.assertFalse(self.contact("p1@contoso.example").function)

    def test_refresh_and_errors(self):
        wizard = self.open_preview()
        self.set_users(self.people)
        wizard.action_refresh()
        self.assertEqual((wizard.to_create, wizard.to_update, wizard.to_archive), (0, 0, 0))
        self.assertFalse(wizard.line_ids)
        self.fake.set_consent(CONTOSO_ID, False)  # the customer revoked the app
        with self.assertRaisesRegex(UserError, "Authorization_RequestDenied"):
            self.integration.action_preview()
        with self.assertRaises(AccessError):
            self.integration.with_user(self.plain_user).action_preview()
        self.integration.excluded = True
        with self.assertRaisesRegex(UserError, "excluded"):
            self.integration.action_preview()

    def test_preview_of_pinned_and_returning_contacts(self):
        self.integration.write({"archive_max_count": 0})
        self.open_preview().action_apply()
        self.set_users(self.people)  # the deleted users are back
        p0 = self.contact("p0@contoso.example")
        p0.azure_ad_never_overwrite = True
        wizard = self.open_preview()
        self.assertEqual((wizard.to_update, wizard.to_archive), (2, 1))  # the newcomer left again
        self.assertEqual(wizard.unchanged, 2, "the pinned contact is not overwritten")
        self.assertEqual(
            set(wizard.update_line_ids.mapped("changes")), {"Active again: the user is back in Azure AD"}
        )
