"""What the planner works with: the contacts' flags, the options (Rules), Entra users and
contacts as it reads them, and the Plan it makes (pure Python, no I/O, no Odoo)."""

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field

from .entra_user import EXTRA_MAPPINGS

# Contact.flags: what the ORM knows about a contact beyond its synced values.
INACTIVE = 1  # archived in Odoo
ARCHIVED_BY_SYNC = 2  # archived as a leaver by a sync: active again when its user returns
NEVER_OVERWRITE = 4  # pinned: linked and marked, but its fields are never written
NEVER_ARCHIVE = 8  # pinned: never archived as a leaver
OTHER_TENANT = 16  # synced from another tenant (integration) of the same customer
GUEST = 32  # marked as the contact of a guest (B2B) account
# Logins: a partner with a user is someone who signs in, whatever Entra says.
LOGIN = 64  # has a user, active or archived: its email (where password resets go) never changes
ACTIVE_LOGIN = 128  # has an active user: Odoo refuses to archive it
INTERNAL_LOGIN = 256  # has an active internal user: never archived by the sync
NEW = 512  # created by this run: carries its user's email exactly as Entra spells it

# Why the sync did not apply its usual rule to a contact (Plan.other_edits): someone in Odoo
# gave it a login, archived it or moved it out of the customer.
HAS_LOGIN = "has_login"  # a leaver's contact kept active: it has a login
LOGIN_EMAIL = "login_email"  # a contact with a login keeps its email: its user gets a new contact
KEPT_ARCHIVED = "archived"  # archived in Odoo while its user is in Entra: synced, kept archived
MOVED = "moved"  # moved out of the customer: no longer linked (see the ORM layer)
# The reasons that last as long as the contact stays as it is (the others happen once).
STANDING_EDITS = frozenset({HAS_LOGIN, KEPT_ARCHIVED})

# Why a linked contact is archived when its user is not in Entra at all.
DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Rules:
    """A sync's per-integration options. The defaults are the basic behaviour."""

    include_guests: bool = False
    include_disabled: bool = False
    # Skip users without any entry in `assignedLicenses` ("unlicensed").
    licensed_only: bool = False
    # Glob patterns matched against the email and the UPN ("excluded"): service and shared
    # mailboxes such as `noreply*` or `*room*@*`.
    exclude_patterns: tuple = ()
    # Lower-cased object ids of the allowed users (transitive group members), None for all.
    group_member_ids: frozenset | None = None
    # Contact fields of EXTRA_MAPPINGS to keep in sync as well.
    extra_fields: tuple = ()
    # A linked contact whose email is still the last synced one follows an email change in
    # Entra (instead of a new contact for the user); needs Contact.synced_email.
    follow_email: bool = False
    # Leavers: archive the linked contact of a disabled user / of a user deleted from Entra
    # or no longer passing the filters.
    archive_disabled: bool = False
    archive_deleted: bool = False
    # Leavers with an active portal login: archive the login with the contact (else the
    # contact is kept). A contact with an active internal user is never archived.
    archive_portal_logins: bool = False

    def __post_init__(self):
        unknown = set(self.extra_fields) - EXTRA_MAPPINGS.keys()
        if unknown:
            raise ValueError(f"unknown extra fields: {sorted(unknown)}")

    def graph_properties(self):
        """The Graph properties these rules read beyond the default $select."""
        names = [EXTRA_MAPPINGS[name][0] for name in self.extra_fields]
        if self.licensed_only:
            names.append("assignedLicenses")
        return tuple(dict.fromkeys(names))


@dataclass(slots=True)
class EntraUser:
    object_id: str
    email: str
    name: str
    function: str
    mobile: str
    extra: tuple | None = None  # values of Rules.extra_fields, in that order
    guest: bool = False  # a guest (B2B) account: its address is another organisation's


@dataclass(slots=True)
class Contact:
    """An existing child contact of the customer, as the ORM layer reads it.

    `object_id` is the stored Entra object id (of this integration only); `linked` tells
    whether the contact carries the Azure AD mark. `flags` holds the bits above,
    `synced_email` the normalized email the sync last wrote, `extra` the current values of
    Rules.extra_fields.
    """

    id: int
    email: str | None
    object_id: str | None = None
    linked: bool = False
    name: str | None = None
    function: str | None = None
    mobile: str | None = None
    flags: int = 0
    synced_email: str | None = None
    extra: tuple | None = None
    # A fingerprint of all the above, as the ORM layer read it: tells the next run whether
    # the contact changed since (not read by the planner).
    digest: str | None = None
    # Where its rows stood when read (see res.partner's _azure_ad_contact_query): the same
    # version next time, the same digest too (not read by the planner either).
    version: str | None = None


@dataclass(slots=True)
class Plan:
    """What a sync writes. Apply `unlink_ids` first, then `updates`, then `creates`, then
    `archives`."""

    creates: list = field(default_factory=list)
    updates: dict = field(default_factory=dict)
    unlink_ids: list = field(default_factory=list)
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    archives: dict = field(default_factory=dict)  # contact id -> why: "disabled", DELETED, a skip reason
    # contact id -> why the usual rule was not applied to it (HAS_LOGIN, LOGIN_EMAIL)
    other_edits: dict = field(default_factory=dict)
    linked: int = 0  # active contacts linked to the integration before the sync
    precreated: int = 0  # contacts this run created before planning (see early_creates)
    precreated_ids: frozenset = frozenset()  # their ids, when planned against them

    @property
    def created(self):
        return len(self.creates) + self.precreated

    @property
    def updated(self):
        """Contacts written: new values, a new link, or a lost link (those created by this
        run count as created)."""
        return len((self.updates.keys() | set(self.unlink_ids)) - self.precreated_ids)

    @property
    def archived(self):
        return len(self.archives)

    def counts(self):
        return {"created": self.created, "updated": self.updated,
                "unchanged": self.unchanged, "skipped": self.skipped.total()}

    def count_precreated(self, contact_ids):
        """Counts the contacts of `contact_ids`, created by this run before this plan was
        made against them, as created: planned again, each is unchanged, or moved over to
        the user that won its email."""
        self.precreated = len(contact_ids)
        self.precreated_ids = frozenset(contact_ids)
        self.unchanged -= len(self.precreated_ids - self.updates.keys())

    def other_edit_counts(self):
        """{reason: contacts} of other_edits."""
        return Counter(self.other_edits.values())

    def digest(self):
        """A fingerprint of everything this plan writes (not of what it skips)."""
        digest = hashlib.sha256()

        def put(value):
            digest.update(json.dumps(value, sort_keys=True, default=str).encode())
            digest.update(b"\n")

        for values in sorted(self.creates, key=lambda values: values["azure_ad_object_id"]):
            put(values)
        for contact_id in sorted(self.updates):
            put([contact_id, self.updates[contact_id]])
        put(sorted(self.unlink_ids))
        put(sorted(self.archives.items()))
        return digest.hexdigest()
