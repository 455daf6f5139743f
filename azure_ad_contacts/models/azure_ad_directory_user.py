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


class AzureAdDirectoryUser(models.Model):
    """The tenant's users as Microsoft last reported them (the selected properties): a
    changes-only round is merged into it, and the sync plans from it exactly as it would
    from a full listing. Written and read with SQL by the sync only."""

    _name = "azure.ad.directory.user"
    _description = "Azure AD user (as last read)"
    _log_access = False

    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade", index=True)
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
        Returns the email keys these users had before, and the ids of those it lacked."""
        stored = self._users(integration_id, object_ids=[*changes, *removed])
        before = {user_key(data) for data in stored.values()}
        self._remove(integration_id, removed)
        self._replace(
            integration_id,
            {object_id: {**stored.get(object_id, {}), **user} for object_id, user in changes.items()},
        )
        return before, changes.keys() - stored.keys()

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
        """The stored users as pages, as a listing of the tenant would give them."""
        cr = self.env.cr
        cr.execute(SQL("SELECT data FROM azure_ad_directory_user WHERE integration_id = %s", integration_id))
        while rows := cr.fetchmany(size):
            yield [row[0] for row in rows]

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
        self.env.cr.execute(
            SQL(
                """SELECT skip_reason, count(*) FROM azure_ad_directory_user
                    WHERE integration_id = %s AND NOT object_id = ANY(%s)
                    GROUP BY skip_reason""",
                integration_id,
                list(excluding),
            )
        )
        counts = dict(self.env.cr.fetchall())
        kept = counts.pop(None, 0)
        return kept, Counter(counts)

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
