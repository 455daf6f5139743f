"""The reconciliation options (README "Beyond the basics"), rule by rule, on the
plain-Python plan: leavers, filters, pins, email follow, extra mappings, other tenants, digest."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.addons.azure_ad_contacts.utils import reconcile
from odoo.addons.azure_ad_contacts.utils.reconcile import (
    ACTIVE_LOGIN,
    ARCHIVED_BY_SYNC,
    HAS_LOGIN,
    INACTIVE,
    INTERNAL_LOGIN,
    KEPT_ARCHIVED,
    LOGIN,
    LOGIN_EMAIL,
    NEVER_ARCHIVE,
    NEVER_OVERWRITE,
    NEW,
    OTHER_TENANT,
    Contact,
    Rules,
    build_plan,
)

from .common import graph_user as user

LICENCE = [{"skuId": "c7df2760-2c81-4ef7-b578-5b5392b571df", "disabledPlans": []}]


def synced(contact_id, usr, flags=0, synced_email=None, extra=None, **changes):
    """The active, marked contact a previous sync left for `usr`."""
    values = {
        "name": usr["displayName"],
        "function": usr["jobTitle"] or None,
        "mobile": usr["mobilePhone"] or None,
        "email": usr["mail"],
        **changes,
    }
    return Contact(
        contact_id,
        reconcile.normalize_email(values["email"]),
        usr["id"],
        True,
        values["name"],
        values["function"],
        values["mobile"],
        flags,
        reconcile.normalize_email(synced_email),
        extra,
    )


def plan_for(users, contacts=(), **rules):
    return build_plan([users], contacts, rules=Rules(**rules))


# Leavers


def test_leavers_are_kept_by_default():
    contacts = [synced(1, user("u1")), synced(2, user("u2"))]
    plan = plan_for([user("u1", accountEnabled=False)], contacts)
    assert plan.archives == {} and plan.linked == 2
    assert (plan.updates, plan.unlink_ids, plan.creates) == ({}, [], [])


def test_disabled_and_deleted_users_have_separate_actions():
    contacts = [synced(1, user("u1")), synced(2, user("u2")), synced(3, user("u3"))]
    users = [user("u1", accountEnabled=False), user("u3")]
    assert plan_for(users, contacts, archive_disabled=True).archives == {1: "disabled"}
    assert plan_for(users, contacts, archive_deleted=True).archives == {2: "deleted"}
    both = plan_for(users, contacts, archive_disabled=True, archive_deleted=True)
    assert both.archives == {1: "disabled", 2: "deleted"}
    assert both.counts() == {"created": 0, "updated": 0, "unchanged": 1, "skipped": 1}
    assert both.archived == 2


def test_users_no_longer_in_the_filters_are_deleted_leavers_with_their_reason():
    contacts = [synced(1, user("u1")), synced(2, user("u2")), synced(3, user("u3"))]
    users = [
        user("u1", userType="Guest"),
        user("u2", assignedLicenses=[]),
        user("u3", mail=None, assignedLicenses=LICENCE),
    ]
    plan = plan_for(users, contacts, archive_deleted=True, licensed_only=True)
    assert plan.archives == {1: "guest", 2: "unlicensed", 3: "no_email"}
    # Included disabled accounts are users like the others, not leavers.
    plan = plan_for(
        [user("u1", accountEnabled=False)], contacts[:1], archive_disabled=True, include_disabled=True
    )
    assert plan.archives == {} and plan.unchanged == 1


def test_only_active_contacts_the_sync_linked_are_archived():
    gone = user("gone")
    contacts = [
        Contact(1, "local@contoso.com"),  # helpdesk-only contact
        Contact(2, "gone@contoso.com", "gone", False),  # link without the mark
        synced(3, gone, flags=NEVER_ARCHIVE),
        synced(4, gone, flags=INACTIVE),  # archived in Odoo already
        synced(5, gone, flags=OTHER_TENANT),  # linked by another tenant: its object id is not ours
    ]
    contacts[4].object_id = None
    plan = plan_for([], contacts, archive_deleted=True, archive_disabled=True)
    assert plan.archives == {}
    assert plan.linked == 1  # only contact 3 is active and marked for this integration


def test_a_leaver_whose_user_lives_on_elsewhere_is_not_archived():
    # The email was changed in Odoo; the user gets a new contact, the old one is unlinked.
    usr = user("u1")
    plan = plan_for([usr], [synced(1, usr, email="private@example.com")], archive_deleted=True)
    assert plan.archives == {} and plan.unlink_ids == [1] and plan.created == 1


def test_archived_leaver_comes_back_when_its_user_returns():
    usr = user("u1", jobTitle="CFO")
    back = synced(1, usr, flags=INACTIVE | ARCHIVED_BY_SYNC)
    plan = plan_for([usr], [back])
    assert plan.updates == {1: {"active": True, "azure_ad_archived": False}}
    assert plan.other_edits == {}
    # Archived by hand (not by the sync): matched by email, but leaves it archived, and says so.
    plan = plan_for([usr], [synced(1, usr, flags=INACTIVE)])
    assert plan.updates == {} and plan.unchanged == 1
    assert plan.other_edits == {1: KEPT_ARCHIVED}


def test_duplicates_and_replays_are_not_leavers():
    contacts = [synced(1, user("u2", mail="dup@x.y"))]
    users = [user("u1", mail="dup@x.y"), user("u2", mail="DUP@x.y"), user("u1", mail="dup@x.y")]
    plan = plan_for(users, contacts, archive_deleted=True, archive_disabled=True)
    # u1 wins the address (smallest object id) and takes the contact over: moved, not archived.
    assert plan.archives == {} and plan.updates[1]["azure_ad_object_id"] == "u1"


def test_a_leaver_with_an_active_login_is_kept_and_noted():
    contacts = [
        synced(1, user("u1"), flags=LOGIN | ACTIVE_LOGIN),  # a portal user
        synced(2, user("u2"), flags=LOGIN | ACTIVE_LOGIN | INTERNAL_LOGIN),  # an employee
        synced(3, user("u3"), flags=LOGIN),  # an archived login keeps nobody from archiving
        synced(4, user("u4")),
    ]
    plan = plan_for([], contacts, archive_deleted=True)
    assert plan.archives == {3: "deleted", 4: "deleted"}
    assert plan.other_edits == {1: HAS_LOGIN, 2: HAS_LOGIN}
    assert plan.other_edit_counts() == Counter({HAS_LOGIN: 2})
    plan = plan_for([], contacts, archive_deleted=True, archive_portal_logins=True)
    assert plan.archives == {1: "deleted", 3: "deleted", 4: "deleted"}
    assert plan.other_edits == {2: HAS_LOGIN}
    # Not a leaver: nothing to note.
    assert plan_for([user("u1")], contacts[:1], archive_deleted=True).other_edits == {}


# Filters


def test_licensed_only_skips_users_without_a_licence():
    users = [
        user("u1", assignedLicenses=LICENCE),
        user("u2", assignedLicenses=[]),
        user("u3"),
        user("u4", assignedLicenses=None),
    ]
    plan = plan_for(users, licensed_only=True)
    assert plan.skipped == Counter(unlicensed=3) and plan.created == 1
    assert plan_for(users).created == 4
    assert Rules(licensed_only=True).graph_properties() == ("assignedLicenses",)
    assert Rules().graph_properties() == ()


@pytest.mark.parametrize(
    "patterns, skipped",
    [
        (("noreply*",), {"noreply"}),
        (("*room*@*",), {"room"}),
        (("NOREPLY*", " *ROOM*@* ", ""), {"noreply", "room"}),
        (("scan?@contoso.com",), {"scan"}),
        (("*@contoso.onmicrosoft.com",), {"noreply", "scan", "ann"}),  # their UPNs
        (("ann@contoso.com",), {"ann"}),
        ((), set()),
    ],
)
def test_mailboxes_are_excluded_by_glob_patterns_on_email_and_upn(patterns, skipped):
    users = [
        user("noreply", mail="NoReply@contoso.com"),
        user("room", mail="b12@contoso.com", userPrincipalName="MeetingRoom.B12@contoso.com"),
        user("scan", mail="scan1@contoso.com"),
        user("ann", mail="Ann@Contoso.com"),
    ]
    plan = plan_for(users, exclude_patterns=patterns)
    assert plan.skipped == Counter(excluded=len(skipped))
    assert {v["azure_ad_object_id"] for v in plan.creates} == {"noreply", "room", "scan", "ann"} - skipped


def test_group_filter_keeps_only_members_case_insensitively():
    users = [user("AA-1"), user("bb-2"), user("cc-3", accountEnabled=False)]
    plan = plan_for(users, group_member_ids=frozenset({"aa-1", "cc-3"}))
    assert [v["azure_ad_object_id"] for v in plan.creates] == ["AA-1"]
    assert plan.skipped == Counter(not_in_group=1, disabled=1)
    assert plan_for(users, group_member_ids=frozenset()).skipped == Counter(not_in_group=2, disabled=1)


def test_skip_callback_sees_every_skip_with_a_label():
    seen = []
    users = [
        user("u1", userType="Guest"),
        {"id": None, "displayName": "Broken"},
        user("u2", mail=None, displayName="No Mail"),
        user("u3", mail="d@x.y"),
        user("u4", mail="D@x.y"),
        user("u1"),
    ]
    build_plan([users], [], on_skip=lambda *args: seen.append(args))
    assert seen == [
        ("u1", "u1@contoso.com", "guest"),
        (None, "Broken", "invalid"),
        ("u2", "No Mail", "no_email"),
        ("u4", "D@x.y", "duplicate_email"),
        ("u1", "u1@contoso.com", "duplicate_user"),
    ]


# Pins


def test_never_overwrite_links_and_marks_but_writes_no_field():
    usr = user("u1", jobTitle="CFO", mobilePhone="+41")
    pinned = Contact(1, "u1@contoso.com", None, False, "VIP", "Chief", None, NEVER_OVERWRITE)
    plan = plan_for([usr], [pinned], extra_fields=("phone",))
    assert plan.updates == {1: {"azure_ad_object_id": "u1", "azure_ad_synced": True}}
    linked = synced(1, usr, flags=NEVER_OVERWRITE, name="VIP", function="Chief")
    plan = plan_for([usr], [linked])
    assert plan.updates == {} and plan.unchanged == 1


# Email changed in Entra


def test_contact_follows_an_email_changed_in_entra():
    old = user("u1", mail="ann@old.example")
    contact = synced(1, old, synced_email="ann@old.example")
    new = dict(old, mail="Ann@New.example")
    plan = plan_for([new], [contact], follow_email=True)
    assert plan.updates == {1: {"email": "Ann@New.example", "azure_ad_synced_email": "Ann@New.example"}}
    assert (plan.creates, plan.unlink_ids) == ([], [])
    # Without the option, as for an email changed in Odoo: a new contact, the old one loses its link.
    plan = plan_for([new], [contact])
    assert plan.created == 1 and plan.unlink_ids == [1]


def test_email_changed_in_odoo_still_gives_a_new_contact():
    usr = user("u1", mail="ann@contoso.com")
    edited = synced(1, usr, email="ann.private@example.com", synced_email="ann@contoso.com")
    plan = plan_for([usr], [edited], follow_email=True)
    assert plan.unlink_ids == [1]
    assert plan.creates == [
        {
            "name": "U1",
            "email": "ann@contoso.com",
            "function": False,
            "mobile": False,
            "azure_ad_object_id": "u1",
            "azure_ad_synced_email": "ann@contoso.com",
        }
    ]


def test_follow_records_the_synced_email_and_wins_over_a_newcomer_with_the_old_address():
    ann, bob = user("u1", mail="shared@x.y"), user("u2", mail="bob@x.y")
    contacts = [synced(1, ann), synced(2, bob)]
    plan = plan_for([ann, bob], contacts, follow_email=True)  # first run with the option
    assert plan.updates == {
        1: {"azure_ad_synced_email": "shared@x.y"},
        2: {"azure_ad_synced_email": "bob@x.y"},
    }
    contacts = [synced(1, ann, synced_email="shared@x.y"), synced(2, bob, synced_email="bob@x.y")]
    # Ann moves to a new address; Bob takes over her old one: each keeps their contact.
    moved = [dict(ann, mail="ann@x.y"), dict(bob, mail="shared@x.y")]
    plan = plan_for(moved, contacts, follow_email=True)
    assert plan.updates == {
        1: {"email": "ann@x.y", "azure_ad_synced_email": "ann@x.y"},
        2: {"email": "shared@x.y", "azure_ad_synced_email": "shared@x.y"},
    }
    assert (plan.creates, plan.unlink_ids) == ([], [])


def test_a_contact_with_a_login_keeps_its_email_and_its_user_gets_a_contact():
    old = user("u1", mail="ann@old.example")
    contact = synced(1, old, flags=LOGIN, synced_email="ann@old.example")
    plan = plan_for([dict(old, mail="ann@new.example")], [contact], follow_email=True)
    assert (plan.updates, plan.unlink_ids, plan.created) == ({}, [1], 1)
    assert plan.creates[0]["email"] == "ann@new.example"
    assert plan.other_edits == {1: LOGIN_EMAIL}
    # Its email unchanged in Entra: synced as any contact.
    plan = plan_for([dict(old, jobTitle="CFO")], [contact], follow_email=True)
    assert plan.updates == {1: {"function": "CFO"}} and plan.other_edits == {}


def test_a_contact_created_this_run_takes_the_email_of_the_user_that_won_it():
    loser, winner = user("bb", mail="dup.user@x.y"), user("aa", mail="Dup.User@X.Y")
    early = synced(1, loser, flags=NEW)
    plan = plan_for([loser, winner], [early])
    assert plan.updates[1]["email"] == "Dup.User@X.Y"
    assert plan.updates[1]["azure_ad_object_id"] == "aa"
    # Any other contact keeps its spelling of the address.
    plan = plan_for([loser, winner], [synced(1, loser)])
    assert "email" not in plan.updates[1]


def test_pinned_contact_keeps_following_without_changing():
    old = user("u1", mail="a@old.example")
    pinned = synced(1, old, flags=NEVER_OVERWRITE, synced_email="a@old.example")
    plan = plan_for([dict(old, mail="a@new.example")], [pinned], follow_email=True)
    assert (plan.updates, plan.creates, plan.unlink_ids, plan.unchanged) == ({}, [], [], 1)


# Extra mappings


def test_extra_mappings_are_read_written_and_mirrored():
    usr = user(
        "u1",
        businessPhones=[" ", "+1 425 555 0100"],
        department="Sales",
        companyName="Contoso",
        officeLocation=" 18/2111 ",
    )
    fields = ("phone", "azure_ad_department", "azure_ad_company_name", "azure_ad_office")
    plan = plan_for([usr], extra_fields=fields)
    assert plan.creates == [
        {
            "name": "U1",
            "email": "u1@contoso.com",
            "function": False,
            "mobile": False,
            "azure_ad_object_id": "u1",
            "phone": "+1 425 555 0100",
            "azure_ad_department": "Sales",
            "azure_ad_company_name": "Contoso",
            "azure_ad_office": "18/2111",
        }
    ]
    contact = synced(1, usr, extra=("+1 425 555 0100", "Sales", "Contoso", "18/2111"))
    assert plan_for([usr], [contact], extra_fields=fields).unchanged == 1
    cleared = dict(usr, department=None, businessPhones=[])
    assert plan_for([cleared], [contact], extra_fields=fields).updates == {
        1: {"phone": False, "azure_ad_department": False}
    }
    # Off: not read, not compared (the contact's phone is Odoo's own).
    assert plan_for([cleared], [contact]).unchanged == 1
    assert Rules(extra_fields=fields).graph_properties() == (
        "businessPhones",
        "department",
        "companyName",
        "officeLocation",
    )
    with pytest.raises(ValueError, match="unknown extra fields"):
        Rules(extra_fields=("comment",))


# Several tenants for one customer


def test_a_person_already_synced_from_another_tenant_is_skipped():
    held = Contact(1, "pat@x.y", None, False, "Pat", flags=OTHER_TENANT)
    plan = plan_for([user("b-pat", mail="Pat@x.y")], [held, Contact(2, "pat@x.y")])
    assert plan.skipped == Counter(other_tenant=1)
    assert (plan.creates, plan.updates, plan.unlink_ids) == ([], {}, [])
    # A contact the other tenant archived as a leaver is taken over and active again.
    given_up = Contact(1, "pat@x.y", None, False, "Pat", flags=OTHER_TENANT | INACTIVE | ARCHIVED_BY_SYNC)
    plan = plan_for([user("b-pat", mail="pat@x.y")], [given_up])
    assert plan.updates == {
        1: {
            "name": "B-PAT",
            "azure_ad_object_id": "b-pat",
            "azure_ad_synced": True,
            "active": True,
            "azure_ad_archived": False,
        }
    }


def test_skipped_other_tenant_user_keeps_its_own_link():
    usr = user("u1", mail="pat@x.y")
    mine = synced(7, user("u1", mail="old@x.y"))
    held = Contact(1, "pat@x.y", None, False, "Pat", flags=OTHER_TENANT)
    plan = plan_for([usr], [mine, held], archive_deleted=True)
    assert plan.skipped == Counter(other_tenant=1)
    assert (plan.unlink_ids, plan.archives) == ([], {})


# The digest of a plan (preview "Apply")


def test_digest_covers_what_is_written_only():
    users = [user("u1", jobTitle="CFO"), user("u2"), user("u3", userType="Guest")]
    contacts = [synced(1, user("u1")), synced(2, user("gone"))]
    rules = {"archive_deleted": True}
    plan = plan_for(users, contacts, **rules)
    assert plan_for(list(reversed(users)), contacts, **rules).digest() == plan.digest()
    assert plan_for(users[:2], contacts, **rules).digest() == plan.digest()  # a skip less
    for changed in ([user("u1", jobTitle="CEO"), *users[1:]], users[:1], [*users, user("u4")]):
        assert plan_for(changed, contacts, **rules).digest() != plan.digest()
    assert plan_for(users, contacts).digest() != plan.digest()  # no archive


# Property: with every option, an applied plan planned again is empty


def apply(plan, rows):
    rows = {cid: dict(row) for cid, row in rows.items()}
    for cid in plan.unlink_ids:
        rows[cid].update(object_id=None, linked=False)
    for cid, vals in plan.updates.items():
        row = rows[cid]
        for name, value in vals.items():
            key = {
                "azure_ad_object_id": "object_id",
                "azure_ad_synced": "linked",
                "azure_ad_synced_email": "synced_email",
                "azure_ad_archived": "archived",
            }.get(name, name)
            row[key] = value
    for vals in plan.creates:
        rows[max(rows, default=0) + 1] = {
            "email": vals["email"],
            "object_id": vals["azure_ad_object_id"],
            "linked": True,
            "name": vals["name"],
            "function": vals["function"],
            "mobile": vals["mobile"],
            "synced_email": vals.get("azure_ad_synced_email"),
            "active": True,
            "archived": False,
        }
    for cid in plan.archives:
        rows[cid].update(active=False, archived=True)
    links = [row["object_id"] for row in rows.values() if row["object_id"]]
    assert len(links) == len(set(links))
    return rows


def to_contacts(rows, logins=()):
    """The planner's contacts of `rows`; those of `logins` (ids) have an active portal login."""
    return [
        Contact(
            cid,
            reconcile.normalize_email(row["email"]),
            row["object_id"] or None,
            row["linked"],
            row["name"],
            row["function"],
            row["mobile"],
            (0 if row["active"] else INACTIVE)
            | (ARCHIVED_BY_SYNC if row["archived"] else 0)
            | (LOGIN | ACTIVE_LOGIN if cid in logins else 0),
            reconcile.normalize_email(row["synced_email"]),
        )
        for cid, row in rows.items()
    ]


graph_users = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.sampled_from(["0a", "1b", "2c", "3d", "4e"]),
            "mail": st.sampled_from(["ann@x.y", "ANN@x.y", "bob@x.y", "cy@x.y", None]),
            "displayName": st.sampled_from(["Ann", "Bob", None]),
            "jobTitle": st.sampled_from(["CFO", None]),
            "accountEnabled": st.sampled_from([True, False]),
            "userType": st.sampled_from(["Member", "Guest"]),
            "assignedLicenses": st.sampled_from([LICENCE, []]),
        }
    ),
    max_size=8,
)


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.lists(graph_users, min_size=1, max_size=3),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.sets(st.integers(1, 6), max_size=3),
)
def test_property_every_run_converges(
    tenant_states, follow, licensed, archive_disabled, archive_deleted, logins
):
    """Successive tenant states, each synced twice: the second run of each is empty. The
    contacts of `logins` have a portal login: their email never changes."""
    rules = Rules(
        follow_email=follow,
        licensed_only=licensed,
        archive_disabled=archive_disabled,
        archive_deleted=archive_deleted,
    )
    rows = {}
    for users in tenant_states:
        plan = build_plan([users], to_contacts(rows, logins), rules=rules)
        assert not any("email" in plan.updates.get(cid, {}) or cid in plan.archives for cid in logins)
        rows = apply(plan, rows)
        again = build_plan([users], to_contacts(rows, logins), rules=rules)
        assert (again.creates, again.updates, again.unlink_ids, again.archives) == ([], {}, [], {})
        # Every user that passes the filters has exactly one contact, active, with its values.
        first = {}  # a user served twice counts as first served
        for raw in users:
            first.setdefault(raw["id"], raw)
        winners = {user.object_id for user in _winners(first.values(), rules)}
        for raw in first.values():
            rows_of_user = [row for row in rows.values() if row["object_id"] == raw["id"]]
            assert len(rows_of_user) <= 1
            if raw["id"] in winners:
                [row] = rows_of_user
                assert row["active"] and row["name"] == reconcile.contact_name(raw)


def _winners(users, rules):
    """Oracle: the users that must own a contact (filters, then the smallest object id)."""
    winners = {}
    for raw in users:
        user = reconcile._read_user(raw, raw["id"], rules, None, ())
        if isinstance(user, reconcile.EntraUser):
            key = reconcile.normalize_email(user.email)
            if key not in winners or (user.object_id.lower(), user.object_id) < (
                winners[key].object_id.lower(),
                winners[key].object_id,
            ):
                winners[key] = user
    return winners.values()
