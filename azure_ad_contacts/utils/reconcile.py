"""Turn (Entra users, existing contacts) into a write plan: pure Python, no I/O, no Odoo."""

import fnmatch
import re
from dataclasses import dataclass, field

from .entra_user import (  # noqa: F401 - part of the planner's interface (reconcile.clean_text, ...)
    EXTRA_MAPPINGS,
    MAX_EMAIL,
    MAX_OBJECT_ID,
    MAX_TEXT,
    clean_text,
    contact_name,
    entra_email,
    is_one_address,
    normalize_email,
)
from .plan import (  # noqa: F401 - part of the planner's interface (reconcile.Plan, ...)
    ACTIVE_LOGIN,
    ARCHIVED_BY_SYNC,
    DELETED,
    GUEST,
    HAS_LOGIN,
    INACTIVE,
    INTERNAL_LOGIN,
    KEPT_ARCHIVED,
    LOGIN,
    LOGIN_EMAIL,
    MOVED,
    NEVER_ARCHIVE,
    NEVER_OVERWRITE,
    NEW,
    OTHER_TENANT,
    STANDING_EDITS,
    Contact,
    EntraUser,
    Plan,
    Rules,
)

_FIELDS = ("name", "function", "mobile")


def compile_patterns(patterns):
    """One regex for glob patterns (`noreply*`, `*room*@*`), case-insensitive; None if none."""
    globs = [p.strip().lower() for p in patterns if isinstance(p, str) and p.strip()]
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(glob)})" for glob in globs))


def _read_user(raw, object_id, rules, pattern, readers):
    """An EntraUser, or the reason (no email, guest, disabled, the filters of Rules) to skip it."""
    user_type = raw.get("userType")
    guest = isinstance(user_type, str) and user_type.lower() == "guest"
    if guest and not rules.include_guests:
        return "guest"
    if not rules.include_disabled and raw.get("accountEnabled") is False:
        return "disabled"
    if rules.licensed_only:
        licenses = raw.get("assignedLicenses")
        if not isinstance(licenses, list) or not licenses:
            return "unlicensed"
    if rules.group_member_ids is not None and object_id.lower() not in rules.group_member_ids:
        return "not_in_group"
    email = entra_email(raw)
    if email is None:
        return "no_email"
    if not is_one_address(email):
        return "invalid_email"
    if pattern is not None:
        upn = raw.get("userPrincipalName")
        if pattern.match(normalize_email(email)) or (
                isinstance(upn, str) and pattern.match(upn.strip().lower())):
            return "excluded"
    return EntraUser(object_id, email, contact_name(raw), clean_text(raw.get("jobTitle")),
                     clean_text(raw.get("mobilePhone")),
                     tuple(read(raw) for read in readers) if readers else None, guest)


def _object_id(raw):
    """The user's object id, None when it is unusable as a key."""
    object_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(object_id, str):
        object_id = object_id.strip()
        if object_id and len(object_id) <= MAX_OBJECT_ID and object_id.isprintable():
            return object_id
    return None


def _label(raw):
    """How a skipped user (a Graph user, or already a label) is shown in a preview."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, dict):
        return ""
    return (entra_email(raw) or clean_text(raw.get("displayName"))
            or clean_text(raw.get("userPrincipalName")) or clean_text(raw.get("id")))


def _precedence(user):
    """Which of two users with one email wins: the smallest object id, case-insensitively
    (ties by the raw id)."""
    return user.object_id.lower(), user.object_id


def _held_by_other_tenant(contact):
    """Synced from another tenant of the customer and not given up by it (archived leaver)."""
    return contact.flags & OTHER_TENANT and not contact.flags & ARCHIVED_BY_SYNC


def _follows(contact, key):
    """Whether a contact linked to a user would follow that user's new email `key`: its
    email changed in Entra, not in Odoo (still the last value the sync wrote)."""
    email = normalize_email(contact.email)
    return (contact.linked and email is not None and email != key
            and email == normalize_email(contact.synced_email))


def _keeps_login(contact, rules):
    """Whether a leaver's contact stays active because someone signs in with it: Odoo
    refuses to archive a partner with an active user, and the sync never archives an
    employee's login (a portal login only when the integration says so)."""
    if not contact.flags & ACTIVE_LOGIN:
        return False
    return bool(contact.flags & INTERNAL_LOGIN) or not rules.archive_portal_logins


def _create_values(user, rules):
    values = {"name": user.name, "email": user.email, "function": user.function or False,
              "mobile": user.mobile or False, "azure_ad_object_id": user.object_id}
    for name, value in zip(rules.extra_fields, user.extra or (), strict=True):
        values[name] = value or False
    if rules.follow_email:
        values["azure_ad_synced_email"] = user.email
    if user.guest:
        values["azure_ad_guest"] = True
    return values


def _update_values(contact, user, key, rules, linked_to):
    """What to write on `contact` for `user` (Entra's values overwrite, and the options); {} if nothing."""
    vals = {}
    if not contact.flags & NEVER_OVERWRITE:
        vals = {name: getattr(user, name) or False for name in _FIELDS
                if (getattr(user, name) or False) != (getattr(contact, name) or False)}
        if rules.extra_fields:
            current = contact.extra or ()
            for index, name in enumerate(rules.extra_fields):
                new = user.extra[index] or False
                old = (current[index] if index < len(current) else None) or False
                if new != old:
                    vals[name] = new
        if normalize_email(contact.email) != key:  # a contact that follows its user's email
            vals["email"] = user.email
        elif contact.flags & NEW and linked_to != user.object_id:
            # Created this run for a user that lost the address to this one: the email as
            # this user has it (the spelling may differ).
            vals["email"] = user.email
    if rules.follow_email:
        email_after = vals.get("email", contact.email)
        if normalize_email(email_after) == key and normalize_email(contact.synced_email) != key:
            vals["azure_ad_synced_email"] = user.email
    if linked_to != user.object_id or not contact.linked:
        vals.update(azure_ad_object_id=user.object_id, azure_ad_synced=True)
    if user.guest != bool(contact.flags & GUEST):
        vals["azure_ad_guest"] = user.guest
    if contact.flags & ARCHIVED_BY_SYNC:  # a leaver came back
        vals.update(active=True, azure_ad_archived=False)
    return vals


def _read_pages(pages, rules, skip):
    """The users that get a contact, by normalized email (skips, duplicate emails and the filters).

    Returns (winners, seen object ids or None, {object id: skip reason} of skipped users or
    None): the last two only when leavers are archived."""
    pattern = compile_patterns(rules.exclude_patterns)
    readers = tuple(EXTRA_MAPPINGS[name][1] for name in rules.extra_fields)
    gone = {} if rules.archive_disabled or rules.archive_deleted else None
    seen_ids = set()
    winners = {}  # normalized email -> EntraUser (the smallest object id wins)
    for page in pages:
        for raw in page:
            object_id = _object_id(raw)
            if object_id is None:
                skip(None, raw, "invalid")
                continue
            if object_id in seen_ids:  # a page served twice must not count or plan twice
                skip(object_id, raw, "duplicate_user")
                continue
            seen_ids.add(object_id)
            user = _read_user(raw, object_id, rules, pattern, readers)
            if isinstance(user, str):
                if gone is not None:
                    gone[object_id] = user
                skip(object_id, raw, user)
                continue
            key = normalize_email(user.email)
            rival = winners.get(key)
            if rival is not None:
                loser = user if _precedence(rival) < _precedence(user) else rival
                skip(loser.object_id, loser.email, "duplicate_email")
                if loser is user:
                    continue
            winners[key] = user
    # Seen ids only tell deleted users apart; don't hold them longer otherwise.
    return winners, seen_ids if rules.archive_deleted else None, gone


def mark_new(contacts, contact_ids):
    """Flags the contacts of `contact_ids` (created by this run before planning) as NEW."""
    for contact in contacts:
        if contact.id in contact_ids:
            contact.flags |= NEW
    return contacts


def early_creates(page, rules, taken, seen):
    """Create values for the users of `page` that get a new contact whatever the rest of the
    tenant holds: passing the filters, with an email no contact of the customer and no user
    seen before has (`taken`, normalized), and not linked to a contact (`seen` holds those
    ids and the ids seen so far; both sets are updated). A later user with the same email
    and a smaller id still wins: the full plan then moves the contact over to it."""
    pattern = compile_patterns(rules.exclude_patterns)
    readers = tuple(EXTRA_MAPPINGS[name][1] for name in rules.extra_fields)
    creates = []
    for raw in page:
        object_id = _object_id(raw)
        if object_id is None or object_id in seen:
            continue
        seen.add(object_id)
        user = _read_user(raw, object_id, rules, pattern, readers)
        if not isinstance(user, str) and normalize_email(user.email) not in taken:
            taken.add(normalize_email(user.email))
            creates.append(_create_values(user, rules))
    return creates


@dataclass(slots=True)
class _ContactIndex:
    by_email: dict = field(default_factory=dict)  # normalized email of a user -> its contacts
    links: dict = field(default_factory=dict)  # contact id -> the object id it is linked to now
    by_object_id: dict = field(default_factory=dict)  # follow_email only: object id -> contact
    linked_contacts: list = field(default_factory=list)  # leavers only: the marked linked ones


def _index_contacts(contacts, winners, rules, plan):
    """One pass over the customer's contacts: only what the plan needs is kept."""
    index = _ContactIndex()
    track_leavers = rules.archive_disabled or rules.archive_deleted
    for contact in contacts:
        key = normalize_email(contact.email)
        if key in winners:
            index.by_email.setdefault(key, []).append(contact)
        if contact.object_id:
            index.links[contact.id] = contact.object_id
            if contact.linked and not contact.flags & INACTIVE:
                plan.linked += 1
            if rules.follow_email:
                index.by_object_id[contact.object_id] = contact
            if track_leavers and contact.linked:
                index.linked_contacts.append(contact)
    return index


def _followers(winners, index, plan):
    """Rule 6: object id -> the linked contact that follows its user's new email. A contact
    with a login keeps its email (where its password resets go): its user gets a contact
    of its own, as when the email was changed in Odoo."""
    followed = {}
    for key, user in winners.items():
        contact = index.by_object_id.get(user.object_id)
        if contact is not None and _follows(contact, key):
            if contact.flags & LOGIN:
                plan.other_edits[contact.id] = LOGIN_EMAIL
            else:
                followed[user.object_id] = contact
    return followed


def _match(winners, index, rules, plan, skip):
    """Give each user its contact (followed emails, else the linked or oldest contact; one
    person per customer) and plan the writes.
    Returns (contact id -> object id it will be linked to, object ids that get a contact)."""
    followed = _followers(winners, index, plan) if rules.follow_email else {}
    claimed = {contact.id for contact in followed.values()}
    links = index.links
    planned = {}
    kept = set()
    for key, user in winners.items():
        contact = followed.get(user.object_id)
        if contact is None:
            candidates = index.by_email.get(key, ())
            if claimed:  # a contact that follows its user is that user's, whoever has its old address
                candidates = [c for c in candidates if c.id not in claimed]
            # The contact already linked to this user, else the oldest one.
            contact = min(candidates, default=None,
                          key=lambda c: (links.get(c.id) != user.object_id, c.id))
            if (contact is not None and links.get(contact.id) != user.object_id
                    and any(_held_by_other_tenant(c) for c in candidates)):
                # One contact per person: the tenant that synced it first keeps it.
                skip(user.object_id, user.email, "other_tenant")
                continue
        kept.add(user.object_id)
        if contact is None:
            plan.creates.append(_create_values(user, rules))
            continue
        planned[contact.id] = user.object_id
        if contact.flags & INACTIVE and not contact.flags & ARCHIVED_BY_SYNC:
            plan.other_edits[contact.id] = KEPT_ARCHIVED  # someone archived it: synced, not reactivated
        vals = _update_values(contact, user, key, rules, links.get(contact.id))
        if vals:
            plan.updates[contact.id] = vals
        else:
            plan.unchanged += 1
    return planned, kept


def _leavers(index, planned, kept, seen_ids, gone, rules, plan, among=None):
    """Linked contacts whose user is disabled, deleted or filtered out, when the integration
    archives them: {contact id: why}. Pinned and already archived contacts are left alone,
    and with `among` (object ids), the contacts of other users; contacts with a login are
    noted in plan.other_edits instead (see _keeps_login)."""
    archives = {}
    for contact in index.linked_contacts:
        if contact.id in planned or contact.flags & (INACTIVE | NEVER_ARCHIVE):
            continue
        object_id = contact.object_id
        if among is not None and object_id not in among:
            continue
        if object_id in kept:
            continue  # its user lives on in another contact
        if seen_ids is not None and object_id not in seen_ids:
            reason = DELETED
        else:
            reason = gone.get(object_id)
        if reason is None:
            continue
        if not (rules.archive_disabled if reason == "disabled" else rules.archive_deleted):
            continue
        if _keeps_login(contact, rules):
            plan.other_edits[contact.id] = HAS_LOGIN
        else:
            archives[contact.id] = reason
    return archives


def build_plan(pages, contacts, include_guests=False, include_disabled=False, rules=None,
               on_skip=None, leavers_among=None):
    """Plan the sync of streamed Graph user pages onto the customer's contacts.

    `rules` (a Rules) replaces the two include_* flags; `on_skip(object_id, label, reason)`
    is called for every skipped user (previews). With `leavers_among` (object ids), the pages
    hold only some of the tenant's users (see incremental.py): only the contacts of these ids
    can be leavers, and one whose id is not in the pages is deleted from Entra.
    """
    if rules is None:
        rules = Rules(include_guests=include_guests, include_disabled=include_disabled)
    plan = Plan()

    def skip(object_id, user, reason):
        plan.skipped[reason] += 1
        if on_skip is not None:  # labels only for previews
            on_skip(object_id, _label(user), reason)

    winners, seen_ids, gone = _read_pages(pages, rules, skip)
    index = _index_contacts(contacts, winners, rules, plan)
    planned, kept = _match(winners, index, rules, plan, skip)
    # A link moves when its contact now belongs to another user, or when its (kept) user now
    # belongs to another contact (its email was changed in Odoo). Links of skipped or vanished users stay.
    plan.unlink_ids = [
        contact_id for contact_id, object_id in index.links.items()
        if planned.get(contact_id, object_id) != object_id
        or (contact_id not in planned and object_id in kept)
    ]
    if index.linked_contacts:
        plan.archives = _leavers(index, planned, kept, seen_ids, gone, rules, plan, leavers_among)
    return plan
