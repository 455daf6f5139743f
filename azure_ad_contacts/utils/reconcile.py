"""Turn (Entra users, existing contacts) into a write plan: pure Python, no I/O, no Odoo."""

import re
from collections import Counter
from dataclasses import dataclass, field

MAX_TEXT = 256  # Entra caps names and titles at 256 or less; longer values are hostile
MAX_EMAIL = 254  # the longest address SMTP can carry
MAX_OBJECT_ID = 128  # Entra object ids are 36-character GUIDs
# C0/C1 controls (whitespace ones are handled by str.split) and lone surrogates, which
# PostgreSQL would refuse.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_FIELDS = ("name", "function", "mobile")


def clean_text(value, limit=MAX_TEXT):
    """Entra text made safe to store: '' unless a string, no controls, blanks collapsed."""
    if not isinstance(value, str):
        return ""
    return " ".join(_UNPRINTABLE.sub("", value[: limit * 4]).split())[:limit]


def normalize_email(value):
    """The matching key of an address (S3): trimmed, lower-cased; None when empty."""
    if not isinstance(value, str):
        return None
    return value.strip().lower() or None


def entra_email(user):
    """`mail`, else the primary (upper-case `SMTP:`) proxy address, as written; None if neither."""
    candidates = [user.get("mail")]
    proxies = user.get("proxyAddresses")
    if isinstance(proxies, list):
        candidates += [p[5:] for p in proxies if isinstance(p, str) and p.startswith("SMTP:")]
    for candidate in candidates:
        email = clean_text(candidate, MAX_EMAIL + 1)
        if email and len(email) <= MAX_EMAIL:
            return email
    return None


def contact_name(user):
    """S18: given name + surname, else the display name, else the email."""
    full = " ".join(filter(None, (clean_text(user.get("givenName")),
                                  clean_text(user.get("surname")))))
    return full[:MAX_TEXT] or clean_text(user.get("displayName")) or entra_email(user) or ""


@dataclass(slots=True)
class EntraUser:
    object_id: str
    email: str
    name: str
    function: str
    mobile: str


@dataclass(slots=True)
class Contact:
    """An existing child contact of the customer, as the ORM layer reads it.

    `object_id` is the stored Entra object id (of this integration only); `linked` tells
    whether the contact carries the Azure AD mark.
    """

    id: int
    email: str | None
    object_id: str | None = None
    linked: bool = False
    name: str | None = None
    function: str | None = None
    mobile: str | None = None


@dataclass(slots=True)
class Plan:
    """What a sync writes. Apply `unlink_ids` first, then `updates`, then `creates`."""

    creates: list = field(default_factory=list)
    updates: dict = field(default_factory=dict)
    unlink_ids: list = field(default_factory=list)
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def created(self):
        return len(self.creates)

    @property
    def updated(self):
        """Contacts written: new values, a new link, or a lost link."""
        return len(self.updates.keys() | set(self.unlink_ids))

    def counts(self):
        return {"created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "skipped": self.skipped.total()}


def _read_user(raw, object_id, include_guests, include_disabled):
    """An EntraUser, or the reason (S15) to skip it."""
    user_type = raw.get("userType")
    if not include_guests and isinstance(user_type, str) and user_type.lower() == "guest":
        return "guest"
    if not include_disabled and raw.get("accountEnabled") is False:
        return "disabled"
    email = entra_email(raw)
    if email is None:
        return "no_email"
    return EntraUser(object_id, email, contact_name(raw), clean_text(raw.get("jobTitle")),
                     clean_text(raw.get("mobilePhone")))


def _object_id(raw):
    """The user's object id, None when it is unusable as a key."""
    object_id = raw.get("id") if isinstance(raw, dict) else None
    if isinstance(object_id, str):
        object_id = object_id.strip()
        if object_id and len(object_id) <= MAX_OBJECT_ID and object_id.isprintable():
            return object_id
    return None


def _precedence(user):
    """S16 order: the smallest object id, case-insensitively (ties by the raw id)."""
    return user.object_id.lower(), user.object_id


def build_plan(pages, contacts, include_guests=False, include_disabled=False):
    """Plan the sync of streamed Graph user pages onto the customer's contacts (S3-S19)."""
    plan = Plan()
    seen_ids = set()
    winners = {}  # normalized email -> EntraUser (S16)
    for page in pages:
        for raw in page:
            object_id = _object_id(raw)
            if object_id is None:
                plan.skipped["invalid"] += 1
                continue
            if object_id in seen_ids:  # a page served twice must not count or plan twice
                plan.skipped["duplicate_user"] += 1
                continue
            seen_ids.add(object_id)
            user = _read_user(raw, object_id, include_guests, include_disabled)
            if isinstance(user, str):
                plan.skipped[user] += 1
                continue
            key = normalize_email(user.email)
            rival = winners.get(key)
            if rival is not None:
                plan.skipped["duplicate_email"] += 1
                if _precedence(rival) < _precedence(user):
                    continue
            winners[key] = user
    del seen_ids

    by_email = {}
    links = {}  # contact id -> the object id it is linked to now
    for contact in contacts:
        key = normalize_email(contact.email)
        if key in winners:
            by_email.setdefault(key, []).append(contact)
        if contact.object_id:
            links[contact.id] = contact.object_id

    planned = {}  # contact id -> the object id it will be linked to
    for key, user in winners.items():
        # S17: the contact already linked to this user, else the oldest one.
        contact = min(by_email.get(key, ()), default=None,
                      key=lambda c: (links.get(c.id) != user.object_id, c.id))
        if contact is None:
            plan.creates.append({"name": user.name, "email": user.email,
                                 "function": user.function or False,
                                 "mobile": user.mobile or False,
                                 "azure_ad_object_id": user.object_id})
            continue
        planned[contact.id] = user.object_id
        vals = {name: getattr(user, name) or False for name in _FIELDS
                if (getattr(user, name) or False) != (getattr(contact, name) or False)}
        if links.get(contact.id) != user.object_id or not contact.linked:
            vals.update(azure_ad_object_id=user.object_id, azure_ad_synced=True)
        if vals:
            plan.updates[contact.id] = vals
        else:
            plan.unchanged += 1

    # A link moves when its contact now belongs to another user, or when its (kept) user now
    # belongs to another contact (S7). Links of skipped or vanished users stay (S5).
    kept = {user.object_id for user in winners.values()}
    plan.unlink_ids = [
        contact_id for contact_id, object_id in links.items()
        if planned.get(contact_id, object_id) != object_id
        or (contact_id not in planned and object_id in kept)
    ]
    return plan
