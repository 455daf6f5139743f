"""How a customer's tenant gets connected: Microsoft's admin-consent page with a signed state,
the proof of the consent Microsoft reports (retried while it spreads), and the checks that the
tenant is the right one."""

import logging
import secrets

from odoo import fields, models
from odoo.exceptions import UserError
from odoo.tools.misc import hash_sign

from ..utils import graph_client

_logger = logging.getLogger(__name__)

# The signed `state` of a consent: what the callback accepts, and for how long.
CONSENT_STATE_SCOPE = "azure_ad_contacts.consent"
CONSENT_STATE_VALIDITY_HOURS = 1


class ConsentSpreading(UserError):
    """Microsoft does not confirm a fresh consent yet: it is still spreading through its
    services (usually seconds, at most about a minute)."""


class AzureAdConsentMixin(models.AbstractModel):
    _name = "azure.ad.consent.mixin"
    _description = "Azure AD: connecting a tenant"

    # One-time value bound into the signed consent state (replay protection).
    consent_nonce = fields.Char(groups="base.group_system", copy=False, prefetch=False)

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

    def _complete_consent(self, tenant_id, tenant_hint=None, wait=None):
        """Proves the consent Microsoft reported for `tenant_id` (an app token whose `tid` is
        that tenant, and one Graph read), then connects the tenant and runs the first sync;
        returns that sync's run log. While Microsoft still spreads a fresh consent, the proof
        is retried for up to `wait` seconds (by default about a minute); with `wait` 0,
        ConsentSpreading is raised (the callback then shows a waiting page that asks again).
        A failed proof leaves a working connection as it was and keeps no token."""
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
                raise ConsentSpreading(message) from error
            _logger.info("Azure AD consent of %s (tenant %s) not proven: %s", self.name, tenant_id, error)
            if self.state != "connected":  # a working connection stays as it was
                kind = self._graph_error_kind(error)
                self.sudo().write({"state": "error", "last_error": message, "last_error_kind": kind})
            raise UserError(message) from error
        self.sudo().write(
            {
                "tenant_id": tenant_id,
                "token_cache": proof.app.token_cache.serialize(),
                "state": "connected",
                "last_error": False,
                "last_error_kind": False,
            }
        )
        self.message_post(body=self.env._("Connected to Azure AD tenant %(tenant)s.", tenant=tenant_id))
        log = self._sync("connect")
        # The confirmation the admin finds on the customer after Microsoft sends them back.
        # Every internal user reads the customer's chatter: the counts, no tenant id or
        # Microsoft error there; the details stay on the integration (administrators).
        if log.state == "failed":
            self.message_post(body=log._outcome_message())
            summary = self.env._(
                "Connected to Azure AD, but the first sync failed: an administrator finds the "
                "details on the Azure AD integration."
            )
        else:
            summary = log._outcome_message()
        self.partner_id.message_post(body=summary)
        return log

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
