"""The customer's contacts as an integration's last run left them, one row per contact: what
tells the next changes-only run which contacts someone changed, created or deleted in Odoo
since, and which contacts an email or a link ties to a change (read and written with SQL
only, and only for the contacts a run touches)."""

from odoo import api, fields, models
from odoo.tools import SQL, split_every

from ..series import Constraint

STATE_BATCH_SIZE = 10_000


class AzureAdContactState(models.Model):
    _name = "azure.ad.contact.state"
    _description = "Azure AD contact (as the last sync left it)"
    _log_access = False

    # No index of its own: the unique one on (integration_id, contact_id) serves it.
    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade")
    # Not a foreign key: the row of a contact deleted since the last run tells the next run
    # which users it was tied to.
    contact_id = fields.Integer(required=True)
    # As the planner matched the contact: its normalized email and the Entra user it is
    # linked to by this integration.
    email_key = fields.Char(string="Email key")
    object_id = fields.Char()
    # A fingerprint of everything the planner reads of the contact (computed by PostgreSQL,
    # see res.partner's _azure_ad_contact_query): equal digests, nothing to plan again.
    digest = fields.Char(required=True)
    # Where the contact's rows stood then (see res.partner's _azure_ad_contact_query): the
    # same version, the same digest, without computing it.
    version = fields.Char(string="Row version")
    # Why the last run left the contact as someone made it, while it stays so (see
    # reconcile.STANDING_EDITS).
    standing_edit = fields.Char(string="Kept as edited")

    _integration_contact_uniq = Constraint("unique(integration_id, contact_id)", "One row per contact.")

    def init(self):
        for column in ("email_key", "object_id"):
            self.env.cr.execute(
                SQL(
                    "CREATE INDEX IF NOT EXISTS %s ON azure_ad_contact_state (integration_id, %s)",
                    SQL.identifier(f"azure_ad_contact_state_{column}_idx"),
                    SQL.identifier(column),
                )
            )

    @api.model
    def _changed(self, integration_id, contacts_now):
        """The contacts whose state differs from what the last run left (changed, created or
        deleted since), compared in PostgreSQL: `contacts_now` is the SQL query of the
        customer's contacts (id, ..., digest, version). Returns {contact id: (email key,
        object id) as the last run left them, or (None, None) for a contact it did not know}.

        Only the digests of contacts whose version moved are computed; those that read the
        same all the same (saved with no change, or rewritten by PostgreSQL) keep their row,
        at their new version."""
        cr = self.env.cr
        cr.execute(
            SQL(
                """SELECT coalesce(now.id, state.contact_id), state.email_key, state.object_id,
                          now.id IS NOT NULL AND state.contact_id IS NOT NULL
                     FROM (SELECT contact.id, contact.version FROM (%s) AS contact) AS now
                FULL JOIN (SELECT contact_id, email_key, object_id, version FROM azure_ad_contact_state
                            WHERE integration_id = %s) AS state
                       ON state.contact_id = now.id
                    WHERE now.version IS DISTINCT FROM state.version""",
                contacts_now,
                integration_id,
            )
        )
        changed, moved = {}, []
        for contact_id, email_key, object_id, on_both_sides in cr.fetchall():
            changed[contact_id] = (email_key, object_id)
            if on_both_sides:
                moved.append(contact_id)
        for batch in split_every(STATE_BATCH_SIZE, moved, list):
            cr.execute(
                SQL(
                    """UPDATE azure_ad_contact_state AS state SET version = contact.version
                         FROM (%s) AS contact
                        WHERE state.integration_id = %s AND state.contact_id = contact.id
                          AND contact.id = ANY(%s) AND state.digest = contact.digest
                    RETURNING state.contact_id""",
                    contacts_now,
                    integration_id,
                    batch,
                )
            )
            for (contact_id,) in cr.fetchall():
                del changed[contact_id]
        return changed

    @api.model
    def _tied(self, integration_id, email_keys, object_ids, excluding):
        """The ids of the contacts the last run left with one of `email_keys` or `object_ids`
        (besides `excluding`: contacts changed since, whose rows are out of date)."""
        self.env.cr.execute(
            SQL(
                """SELECT contact_id FROM azure_ad_contact_state
                    WHERE integration_id = %s AND (email_key = ANY(%s) OR object_id = ANY(%s))
                      AND NOT contact_id = ANY(%s)""",
                integration_id,
                [key for key in email_keys if key],
                [object_id for object_id in object_ids if object_id],
                list(excluding),
            )
        )
        return {row[0] for row in self.env.cr.fetchall()}

    @api.model
    def _standing_edits(self, integration_id, customer_id):
        """{contact id: reason} of the contacts of the customer the last run left as someone
        made them (see reconcile.STANDING_EDITS)."""
        self.env.cr.execute(
            SQL(
                """SELECT state.contact_id, state.standing_edit FROM azure_ad_contact_state AS state
                     JOIN res_partner ON res_partner.id = state.contact_id AND res_partner.parent_id = %s
                    WHERE state.integration_id = %s AND state.standing_edit IS NOT NULL""",
                customer_id,
                integration_id,
            )
        )
        return dict(self.env.cr.fetchall())

    @api.model
    def _write_states(self, integration_id, contacts, standing_edits, gone=()):
        """Stores the state of `contacts` (the planner's contacts, with their digests) and
        their standing edits ({contact id: reason}), and drops the rows of `gone` (contact
        ids). Rows that are the same stay as they are: a run rewrites only what changed."""
        cr = self.env.cr
        if gone:
            cr.execute(
                SQL(
                    "DELETE FROM azure_ad_contact_state WHERE integration_id = %s AND contact_id = ANY(%s)",
                    integration_id,
                    list(gone),
                )
            )
        for batch in split_every(STATE_BATCH_SIZE, contacts, list):
            cr.execute(
                SQL(
                    """INSERT INTO azure_ad_contact_state AS state (integration_id, contact_id, email_key,
                                                                    object_id, digest, version, standing_edit)
                       SELECT %s, * FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[],
                                                %s::text[])
                  ON CONFLICT (integration_id, contact_id) DO UPDATE
                          SET email_key = excluded.email_key, object_id = excluded.object_id,
                              digest = excluded.digest, version = excluded.version,
                              standing_edit = excluded.standing_edit
                        WHERE (state.email_key, state.object_id, state.digest, state.version,
                               state.standing_edit)
                              IS DISTINCT FROM (excluded.email_key, excluded.object_id, excluded.digest,
                                                excluded.version, excluded.standing_edit)""",
                    integration_id,
                    [contact.id for contact in batch],
                    [contact.email for contact in batch],
                    [contact.object_id for contact in batch],
                    [contact.digest for contact in batch],
                    [contact.version for contact in batch],
                    [standing_edits.get(contact.id) for contact in batch],
                )
            )

    @api.model
    def _drop_gone(self, integration_id, customer_id):
        """Drops the rows of contacts no longer the customer's (deleted, or moved to another
        company)."""
        # EXCEPT, not NOT EXISTS: right after a first sync the statistics still describe the
        # tables before it, and an anti-join planned from them may scan the contacts per row.
        self.env.cr.execute(
            SQL(
                """DELETE FROM azure_ad_contact_state
                    WHERE integration_id = %s AND contact_id IN (
                          SELECT contact_id FROM azure_ad_contact_state WHERE integration_id = %s
                          EXCEPT SELECT id FROM res_partner WHERE parent_id = %s)""",
                integration_id,
                integration_id,
                customer_id,
            )
        )

    @api.model
    def _forget(self, integration_ids):
        self.env.cr.execute(
            SQL("DELETE FROM azure_ad_contact_state WHERE integration_id = ANY(%s)", list(integration_ids))
        )
