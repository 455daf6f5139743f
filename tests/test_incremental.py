"""Which users a changes-only round plans again (utils/incremental.py), in plain Python: the
users tied to a change through an email or a link, and a property: planning only them
gives the plan of every user, and every other user stays as the last plan left it."""

from hypothesis import given, settings
from hypothesis import strategies as st

from odoo.addons.azure_ad_contacts.utils import incremental, reconcile
from odoo.addons.azure_ad_contacts.utils.reconcile import Contact, build_plan

from .common import graph_user as user
from .test_reconcile import apply, graph_users, odoo_contacts, to_contacts, to_rows


def contact(contact_id, email, object_id=None):
    return Contact(contact_id, email, object_id, bool(object_id), "Name")


def loader(users):
    """load_users over a dict of stored users, recording each call."""

    def load(object_ids, keys):
        load.calls += 1
        return {
            object_id: raw
            for object_id, raw in users.items()
            if object_id in object_ids or incremental.user_key(raw) in keys
        }

    load.calls = 0
    return load


def contacts_loader(contacts):
    """load_contacts over a list of contacts."""
    return lambda keys, object_ids: [c for c in contacts if c.email in keys or c.object_id in object_ids]


def test_the_users_tied_to_a_change_and_no_others():
    users = {
        "a": user("a", mail="ann@x.y"),
        "b": user("b", mail="ANN@x.y"),  # Ann's address too: its rival
        "c": user("c", mail="cy@x.y"),  # linked to a contact that carries Dee's address
        "d": user("d", mail="dee@x.y"),
        "e": user("e", mail="eve@x.y"),  # tied to nothing that changed
    }
    contacts = [contact(1, "ann@x.y", "a"), contact(2, "dee@x.y", "c"), contact(3, "dee@x.y", "d")]
    keys, object_ids = {"ann@x.y"}, set()
    load = loader(users)
    users, tied = incremental.concerned_users(keys, object_ids, contacts_loader(contacts), load)
    assert set(users) == {"a", "b"} and [c.id for c in tied] == [1]
    assert object_ids == {"a", "b"}
    keys, object_ids = set(), {"c"}
    users, tied = incremental.concerned_users(keys, object_ids, contacts_loader(contacts), load)
    assert set(users) == {"c", "d"} and sorted(c.id for c in tied) == [2, 3]
    assert keys == {"cy@x.y", "dee@x.y"}


def state_after_sync(users, contacts, rules):
    """The contacts a sync leaves (a fixed point of the planner) and why it skipped whom."""
    rows = apply(build_plan([users], contacts, rules=rules), to_rows(contacts))
    settled = to_contacts(rows)
    skips = {}
    build_plan([users], settled, rules=rules, on_skip=recorder(skips))
    return settled, skips


def recorder(skips):
    """An on_skip that notes {object id: reason}."""
    return lambda object_id, _label, reason: skips.__setitem__(object_id, reason)


def by_id(users):
    first = {}
    for raw in users:
        first.setdefault(raw["id"], raw)
    return first


@settings(max_examples=300, deadline=None, database=None)
@given(graph_users, odoo_contacts(), graph_users, st.integers(0, 30), st.booleans(), st.booleans())
def test_property_planning_the_concerned_users_is_planning_all(
    users, contacts, changes, edit, guests, disabled
):
    rules = reconcile.Rules(include_guests=guests, include_disabled=disabled)
    before = by_id(users)
    settled, skips_before = state_after_sync(list(before.values()), contacts, rules)
    # Microsoft: the users of `changes` replace or join the others; every third one is deleted.
    after = dict(before)
    for index, raw in enumerate(by_id(changes).values()):
        if index % 3 == 2:
            after.pop(raw["id"], None)
        else:
            after[raw["id"]] = raw
    changed_ids = {oid for oid in before.keys() | after.keys() if before.get(oid) != after.get(oid)}
    # Odoo: one contact's email edited, by the edit-th contact.
    edited = [
        Contact(c.id, c.email, c.object_id, c.linked, c.name, c.function, c.mobile, c.flags) for c in settled
    ]
    if edited:
        edited[edit % len(edited)].email = ["ann@x.y", "bob@x.y", None][edit % 3]

    keys = {incremental.user_key(before[oid]) for oid in changed_ids if oid in before}
    object_ids = set(changed_ids)
    # The contacts edited in Odoo, as they were and as they are (a run compares digests).
    for was, now in zip(settled, edited, strict=True):
        if was != now:
            keys |= {was.email, now.email}
            object_ids |= {was.object_id, now.object_id}
    object_ids.discard(None)
    concerned, _tied = incremental.concerned_users(keys, object_ids, contacts_loader(edited), loader(after))

    skips = {}
    partial = build_plan(
        [list(concerned.values())], edited, rules=rules, leavers_among=object_ids, on_skip=recorder(skips)
    )
    full_skips = {}
    full = build_plan([list(after.values())], edited, rules=rules, on_skip=recorder(full_skips))
    assert partial.digest() == full.digest()
    # The users not planned again are as the last plan left them: given a contact, or skipped alike.
    for object_id in after.keys() - concerned.keys():
        assert full_skips.get(object_id) == skips_before.get(object_id)
    assert {oid: skips[oid] for oid in skips} == {oid: r for oid, r in full_skips.items() if oid in concerned}
    others_kept = len([oid for oid in after.keys() - concerned.keys() if oid not in skips_before])
    assert partial.unchanged + others_kept == full.unchanged
