"""The tenant's users as Microsoft last reported them, per integration: what a changes-only
round is merged into, and what the sync plans from (read and written with SQL only)."""

import json
import re

from odoo import api, fields, models
from odoo.tools import SQL, split_every

from ..utils import graph_client, reconcile

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

    _sql_constraints = [
        ("integration_object_uniq", "unique(integration_id, object_id)", "One row per Entra user."),
    ]

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
                    object_ids,
                )
            )

    @api.model
    def _store(self, integration_id, users, merge=False):
        """Stores `users` (Graph user dicts). A listing's first occurrence of a user counts, as
        in the planner; with `merge` (a changes-only round, which may send only the changed
        properties, and a user more than once), the properties sent overwrite only themselves."""
        rows = {}
        for user in users:
            object_id = reconcile._object_id(user)
            if object_id is None:  # the planner skips these as "invalid" anyway
                continue
            if merge:
                rows[object_id] = {**rows.get(object_id, {}), **user}
            else:
                rows.setdefault(object_id, user)
        conflict = SQL(
            "DO UPDATE SET data = azure_ad_directory_user.data || EXCLUDED.data" if merge else "DO NOTHING"
        )
        for batch in split_every(MIRROR_BATCH_SIZE, rows.items(), list):
            self.env.cr.execute(
                SQL(
                    """INSERT INTO azure_ad_directory_user (integration_id, object_id, data)
                       SELECT %s, key, value FROM jsonb_each(%s::jsonb)
                       ON CONFLICT (integration_id, object_id) %s""",
                    integration_id,
                    _jsonb_text(dict(batch)),
                    conflict,
                )
            )

    @api.model
    def _pages(self, integration_id, size=graph_client.PAGE_SIZE):
        """The stored users as pages, as a listing of the tenant would give them."""
        cr = self.env.cr
        cr.execute(
            SQL("SELECT data FROM azure_ad_directory_user WHERE integration_id = %s", integration_id)
        )
        while rows := cr.fetchmany(size):
            yield [row[0] for row in rows]


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
