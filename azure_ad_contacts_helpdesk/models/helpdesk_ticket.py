"""Tickets and synced contacts: the requester matched by email, a customer suggested by the
address's domain, and "Sync now" from the ticket."""

from odoo import api, fields, models, tools
from odoo.exceptions import UserError
from odoo.tools.sql import escape_psql

from odoo.addons.azure_ad_contacts.utils.notification import display_notification
from odoo.addons.azure_ad_contacts.utils.reconcile import normalize_email


def email_key(value):
    """The matching key of a ticket's address, by the sync's rule: the address out of
    "Name <address>" if there is one, trimmed and lower-cased; None when empty."""
    addresses = tools.email_split(value or "")
    if len(addresses) > 1:
        return None  # several addresses name no one
    return normalize_email(addresses[0] if addresses else value)


# Requesters found from the address only: a later sync may replace them with the synced contact.
REPLACEABLE_MATCHES = ("gateway", "ambiguous")


def has_user(partner):
    """Whether `partner` belongs to a user (archived ones included): a signed-in identity,
    which the helpdesk never replaces by a contact found from an address."""
    return bool(partner.sudo().with_context(active_test=False).user_ids)


def email_domain(value):
    key = email_key(value)
    return key.rpartition("@")[2] if key and "@" in key else None


class HelpdeskTicket(models.Model):
    _inherit = "helpdesk.ticket"

    azure_ad_synced = fields.Boolean(
        related="partner_id.azure_ad_synced",
        string="Requester's contact synced from Azure AD",
        help="The requester is a contact synced from Azure AD. This says where the contact comes "
        "from, not who wrote the ticket.",
    )
    azure_ad_requester_match = fields.Selection(
        [
            ("gateway", "Found by the mail gateway"),
            ("email", "Matched by email address"),
            ("ambiguous", "Address synced under several customers"),
        ],
        string="Requester found by",
        readonly=True,
        copy=False,
        help="How the requester was found from the ticket's email address; empty when it was "
        "chosen (by the person signed in, or by an agent). An address alone proves no identity.",
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

    # What a portal user sees (a global record rule): helpdesk_mgmt shares every ticket of a
    # customer with all of its portal users; a synced employee sees their own, unless the
    # customer's integration says "all of the company".
    azure_ad_portal_visible = fields.Boolean(
        compute="_compute_azure_ad_portal_visible",
        search="_search_azure_ad_portal_visible",
        string="Visible to the portal user",
        help="For a portal user who is a synced contact of a customer whose employees see their "
        "own tickets: the tickets they asked or follow. For everyone else: every ticket.",
    )

    @api.model
    def _azure_ad_portal_own_partner(self):
        """The current user's partner when that user sees only their own tickets (a portal
        user whose partner is synced, from a customer that did not open all its tickets to
        its employees); else no partner."""
        user = self.env.user
        partner = user.partner_id.sudo()
        if not user.share or not partner.azure_ad_synced:
            return self.env["res.partner"]
        # A contact left behind by its integration stays private.
        if partner.azure_ad_integration_id.helpdesk_portal_tickets == "company":
            return self.env["res.partner"]
        return partner

    @api.depends_context("uid")
    def _compute_azure_ad_portal_visible(self):
        own = self._azure_ad_portal_own_partner()
        own_ids = set(own.search([("id", "child_of", own.ids)]).ids) if own else set()
        for ticket in self:
            ticket.azure_ad_portal_visible = not own or (
                ticket.partner_id.id in own_ids or own in ticket.sudo().message_partner_ids
            )

    def _search_azure_ad_portal_visible(self, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on the visibility of tickets on the portal."))
        own = self._azure_ad_portal_own_partner()
        if own:
            domain = ["|", ("partner_id", "child_of", own.ids), ("message_partner_ids", "in", own.ids)]
        else:
            domain = [(1, "=", 1)]
        return domain if (operator == "=") == value else ["!", *domain]

    @api.depends("partner_id", "partner_email", "company_id")
    def _compute_azure_ad_suggested_customer_id(self):
        for ticket in self:
            if ticket.partner_id.azure_ad_synced:
                ticket.azure_ad_suggested_customer_id = False
            else:
                integration = self.env["azure.ad.integration"]._azure_ad_for_email_domain(
                    email_domain(ticket.partner_email or ticket.partner_id.email), ticket.company_id
                )
                ticket.azure_ad_suggested_customer_id = integration.partner_id

    # ------------------------------------------------------------------ matching

    @api.model
    def _azure_ad_find_requester(self, email, company=None):
        """(contact, why not): the synced contact that mail from `email` may come from, for a
        ticket of `company`. A contact qualifies only if it is no guest and its tenant verified
        the address's domain; when contacts of several customers qualify, none is chosen and `why not` is
        "ambiguous". Among contacts of one customer, the oldest."""
        Partner = self.env["res.partner"]
        key = email_key(email)
        domain = email_domain(key)
        if not domain:
            return Partner, False
        # email_normalized is Odoo's indexed key; it keeps the case of non-ASCII local
        # parts, so look for both spellings.
        keys = list({key, tools.email_normalize(key) or key})
        candidates = (
            Partner.sudo()
            .search(
                [
                    ("email_normalized", "in", keys),
                    ("azure_ad_synced", "=", True),
                    # Only a contact's tenant vouches for it: none without an integration.
                    ("azure_ad_integration_id", "!=", False),
                    ("azure_ad_guest", "=", False),
                    ("is_company", "=", False),
                    ("company_id", "in", [False, (company or self.env.company).id]),
                ],
                order="id",
            )
            .filtered(lambda contact: contact.azure_ad_integration_id._azure_ad_verifies(domain))
        )
        if len(candidates.commercial_partner_id) > 1:
            return Partner, "ambiguous"
        return candidates[:1].sudo(False), False

    @api.model
    def _azure_ad_company(self, vals):
        """The company a ticket created from `vals` belongs to (its team's, as helpdesk_mgmt
        decides, else the given one, else the current one)."""
        team = self.env["helpdesk.ticket.team"].browse(vals.get("team_id") or [])
        return (
            team.sudo().company_id
            or self.env["res.company"].browse(vals.get("company_id") or [])
            or self.env.company
        )

    @api.model
    def _azure_ad_requester_values(self, vals):
        """Values that put the synced contact on a ticket created (or matched again) from
        `vals`, or {} when there is nothing to change. Only a ticket without a requester, or
        with one that the mail gateway found by the address, gets one: a partner with a user
        (a signed-in identity) or chosen by someone is never replaced."""
        partner = self.env["res.partner"].browse(vals.get("partner_id") or [])
        match = vals.get("azure_ad_requester_match")
        if match == "email" and partner.sudo().azure_ad_synced:
            requester, why_not = partner, False  # found by message_new
        elif partner and (
            match not in REPLACEABLE_MATCHES or has_user(partner) or partner.sudo().azure_ad_synced
        ):
            return {}
        else:
            requester, why_not = self._azure_ad_find_requester(
                vals.get("partner_email") or partner.sudo().email, self._azure_ad_company(vals)
            )
        if not requester:
            if why_not != match and (why_not or match == "ambiguous"):
                return {"azure_ad_requester_match": why_not}
            return {}
        values = {}
        if requester != partner:
            values.update(partner_id=requester.id, azure_ad_requester_match="email")
        # The name typed for (or copied from) another partner does not describe the requester.
        # The requester is a contact of the ticket's company: reading it as superuser reads
        # nothing the ticket's users could not see.
        typed_name = vals.get("partner_name")
        if not typed_name or (partner != requester and typed_name == partner.sudo().name):
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
        first message, instead of another partner with that address that the gateway found
        (unless that one has a user); a synced contact that does not qualify (see
        _azure_ad_find_requester) is not used either."""
        custom_values = dict(custom_values or {})
        if "partner_id" not in custom_values:
            requester, why_not = self._azure_ad_find_requester(
                msg_dict.get("email_from"), self._azure_ad_company(custom_values)
            )
            author = self.env["res.partner"].browse(msg_dict.get("author_id") or [])
            if has_user(author):
                # Odoo's gateway looks among the partners of users first: a signed-in
                # identity stays the author and the requester.
                custom_values["azure_ad_requester_match"] = "email" if author == requester else "gateway"
            elif requester:
                msg_dict["author_id"] = requester.id
                custom_values.update(partner_id=requester.id, azure_ad_requester_match="email")
            elif author.sudo().azure_ad_synced:
                # Odoo's own pick would put the ticket under that contact's customer.
                msg_dict["author_id"] = False
                custom_values.update(partner_id=False, azure_ad_requester_match=why_not)
            else:
                custom_values["azure_ad_requester_match"] = why_not or ("gateway" if author else False)
        return super().message_new(msg_dict, custom_values=custom_values)

    def write(self, vals):
        if "partner_id" in vals and "azure_ad_requester_match" not in vals:
            vals = {**vals, "azure_ad_requester_match": False}  # chosen by someone
        result = super().write(vals)
        if "partner_email" in vals and not vals.get("partner_id"):
            # An agent typed the address of a ticket that has no requester yet.
            self.filtered(lambda ticket: not ticket.partner_id)._azure_ad_rematch()
        return result

    def _azure_ad_rematch(self):
        """Puts the synced contact on tickets without a requester, or whose requester the mail
        gateway found by the address; returns the tickets that got one."""
        matched = self.browse()
        for ticket in self:
            values = self._azure_ad_requester_values(
                {
                    "partner_id": ticket.partner_id.id,
                    "partner_name": ticket.partner_name,
                    "partner_email": ticket.partner_email,
                    "azure_ad_requester_match": ticket.azure_ad_requester_match,
                    "company_id": ticket.company_id.id,
                }
            )
            if values:
                ticket.write(values)
            if values.get("partner_id"):
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
        # Plain prefix domains (odoo.osv.expression is deprecated on 19.0).
        candidates = [("azure_ad_suggested_customer_id", "=", integration.partner_id.id)]
        for domain in domains:
            candidates = ["|", ("partner_email", "ilike", f"@{escape_psql(domain)}"), *candidates]
        tickets = self.sudo().search(
            [
                ("closed", "=", False),
                "|",
                ("partner_id", "=", False),
                ("partner_id.azure_ad_synced", "=", False),
                *candidates,
            ]
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
