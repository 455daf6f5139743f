"""Incremental sync: after a full round, a sync asks Microsoft only for the changes (Graph's
delta query) and still gives exactly what a full reconciliation would: local edits
overwritten, leavers archived, filters applied. Real HTTPS against the fake, real MSAL."""

import random
import time
import traceback
from datetime import timedelta

from odoo import Command, fields

from odoo.addons.azure_ad_contacts import series

from .common import CONTOSO, CONTOSO_ID, AzureAdCase, full_plan_difference, user

ADELE = "f27609e2-827e-404b-bf93-1d0b96d8975b"
ALEX = "4b895896-54e7-4034-a960-7933dca6c91b"
MEGAN = "7b797d0f-edff-4773-bcc3-c98efb2279d1"
LEE = "2e4aeffc-3bae-46dc-9a1d-53a5b9616dfd"
NESTOR = "bb594223-9888-4076-bca5-fa291f3654d9"
NEW = "00000000-0000-4000-8000-000000000001"
DUP = "0000000a-0000-4000-8000-000000000003"
CUSTOMER_FACING = "0d7c2f4e-3b1a-4e5f-9c8d-7a6b5c4d3e22"
GRADY = "4c928a8a-39b3-4ee9-9af0-af18767b5abf"  # disabled
CHRISTIE = "682c86bf-7c5b-4998-bebd-fd63659054a4"  # a guest


class DeltaCase(AzureAdCase):
    def setUp(self):
        super().setUp()
        self.connect()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.fake.reset_stats()

    def last_log(self):
        logs = self.env["azure.ad.sync.log"]
        return logs.search([("integration_id", "=", self.integration.id)], order="id desc", limit=1)

    def sync(self):
        result = self.integration.sync_contacts()[0]
        self.assertNotIn("error", result, result.get("error"))
        return result

    def graph_reads(self):
        """(/users listing requests, /users/delta requests) the fake served since the reset."""
        counts = self.fake.stats()["counts"]
        return counts["users"], counts["delta"]

    def stored_users(self):
        self.env.cr.execute(
            "SELECT object_id, data FROM azure_ad_directory_user WHERE integration_id = %s",
            [self.integration.id],
        )
        return dict(self.env.cr.fetchall())


class TestChangesOnly(DeltaCase):
    def test_nothing_changed_is_one_request_and_writes_no_contact(self):
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT max(write_date) FROM res_partner WHERE parent_id = %s", [self.customer.id]
        )
        written = self.env.cr.fetchone()[0]
        result = self.sync()
        self.assertEqual((result["created"], result["updated"], result["unchanged"]), (0, 0, 15))
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual(self.last_log().graph_requests, 1)
        self.assertEqual(self.graph_reads(), (0, 1))
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT max(write_date) FROM res_partner WHERE parent_id = %s", [self.customer.id]
        )
        self.assertEqual(self.env.cr.fetchone()[0], written)

    def test_the_contacts_are_compared_while_microsoft_answers(self):
        # The comparison waits (up to 10 s) for the request for the changes to reach the fake:
        # it can get there only if it was sent before the comparison began, not after it.
        integration_class = type(self.integration)
        contacts_changed = integration_class._contacts_changed
        requested = []

        def waiting(integration, rules):
            deadline = time.monotonic() + 10
            while not self.fake.stats()["counts"]["delta"] and time.monotonic() < deadline:
                time.sleep(0.01)
            requested.append(self.fake.stats()["counts"]["delta"])
            return contacts_changed(integration, rules)

        self.patch(integration_class, "_contacts_changed", waiting)
        self.contact("megan.bowen@contoso.example").function = "Edited in Odoo"
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "Chief Financial Officer"})
        result = self.sync()
        self.assertEqual(requested, [1])
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual((result["updated"], result["unchanged"]), (2, 13))

    def test_a_sync_leaves_every_contact_at_its_version(self):
        # The first sync (in setUp) wrote nothing to a contact after reading its version.
        contacts = self.env["res.partner"]._azure_ad_existing_contacts(self.integration)
        self.env.cr.execute(
            "SELECT contact_id, version FROM azure_ad_contact_state WHERE integration_id = %s",
            [self.integration.id],
        )
        self.assertEqual(dict(self.env.cr.fetchall()), {contact.id: contact.version for contact in contacts})
        self.assertEqual(len(contacts), 15)

    def test_a_full_sync_rewrites_only_the_contact_states_that_changed(self):
        megan = self.contact("megan.bowen@contoso.example")
        megan.function = "Edited in Odoo"  # written back by the sync
        adele = self.contact("adele.vance@contoso.example")
        adele_id = adele.id
        adele.unlink()  # its user gets a new contact

        def state_rows():
            self.env.cr.execute(
                "SELECT contact_id, ctid FROM azure_ad_contact_state WHERE integration_id = %s",
                [self.integration.id],
            )
            return dict(self.env.cr.fetchall())

        before = state_rows()
        result = self.integration.with_context(azure_ad_full_sync=True).sync_contacts()[0]
        self.assertEqual((result["created"], result["updated"], result["unchanged"]), (1, 1, 13))
        after = state_rows()
        new_adele = self.contact("adele.vance@contoso.example")
        self.assertEqual(after.keys(), before.keys() - {adele_id} | {new_adele.id})
        rewritten = {contact_id for contact_id, row in after.items() if before.get(contact_id) != row}
        self.assertEqual(rewritten, {megan.id, new_adele.id})

    def test_a_contact_edited_with_sql_is_seen_as_changed(self):
        megan = self.contact("megan.bowen@contoso.example")
        self.env.flush_all()
        self.env.cr.execute("UPDATE res_partner SET function = 'Edited by SQL' WHERE id = %s", [megan.id])
        megan.invalidate_recordset()
        result = self.sync()
        self.assertEqual((result["updated"], result["unchanged"]), (1, 14))
        self.assertNotEqual(megan.function, "Edited by SQL")

    def test_a_contact_saved_with_nothing_the_sync_reads_changed_is_not_planned_again(self):
        megan = self.contact("megan.bowen@contoso.example")
        partners = self.env["res.partner"]
        [before] = partners._azure_ad_existing_contacts(self.integration, [megan.id])
        megan.comment = "Called on Monday"  # a new row version, the same contact for the sync
        megan.flush_recordset()
        [after] = partners._azure_ad_existing_contacts(self.integration, [megan.id])
        self.assertEqual(after.digest, before.digest)
        self.assertNotEqual(after.version, before.version)
        integration_class = type(self.integration)
        contacts_changed = integration_class._contacts_changed
        changed = []
        self.patch(
            integration_class,
            "_contacts_changed",
            lambda integration, rules: changed.append(contacts_changed(integration, rules)) or changed[-1],
        )
        result = self.sync()
        self.assertEqual(changed, [{}])
        self.assertEqual((result["updated"], result["unchanged"]), (0, 15))
        # Its state is at the new version: the next run need not compute its digest.
        self.env.cr.execute(
            "SELECT version FROM azure_ad_contact_state WHERE integration_id = %s AND contact_id = %s",
            [self.integration.id, megan.id],
        )
        self.assertEqual(self.env.cr.fetchone()[0], after.version)

    def test_a_record_with_only_the_changed_properties_updates_just_those(self):
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "Chief Financial Officer"})
        self.fake.update_user(CONTOSO_ID, ALEX, {"mobilePhone": None})
        before = self.stored_users()[ADELE]
        result = self.sync()
        self.assertEqual((result["updated"], result["unchanged"]), (2, 13))
        # Microsoft sent the id and the changed property (Prefer: return=minimal), nothing else.
        delta_requests = [r for r in self.fake.stats()["requests"] if "/users/delta" in r["path"]]
        self.assertEqual(len(delta_requests), 1)
        adele = self.contact("adele.vance@contoso.example")
        self.assertEqual((adele.name, adele.function), ("Adele Vance", "Chief Financial Officer"))
        self.assertFalse(self.contact("alex.wilber@contoso.example").mobile)
        self.assertEqual(self.stored_users()[ADELE], {**before, "jobTitle": "Chief Financial Officer"})

    def test_a_local_edit_is_overwritten_when_microsoft_reports_no_change(self):
        megan = self.contact("megan.bowen@contoso.example")
        megan.write({"name": "Megan (edited in Odoo)", "function": "Boss", "phone": "+49 30 999"})
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual(self.graph_reads(), (0, 1))
        self.assertEqual((result["updated"], result["unchanged"]), (1, 14))
        self.assertEqual(megan.name, "Megan Bowen")
        self.assertEqual(megan.function, self.fake.tenant(CONTOSO_ID)["users"][2]["jobTitle"] or False)
        self.assertEqual(megan.phone, "+49 30 999")  # not a synced field

    def test_a_contact_deleted_in_odoo_comes_back_though_microsoft_reports_no_change(self):
        self.contact("adele.vance@contoso.example").unlink()
        self.integration.disabled_action = "archive"  # an option the planner reads, not the round
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["created"]), ("delta", 1))
        self.assertEqual(self.contact("adele.vance@contoso.example").sudo().azure_ad_object_id, ADELE)
        again = self.sync()
        self.assertEqual((again["created"], again["updated"], again["unchanged"]), (0, 0, 15))
        self.assertEqual(again["skipped"], result["skipped"])

    def test_an_email_edited_in_odoo_makes_a_new_contact(self):
        adele = self.contact("adele.vance@contoso.example")
        adele.email = "adele.private@example.com"
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual((result["created"], result["updated"]), (1, 1))
        self.assertFalse(adele.azure_ad_synced)
        new = self.contact("adele.vance@contoso.example")
        self.assertEqual((new.azure_ad_object_id, new.azure_ad_synced), (ADELE, True))

    def test_new_disabled_and_guest_users_as_a_full_listing_sees_them(self):
        self.integration.disabled_action = "archive"
        new = user("00000000-0000-4000-8000-000000000001", "new@contoso.example", "N", "O")
        self.fake.add_user(CONTOSO_ID, new)
        self.fake.update_user(CONTOSO_ID, ALEX, {"accountEnabled": False})
        guest = user("00000000-0000-4000-8000-000000000002", "g@else.example", "G", "Uest", userType="Guest")
        self.fake.add_user(CONTOSO_ID, guest)
        delta = self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual((delta["created"], delta["archived"]), (1, 1))
        self.assertFalse(self.contact("alex.wilber@contoso.example").active)
        self.assertFalse(self.contact("g@else.example"))
        # A full reconcile now finds nothing left to do, and the same skips.
        full = self.integration.with_context(azure_ad_full_sync=True).sync_contacts()[0]
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual((full["created"], full["updated"], full["archived"]), (0, 0, 0))
        self.assertEqual(full["skipped"], delta["skipped"])


class TestLeavers(DeltaCase):
    def setUp(self):
        super().setUp()
        self.integration.deleted_action = "archive"

    def test_a_deleted_user_restorable_for_30_days_is_archived_and_comes_back(self):
        self.fake.delete_user(CONTOSO_ID, LEE)  # @removed reason "changed"
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual(result["archived"], 1)
        lee = self.contact("lee.gu@contoso.example")
        self.assertEqual((lee.active, lee.sudo().azure_ad_archived), (False, True))
        self.assertNotIn(LEE, self.stored_users())
        # Restored within 30 days: Microsoft reports the user as changed again.
        restored = next(u for u in CONTOSO["users"] if u["id"] == LEE)
        self.fake.add_user(CONTOSO_ID, restored)
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["updated"]), ("delta", 1))
        self.assertTrue(lee.active)

    def test_a_user_deleted_for_good_is_archived(self):
        self.fake.delete_user(CONTOSO_ID, LEE, permanent=True)  # @removed reason "deleted"
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["archived"]), ("delta", 1))
        self.assertFalse(self.contact("lee.gu@contoso.example").active)


class TestFullRounds(DeltaCase):
    def test_an_expired_state_lists_every_user(self):
        self.fake.expire_delta_tokens(CONTOSO_ID)
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual((result["updated"], result["unchanged"]), (1, 14))
        users, delta = self.graph_reads()
        self.assertEqual((users, delta), (1, 2))  # the 410, the link from now on, the listing
        # ... and the next sync asks for the changes again.
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")

    def test_an_option_change_lists_every_user(self):
        self.integration.include_guests = True
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual(result["created"], 2)  # the two guests
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.integration.map_department = True  # a property the stored users lack
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")

    def test_a_group_membership_change_is_noticed(self):
        self.integration.write(
            {
                "group_ids": CUSTOMER_FACING,
                "deleted_action": "archive",
                "archive_max_count": 0,
                "archive_max_percent": 0,
            }
        )
        self.sync()  # the non-members are archived
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        nestor = self.contact("nestor.wilke@contoso.example")
        self.assertFalse(nestor.active)
        # Adele leaves the group, Nestor joins: no user changed, only the membership.
        groups = self.fake.tenant(CONTOSO_ID)["groups"]
        for group in groups:
            if group["id"] == CUSTOMER_FACING:
                group["members"].remove(ADELE)
                group["members"].append(NESTOR)
        self.fake.set_groups(CONTOSO_ID, groups)
        result = self.sync()
        # Of Nestor, filtered out so far, only what filtered him out was kept: listed again.
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual((result["archived"], result["updated"]), (1, 1))
        self.assertFalse(self.contact("adele.vance@contoso.example").active)
        self.assertTrue(nestor.active)

    def test_full_sync_on_demand_and_as_a_scheduled_safety_net(self):
        self.integration.action_full_sync()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.integration.action_sync_now()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.integration.full_sync_interval_days = 7
        self.integration.last_full_sync_date = fields.Datetime.now() - timedelta(days=8)
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertGreater(self.integration.last_full_sync_date, fields.Datetime.now() - timedelta(minutes=5))

    def test_disconnect_forgets_the_delta_state(self):
        self.assertTrue(self.integration.sudo().delta_link)
        self.integration.action_disconnect()
        self.assertFalse(self.integration.sudo().delta_link)
        self.assertEqual(self.stored_users(), {})
        self.connect()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual(len(self.stored_users()), 21)


class TestContactState(DeltaCase):
    """What a run keeps of the contacts for the next one is one row per contact, and a
    changes-only run reads and writes the rows, and the contacts, that it touches only."""

    def state_rows(self):
        """{contact id: (email key, object id, standing edit, the row's version)}."""
        self.env.cr.execute(
            """SELECT contact_id, email_key, object_id, standing_edit, xmin::text
                 FROM azure_ad_contact_state WHERE integration_id = %s""",
            [self.integration.id],
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    def contacts_read(self):
        """Records the contact ids each read of the customer's contacts asked for (None: all)."""
        calls = []
        partner_class = type(self.env["res.partner"])
        read = partner_class._azure_ad_existing_contacts

        def recorded(partners, integration, contact_ids=None):
            # Not the reads of this suite's check against the full plan (see common.py).
            if not any(frame.name == full_plan_difference.__name__ for frame in traceback.extract_stack()):
                calls.append(None if contact_ids is None else set(contact_ids))
            return read(partners, integration, contact_ids)

        self.patch(partner_class, "_azure_ad_existing_contacts", recorded)
        return calls

    def test_every_contact_has_a_row_as_the_run_left_it(self):
        rows = self.state_rows()
        contacts = self.contacts().with_context(active_test=False)
        self.assertEqual(set(rows), set(contacts.ids))
        adele = self.contact("adele.vance@contoso.example")
        self.assertEqual(rows[adele.id][:3], ("adele.vance@contoso.example", ADELE, None))

    def test_a_change_rewrites_the_rows_of_its_contacts_only(self):
        before = self.state_rows()
        calls = self.contacts_read()
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "Chief Financial Officer"})
        megan = self.contact("megan.bowen@contoso.example")
        megan.email = "megan.private@example.com"  # edited in Odoo: her user gets a new contact
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["created"], result["updated"]), ("delta", 1, 2))
        after = self.state_rows()
        adele = self.contact("adele.vance@contoso.example")
        new_megan = self.contact("megan.bowen@contoso.example")
        rewritten = {contact_id for contact_id in after if after[contact_id] != before.get(contact_id)}
        self.assertEqual(rewritten, {adele.id, megan.id, new_megan.id})
        self.assertEqual(after[megan.id][:2], ("megan.private@example.com", None))
        self.assertEqual(after[new_megan.id][:2], ("megan.bowen@contoso.example", MEGAN))
        # Never every contact: only those changed, tied to a change, or written.
        self.assertNotIn(None, calls)
        self.assertLessEqual(set().union(*calls), {adele.id, megan.id, new_megan.id})

    def test_nothing_changed_reads_no_contact_and_writes_no_row(self):
        before = self.state_rows()
        calls = self.contacts_read()
        self.sync()
        self.assertEqual(self.state_rows(), before)
        self.assertEqual([ids for ids in calls if ids], [])
        self.assertNotIn(None, calls)

    def test_a_login_given_to_a_contact_is_seen_without_a_change_of_the_contact(self):
        """A contact's user changes what the planner reads of it, not the contact's row."""
        self.integration.deleted_action = "archive"
        adele = self.contact("adele.vance@contoso.example")
        self.env["res.users"].create(
            {
                "login": "adele",
                "partner_id": adele.id,
                series.GROUPS_FIELD: [Command.set(self.env.ref("base.group_portal").ids)],
            }
        )
        self.fake.delete_user(CONTOSO_ID, ADELE)
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["archived"]), ("delta", 0))
        self.assertEqual(self.state_rows()[adele.id][2], "has_login")
        self.assertTrue(adele.active)
        # Kept so while she stays so, though no later change concerns her.
        self.fake.update_user(CONTOSO_ID, ALEX, {"jobTitle": "Boss"})
        self.sync()
        self.assertEqual(self.last_log().other_edits, {"has_login": 1})

    def test_disconnect_forgets_the_rows(self):
        self.integration.action_disconnect()
        self.assertEqual(self.state_rows(), {})


class TestDeltaEdgeCases(DeltaCase):
    """What Microsoft's documentation allows a delta round to answer beyond the plain case,
    each switched on in the fake (see EntraState.set_delta_quirks)."""

    def restore_lee(self, restored):
        """Lee deleted (archived by a sync), then restored; Microsoft sends the restore as
        `restored` says."""
        self.integration.deleted_action = "archive"
        self.fake.delete_user(CONTOSO_ID, LEE)
        self.sync()
        lee = self.contact("lee.gu@contoso.example")
        self.assertFalse(lee.active)
        self.fake.set_delta_quirks(restored=restored)
        self.fake.add_user(CONTOSO_ID, next(u for u in CONTOSO["users"] if u["id"] == LEE))
        self.fake.reset_stats()
        return lee

    def test_a_restored_user_sent_as_its_id_only_is_read_by_id(self):
        lee = self.restore_lee("id")
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["updated"], result["archived"]), ("delta", 1, 0))
        self.assertTrue(lee.active)
        self.assertEqual(self.stored_users()[LEE]["mail"], "lee.gu@contoso.example")
        self.assertEqual(self.fake.stats()["counts"]["user"], 1)  # GET /users/{id}, once
        again = self.sync()
        self.assertEqual((again["updated"], again["unchanged"]), (0, 15))

    def test_a_restored_user_not_sent_comes_back_with_the_next_full_round(self):
        lee = self.restore_lee("none")
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["updated"]), ("delta", 0))
        self.assertFalse(lee.active)  # nothing told the sync so far
        self.integration.last_full_sync_date = fields.Datetime.now() - timedelta(days=8)
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["updated"]), ("full", 1))
        self.assertTrue(lee.active)

    def test_a_new_user_is_read_by_id_and_one_deleted_meanwhile_is_not_stored(self):
        self.fake.add_user(CONTOSO_ID, user(NEW, "new@contoso.example", "N", "Ew"))
        self.fake.add_user(CONTOSO_ID, user(DUP, "gone@contoso.example", "G", "One"))
        # Between the delta page and the read by id, the second one is deleted.
        self.adapt_graph_clients(lambda client: setattr(client, "get_user", self.deleting(client.get_user)))
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["created"]), ("delta", 1))
        self.assertEqual(self.contact("new@contoso.example").name, "N Ew")
        self.assertNotIn(DUP, self.stored_users())
        self.assertFalse(self.contact("gone@contoso.example"))

    def deleting(self, get_user):
        def read(object_id, *args, **kwargs):
            if object_id == DUP and DUP in {u["id"] for u in self.fake.tenant(CONTOSO_ID)["users"]}:
                self.fake.delete_user(CONTOSO_ID, DUP)
            return get_user(object_id, *args, **kwargs)

        return read

    def test_an_expired_state_answered_400_sync_state_not_found_lists_every_user(self):
        self.fake.set_delta_quirks(expired="syncStateNotFound")
        self.fake.expire_delta_tokens(CONTOSO_ID)
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual((result["updated"], result["unchanged"]), (1, 14))
        answers = [(r["path"].split("?")[0], r["status"]) for r in self.fake.stats()["requests"]]
        self.assertIn(("/v1.0/users/delta", 400), answers)
        self.assertEqual(self.contact("adele.vance@contoso.example").function, "CFO")
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")

    def test_a_listing_behind_the_new_link_loses_no_change(self):
        """The listing of a full round lags behind `$deltatoken=latest`: a change (and a new
        user) the listing misses is past the new link, and only the last round's link still
        reports it."""
        self.sync()
        self.fake.set_stale_listing(CONTOSO_ID)
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})
        self.fake.add_user(CONTOSO_ID, user(NEW, "new@contoso.example", "N", "Ew"))
        self.integration.last_full_sync_date = fields.Datetime.now() - timedelta(days=8)
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual((result["created"], result["updated"]), (1, 1))
        self.fake.set_stale_listing(CONTOSO_ID, False)
        self.assertEqual(self.contact("adele.vance@contoso.example").function, "CFO")
        self.assertEqual(self.contact("new@contoso.example").name, "N Ew")
        again = self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual((again["created"], again["updated"], again["unchanged"]), (0, 0, 16))

    def test_replayed_items_and_empty_pages_change_nothing(self):
        self.integration.write({"deleted_action": "archive", "disabled_action": "archive"})
        self.fake.set_delta_quirks(replay=True, empty_pages=True, page_size=2)
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})
        self.fake.update_user(CONTOSO_ID, ALEX, {"mail": "alex.new@contoso.example"})
        self.fake.update_user(CONTOSO_ID, MEGAN, {"accountEnabled": False})
        self.fake.delete_user(CONTOSO_ID, LEE)
        self.fake.add_user(CONTOSO_ID, user(NEW, "new@contoso.example", "N", "Ew"))
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        pages = [r for r in self.fake.stats()["requests"] if r["path"].startswith("/v1.0/users/delta")]
        self.assertEqual(len(pages), 8)  # four pages of two items (one replayed), each after an empty one
        counts = (result["created"], result["updated"], result["archived"], result["unchanged"])
        # New and Alex (a new address: a new contact, the old one unlinked), Adele; Megan and Lee.
        self.assertEqual(counts, (2, 2, 2, 11))
        self.assertEqual(self.contact("adele.vance@contoso.example").function, "CFO")
        # A full reconcile finds nothing left to do, and the same skips.
        full = self.integration.with_context(azure_ad_full_sync=True).sync_contacts()[0]
        self.assertEqual((full["created"], full["updated"], full["archived"]), (0, 0, 0))
        self.assertEqual(full["skipped"], result["skipped"])


class TestFilteredOutUsers(DeltaCase):
    """Of a user the options filter out, the store keeps only what decided it: no name,
    address, phone or title. What would need the rest reads it from Microsoft again."""

    def stored_rows(self):
        self.env.cr.execute(
            "SELECT object_id, data, email_key, skip_reason FROM azure_ad_directory_user"
            " WHERE integration_id = %s",
            [self.integration.id],
        )
        return {row[0]: row[1:] for row in self.env.cr.fetchall()}

    def test_a_guest_or_disabled_user_is_stored_with_only_what_filtered_it_out(self):
        rows = self.stored_rows()
        christie, grady = rows[CHRISTIE], rows[GRADY]
        kept = {"id": CHRISTIE, "userType": "Guest", "accountEnabled": True}
        self.assertEqual(christie, (kept, None, "guest"))
        kept = {"id": GRADY, "userType": "Member", "accountEnabled": False}
        self.assertEqual(grady, (kept, None, "disabled"))
        self.assertEqual(rows[ADELE][1], "adele.vance@contoso.example")  # users let in: all of it
        self.assertEqual(rows[ADELE][0]["jobTitle"], "Retail Manager")
        # A change of what they have no contact for stores nothing of it, and reads nothing more.
        self.fake.update_user(CONTOSO_ID, CHRISTIE, {"jobTitle": "Consultant", "mobilePhone": "+1 555"})
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["created"]), ("delta", 0))
        self.assertEqual(self.stored_rows()[CHRISTIE], christie)
        self.assertEqual(self.graph_reads(), (0, 1))

    def test_a_filtered_out_user_let_in_by_microsoft_is_read_whole(self):
        self.fake.update_user(CONTOSO_ID, CHRISTIE, {"userType": "Member"})
        self.fake.update_user(CONTOSO_ID, GRADY, {"accountEnabled": True})
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["created"]), ("delta", 2))
        self.assertEqual(self.fake.stats()["counts"]["user"], 2)  # GET /users/{id} each
        christie = self.contact("christie.cline@fabrikam.example")
        self.assertEqual((christie.name, christie.function), ("Christie Cline", "Buyer"))
        self.assertEqual(self.contact("grady.archie@contoso.example").name, "Grady Archie")

    def test_a_user_joining_the_filter_group_lists_every_user_again(self):
        self.integration.group_ids = CUSTOMER_FACING
        self.sync()
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual(self.stored_rows()[NESTOR][2], "not_in_group")
        self.assertEqual(set(self.stored_rows()[NESTOR][0]), {"id", "userType", "accountEnabled"})
        groups = self.fake.tenant(CONTOSO_ID)["groups"]
        for group in groups:
            if group["id"] == CUSTOMER_FACING:
                group["members"].append(NESTOR)
        self.fake.set_groups(CONTOSO_ID, groups)
        result = self.sync()
        self.assertEqual(self.last_log().sync_mode, "full")  # Nestor's data was not kept
        self.assertEqual(result["updated"], 0)
        nestor = self.contact("nestor.wilke@contoso.example")
        self.assertEqual((nestor.name, nestor.sudo().azure_ad_object_id), ("Nestor Wilke", NESTOR))
        # Leaving the group again needs nothing but the id: changes only.
        for group in groups:
            if group["id"] == CUSTOMER_FACING:
                group["members"].remove(NESTOR)
        self.fake.set_groups(CONTOSO_ID, groups)
        self.sync()
        self.assertEqual(self.last_log().sync_mode, "delta")
        self.assertEqual(set(self.stored_rows()[NESTOR][0]), {"id", "userType", "accountEnabled"})


class TestOverlappedListing(DeltaCase):
    """The full round fetches the next page in a worker thread while this one is stored."""

    def listing(self, then=None):
        """The listing in pages of 5 users; `then()` runs after the last one."""

        def small_pages(client):
            fetch = client.iter_user_pages

            def pages(*page_args, **page_kwargs):
                yield from fetch(*page_args, **{**page_kwargs, "top": 5})
                if then:
                    then()

            client.iter_user_pages = pages

        self.adapt_graph_clients(small_pages)

    def snapshot(self):
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT id, name, function, mobile, active, azure_ad_object_id, write_date FROM res_partner"
            " WHERE parent_id = %s ORDER BY id",
            [self.customer.id],
        )
        return self.env.cr.fetchall(), self.stored_users()

    def test_a_crash_in_the_fetching_thread_is_the_runs_error_and_nothing_is_written(self):
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})
        # On the first page: its contact is created while the next page is fetched.
        self.fake.add_user(CONTOSO_ID, user(NEW, "new@contoso.example"))
        self.contact("megan.bowen@contoso.example").name = "Edited"

        def crash():
            raise RuntimeError("the worker broke")

        self.listing(then=crash)
        before = self.snapshot()
        with self.assertRaisesRegex(RuntimeError, "the worker broke"):
            self.integration.with_context(azure_ad_full_sync=True).sync_contacts()
        self.assertEqual(self.snapshot(), before)

    def test_new_users_are_created_while_the_next_page_is_fetched(self):
        self.integration.action_disconnect()
        self.contacts().unlink()
        self.fake.add_user(CONTOSO_ID, user(NEW, "new@contoso.example"))
        # Two users with one email on different pages: the smaller id wins, one contact.
        self.fake.add_user(CONTOSO_ID, user("ffffffff-0000-4000-8000-000000000002", "Dup@x.example", "Z"))
        self.fake.add_user(CONTOSO_ID, user(DUP, "dup@x.example", "A"))

        self.listing()
        result = self.connect()
        self.assertEqual(self.last_log().sync_mode, "full")
        self.assertEqual((result["created"], result["updated"], result["unchanged"]), (17, 0, 0))
        dup = self.contact("dup@x.example")
        self.assertEqual((dup.name, dup.sudo().azure_ad_object_id), ("A", DUP))
        # A full reconcile agrees with what was created page by page.
        again = self.integration.with_context(azure_ad_full_sync=True).sync_contacts()[0]
        self.assertEqual((again["created"], again["updated"], again["unchanged"]), (0, 0, 17))

    def test_a_first_sync_asks_for_the_link_beside_its_first_page(self):
        """Microsoft's latency is paid once before the first page, not twice: "sync from now"
        and the first page are in flight together (the fake's log), the later pages are asked
        for once the link is in hand, and the link carries the next round."""
        self.integration.action_disconnect()
        self.contacts().unlink()
        self.listing()  # pages of 5
        self.fake.set_graph_latency(150, jitter=0)
        self.fake.reset_stats()
        result = self.connect()
        self.fake.set_graph_latency(0)
        self.assertEqual((self.last_log().sync_mode, result["created"], result["unchanged"]), ("full", 15, 0))
        requests = self.fake.stats()["requests"]
        [link] = [r for r in requests if "$deltatoken=latest" in r["path"]]
        first, *later = [r for r in requests if r["path"].startswith("/v1.0/users?$select=")]
        self.assertLess(link["received"], first["answered"])
        self.assertLess(first["received"], link["answered"])
        pages = -(-len(self.fake.tenant(CONTOSO_ID)["users"]) // 5)
        self.assertEqual(len(later), pages - 1)
        self.assertTrue(all(page["received"] > link["answered"] for page in later))
        self.assertEqual(self.last_log().graph_requests, pages + 1)  # the link, the pages
        self.assertEqual(self.fake.stats()["counts"]["token"], 1)  # kept for the next run
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})
        self.fake.reset_stats()
        again = self.sync()
        self.assertEqual((self.last_log().sync_mode, again["updated"], again["unchanged"]), ("delta", 1, 14))
        self.assertEqual(self.graph_reads(), (0, 1))
        self.assertEqual(self.fake.stats()["counts"]["token"], 0)

    def test_a_graph_error_on_a_later_page_fails_the_run_cleanly(self):
        self.fake.update_user(CONTOSO_ID, ADELE, {"jobTitle": "CFO"})

        self.listing()
        self.fake.add_fault(kind="malformed", target="users", after=2)
        before = self.snapshot()
        result = self.integration.with_context(azure_ad_full_sync=True).sync_contacts()[0]
        self.assertIn("malformed data", result["error"])
        self.assertEqual(self.snapshot(), before)
        self.assertEqual(self.last_log().state, "failed")
        # The state is unchanged: the next changes-only round still sees Adele's change.
        result = self.sync()
        self.assertEqual((self.last_log().sync_mode, result["updated"]), ("delta", 1))


class TestPlansOfChangesOnly(DeltaCase):
    """A changes-only round plans again only the users its changes concern (in Microsoft or
    in Odoo) and counts the others as the last run left them. Random rounds of such changes,
    each sync checked against the plan of every stored user (see common.py: every test does
    so; here the changes are chosen to tie users and contacts together)."""

    ROUNDS = 6

    def mutate_tenant(self, rng, users):
        ids = sorted(users)
        for _ in range(rng.randint(1, 4)):
            object_id = rng.choice(ids)
            if object_id not in users:
                continue
            action = rng.choice(["title", "mail_taken", "mail_new", "disable", "guest", "delete", "add"])
            if action == "title":
                self.fake.update_user(CONTOSO_ID, object_id, {"jobTitle": f"Title {rng.random():.6f}"})
            elif action == "mail_taken":  # two users with one address: the smaller id wins
                other = users[rng.choice(ids)]
                self.fake.update_user(CONTOSO_ID, object_id, {"mail": other["mail"].upper()})
            elif action == "mail_new":
                moved = f"moved{rng.randint(0, 9)}@contoso.example"
                self.fake.update_user(CONTOSO_ID, object_id, {"mail": moved})
            elif action == "disable":
                self.fake.update_user(CONTOSO_ID, object_id, {"accountEnabled": rng.random() < 0.5})
            elif action == "guest":
                self.fake.update_user(CONTOSO_ID, object_id, {"userType": rng.choice(["Guest", "Member"])})
            elif action == "delete":
                self.fake.delete_user(CONTOSO_ID, object_id, permanent=rng.random() < 0.3)
                users.pop(object_id)
            else:
                self.fake.add_user(
                    CONTOSO_ID,
                    user(
                        f"0000{rng.randint(0, 9999):04d}-0000-4000-8000-00000000000{rng.randint(0, 9)}",
                        rng.choice([u["mail"] for u in users.values()] + ["newcomer@contoso.example"]),
                        "New",
                        "Comer",
                    ),
                )

    def mutate_contacts(self, rng, users):
        contacts = self.contacts()
        for _ in range(rng.randint(0, 3)):
            contact = rng.choice(contacts)
            if not contact.exists():
                continue
            action = rng.choice(["email", "name", "delete", "duplicate", "archive", "pin"])
            if action == "email":
                contact.email = rng.choice([u["mail"] for u in users.values()] + ["edited@contoso.example"])
            elif action == "name":
                contact.name = f"Edited {rng.random():.6f}"
            elif action == "delete":
                contact.unlink()
            elif action == "duplicate":
                email = contact.email or "x@contoso.example"
                self.env["res.partner"].create({"name": "Own", "email": email, "parent_id": self.customer.id})
            elif action == "archive":
                contact.active = not contact.active
            else:
                contact.sudo().write(
                    {rng.choice(["azure_ad_never_overwrite", "azure_ad_never_archive"]): rng.random() < 0.7}
                )

    def check_random_rounds(self, seed, **options):
        self.integration.write(options)
        self.integration.action_full_sync()  # the options' first run lists every user
        rng = random.Random(seed)
        modes = []
        for _ in range(self.ROUNDS):
            users = {u["id"]: u for u in self.fake.tenant(CONTOSO_ID)["users"]}
            self.mutate_tenant(rng, users)
            self.mutate_contacts(rng, users)
            self.sync()
            modes.append(self.last_log().sync_mode)
        self.assertEqual(modes, ["delta"] * self.ROUNDS)

    def test_basic_options(self):
        self.check_random_rounds(1)

    def test_leavers_archived(self):
        self.check_random_rounds(2, disabled_action="archive", deleted_action="archive")

    def test_emails_followed_guests_included(self):
        self.check_random_rounds(3, follow_email_changes=True, include_guests=True, deleted_action="archive")

    def test_disabled_included_and_patterns(self):
        self.check_random_rounds(
            4, include_disabled=True, exclude_patterns="moved*", disabled_action="archive"
        )
