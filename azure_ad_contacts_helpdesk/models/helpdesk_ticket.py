"""Tickets and synced contacts: the requester matched by email, a customer suggested by the
address's domain, and "Sync now" from the ticket."""

from odoo import api, fields, models, tools
from odoo.exceptions import UserError
from odoo.osv import expression
from odoo.tools.sql import escape_psql

from odoo.addons.azure_ad_contacts.utils.notification import display_notification
from odoo.addons.azure_ad_contacts.utils.reconcile import normalize_email


def email_key(value):
    """The matching key of a ticket's address, by the sync's rule: the address out of
    "Name <address>" if there is one, trimmed and lower-cased; None when empty."""
    addresses = tools.email_split(value or "")
    return normalize_email(addresses[0] if addresses else value)


def email_domain(value):
    key = email_key(value)
    return key.rpartition("@")[2] if key and "@" in key else None


class HelpdeskTicket(models.Model):
    _inherit = "helpdesk.ticket"

    azure_ad_synced = fields.Boolean(
        related="partner_id.azure_ad_synced",
        string="Requester synced from Azure AD",
    )
    azure_ad_suggested_customer_id = fields.Many2one(
        "res.partner",
        string="Customer to sync from Azure AD",
        compute="_compute_azure_ad_suggested_customer_id",
        store=True,
        compute_sudo=True,
        index="btree_not_null",
        help="The address of this ticket belongs to the Microsoft 365 tenant of this customer, "
        "but no synced contact has it yet: syncing the customer imports the person.",
    )

    @api.depends("partner_id", "partner_email")
    def _compute_azure_ad_suggested_customer_id(self):
        for ticket in self:
            if ticket.partner_id.azure_ad_synced:
                ticket.azure_ad_suggested_customer_id = False
            else:
                integration = self.env["azure.ad.integration"]._azure_ad_for_email_domain(
                    email_domain(ticket.partner_email or ticket.partner_id.email)
                )
                ticket.azure_ad_suggested_customer_id = integration.partner_id

    # ------------------------------------------------------------------ matching

    @api.model
    def _azure_ad_find_requester(self, email):
        """The synced contact with this address (the sync's rule: case and surrounding
        blanks ignored); the oldest one if the person is synced under several customers."""
        key = email_key(email)
        if not key:
            return self.env["res.partner"]
        # email_normalized is Odoo's indexed key; it keeps the case of non-ASCII local
        # parts, so look for both spellings.
        keys = list({key, tools.email_normalize(key) or key})
        return (
            self.env["res.partner"]
            .sudo()
            .search(
                [
                    ("email_normalized", "in", keys),
                    ("azure_ad_synced", "=", True),
                    ("is_company", "=", False),
                ],
                order="id",
                limit=1,
            )
            .sudo(False)
        )

    @api.model
    def _azure_ad_requester_values(self, vals):
        """Values that put the synced contact on a ticket about to be created from `vals`
        (mail gateway, portal, form), or {} when there is nothing to change."""
        partner = self.env["res.partner"].browse(vals.get("partner_id") or [])
        if partner.sudo().azure_ad_synced:
            requester = partner
        else:
            requester = self._azure_ad_find_requester(partner.sudo().email or vals.get("partner_email"))
            if not requester:
                return {}
        values = {}
        if requester != partner:
            values["partner_id"] = requester.id
        # The name typed for (or copied from) another partner does not describe the requester.
        if not vals.get("partner_name") or (
            partner != requester and vals["partner_name"] == partner.sudo().name
        ):
            values["partner_name"] = requester.sudo().name
        if not vals.get("partner_email"):
            values["partner_email"] = requester.sudo().email
        return values

    @api.model_create_multi
    def create(self, vals_list):
        vals_list = [{**vals, **self._azure_ad_requester_values(vals)} for vals in vals_list]
        return super().create(vals_list)

    @api.model
    def message_new(self, msg_dict, custom_values=None):
        """Mail gateway: the sender's synced contact is the requester and the author of the
        first message, whichever partner with that address the gateway found."""
        requester = self._azure_ad_find_requester(msg_dict.get("email_from"))
        if requester and "partner_id" not in (custom_values or {}):
            msg_dict["author_id"] = requester.id
            custom_values = {**(custom_values or {}), "partner_id": requester.id}
        return super().message_new(msg_dict, custom_values=custom_values)

    def write(self, vals):
        result = super().write(vals)
        if "partner_email" in vals and not vals.get("partner_id"):
            # An agent typed the address of a ticket that has no requester yet.
            self.filtered(lambda ticket: not ticket.partner_id)._azure_ad_rematch()
        return result

    def _azure_ad_rematch(self):
        """Puts the synced contact on tickets whose requester is not a synced contact;
        returns the tickets that got one."""
        matched = self.browse()
        for ticket in self:
            if ticket.partner_id.sudo().azure_ad_synced:
                continue
            values = self._azure_ad_requester_values(
                {
                    "partner_id": ticket.partner_id.id,
                    "partner_name": ticket.partner_name,
                    "partner_email": ticket.partner_email,
                }
            )
            if values.get("partner_id"):
                ticket.write(values)
                matched |= ticket
        return matched

    def _azure_ad_rematch_after_sync(self):
        """After a sync: synced requesters where there now are some, and the suggestion
        brought up to date (the customer's domains may have changed) on the others."""
        unmatched = self - self._azure_ad_rematch()
        field = self._fields["azure_ad_suggested_customer_id"]
        self.env.add_to_compute(field, unmatched)
        unmatched.flush_recordset([field.name])

    @api.model
    def _azure_ad_tickets_to_rematch(self, integration):
        """Open tickets that an (up to date) sync of `integration` may resolve: suggested for
        its customer, or from one of its domains, and without a synced requester."""
        domains = integration._azure_ad_domain_list()
        candidates = expression.OR(
            [[("azure_ad_suggested_customer_id", "=", integration.partner_id.id)]]
            + [[("partner_email", "ilike", f"@{escape_psql(domain)}")] for domain in domains]
        )
        tickets = self.sudo().search(
            expression.AND(
                [
                    [("closed", "=", False)],
                    ["|", ("partner_id", "=", False), ("partner_id.azure_ad_synced", "=", False)],
                    candidates,
                ]
            )
        )
        # ilike '@contoso.example' also finds '@contoso.example.org': compare exactly.
        return tickets.filtered(
            lambda ticket: (
                ticket.azure_ad_suggested_customer_id == integration.partner_id
                or email_domain(ticket.partner_email) in domains
            )
        )

    # ------------------------------------------------------------------ actions

    def action_azure_ad_sync_customer(self):
        """Banner button: "Sync now" of the suggested customer (administrators only); the
        sync puts the newly imported contact on the ticket (see _sync_one)."""
        self.ensure_one()
        integration = self.env["azure.ad.integration"].search(
            [("partner_id", "=", self.azure_ad_suggested_customer_id.id)], limit=1
        )
        if not integration:
            raise UserError(self.env._("This ticket's address belongs to no connected customer."))
        log = integration._sync_now()
        if log.state != "done":
            # Handed to the background (no log: the ticket is matched when it is done), or
            # failed: the sync's own notification says so.
            return integration._sync_now_action(log)
        if self.azure_ad_synced:
            message = self.env._(
                "%(contact)s of %(customer)s is now the requester of this ticket.",
                contact=self.partner_id.name,
                customer=self.commercial_partner_id.name,
            )
            kind = "success"
        else:
            message = self.env._(
                "%(customer)s was synced, but none of its Azure AD users has the address "
                "%(email)s (or the user is skipped by the sync's filters).",
                customer=integration.name,
                email=self.partner_email,
            )
            kind = "warning"
        return display_notification(
            kind, self.env._("Azure AD sync done"), message, sticky=kind != "success"
        )
