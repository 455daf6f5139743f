"""The tenant's users as Microsoft last reported them, per integration, with what the last
plan made of each: what a changes-only round is merged into and plans from (read and written
with SQL only)."""

import json
import re
from collections import Counter

from odoo import api, fields, models
from odoo.tools import SQL, split_every

from ..series import Constraint
from ..utils import graph_client, reconcile
from ..utils.incremental import user_key

MIRROR_BATCH_SIZE = 1000
# Users the integration's options filter out keep only what decided it (the planner gives them
# the same reason from it while the options stay as they are): no name, phone or title, and
# no email unless an exclusion pattern matched it.
FILTERED_KEEP = {
    "guest": ("id", "userType", "accountEnabled", "assignedLicenses"),
    "disabled": ("id", "userType", "accountEnabled", "assignedLicenses"),
    "unlicensed": ("id", "userType", "accountEnabled", "assignedLicenses"),
    "not_in_group": ("id", "userType", "accountEnabled", "assignedLicenses"),
    "excluded": ("id", "userType", "accountEnabled", "assignedLicenses", "mail", "proxyAddresses",
                 "userPrincipalName"),
}
# A change of one of these may let a filtered-out user in: it is read whole again.
DECIDING = frozenset(name for names in FILTERED_KEEP.values() for name in names) - {"id"}


class AzureAdDirectoryUser(models.Model):
    """The tenant's users as Microsoft last reported them (the selected properties; of a user
    the options filter out, only what decided it, see FILTERED_KEEP): a changes-only round
    is merged into it, and the sync plans from it exactly as it would from a full listing.
    Written and read with SQL by the sync only."""

    _name = "azure.ad.directory.user"
    _description = "Azure AD user (as last read)"
    _log_access = False

    # No index of its own: the unique one on (integration_id, object_id) serves it.
    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade")
    object_id = fields.Char(required=True)
    data = fields.Json(required=True)
    # The matching key (normalized email) of the user, to find the users one email concerns.
    email_key = fields.Char(string="Email key")
    # Why the last plan gave the user no contact; empty when it has one.
    skip_reason = fields.Char(string="Skip reason")

    _integration_object_uniq = Constraint("unique(integration_id, object_id)", "One row per Entra user.")

    def init(self):
        self.env.cr.execute(
            SQL(
                "CREATE INDEX IF NOT EXISTS azure_ad_directory_user_email_key_idx"
                " ON azure_ad_directory_user (integration_id, email_key)"
            )
        )

    @api.model
    def _forget(self, integration_ids):
        self.env.cr.execute(
            SQL("DELETE FROM azure_ad_directory_user WHERE integration_id = ANY(%s)", list(integration_ids))
        )

    @api.model
    def _remove(self, integration_id, object_ids):
        if object_ids:
            self.env.cr.execute(
                SQL(
                    "DELETE FROM azure_ad_directory_user WHERE integration_id = %s AND object_id = ANY(%s)",
                    integration_id,
                    list(object_ids),
                )
            )

    @api.model
    def _store(self, integration_id, users):
        """Stores the users of a listing (Graph user dicts): a user listed twice counts once,
        with its first record, as in the planner."""
        rows = {}
        for user in users:
            object_id = reconcile._object_id(user)
            if object_id is not None:  # the planner skips the others as "invalid" anyway
                rows.setdefault(object_id, user)
        self._upsert(integration_id, rows, SQL("DO NOTHING"))

    @api.model
    def _merge(self, integration_id, changes, removed):
        """Merges a changes-only round into what is stored: `changes` ({object id: the
        properties sent}, which may be only the changed ones), `removed` (object ids).
        Returns the email keys these users had before, and the ids of those it lacked, or
        kept only what filtered them out of and that changed in it: what was sent of them may
        not be all."""
        stored = self._users(integration_id, object_ids=[*changes, *removed])
        before = {user_key(data) for data in stored.values()}
        deciding = [oid for oid in changes.keys() & stored.keys() if changes[oid].keys() & DECIDING]
        partial = self._filtered(integration_id, deciding)
        self._remove(integration_id, removed)
        self._replace(
            integration_id,
            {object_id: {**stored.get(object_id, {}), **user} for object_id, user in changes.items()},
        )
        return before, (changes.keys() - stored.keys()) | partial

    def _filtered(self, integration_id, object_ids):
        """The ids among `object_ids` of users stored as the options filtered them out."""
        if not object_ids:
            return set()
        self.env.cr.execute(
            SQL(
                """SELECT object_id FROM azure_ad_directory_user
                    WHERE integration_id = %s AND object_id = ANY(%s) AND skip_reason = ANY(%s)""",
                integration_id,
                list(object_ids),
                list(FILTERED_KEEP),
            )
        )
        return {row[0] for row in self.env.cr.fetchall()}

    @api.model
    def _admits_filtered(self, integration_id, rules):
        """Whether `rules` would let in a user stored as filtered out, whose other properties
        are not kept (e.g. one that joined a filter group): then every user is listed again."""
        let_in = [
            reason
            for reason, admitted in (
                ("guest", rules.include_guests),
                ("disabled", rules.include_disabled),
                ("unlicensed", not rules.licensed_only),
                ("not_in_group", rules.group_member_ids is None),
            )
            if admitted
        ]
        cr = self.env.cr
        cr.execute(
            SQL(
                """SELECT 1 FROM azure_ad_directory_user
                    WHERE integration_id = %s AND skip_reason = ANY(%s) LIMIT 1""",
                integration_id,
                let_in,
            )
        )
        if cr.fetchone():
            return True
        if rules.group_member_ids is None:
            return False
        # A join, not `= ANY(members)`: a group may have as many members as the tenant users.
        cr.execute(
            SQL(
                """SELECT 1 FROM azure_ad_directory_user AS stored
                     JOIN unnest(%s::text[]) AS member(id) ON member.id = lower(stored.object_id)
                    WHERE stored.integration_id = %s AND stored.skip_reason = 'not_in_group'
                    LIMIT 1""",
                sorted(rules.group_member_ids),
                integration_id,
            )
        )
        return bool(cr.fetchone())

    @api.model
    def _replace(self, integration_id, users):
        """Stores `users` ({object id: record}) in place of what is stored of them."""
        self._upsert(
            integration_id, users, SQL("DO UPDATE SET data = EXCLUDED.data, email_key = EXCLUDED.email_key")
        )

    def _upsert(self, integration_id, rows, conflict):
        for batch in split_every(MIRROR_BATCH_SIZE, rows.items(), list):
            self.env.cr.execute(
                SQL(
                    """INSERT INTO azure_ad_directory_user (integration_id, object_id, data, email_key)
                       SELECT %s, row.object_id, row.data, row.email_key
                         FROM jsonb_to_recordset(%s::jsonb) AS row(object_id text, data jsonb, email_key text)
                       ON CONFLICT (integration_id, object_id) %s""",
                    integration_id,
                    _jsonb_text(
                        [
                            {"object_id": object_id, "data": user, "email_key": user_key(user)}
                            for object_id, user in batch
                        ]
                    ),
                    conflict,
                )
            )

    @api.model
    def _users(self, integration_id, object_ids=(), email_keys=()):
        """{object id: stored record} of the users with one of `object_ids` or `email_keys`."""
        cr = self.env.cr
        cr.execute(
            SQL(
                """SELECT object_id, data FROM azure_ad_directory_user
                    WHERE integration_id = %s AND (object_id = ANY(%s) OR email_key = ANY(%s))""",
                integration_id,
                list(object_ids),
                [key for key in email_keys if key],
            )
        )
        return dict(cr.fetchall())

    @api.model
    def _pages(self, integration_id, size=graph_client.PAGE_SIZE):
        """The stored users as pages, as a listing of the tenant would give them: one page in
        memory at a time (a query for all would hold every user in the client at once)."""
        cr = self.env.cr
        after = ""
        while True:
            cr.execute(
                SQL(
                    """SELECT object_id, data FROM azure_ad_directory_user
                        WHERE integration_id = %s AND object_id > %s
                     ORDER BY object_id LIMIT %s""",
                    integration_id,
                    after,
                    size,
                )
            )
            rows = cr.fetchall()
            if not rows:
                return
            after = rows[-1][0]
            yield [row[1] for row in rows]

    @api.model
    def _count(self, integration_id):
        self.env.cr.execute(
            SQL("SELECT count(*) FROM azure_ad_directory_user WHERE integration_id = %s", integration_id)
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _outcomes(self, integration_id, excluding=()):
        """How many stored users (besides `excluding`) the last plan gave a contact, and the
        others by skip reason: (count, Counter)."""
        # All users less those excluded: a few index lookups, not the list searched per user.
        counts = self._skip_reason_counts(integration_id)
        if excluding:
            counts.subtract(self._skip_reason_counts(integration_id, excluding))
        kept = counts.pop(None, 0)
        return kept, +counts

    def _skip_reason_counts(self, integration_id, object_ids=None):
        """{skip reason (None: given a contact): how many} of the stored users (of `object_ids`
        only, if given), as a Counter."""
        users = SQL("AND object_id = ANY(%s)", list(object_ids)) if object_ids is not None else SQL()
        self.env.cr.execute(
            SQL(
                """SELECT skip_reason, count(*) FROM azure_ad_directory_user
                    WHERE integration_id = %s %s GROUP BY skip_reason""",
                integration_id,
                users,
            )
        )
        return Counter(dict(self.env.cr.fetchall()))

    @api.model
    def _record_outcomes(self, integration_id, skipped, planned=None):
        """Notes why the plan skipped the users of `skipped` ({object id: reason}); every
        other user of `planned` (object ids; None: all users) got a contact."""
        cr = self.env.cr
        if planned is None:
            cr.execute(
                SQL(
                    """UPDATE azure_ad_directory_user SET skip_reason = NULL
                        WHERE integration_id = %s AND skip_reason IS NOT NULL""",
                    integration_id,
                )
            )
        elif planned:
            cr.execute(
                SQL(
                    """UPDATE azure_ad_directory_user SET skip_reason = NULL
                        WHERE integration_id = %s AND object_id = ANY(%s)""",
                    integration_id,
                    list(planned),
                )
            )
        if skipped:
            cr.execute(
                SQL(
                    """UPDATE azure_ad_directory_user AS stored SET skip_reason = skip.value
                         FROM jsonb_each_text(%s::jsonb) AS skip
                        WHERE stored.integration_id = %s AND stored.object_id = skip.key""",
                    _jsonb_text(skipped),
                    integration_id,
                )
            )
            filtered = [object_id for object_id, reason in skipped.items() if reason in FILTERED_KEEP]
            self._strip_filtered(integration_id, filtered)

    @api.model
    def _strip_filtered(self, integration_id=None, object_ids=None):
        """Of the users stored as the options filtered them out (of one integration, or all;
        only those of `object_ids` when given), drops every property but those that decided
        it (see FILTERED_KEEP), and the email key unless a pattern excluded the user by it."""
        if object_ids is not None and not object_ids:
            return
        integration = SQL("AND stored.integration_id = %s", integration_id) if integration_id else SQL()
        users = SQL("AND stored.object_id = ANY(%s)", list(object_ids)) if object_ids else SQL()
        keep = SQL(
            "CASE stored.skip_reason %s END",
            SQL(" ").join(
                SQL("WHEN %s THEN %s::text[]", reason, list(names)) for reason, names in FILTERED_KEEP.items()
            ),
        )
        self.env.cr.execute(
            SQL(
                """UPDATE azure_ad_directory_user AS stored
                      SET data = (SELECT coalesce(jsonb_object_agg(property.key, property.value), '{}')
                                    FROM jsonb_each(stored.data) AS property
                                   WHERE property.key = ANY(%(keep)s)),
                          email_key = CASE WHEN stored.skip_reason = 'excluded' THEN stored.email_key END
                    WHERE stored.skip_reason = ANY(%(reasons)s) %(integration)s %(users)s
                      AND (EXISTS (SELECT 1 FROM jsonb_object_keys(stored.data) AS name
                                    WHERE NOT name = ANY(%(keep)s))
                           OR (stored.email_key IS NOT NULL AND stored.skip_reason != 'excluded'))""",
                keep=keep,
                reasons=list(FILTERED_KEEP),
                integration=integration,
                users=users,
            )
        )


def _jsonb_text(value):
    """`value` as JSON that PostgreSQL's jsonb takes: it refuses NUL characters and lone
    surrogates, which hostile input may hold (and the planner drops from every text anyway)."""
    text = json.dumps(value, ensure_ascii=False)
    if "\\u0000" not in text and not _SURROGATE.search(text):
        return text
    return json.dumps(_storable(value), ensure_ascii=False)


def _storable(value):
    if isinstance(value, str):
        return _UNSTORABLE.sub("", value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
