"""How a customer's tenant gets connected: Microsoft's admin-consent page with a signed state,
the proof of the consent Microsoft reports (waited for while it spreads), the checks that the
tenant is the right one, and the first sync: at once, or in the background for a tenant that
may take longer than a worker may run."""

import logging
import secrets
import time
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL, config, consteq
from odoo.tools.misc import hash_sign

from ..utils import graph_client
from .azure_ad_sync_mixin import BACKGROUND_SYNC_THRESHOLD

_logger = logging.getLogger(__name__)

# The signed `state` of a consent: what the callback accepts, and for how long.
CONSENT_STATE_SCOPE = "azure_ad_contacts.consent"
CONSENT_STATE_VALIDITY_HOURS = 1
# How long a consent Microsoft does not confirm yet is waited for: it usually spreads in
# seconds, but Microsoft documents no upper bound.
CONSENT_WAIT = timedelta(minutes=10)
# A first sync runs in the consent request only when it should end well within the time an
# Odoo worker may take for a request (limit_time_real; this many seconds when unlimited):
# within this share of it, by the estimate of _first_sync_may_outlast_request().
REQUEST_TIME_LIMIT_UNSET = 120
FIRST_SYNC_REQUEST_SHARE = 0.25
# What a first sync costs per user in Odoo (creating a contact: about a millisecond on two
# cores), with margin; and its requests besides the pages of users ("sync from now", …).
FIRST_SYNC_SECONDS_PER_USER = 0.002
FIRST_SYNC_EXTRA_REQUESTS = 2


class ConsentSpreading(UserError):
    """Microsoft does not confirm a fresh consent yet: it is still spreading through its
    services (usually seconds; Microsoft documents no upper bound)."""


class AzureAdConsentMixin(models.AbstractModel):
    _name = "azure.ad.consent.mixin"
    _description = "Azure AD: connecting a tenant"

    # The consent under way: a one-time value bound into the signed state of Microsoft's
    # consent page, then into the token of the page that waits for Microsoft (replay
    # protection; a new Connect or Disconnect replaces or clears it).
    consent_nonce = fields.Char(groups="base.group_system", copy=False, prefetch=False)
    consent_waiting_since = fields.Datetime(
        string="Waiting for Microsoft since",
        readonly=True,
        copy=False,
        help="A customer administrator granted the consent, and Microsoft does not confirm it "
        "yet: it is still spreading through Microsoft's services. The page that opened after the "
        "consent checks again.",
    )
    # Within the time a consent is waited for (a page left open longer checks no more).
    consent_waiting = fields.Boolean(string="Waiting for Microsoft", compute="_compute_consent_waiting")
    # Connected, and the first sync has not run yet (it may run in the background).
    first_sync_pending_since = fields.Datetime(string="First sync due since", readonly=True, copy=False)

    @api.depends("consent_waiting_since")
    def _compute_consent_waiting(self):
        now = fields.Datetime.now()
        for integration in self:
            since = integration.consent_waiting_since
            integration.consent_waiting = bool(since) and now < since + CONSENT_WAIT

    def action_connect(self):
        """Microsoft's admin-consent page for this customer, with a fresh signed state. Only
        this (an authenticated, CSRF-safe call) starts a consent: a link from another site
        cannot. The connect dialog may name the customer's tenant (context key
        azure_ad_tenant_hint: its id or one of its domains); Microsoft then asks an
        administrator of that tenant, not whoever happens to be signed in."""
        self.ensure_one()
        self._check_admin()
        if self.excluded:
            raise UserError(self.env._("%(customer)s is excluded from Azure AD sync.", customer=self.name))
        client_id, _secret = self._get_app_credentials()  # fail here, not on Microsoft's page
        login, graph = self._get_endpoints()
        hint = self._consent_tenant_hint()
        self.sudo().consent_waiting_since = False  # a new consent: an earlier one waited for is moot
        state = hash_sign(
            self.env(su=True),
            CONSENT_STATE_SCOPE,
            {
                "integration": self.id,
                "user": self.env.uid,
                "db": self.env.cr.dbname,
                "nonce": self._new_consent_nonce(),
                **({"hint": hint} if hint else {}),
            },
            expiration_hours=CONSENT_STATE_VALIDITY_HOURS,
        )
        return {
            "type": "ir.actions.act_url",
            "url": graph_client.admin_consent_url(
                login,
                client_id,
                graph_client.app_scope(graph),
                self._consent_redirect_uri(),
                state,
                tenant=hint or "organizations",
            ),
            "target": "self",
        }

    def _consent_tenant_hint(self):
        """The tenant the connect dialog named, as a tenant id or a domain name; None if none."""
        hint = (self.env.context.get("azure_ad_tenant_hint") or "").strip().lower()
        if not hint:
            return None
        if graph_client.is_object_id(hint):
            return hint
        domain = graph_client.domain_name(hint)
        if not domain:
            raise UserError(
                self.env._(
                    "%(value)s is neither a tenant ID (a GUID) nor a domain name such as contoso.com.",
                    value=hint[:100],
                )
            )
        return domain

    def _consent_redirect_uri(self):
        return f"{self.get_base_url()}/azure_ad_contacts/oauth/callback"

    def _new_consent_nonce(self):
        self.ensure_one()
        nonce = secrets.token_urlsafe(24)
        self.sudo().consent_nonce = nonce
        return nonce

    def _take_consent_nonce(self, nonce):
        """Uses up the consent under way if `nonce` is its value; False if it is not (used
        already, replaced by a new Connect, cleared by Disconnect). The row is locked first, so
        that two requests with the same value cannot both get it."""
        self.ensure_one()
        self.flush_recordset(["consent_nonce"])
        self.env.cr.execute(
            SQL("SELECT consent_nonce FROM azure_ad_integration WHERE id = %s FOR UPDATE", self.id)
        )
        stored = self.env.cr.fetchone()[0]
        if not stored or not isinstance(nonce, str) or not consteq(stored, nonce):
            return False
        self.sudo().consent_nonce = False
        return True

    def _complete_consent(self, tenant_id, tenant_hint=None, wait=None):
        """Proves the consent Microsoft reported for `tenant_id`, connects the tenant and starts
        the first sync (see _connect_tenant and _start_first_sync); returns the first sync's
        run log, empty when it runs in the background. The consent routes do the same, with a
        commit between the two, so that the connection survives whatever the sync meets."""
        self._connect_tenant(tenant_id, tenant_hint=tenant_hint, wait=wait)
        return self._start_first_sync()

    def _connect_tenant(self, tenant_id, tenant_hint=None, wait=None, waiting_since=None):
        """Proves the consent Microsoft reported for `tenant_id` (an app token from that
        tenant's own authority, and one Graph read), then connects the tenant: its id, the
        token cache and the state; the first sync is due. A failed proof leaves a working
        connection as it was and keeps no token.

        While Microsoft still spreads a fresh consent, the proof is retried here for up to
        `wait` seconds (by default about a minute). With `wait` 0, ConsentSpreading is raised
        instead and the integration shows that it waits for Microsoft, until CONSENT_WAIT
        after `waiting_since` (default: now); then it fails like any other proof."""
        self.ensure_one()
        self._check_admin()
        tenant_id = (tenant_id or "").strip().lower()
        if not graph_client.is_object_id(tenant_id):
            raise UserError(
                self.env._(
                    "Microsoft's answer names no valid tenant ID (%(tenant)s). Connect again.",
                    tenant=graph_client.clean_error_text(tenant_id, 60),
                )
            )
        if tenant_hint and graph_client.is_object_id(tenant_hint) and tenant_hint != tenant_id:
            raise UserError(
                self.env._(
                    "The consent was granted for the tenant %(granted)s, not for %(named)s named in the "
                    "connect dialog: the administrator signed in to another tenant. Connect again and "
                    "sign in with an administrator of %(customer)s.",
                    granted=tenant_id,
                    named=tenant_hint,
                    customer=self.name,
                )
            )
        self._check_tenant_not_connected_elsewhere(tenant_id)
        if wait is None:
            wait = graph_client.CONSENT_PROPAGATION_TIMEOUT
        try:
            proof = self._prove_consent(tenant_id, wait)
        except graph_client.GraphError as error:
            message = self._graph_error_message(error)
            if not wait and graph_client.consent_not_spread(error):
                since = waiting_since or fields.Datetime.now()
                if fields.Datetime.now() < since + CONSENT_WAIT:
                    self.sudo().consent_waiting_since = since
                    raise ConsentSpreading(message) from error
                message = self.env._(
                    "Microsoft has not confirmed the consent for %(customer)s within %(minutes)s "
                    "minutes (%(error)s). It may still come: connect again later. If it keeps "
                    "failing, a customer administrator checks that the app is listed in the "
                    "Microsoft Entra admin center under Enterprise applications.",
                    customer=self.name,
                    minutes=int(CONSENT_WAIT.total_seconds() // 60),
                    error=message,
                )
            _logger.info("Azure AD consent of %s (tenant %s) not proven: %s", self.name, tenant_id, error)
            values = {"consent_waiting_since": False}
            if self.state != "connected":  # a working connection stays as it was
                kind = self._graph_error_kind(error)
                values.update(state="error", last_error=message, last_error_kind=kind)
            self.sudo().write(values)
            raise UserError(message) from error
        self.sudo().write(
            {
                "tenant_id": tenant_id,
                "token_cache": proof.app.token_cache.serialize(),
                "state": "connected",
                "last_error": False,
                "last_error_kind": False,
                "consent_waiting_since": False,
                "first_sync_pending_since": fields.Datetime.now(),
            }
        )
        self.message_post(body=self.env._("Connected to Azure AD tenant %(tenant)s.", tenant=tenant_id))
        # Should the first sync die with its worker (e.g. killed at the time limit), the
        # scheduled job runs it once that worker would have been stopped.
        self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync")._trigger(
            fields.Datetime.now() + timedelta(seconds=self._request_time_limit() + 30)
        )

    def _start_first_sync(self):
        """The first sync of a tenant just connected: at once when it should end well within
        the time a worker may take for a request, else in the background (the scheduled job,
        or a queue job), so that no HTTP worker waits for it. Returns its run log, empty when
        it runs in the background."""
        self.ensure_one()
        if not self._first_sync_may_outlast_request():
            return self._sync("connect")
        self._check_syncable()
        self._sync_in_background()
        self.message_post(
            body=self.env._(
                "The first sync runs in the background: it may take longer than Odoo waits for a request."
            )
        )
        return self.env["azure.ad.sync.log"]

    def _request_time_limit(self):
        """Seconds an Odoo worker may take for a request before it is stopped."""
        limit = config["limit_time_real"]
        return limit if limit and limit > 0 else REQUEST_TIME_LIMIT_UNSET

    def _first_sync_may_outlast_request(self):
        """Whether the first sync may take longer than a small share of a worker's time limit,
        judged before any user is read: from the number of users Microsoft counts (an
        eventually consistent estimate) and how long Microsoft took to answer that. When
        Microsoft cannot say, it may."""
        self.ensure_one()
        client = self._get_graph_client().limit_budget(max_attempts=1, max_wait=0)
        started = time.monotonic()
        try:
            count = client.user_count()
        except graph_client.GraphError as error:
            _logger.info(
                "Azure AD users of %s not counted (%s): first sync in the background", self.name, error
            )
            return True
        latency = time.monotonic() - started
        pages = -(-count // graph_client.PAGE_SIZE)
        estimate = (pages + FIRST_SYNC_EXTRA_REQUESTS) * latency + count * FIRST_SYNC_SECONDS_PER_USER
        budget = self._request_time_limit() * FIRST_SYNC_REQUEST_SHARE
        _logger.info(
            "Azure AD first sync of %s: about %s users, %.1f s estimated (%.1f s may run in a request)",
            self.name,
            count,
            estimate,
            budget,
        )
        return count > BACKGROUND_SYNC_THRESHOLD or estimate > budget

    def _announce_first_sync(self, log):
        """The confirmation the administrator finds on the customer after connecting. Every
        internal user reads the customer's chatter: the counts, no tenant id or Microsoft
        error there; the details stay on the integration (administrators)."""
        self.ensure_one()
        if log.state == "failed":
            self.message_post(body=log._outcome_message())
            summary = self.env._(
                "Connected to Azure AD, but the first sync failed: an administrator finds the "
                "details on the Azure AD integration."
            )
        else:
            summary = log._outcome_message()
        self.partner_id.message_post(body=summary)

    def _check_tenant_not_connected_elsewhere(self, tenant_id):
        """A tenant belongs to one customer: consent for one already connected to another
        customer is refused (e.g. a technician signed in with the MSP's own account)."""
        other = self.sudo().search(
            [("tenant_id", "=ilike", tenant_id), ("partner_id", "!=", self.partner_id.id)], limit=1
        )
        if other:
            raise UserError(
                self.env._(
                    "The tenant %(tenant)s is already connected to %(other)s, so it cannot be connected "
                    "to %(customer)s too. Was the consent given with an account of another organisation? "
                    "Connect again and sign in with an administrator of %(customer)s's tenant (the "
                    "connect dialog can name it).",
                    tenant=tenant_id,
                    other=other.partner_id.display_name,
                    customer=self.name,
                )
            )
