"""A customer of the partner tenant (a tenant the MSP reaches through GDAP): its relationships,
the Odoo customer proposed for it and confirmed (or not) by an administrator, the integration
that connects it through the partner, and what happens as its relationships end."""

import logging
import math
import time

from markupsafe import Markup

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL
from odoo.tools.misc import format_date

from ..series import Constraint
from ..utils import gdap, graph_client
from ..utils.notification import display_notification
from ..utils.partner_matching import Company, Matcher, email_domain, website_domain

_logger = logging.getLogger(__name__)

# An ending relationship is announced this many days before (each once per end date).
WARNING_DAYS = (30, 7)
ENDING_ACTIVITY = "azure_ad_contacts.mail_activity_type_partner_relationship_ending"


class AzureAdPartnerCustomer(models.Model):
    _name = "azure.ad.partner.customer"
    _description = "Customer of the partner tenant (GDAP)"
    _inherit = ["mail.thread", "mail.activity.mixin", "azure.ad.owned.fields.mixin"]
    # Microsoft's data and the match's course; the administrator chooses partner_id only.
    _azure_ad_owned = (
        "partner_tenant_id",
        "tenant_id",
        "name",
        "verified_domains",
        "domains_date",
        "access_problem",
        "proposed_partner_id",
        "match_reason",
        "match_detail",
        "match_state",
        "integration_id",
        "warned_end_date",
        "warned_days",
    )
    _order = "match_state_order, name, id"

    partner_tenant_id = fields.Many2one(
        "azure.ad.partner.tenant", string="Partner tenant", required=True, ondelete="cascade", readonly=True
    )
    tenant_id = fields.Char(string="Tenant ID", required=True, readonly=True)
    name = fields.Char(string="Tenant", readonly=True)
    relationship_ids = fields.One2many("azure.ad.partner.relationship", "customer_id", string="Relationships")
    access_state = fields.Selection(
        [
            ("active", "Active"),
            ("no_role", "No role that reads users"),
            ("pending", "Waiting for the customer's approval"),
            ("ended", "Ended"),
        ],
        string="GDAP access",
        compute="_compute_access",
        store=True,
        help="What the partner's relationships with this customer allow: reading its users needs "
        "an active relationship with the Directory Readers role (or Global Reader, User "
        "Administrator) for the security group of the partner administrator.",
    )
    access_end_date = fields.Datetime(
        string="Access ends",
        compute="_compute_access",
        store=True,
        help="When the last active relationship that reads users ends (empty: it extends itself).",
    )
    auto_extend = fields.Boolean(string="Extends itself", compute="_compute_access", store=True)
    verified_domains = fields.Char(
        readonly=True, help="The tenant's verified domains, as Microsoft lists them."
    )
    domains_date = fields.Datetime(string="Domains read on", readonly=True, copy=False)
    # Why the tenant could not be read with the partner's sign-in (no role, app not authorized…).
    access_problem = fields.Text(readonly=True, copy=False)
    proposed_partner_id = fields.Many2one("res.partner", string="Proposed customer", readonly=True)
    match_reason = fields.Selection(
        [("domain", "Verified domain"), ("name", "Name"), ("tenant", "Already connected")],
        readonly=True,
    )
    match_detail = fields.Char(string="Matched on", readonly=True)
    partner_id = fields.Many2one(
        "res.partner",
        string="Odoo customer",
        domain=[("is_company", "=", True)],
        tracking=True,
        help="The Odoo customer whose contacts this tenant's users become. Proposed from the "
        "tenant's verified domains, then its name; confirm it, change it, or leave the tenant unmatched.",
    )
    match_state = fields.Selection(
        [("new", "To confirm"), ("confirmed", "Confirmed"), ("unmatched", "Left unmatched")],
        string="Match",
        default="new",
        required=True,
        readonly=True,
        tracking=True,
    )
    match_state_order = fields.Integer(compute="_compute_match_state_order", store=True)
    integration_id = fields.Many2one("azure.ad.integration", readonly=True, copy=False)
    integration_state = fields.Selection(related="integration_id.state", string="Connection")
    connection_method = fields.Selection(related="integration_id.connection_method")
    # The end date and threshold (days) of the last ending warning: each is given once.
    warned_end_date = fields.Datetime(readonly=True, copy=False)
    warned_days = fields.Integer(readonly=True, copy=False)

    _tenant_uniq = Constraint(
        "unique(partner_tenant_id, tenant_id)", "This customer tenant is already listed."
    )

    @api.depends("match_state")
    def _compute_match_state_order(self):
        order = {"new": 0, "confirmed": 1, "unmatched": 2}
        for customer in self:
            customer.match_state_order = order.get(customer.match_state, 3)

    @api.depends(
        "relationship_ids.status",
        "relationship_ids.end_date",
        "relationship_ids.auto_extend",
        "relationship_ids.roles",
    )
    def _compute_access(self):
        for customer in self:
            access = gdap.customer_access(r._as_relationship() for r in customer.relationship_ids)
            customer.access_state = access.state
            customer.access_end_date = access.end
            customer.auto_extend = access.auto_extend

    # ------------------------------------------------------------------ the list

    @api.model
    def _update_from_partner(self, partner, customers, relationships):
        """Brings `partner`'s list up to date with Graph's `customers` ({tenant id: name}) and
        `relationships` (gdap.Relationship); returns the customers new in the list."""
        by_tenant = {}
        for relationship in relationships:
            by_tenant.setdefault(relationship.customer_tenant_id, []).append(relationship)
        existing = {customer.tenant_id: customer for customer in partner.customer_ids}
        new = self.browse()
        for tenant_id in sorted(set(customers) | set(by_tenant)):
            found = by_tenant.get(tenant_id, [])
            name = customers.get(tenant_id) or next(
                (r.customer_name for r in found if r.customer_name), tenant_id
            )
            customer = existing.pop(tenant_id, None)
            if customer is None:
                customer = (
                    self.sudo()
                    .create({"partner_tenant_id": partner.id, "tenant_id": tenant_id, "name": name})
                    .sudo(False)
                )
                new |= customer
            elif customer.name != name:
                customer.sudo().name = name
            customer.relationship_ids._replace_with(customer, found)
        # No longer listed at all: whatever relationships it had are gone.
        for customer in existing.values():
            customer.relationship_ids.sudo().unlink()
        return new

    def _domains_to_read(self):
        """Customers still to be proposed whose verified domains were never read."""
        return self.filtered(
            lambda c: c.match_state == "new" and not c.domains_date and c.access_state == "active"
        )

    def _read_domains(self, deadline=None):
        """Reads the verified domains of customers still to be proposed, with the partner's
        sign-in, until `deadline` (time.monotonic()); what stops a read is kept as the customer's
        access problem (the list shows it before anyone confirms)."""
        for customer in self._domains_to_read():
            if deadline is not None and time.monotonic() > deadline:
                break
            try:
                client = customer.partner_tenant_id._customer_client(customer.tenant_id)
                domains = client.limit_budget(max_attempts=2, max_wait=10).verified_domains()
            except graph_client.GraphError as error:
                customer.sudo().write(
                    {
                        "domains_date": fields.Datetime.now(),
                        "access_problem": customer.env["azure.ad.integration"]._partner_problem(
                            error, customer.name
                        ),
                    }
                )
                continue
            customer.sudo().write(
                {
                    "verified_domains": ", ".join(domains),
                    "domains_date": fields.Datetime.now(),
                    "access_problem": False,
                }
            )

    def _propose_matches(self):
        """An Odoo customer proposed for each customer still to confirm."""
        todo = self.filtered(lambda c: c.match_state == "new")
        if not todo:
            return
        # Every connected tenant, whichever company the administrator works in.
        connected = {
            integration.tenant_id.lower(): integration.partner_id.id
            for integration in self.env["azure.ad.integration"].sudo().search([("tenant_id", "!=", False)])
        }
        matcher = Matcher(self._companies())
        for customer in todo:
            company_id = connected.get(customer.tenant_id)
            if company_id:
                values = {
                    "proposed_partner_id": company_id,
                    "match_reason": "tenant",
                    "match_detail": customer.tenant_id,
                }
            else:
                domains = [d.strip() for d in (customer.verified_domains or "").split(",") if d.strip()]
                proposal = matcher.propose(domains, customer.name)
                values = {
                    "proposed_partner_id": proposal.company_id or False,
                    "match_reason": proposal.reason or False,
                    "match_detail": proposal.detail or False,
                }
            # The administrator's own choice stays; a proposal fills only an empty or proposed one.
            if not customer.partner_id or customer.partner_id == customer.proposed_partner_id:
                values["partner_id"] = values["proposed_partner_id"]
            current = customer.read(list(values), load=None)[0]
            if any(current[name] != value for name, value in values.items()):
                customer.sudo().write(values)

    @api.model
    def _companies(self):
        """Every Odoo customer company with the domains it uses: its website, its email, and
        the emails of its synced contacts."""
        companies = {}
        for row in self.env["res.partner"].search_read(
            [("is_company", "=", True)], ["name", "website", "email"], order="id"
        ):
            company = companies[row["id"]] = Company(row["id"], row["name"] or "")
            company.add_domain(website_domain(row["website"]), "website")
            company.add_domain(email_domain(row["email"]), "email")
        self.env["res.partner"].flush_model(["email", "parent_id", "azure_ad_synced", "is_company"])
        self.env.cr.execute(
            SQL(
                """SELECT DISTINCT parent_id, lower(split_part(email, '@', 2))
                 FROM res_partner
                WHERE azure_ad_synced AND parent_id IS NOT NULL AND email LIKE %s""",
                "%@%",
            )
        )
        for parent_id, domain in self.env.cr.fetchall():
            if parent_id in companies:
                companies[parent_id].add_domain(graph_client.domain_name(domain), "contact")
        return companies.values()

    # ------------------------------------------------------------------ confirming

    def action_confirm(self):
        """Connects each customer's tenant through the partner to the Odoo customer chosen; the
        first syncs run in the background (the scheduled job), one after another. A customer
        that cannot be connected is reported and does not hold the others back."""
        self.env["azure.ad.integration"]._check_admin()
        integrations = self.env["azure.ad.integration"]
        failures = []
        for customer in self:
            try:
                with self.env.cr.savepoint():
                    integrations |= customer._confirm()
            except UserError as error:
                failures.append(str(error))
        if not integrations:
            raise UserError("\n".join(failures))
        # A relationship about to end is announced now, not at the next daily reading.
        self.filtered(lambda customer: customer.integration_id in integrations)._watch_relationships()
        for integration in integrations:  # one by one: a queue job each with the queue bridge
            integration._sync_in_background()
        if len(integrations) == 1:
            message = self.env._(
                "%(customer)s is connected through the partner tenant: its first sync runs in the "
                "background, and you will be notified when it is done.",
                customer=integrations.partner_id.display_name,
            )
        else:
            message = self.env._(
                "%(count)s customers are connected through the partner tenant: their first syncs run "
                "in the background, and you will be notified when each is done.",
                count=len(integrations),
            )
        if failures:
            message = "\n".join([message, self.env._("Not connected:"), *failures])
        return display_notification(
            "warning" if failures else "success",
            self.env._("Connected through the partner"),
            message,
            sticky=bool(failures),
            next_action={"type": "ir.actions.client", "tag": "soft_reload"},
        )

    def _confirm(self):
        self.ensure_one()
        if not self.partner_id:
            raise UserError(
                self.env._("Choose the Odoo customer of %(tenant)s before confirming.", tenant=self.name)
            )
        if self.access_state != "active":
            raise UserError(
                self.env._(
                    "%(tenant)s cannot be connected through the partner: %(state)s. %(remedy)s",
                    tenant=self.name,
                    state=dict(self._fields["access_state"]._description_selection(self.env))[
                        self.access_state
                    ],
                    remedy=self._access_remedy(),
                )
            )
        integration = self.env["azure.ad.integration"]._connect_through_partner(self)
        self.sudo().write({"match_state": "confirmed", "integration_id": integration.id})
        self.message_post(
            body=self.env._(
                "Connected to %(customer)s through the partner by %(user)s.",
                customer=self.partner_id.display_name,
                user=self.env.user.name,
            )
        )
        return integration

    def action_leave_unmatched(self):
        self.env["azure.ad.integration"]._check_admin()
        connected = self.filtered(
            lambda c: (
                c.integration_id.connection_method == "partner"
                and c.integration_id.state in ("connected", "error")
            )
        )
        if connected:
            raise UserError(
                self.env._(
                    "%(tenants)s is connected through the partner: disconnect its integration first.",
                    tenants=", ".join(connected.mapped("name")),
                )
            )
        self.sudo().write({"match_state": "unmatched", "partner_id": False})
        return True

    def action_propose_again(self):
        """Back to "To confirm": the verified domains are read and a customer proposed again."""
        self.env["azure.ad.integration"]._check_admin()
        self.filtered(lambda c: c.match_state != "confirmed" or not c.integration_id).sudo().write(
            {"match_state": "new", "domains_date": False, "partner_id": False}
        )
        todo = self.filtered(lambda c: c.match_state == "new")
        todo._read_domains(time.monotonic() + 20)
        todo._propose_matches()
        return True

    def action_open_integration(self):
        self.ensure_one()
        return self.integration_id.action_open()

    # ------------------------------------------------------------------ ends

    def _access_remedy(self):
        return self.env._(
            "In Partner Center, ask the customer to approve a GDAP relationship with the Directory "
            "Readers role (or extend the current one) and assign that role to the security group of "
            "your partner administrators, or connect the customer by its own consent instead."
        )

    def _watch_relationships(self, now=None):
        """For the customers connected through the partner: an activity 30 and 7 days before
        their access ends (once per end date and threshold), and their integration marked with
        the reason and the remedy once it has ended."""
        now = now or fields.Datetime.now()
        for customer in self.filtered(lambda c: c.integration_id.connection_method == "partner"):
            integration = customer.integration_id
            if customer.access_state in ("ended", "no_role", "pending"):
                integration._partner_access_lost(customer._lost_access_message())
                continue
            integration._retry_partner_failures()  # e.g. the relationship was renewed
            end = customer.access_end_date
            if not end or customer.auto_extend:
                if customer.warned_end_date:  # extended meanwhile
                    customer._close_ending_warnings(self.env._("The relationship was extended."))
                continue
            if customer.warned_end_date and customer.warned_end_date != end:
                customer._close_ending_warnings(self.env._("The relationship's end date changed."))
            days_left = math.ceil((end - now).total_seconds() / 86400)
            due = [days for days in WARNING_DAYS if days_left <= days]
            if not due or (customer.warned_end_date == end and customer.warned_days == min(due)):
                continue
            customer.sudo().write({"warned_end_date": end, "warned_days": min(due)})
            customer._warn_ending(end, max(days_left, 0))

    def _lost_access_message(self):
        if self.access_state == "no_role":
            reason = self.env._(
                "the partner's relationship with %(tenant)s has no role that reads users any more",
                tenant=self.name,
            )
        elif self.access_state == "pending":
            reason = self.env._(
                "the relationship with %(tenant)s waits for the customer's approval", tenant=self.name
            )
        else:
            reason = self.env._(
                "the partner's GDAP relationship with %(tenant)s has ended%(date)s",
                tenant=self.name,
                date=self.env._(" on %(date)s", date=format_date(self.env, self.access_end_date))
                if self.access_end_date
                else "",
            )
        return self.env._(
            "%(customer)s is no longer reachable through the partner tenant: %(reason)s. %(remedy)s",
            customer=self.partner_id.display_name or self.name,
            reason=reason,
            remedy=self._access_remedy(),
        )

    def _warn_ending(self, end, days_left):
        summary = self.env._(
            "GDAP relationship with %(tenant)s ends in %(days)s days", tenant=self.name, days=days_left
        )
        note = Markup("<p>%s</p><p>%s</p>") % (
            self.env._(
                "On %(date)s the partner tenant loses its access to %(tenant)s, and the contacts of "
                "%(customer)s stop being synced.",
                date=format_date(self.env, end),
                tenant=self.name,
                customer=self.partner_id.display_name,
            ),
            self.env._(
                "Extend it before then: in Partner Center, turn on auto-extend for the relationship "
                "(six months at a time), or have the customer approve a new one with the Directory "
                "Readers role."
            ),
        )
        for user in self.env["azure.ad.integration"]._administrators():
            mine = self.activity_search([ENDING_ACTIVITY], user_id=user.id)
            if mine:
                mine.write({"summary": summary, "note": note, "date_deadline": end.date()})
            else:
                self.activity_schedule(
                    ENDING_ACTIVITY, date_deadline=end.date(), summary=summary, note=note, user_id=user.id
                )
        _logger.info("Azure AD: GDAP relationship with %s ends on %s: administrators warned", self.name, end)

    def _close_ending_warnings(self, feedback):
        self.activity_feedback([ENDING_ACTIVITY], feedback=feedback)
        self.sudo().write({"warned_end_date": False, "warned_days": 0})
