"""The helpdesk side of an integration: the tenant's mail domains, its open tickets, and the
rematch of tickets after each sync."""

import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL
from odoo.tools.sql import escape_psql

from odoo.addons.azure_ad_contacts.utils import graph_client

_logger = logging.getLogger(__name__)

# Verified domains change rarely: read at connect (also after a new permission, which needs
# consent again) and then at most once a day, so that a sync normally costs no extra request.
DOMAINS_MAX_AGE = timedelta(days=1)
MAX_CONTACT_DOMAINS = 50


class AzureAdIntegration(models.Model):
    _inherit = "azure.ad.integration"

    email_domains = fields.Char(
        readonly=True,
        copy=False,
        help="Mail domains of this customer's tenant, separated by spaces: a ticket from an "
        "unknown address of one of them suggests syncing this customer.",
    )
    email_domains_source = fields.Selection(
        [
            ("graph", "Verified domains of the tenant"),
            ("contacts", "Addresses of the synced contacts"),
        ],
        readonly=True,
        copy=False,
        help="Verified domains need the Microsoft Graph application permission Domain.Read.All "
        "(or Directory.Read.All); reconnect the customer after granting it. Without it, the "
        "domains of the synced contacts' addresses are used.",
    )
    email_domains_date = fields.Datetime(string="Domains read on", readonly=True, copy=False)
    helpdesk_open_ticket_count = fields.Integer(
        compute="_compute_helpdesk_open_ticket_count", string="Open tickets"
    )

    def _compute_helpdesk_open_ticket_count(self):
        tickets = self.env["helpdesk.ticket"]
        for integration in self:
            integration.helpdesk_open_ticket_count = tickets.search_count(
                integration._helpdesk_open_ticket_domain()
            )

    def _helpdesk_open_ticket_domain(self):
        return [
            ("partner_id.azure_ad_integration_id", "in", self.ids),
            ("partner_id.azure_ad_synced", "=", True),
            ("closed", "=", False),
        ]

    def action_view_helpdesk_tickets(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Open tickets from synced contacts"),
            "res_model": "helpdesk.ticket",
            "view_mode": "list,kanban,form",
            "domain": self._helpdesk_open_ticket_domain(),
        }

    # ----------------------------------------------------------------- sync hook

    def _sync_one(self, trigger):
        log = super()._sync_one(trigger)
        if log.state != "failed":
            self._azure_ad_refresh_domains(trigger)
            self.env["helpdesk.ticket"]._azure_ad_tickets_to_rematch(self)._azure_ad_rematch_after_sync()
        return log

    def _azure_ad_refresh_domains(self, trigger):
        """Reads the tenant's verified domains (at connect, then once a day); without them,
        the domains of the synced contacts' addresses."""
        self.ensure_one()
        now = fields.Datetime.now()
        due = (
            trigger == "connect"
            or not self.email_domains_date
            or self.email_domains_date + DOMAINS_MAX_AGE <= now
        )
        verified = self._azure_ad_read_verified_domains() if due else []
        if verified:
            values = {"email_domains": " ".join(verified), "email_domains_source": "graph"}
        elif self.email_domains_source == "graph":
            return  # keep the last list read from Graph; a failed read is retried next sync
        else:
            values = {
                "email_domains": " ".join(self._azure_ad_contact_domains()),
                "email_domains_source": "contacts",
            }
        if due:
            values["email_domains_date"] = now
        if any(self[name] != value for name, value in values.items()):
            self.write(values)

    def _azure_ad_read_verified_domains(self):
        """Never fails the sync: the permission to read domains is optional."""
        try:
            # An extra of the sync: no long backoff for it.
            client = self._get_graph_client().limit_budget(max_attempts=2, max_wait=10)
            return sorted({domain.lower() for domain in client.verified_domains()})
        except graph_client.GraphError as error:
            _logger.info("Verified domains of %s not readable, using contacts' domains: %s", self.name, error)
            return []

    def _azure_ad_contact_domains(self):
        self.env["res.partner"].flush_model(["email", "azure_ad_integration_id", "azure_ad_synced"])
        self.env.cr.execute(
            SQL(
                """SELECT lower(split_part(btrim(email), '@', 2)) AS domain
                     FROM res_partner
                    WHERE azure_ad_integration_id = %s AND azure_ad_synced AND strpos(email, '@') > 1
                 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s""",
                self.id,
                MAX_CONTACT_DOMAINS,
            )
        )
        return sorted(row[0] for row in self.env.cr.fetchall())

    def _azure_ad_domain_list(self):
        self.ensure_one()
        return (self.sudo().email_domains or "").split()

    @api.model
    def _azure_ad_for_email_domain(self, domain):
        """The connected integration whose tenant owns `domain`; none when no customer or
        several customers claim it (an ambiguous domain suggests nothing)."""
        if not domain:
            return self.browse()
        integrations = (
            self.sudo()
            .search(
                [
                    ("state", "=", "connected"),
                    ("excluded", "=", False),
                    ("email_domains", "ilike", escape_psql(domain)),
                ]
            )
            .filtered(lambda integration: domain in integration._azure_ad_domain_list())
        )
        return integrations if len(integrations) == 1 else self.browse()
