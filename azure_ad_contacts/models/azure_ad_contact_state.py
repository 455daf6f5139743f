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

    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade", index=True)
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
        deleted since), by comparing digests in PostgreSQL: `contacts_now` is the SQL query of
        the customer's contacts (id, ..., digest). Returns {contact id: (email key, object id)
        as the last run left them, or (None, None) for a contact it did not know}."""
        self.env.cr.execute(
            SQL(
                """SELECT coalesce(now.id, state.contact_id), state.email_key, state.object_id
                     FROM (SELECT contact.id, contact.digest FROM (%s) AS contact) AS now
                FULL JOIN (SELECT contact_id, email_key, object_id, digest FROM azure_ad_contact_state
                            WHERE integration_id = %s) AS state
                       ON state.contact_id = now.id
                    WHERE now.digest IS DISTINCT FROM state.digest""",
                contacts_now,
                integration_id,
            )
        )
        return {row[0]: (row[1], row[2]) for row in self.env.cr.fetchall()}

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
    def _write_states(self, integration_id, contacts, standing_edits, replacing=None):
        """Stores the state of `contacts` (the planner's contacts, with their digests) and
        their standing edits ({contact id: reason}), in place of the rows of `replacing`
        (contact ids; None: of every contact)."""
        cr = self.env.cr
        if replacing is None:
            cr.execute(SQL("DELETE FROM azure_ad_contact_state WHERE integration_id = %s", integration_id))
        elif replacing:
            cr.execute(
                SQL(
                    "DELETE FROM azure_ad_contact_state WHERE integration_id = %s AND contact_id = ANY(%s)",
                    integration_id,
                    list(replacing),
                )
            )
        for batch in split_every(STATE_BATCH_SIZE, contacts, list):
            cr.execute(
                SQL(
                    """INSERT INTO azure_ad_contact_state
                              (integration_id, contact_id, email_key, object_id, digest, standing_edit)
                       SELECT %s, * FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[], %s::text[])""",
                    integration_id,
                    [contact.id for contact in batch],
                    [contact.email for contact in batch],
                    [contact.object_id for contact in batch],
                    [contact.digest for contact in batch],
                    [standing_edits.get(contact.id) for contact in batch],
                )
            )

    @api.model
    def _forget(self, integration_ids):
        self.env.cr.execute(
            SQL("DELETE FROM azure_ad_contact_state WHERE integration_id = ANY(%s)", list(integration_ids))
        )
