"""Which users a changes-only round plans again: pure Python, no I/O, no Odoo.

A sync leaves every user settled: planned again with the same users, contacts and rules, it
would write nothing and skip the same users. A user's plan depends only on the users and
contacts it is tied to, by one email (one contact per person, the winner of an address) or
by a link (the contact synced from it). So when Microsoft reports changes or contacts change
in Odoo, only the users tied, directly or not, to what changed are planned again; all others
keep what the last plan made of them.
"""

from .entra_user import entra_email, normalize_email
from .reconcile import _object_id


def user_key(user):
    """The email key of a Graph user, as the planner matches it."""
    return normalize_email(entra_email(user))


def concerned_users(keys, object_ids, load_contacts, load_users):
    """The users to plan again: those with one of the email `keys` or `object_ids`, and
    every user tied to them through an email or a contact's link, as {object id: record},
    and the contacts tied to them.

    `load_contacts(keys, object_ids)` returns the customer's contacts with one of them (as
    they are now), `load_users(object_ids, keys)` the stored users. Both sets are completed
    in place: the users whose contacts may be leavers are `object_ids` afterwards."""
    keys.discard(None)
    users = {}
    while True:
        # The contacts of these emails and links tie more users in, and their users more emails.
        while True:
            tied = load_contacts(keys, object_ids)
            new_keys = {c.email for c in tied if c.email} - keys
            new_ids = {c.object_id for c in tied if c.object_id} - object_ids
            if not new_keys and not new_ids:
                break
            keys |= new_keys
            object_ids |= new_ids
        found = load_users(object_ids, keys)
        new_keys = {user_key(user) for user in found.values()} - keys - {None}
        new_ids = {oid for user in found.values() if (oid := _object_id(user))} - object_ids
        users.update(found)
        if not new_keys and not new_ids:
            return users, tied
        keys |= new_keys
        object_ids |= new_ids
