"""The reconciliation plan rule by rule, the sanitizer, and an idempotence property."""

import gc
import itertools
import weakref
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.addons.azure_ad_contacts.utils import reconcile
from odoo.addons.azure_ad_contacts.utils.reconcile import Contact, build_plan

from .common import graph_user as user


def contact(contact_id, email, object_id=None, name=None, function=None, mobile=None):
    """A contact as the ORM passes it: normalized email; linked means it carries the mark."""
    return Contact(
        contact_id, reconcile.normalize_email(email), object_id, bool(object_id), name, function, mobile
    )


def plan_for(users, contacts=(), **options):
    return build_plan([users], contacts, **options)


def synced(contact_id, usr, **changes):
    """The contact a previous sync left for `usr`."""
    values = {
        "name": reconcile.contact_name(usr),
        "function": usr["jobTitle"] or None,
        "mobile": usr["mobilePhone"] or None,
        **changes,
    }
    return contact(
        contact_id,
        changes.get("email", usr["mail"]),
        usr["id"],
        values["name"],
        values["function"],
        values["mobile"],
    )


def apply(plan, rows):
    """Apply a plan to {id: row} the way the ORM does: unlink, then update, then create.

    After each write the unique (integration, object id) constraint must hold.
    """
    rows = {cid: dict(row) for cid, row in rows.items()}
    for cid in plan.unlink_ids:
        rows[cid].update(azure_ad_object_id=False, azure_ad_synced=False)
    for cid, vals in plan.updates.items():
        rows[cid].update(vals)
        assert_unique_links(rows)
    for vals in plan.creates:
        rows[max(rows, default=0) + 1] = {**vals, "azure_ad_synced": True}
        assert_unique_links(rows)
    return rows


def assert_unique_links(rows):
    links = [row["azure_ad_object_id"] for row in rows.values() if row["azure_ad_object_id"]]
    assert len(links) == len(set(links))


def to_contacts(rows):
    return [
        Contact(
            cid,
            reconcile.normalize_email(row["email"]),
            row["azure_ad_object_id"] or None,
            row["azure_ad_synced"],
            row["name"],
            row["function"],
            row["mobile"],
            flags=reconcile.GUEST if row.get("azure_ad_guest") else 0,
        )
        for cid, row in rows.items()
    ]


def to_rows(contacts):
    return {
        c.id: {
            "email": c.email,
            "azure_ad_object_id": c.object_id or False,
            "azure_ad_synced": c.linked,
            "name": c.name,
            "function": c.function,
            "mobile": c.mobile,
        }
        for c in contacts
    }


def assert_empty(plan):
    assert (plan.creates, plan.updates, plan.unlink_ids) == ([], {}, [])


# Matching by email


def test_email_match_ignores_case_and_blanks():
    plan = plan_for([user("u1", mail="  Ann.Lee@Contoso.COM ")], [contact(7, "ann.lee@contoso.com")])
    assert plan.creates == []
    assert set(plan.updates) == {7}


def test_no_match_creates_and_other_addresses_are_ignored():
    plan = plan_for(
        [user("u1", mail="ann@contoso.com")], [contact(7, "ann@contoso.co"), contact(8, None), contact(9, "")]
    )
    assert [vals["email"] for vals in plan.creates] == ["ann@contoso.com"]
    assert plan.updates == {}


def test_matches_only_the_given_contacts():
    # The caller passes one customer's children; another customer's contact can't be matched.
    assert plan_for([user("u1")], []).created == 1


def test_contact_email_is_normalized_defensively():
    plan = plan_for([user("u1", mail="ann@contoso.com")], [Contact(7, " ANN@contoso.com ")])
    assert list(plan.updates) == [7]


# A match: overwrite name, function, mobile; link and mark


def test_match_overwrites_fields_and_links():
    usr = user("u1", givenName="Ann", surname="Lee", jobTitle="CFO", mobilePhone="+41 79 1")
    plan = plan_for([usr], [contact(7, "u1@contoso.com", name="A. Lee", function="Clerk")])
    assert plan.updates == {
        7: {
            "name": "Ann Lee",
            "function": "CFO",
            "mobile": "+41 79 1",
            "azure_ad_object_id": "u1",
            "azure_ad_synced": True,
        }
    }


def test_empty_entra_value_empties_the_field():
    usr = user("u1", givenName="Ann", surname="Lee")
    plan = plan_for([usr], [synced(7, usr, function="CFO", mobile="+41")])
    assert plan.updates == {7: {"function": False, "mobile": False}}


def test_only_changed_fields_are_written():
    usr = user("u1", givenName="Ann", surname="Lee", jobTitle="CFO")
    plan = plan_for([usr], [synced(7, usr, mobile="+41")])
    assert plan.updates == {7: {"mobile": False}}


def test_false_none_and_empty_are_equal():
    usr = user("u1", givenName="Ann", jobTitle="", mobilePhone=None)
    for empty in (False, None, ""):
        plan = plan_for([usr], [synced(7, usr, function=empty, mobile=empty)])
        assert plan.updates == {} and plan.unchanged == 1


def test_mark_missing_is_restored():
    usr = user("u1", givenName="Ann")
    linked_without_mark = Contact(7, "u1@contoso.com", "u1", False, "Ann", None, None)
    plan = plan_for([usr], [linked_without_mark])
    assert plan.updates == {7: {"azure_ad_object_id": "u1", "azure_ad_synced": True}}


# Contacts not in Entra are untouched


def test_unmatched_contacts_are_untouched():
    gone = contact(8, "gone@contoso.com", "u-deleted", name="Gone")
    plan = plan_for([user("u1")], [contact(7, "someone@else.com"), gone])
    assert 7 not in plan.updates and 8 not in plan.updates
    assert plan.unlink_ids == []
    assert plan.created == 1


def test_filtered_user_leaves_its_linked_contact_untouched():
    guest = user("u1", userType="Guest", jobTitle="New")
    disabled = user("u2", accountEnabled=False, jobTitle="New")
    no_email = user("u3", mail=None, jobTitle="New")
    contacts = [synced(7, user("u1")), synced(8, user("u2")), synced(9, user("u3"))]
    plan = plan_for([guest, disabled, no_email], contacts)
    assert_empty(plan)
    assert plan.skipped == Counter(guest=1, disabled=1, no_email=1)


# A synced contact edited in Odoo is overwritten


def test_edited_synced_contact_is_overwritten():
    usr = user("u1", givenName="Ann", surname="Lee", jobTitle="CFO")
    plan = plan_for([usr], [synced(7, usr, name="Edited", function="Edited", mobile="+1")])
    assert plan.updates == {7: {"name": "Ann Lee", "function": "CFO", "mobile": False}}


# Email changed in Odoo


def test_email_changed_in_odoo_creates_new_contact_and_unlinks_old():
    usr = user("u1", givenName="Ann", jobTitle="CFO")
    plan = plan_for([usr], [synced(7, usr, email="private@ann.example")])
    assert plan.creates == [
        {
            "name": "Ann",
            "email": "u1@contoso.com",
            "function": "CFO",
            "mobile": False,
            "azure_ad_object_id": "u1",
        }
    ]
    assert plan.unlink_ids == [7]
    assert 7 not in plan.updates  # keeps its data


def test_email_changed_to_another_contacts_address_moves_the_link():
    usr = user("u1")
    plan = plan_for([usr], [synced(7, usr, email="x@y.z"), contact(9, "u1@contoso.com")])
    assert plan.creates == []
    assert plan.unlink_ids == [7]
    assert plan.updates[9]["azure_ad_object_id"] == "u1"


def test_swapped_emails_swap_links():
    ann, bob = user("u1"), user("u2")
    contacts = [synced(7, ann, email="u2@contoso.com"), synced(8, bob, email="u1@contoso.com")]
    plan = plan_for([ann, bob], contacts)
    assert sorted(plan.unlink_ids) == [7, 8]
    assert plan.updates[7]["azure_ad_object_id"] == "u2"
    assert plan.updates[8]["azure_ad_object_id"] == "u1"
    assert plan.creates == []


# Counts; a half-applied sync converges


def test_counts():
    users = [
        user("u1"),
        user("u2"),
        user("u3", jobTitle="CEO"),
        user("u4", mail=None),
        user("u5", userType="Guest"),
    ]
    contacts = [synced(7, user("u2")), synced(8, user("u3"))]
    plan = plan_for(users, contacts)
    assert plan.counts() == {"created": 1, "updated": 1, "unchanged": 1, "skipped": 2}


def test_interrupted_apply_converges():
    users = [user(f"u{i}", jobTitle=f"T{i}") for i in range(6)]
    start = to_rows(
        [synced(1, user("u0")), synced(2, user("u1"), email="old@x.y"), contact(3, "u2@contoso.com")]
    )
    clean = apply(plan_for(users, to_contacts(start)), start)
    plan = plan_for(users, to_contacts(start))
    partial = apply(
        reconcile.Plan(
            unlink_ids=plan.unlink_ids, updates=dict(list(plan.updates.items())[:1]), creates=plan.creates[:2]
        ),
        start,
    )
    resumed = apply(plan_for(users, to_contacts(partial)), partial)
    assert sorted(resumed.values(), key=str) == sorted(clean.values(), key=str)


# A second run changes nothing


def test_second_run_is_empty():
    users = [
        user("u1", givenName="Ann", jobTitle="CFO"),
        user("u2", mail=None),
        user("u3", proxyAddresses=["smtp:alias@x.y", "SMTP:Bob@Contoso.com"], mail=None),
        user("u4", mail="DUP@x.y"),
        user("u5", mail="dup@x.y"),
    ]
    rows = to_rows([contact(1, "u1@contoso.com", name="Old"), contact(2, "bob@contoso.com")])
    rows = apply(plan_for(users, to_contacts(rows)), rows)
    second = plan_for(users, to_contacts(rows))
    assert_empty(second)
    assert second.unchanged == 3


# Skips with reasons


def test_skip_reasons_are_counted():
    users = [
        user("u1", mail=None),
        user("u2", mail="  "),
        user("u3", userType="Guest"),
        user("u4", userType="GUEST"),
        user("u5", accountEnabled=False),
        user("u6"),
    ]
    plan = plan_for(users)
    assert plan.skipped == Counter(no_email=2, guest=2, disabled=1)
    assert plan.created == 1


def test_guests_are_marked_as_guests_and_follow_their_user_type():
    rules = {"include_guests": True}
    member = user("u1", mail="ann@contoso.com")
    guest = user("u2", mail="bob@partner.example", userType="Guest")
    plan = plan_for([member, guest], **rules)
    assert [vals.get("azure_ad_guest") for vals in plan.creates] == [None, True]
    rows = apply(plan, {})
    assert_empty(plan_for([member, guest], to_contacts(rows), **rules))
    # Invited as a guest, then made a member (or the other way round): the mark follows.
    swapped = [{**member, "userType": "Guest"}, {**guest, "userType": "Member"}]
    plan = plan_for(swapped, to_contacts(rows), **rules)
    assert {rows[cid]["email"]: vals for cid, vals in plan.updates.items()} == {
        "ann@contoso.com": {"azure_ad_guest": True},
        "bob@partner.example": {"azure_ad_guest": False},
    }


def test_options_include_guests_and_disabled():
    users = [user("u3", userType="Guest"), user("u5", accountEnabled=False)]
    assert plan_for(users, include_guests=True).skipped == Counter(disabled=1)
    assert plan_for(users, include_disabled=True).skipped == Counter(guest=1)
    assert plan_for(users, include_guests=True, include_disabled=True).created == 2


def test_email_falls_back_to_primary_proxy_address():
    usr = user("u1", mail=None, proxyAddresses=["smtp:alias@contoso.com", "SMTP: Ann@Contoso.com"])
    email = reconcile.entra_email
    assert email(usr) == "Ann@Contoso.com"
    assert email(user("u1", mail=None, proxyAddresses=["smtp:a@b.c"])) is None
    assert email(user("u1", mail=" m@x.y ", proxyAddresses=["SMTP:p@x.y"])) == "m@x.y"
    assert email(user("u1", mail=None, proxyAddresses=["SMTP:", "SMTP:b@c.d"])) == "b@c.d"


def test_missing_account_enabled_is_not_disabled():
    usr = user("u1")
    del usr["accountEnabled"], usr["userType"]
    assert plan_for([usr]).created == 1


# Duplicate emails in Entra


def test_smallest_object_id_wins():
    users = [
        user("B-2", mail="ann@x.y", jobTitle="second"),
        user("a-1", mail="ANN@x.y ", jobTitle="first"),
        user("c-3", mail="ann@x.y"),
    ]
    plan = plan_for(users)
    assert [(v["azure_ad_object_id"], v["function"]) for v in plan.creates] == [("a-1", "first")]
    assert plan.skipped == Counter(duplicate_email=2)


def test_winner_takes_the_contact_from_the_loser():
    loser, winner = user("b", mail="ann@x.y"), user("a", mail="ann@x.y")
    plan = plan_for([loser, winner], [synced(7, loser)])
    assert plan.unlink_ids == [7]
    assert plan.updates[7]["azure_ad_object_id"] == "a"


def test_filters_apply_before_duplicates():
    users = [user("a", mail="ann@x.y", accountEnabled=False), user("b", mail="ann@x.y")]
    plan = plan_for(users)
    assert [v["azure_ad_object_id"] for v in plan.creates] == ["b"]
    assert plan.skipped == Counter(disabled=1)


def test_same_user_twice_is_counted_once():
    usr = user("u1")
    plan = build_plan([[usr, user("u2")], [dict(usr, jobTitle="replayed")]], [])
    assert [v["azure_ad_object_id"] for v in plan.creates] == ["u1", "u2"]
    assert plan.creates[0]["function"] is False
    assert plan.skipped == Counter(duplicate_user=1)


# Several contacts share an email


def test_lowest_id_is_updated_never_create_another():
    plan = plan_for([user("u1")], [contact(9, "u1@contoso.com"), contact(4, "U1@contoso.com")])
    assert list(plan.updates) == [4]
    assert plan.creates == []


def test_contact_linked_to_the_user_is_preferred():
    usr = user("u1")
    plan = plan_for([usr], [contact(4, "u1@contoso.com"), synced(9, usr)])
    assert plan.updates == {} and plan.unchanged == 1 and plan.unlink_ids == []


# Name


def test_name_rules():
    name = reconcile.contact_name
    assert name({"givenName": " Ann ", "surname": " Lee "}) == "Ann Lee"
    assert name({"givenName": "Ann", "surname": None, "displayName": "X"}) == "Ann"
    assert name({"givenName": "", "surname": "Lee", "displayName": "X"}) == "Lee"
    assert name({"givenName": " ", "surname": None, "displayName": " Ann L. "}) == "Ann L."
    assert name({"displayName": "", "mail": " ann@x.y "}) == "ann@x.y"
    assert name({"proxyAddresses": ["SMTP:p@x.y"]}) == "p@x.y"
    assert name({}) == ""


# Creates


def test_create_values_carry_the_entra_email_as_given():
    usr = user(
        "u1", mail="  Ann.Lee@Contoso.com ", givenName="Ann", surname="Lee", jobTitle="CFO", mobilePhone="+41"
    )
    assert plan_for([usr]).creates == [
        {
            "name": "Ann Lee",
            "email": "Ann.Lee@Contoso.com",
            "function": "CFO",
            "mobile": "+41",
            "azure_ad_object_id": "u1",
        }
    ]


# The sanitizer


def test_sanitizer_controls_whitespace_html_length():
    clean = reconcile.clean_text
    assert clean("Ann\tLee\r\nCFO") == "Ann Lee CFO"
    assert clean("A\x00n\x07n\x1b[31m\x85\x9f") == "Ann[31m"
    assert clean("bad \ud800 surrogate") == "bad surrogate"
    assert clean("<b>Ann</b> & <script>x</script>") == "<b>Ann</b> & <script>x</script>"
    assert clean("Zoë 李 😀") == "Zoë 李 😀"
    assert len(clean("x" * 10**6)) == reconcile.MAX_TEXT
    for wrong in (None, 42, 4.2, True, ["Ann"], {"a": 1}):
        assert clean(wrong) == ""


def test_hostile_users_never_crash():
    hostile = [
        None,
        "user",
        42,
        [],
        {"id": None},
        {"id": 5},
        {"id": ""},
        {"id": "   "},
        {"id": "a\x00b"},
        {"id": "x" * 1000},
        {"id": ["u1"]},
        {"id": "h1", "mail": 42, "proxyAddresses": "SMTP:h1@x.y"},
        {
            "id": "h2",
            "mail": ["h2@x.y"],
            "proxyAddresses": [None, 7, "SMTP:h2@x.y"],
            "givenName": {"a": 1},
            "surname": ["Lee"],
            "displayName": 3.5,
            "jobTitle": "<img src=x onerror=alert(1)>",
            "mobilePhone": 417,
            "userType": 1,
            "accountEnabled": "false",
        },
        {"id": "h3", "mail": "a" * 300 + "@x.y"},
        {"id": "h4", "mail": "h4\x00@x.y\n", "givenName": "A\u2028B", "surname": "C" * 5000},
    ]
    plan = build_plan([hostile], [Contact(1, None), Contact(2, "h4@x.y", "h4", True, 7, "Old", {})])
    assert plan.skipped == Counter(invalid=11, no_email=2)
    assert plan.creates == [
        {
            "name": "h2@x.y",
            "email": "h2@x.y",
            "function": "<img src=x onerror=alert(1)>",
            "mobile": False,
            "azure_ad_object_id": "h2",
        }
    ]
    assert plan.updates[2]["name"] == "A B " + "C" * (reconcile.MAX_TEXT - 4)
    assert plan.updates[2]["function"] is False


def test_plan_keeps_no_raw_user():
    class Raw(dict):  # dicts can't be weakly referenced, their subclasses can
        pass

    refs = []

    def pages():
        for page_no in range(3):
            page = [Raw(user(f"u{page_no}-{i}")) for i in range(5)]
            refs.extend(weakref.ref(raw) for raw in page)
            yield page

    plan = build_plan(pages(), [])
    gc.collect()
    assert plan.created == 15
    assert all(ref() is None for ref in refs)


def test_data_classes_are_compact():
    for cls in (reconcile.EntraUser, reconcile.Contact):
        assert not hasattr(cls("u", "e", "n", "f", "m"), "__dict__")


# Property: a plan applied and planned again is empty


def expected_winners(pages, include_guests, include_disabled):
    """Oracle for skips and duplicate emails, the naive way: normalized email -> the user that must own it."""
    first = {}
    for raw in itertools.chain.from_iterable(pages):
        first.setdefault(raw["id"], raw)
    winners = {}
    for raw in first.values():
        email = reconcile.normalize_email(reconcile.entra_email(raw))
        if (
            not email
            or (raw["userType"] == "Guest" and not include_guests)
            or (raw["accountEnabled"] is False and not include_disabled)
        ):
            continue
        rival = winners.get(email)
        if rival is None or (raw["id"].lower(), raw["id"]) < (rival["id"].lower(), rival["id"]):
            winners[email] = raw
    return winners


object_ids = st.sampled_from(["0a", "0B", "0b", "1c", "2d", "3e", "4f"])
emails = st.sampled_from(["ann@x.y", " ANN@x.y", "bob@x.y", "cy@x.y", "", None])
texts = st.sampled_from(["", None, "Ann", "Lee", "CFO", "+41"])
graph_users = st.lists(
    st.fixed_dictionaries(
        {
            "id": object_ids,
            "mail": emails,
            "givenName": texts,
            "surname": texts,
            "displayName": texts,
            "jobTitle": texts,
            "mobilePhone": texts,
            "proxyAddresses": st.lists(
                st.sampled_from(["SMTP:cy@x.y", "smtp:ann@x.y", "SMTP:dee@x.y"]), max_size=2
            ),
            "accountEnabled": st.sampled_from([True, False, None]),
            "userType": st.sampled_from(["Member", "Guest", None]),
        }
    ),
    max_size=12,
)


@st.composite
def odoo_contacts(draw):
    ids = draw(st.lists(st.integers(1, 30), unique=True, max_size=8))
    links = draw(st.lists(st.one_of(st.none(), object_ids), min_size=len(ids), max_size=len(ids)))
    seen = set()
    contacts = []
    for cid, link in zip(ids, links, strict=True):
        link = None if link in seen else link  # the (integration, object id) unique constraint
        seen.add(link)
        contacts.append(
            Contact(
                cid,
                reconcile.normalize_email(draw(emails)),
                link,
                draw(st.booleans()) if link else False,
                draw(texts),
                draw(texts),
                draw(texts),
            )
        )
    return contacts


@settings(max_examples=300, deadline=None, database=None)  # no .hypothesis/ in the repo
@given(graph_users, odoo_contacts(), st.integers(1, 5), st.booleans(), st.booleans())
def test_property_applied_plan_is_a_fixed_point(users, contacts, page_size, guests, disabled):
    pages = [users[i : i + page_size] for i in range(0, len(users), page_size)]
    options = {"include_guests": guests, "include_disabled": disabled}
    rows = to_rows(contacts)
    plan = build_plan(pages, contacts, **options)

    assert set(plan.unlink_ids) <= {cid for cid, row in rows.items() if row["azure_ad_object_id"]}
    created = [reconcile.normalize_email(vals["email"]) for vals in plan.creates]
    assert len(created) == len(set(created))
    existing = {row["email"] for row in rows.values()}
    assert not set(created) & existing  # never another contact for a known address

    rows = apply(plan, rows)
    for email, raw in expected_winners(pages, guests, disabled).items():
        [row] = [row for row in rows.values() if row["azure_ad_object_id"] == raw["id"]]
        assert row["azure_ad_synced"] is True
        assert reconcile.normalize_email(row["email"]) == email
        assert row["name"] == reconcile.contact_name(raw)
        assert (row["function"] or False) == (reconcile.clean_text(raw["jobTitle"]) or False)
        assert (row["mobile"] or False) == (reconcile.clean_text(raw["mobilePhone"]) or False)
    assert_empty(build_plan(pages, to_contacts(rows), **options))
