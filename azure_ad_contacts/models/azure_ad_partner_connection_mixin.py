"""An integration connected through the partner tenant (GDAP) instead of by the customer's own
consent: it reads the customer's tenant with the partner administrator's delegated access, and
syncs with every rule of the addon. A customer is connected one way or the other, never both."""

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..utils import delegated_auth, graph_client
from .azure_ad_microsoft_mixin import GRAPH_TIMEOUT, INTERACTIVE_MAX_WAIT


class AzureAdPartnerConnectionMixin(models.AbstractModel):
    _name = "azure.ad.partner.connection.mixin"
    _description = "Azure AD: connected through the partner tenant"

    connection_method = fields.Selection(
        [("consent", "Customer consent"), ("partner", "Through the partner tenant")],
        string="Connected by",
        default="consent",
        required=True,
        readonly=True,
        copy=False,
        tracking=True,
        help="Customer consent: an administrator of the customer granted the app access to its "
        "tenant. Through the partner tenant: your partner administrator's GDAP access reads it.",
    )
    partner_customer_id = fields.Many2one(
        "azure.ad.partner.customer",
        string="Partner's customer",
        readonly=True,
        copy=False,
        index="btree_not_null",
    )

    # ------------------------------------------------------------------ connecting

    @api.model
    def _connect_through_partner(self, customer):
        """The integration of `customer` (an azure.ad.partner.customer with its Odoo customer
        chosen), connected through the partner: the customer's existing integration if it has
        none connected by consent, else a new one; raises UserError when the tenant or the
        customer is connected by consent."""
        self._check_admin()
        company = customer.partner_id
        tenant_id = customer.tenant_id.lower()
        integration = self.search([("tenant_id", "=ilike", tenant_id)], limit=1)
        if integration and integration.partner_id != company:
            raise UserError(
                self.env._(
                    "The tenant %(tenant)s is already connected to %(other)s, so it cannot be "
                    "connected to %(customer)s too.",
                    tenant=customer.name,
                    other=integration.partner_id.display_name,
                    customer=company.display_name,
                )
            )
        if not integration:
            integration = self.search(
                [("partner_id", "=", company.id), ("additional_tenant", "=", False)], limit=1
            )
            if integration.tenant_id and integration.tenant_id.lower() != tenant_id:
                # The customer's integration reads another tenant: this one is an additional one.
                integration = self.sudo().create({"partner_id": company.id, "additional_tenant": True})
        if integration.excluded:
            raise UserError(
                self.env._("%(customer)s is excluded from Azure AD sync.", customer=company.display_name)
            )
        if (
            integration.connection_method == "consent"
            and integration.tenant_id
            and integration.state
            in (
                "connected",
                "error",
            )
        ):
            raise UserError(
                self.env._(
                    "%(customer)s is connected by its own consent. A customer is connected one way or "
                    "the other: disconnect it first to connect it through the partner tenant.",
                    customer=company.display_name,
                )
            )
        integration = (integration or self.create({"partner_id": company.id})).sudo(False)
        integration._forget_delta_state()
        # Written by this code only (what the form shows read-only), hence in superuser mode.
        integration.sudo().write(
            {
                "connection_method": "partner",
                "partner_customer_id": customer.id,
                "tenant_id": tenant_id,
                # It starts from the partner's sign-in; its own refresh token lives on here.
                "token_cache": customer.partner_tenant_id.sudo().token_cache,
                "state": "connected",
                "last_error": False,
                "last_error_kind": False,
                # Its first sync is due: the customer shows it, the scheduled job runs it.
                "first_sync_pending_since": fields.Datetime.now(),
            }
        )
        integration.message_post(
            body=self.env._(
                "Connected to Azure AD tenant %(tenant)s through the partner tenant %(partner)s.",
                tenant=tenant_id,
                partner=customer.partner_tenant_id.name,
            )
        )
        return integration

    def action_connect_through_partner(self):
        """Reconnect a customer through the partner tenant (after Disconnect, or once its
        relationship was renewed)."""
        self.ensure_one()
        self._check_admin()
        if not self.partner_customer_id:
            raise UserError(
                self.env._("%(customer)s is not a customer of the partner tenant.", customer=self.name)
            )
        return self.partner_customer_id.action_confirm()

    def _connect_tenant(self, tenant_id, tenant_hint=None, wait=None, waiting_since=None):
        """Connecting by the customer's consent ends a connection through the partner: once the
        consent is proven, the integration reads its tenant with the app's own token."""
        partner = self.filtered(lambda integration: integration.connection_method == "partner")
        if partner.filtered(lambda integration: integration.state == "connected"):
            raise UserError(
                self.env._(
                    "%(customer)s is connected through the partner tenant. A customer is connected one "
                    "way or the other: disconnect it first to connect it by its own consent.",
                    customer=self.name,
                )
            )
        result = super()._connect_tenant(
            tenant_id, tenant_hint=tenant_hint, wait=wait, waiting_since=waiting_since
        )
        partner.sudo().write({"connection_method": "consent", "partner_customer_id": False})
        return result

    def _retry_partner_failures(self):
        """The partner's access works again (a new sign-in, a renewed relationship): those of
        these integrations whose last sync failed for it are tried again at once (by the
        scheduled job). Returns them."""
        failed = self.sudo().filtered(
            lambda i: (
                i.connection_method == "partner"
                and i.state == "error"
                and i.last_error_kind == "partner"
                and not i.excluded
            )
        )
        if failed:
            failed.write({"retry_date": fields.Datetime.now()})
            self.env.ref("azure_ad_contacts.azure_ad_integration_cron_sync").sudo()._trigger()
        return failed

    def _partner_access_lost(self, message):
        """The partner's relationships no longer reach this customer: the integration says so,
        once, and offers the remedy (its public state is `error`)."""
        for integration in self.filtered(lambda i: i.state in ("connected", "error")):
            if integration.last_error != message:
                integration.sudo().write(
                    {"state": "error", "last_error": message, "last_error_kind": "partner"}
                )
                integration.message_post(body=message)

    # ------------------------------------------------------------------ Microsoft

    def _get_graph_client(self, http_cache=None, max_wait=INTERACTIVE_MAX_WAIT):
        """Through the partner: the customer's tenant read with the partner administrator's
        delegated token (the integration keeps its own refreshed cache, and falls back to the
        partner's sign-in once when its own no longer works)."""
        self.ensure_one()
        if self.connection_method != "partner":
            return super()._get_graph_client(http_cache=http_cache, max_wait=max_wait)
        _login, graph = self._get_endpoints()
        partner = self.partner_customer_id.partner_tenant_id

        def persist(text):
            self.sudo().token_cache = text

        if partner:
            tokens = partner._delegated_tokens(
                self.tenant_id,
                delegated_auth.customer_scopes(graph),
                self.sudo().token_cache,
                persist,
                fallback_cache=partner.sudo().token_cache,
                http_cache=http_cache,
            )
        else:

            def tokens(force_refresh=False):
                raise delegated_auth.SignInRequiredError("The partner tenant is gone.", code="no_partner")

        return graph_client.GraphClient(graph, tokens, timeout=GRAPH_TIMEOUT, max_wait=max_wait)

    @api.model
    def _graph_error_kind(self, error):
        if isinstance(
            error,
            delegated_auth.SignInRequiredError
            | delegated_auth.PartnerAccessError
            | delegated_auth.PartnerAppNotAuthorizedError,
        ):
            return "partner"
        return super()._graph_error_kind(error)

    def _graph_error_message(self, error):
        if self.connection_method == "partner":
            problem = self._partner_problem(error, self.name)
            if problem:
                return problem
        return super()._graph_error_message(error)

    @api.model
    def _partner_problem(self, error, customer):
        """What a failure to read `customer` through the partner means, and what to do; None
        when it is no different from any Graph failure."""
        if isinstance(error, delegated_auth.SignInRequiredError):
            return self.env._(
                "The partner administrator's sign-in no longer works (%(code)s): sign in again in "
                "Settings › Azure AD Contacts › Connect through the partner tenant. %(customer)s is "
                "synced again afterwards.",
                code=error.code or "invalid_grant",
                customer=customer,
            )
        if isinstance(error, delegated_auth.PartnerAccessError):
            return self.env._(
                "The partner tenant has no GDAP access to the tenant of %(customer)s (%(code)s): no "
                "active relationship gives your partner administrators' security group a role there. "
                "Renew the relationship in Partner Center with the Directory Readers role and assign "
                "it to that group, or connect the customer by its own consent.",
                code=error.code or "AADSTS50020",
                customer=customer,
            )
        if isinstance(error, delegated_auth.PartnerAppNotAuthorizedError):
            return self.env._(
                "Your Azure AD app is not authorized in the tenant of %(customer)s (%(code)s). Under "
                "GDAP it must be consented in each customer tenant: grant it there through Partner "
                "Center's application consent (a partner administrator with the Cloud Application "
                "Administrator role in the relationship), or let a customer administrator consent.",
                code=error.code or "AADSTS90099",
                customer=customer,
            )
        if isinstance(error, graph_client.PermissionDeniedError):
            return self.env._(
                "Microsoft refuses to let the partner read the users of %(customer)s "
                "(Authorization_RequestDenied): the GDAP relationship must give your partner "
                "administrators' security group the Directory Readers role (or Global Reader, User "
                "Administrator), and the app must hold the delegated permissions User.Read.All, "
                "Domain.Read.All and GroupMember.Read.All in that tenant.",
                customer=customer,
            )
        return None
