"""The MSP's own partner tenant, for MSPs that are Microsoft partners with GDAP relationships: one
partner administrator signs in once; the refresh token that sign-in leaves (MSAL's token cache)
lists the partner's customers every day and reads their tenants (Microsoft's Secure Application
Model). Connecting each customer by its own consent stays the default."""

import json
import logging
import secrets
import threading
import time

import msal

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError
from odoo.tools.misc import hash_sign

from ..series import Constraint
from ..utils import delegated_auth, gdap, graph_client
from .azure_ad_microsoft_mixin import _MSAL_HTTP_CACHE, CRON_MAX_WAIT, GRAPH_TIMEOUT, INTERACTIVE_MAX_WAIT

_logger = logging.getLogger(__name__)

# The signed `state` of a partner sign-in: what the callback accepts, and for how long.
SIGN_IN_STATE_SCOPE = "azure_ad_contacts.partner_sign_in"
SIGN_IN_VALIDITY_HOURS = 1
# After a sign-in, customers' verified domains are read for this long (seconds) while the
# administrator waits; the daily job reads the rest.
SIGN_IN_DOMAINS_BUDGET = 20
CRON_BATCH_SECONDS = 60


class AzureAdPartnerTenant(models.Model):
    _name = "azure.ad.partner.tenant"
    _description = "Azure AD partner tenant (GDAP)"
    _inherit = [
        "mail.thread",
        "mail.activity.mixin",
        "azure.ad.owned.fields.mixin",
        "azure.ad.microsoft.mixin",
    ]
    _azure_ad_owned = (
        "name",
        "tenant_id",
        "state",
        "signed_in_as",
        "signed_in_date",
        "home_account_id",
        "sign_in_nonce",
        "sign_in_flow",
        "last_refresh_date",
        "last_error",
        "token_cache",
    )

    name = fields.Char(readonly=True, default=lambda self: self.env._("Partner tenant"))
    tenant_id = fields.Char(string="Partner tenant ID", readonly=True, copy=False, tracking=True)
    state = fields.Selection(
        [("draft", "Not signed in"), ("connected", "Connected"), ("error", "Sign-in needed")],
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        tracking=True,
    )
    signed_in_as = fields.Char(string="Signed in as", readonly=True, copy=False, tracking=True)
    signed_in_date = fields.Datetime(string="Signed in on", readonly=True, copy=False)
    # MSAL's account key of the signed-in administrator (which refresh token of the cache).
    home_account_id = fields.Char(groups="base.group_system", readonly=True, copy=False)
    # A sign-in under way: the one-time value bound into its signed state, and MSAL's flow
    # (PKCE verifier, nonce) until Microsoft sends the administrator back.
    sign_in_nonce = fields.Char(groups="base.group_system", copy=False, prefetch=False)
    sign_in_flow = fields.Text(groups="base.group_system", copy=False, prefetch=False)
    last_refresh_date = fields.Datetime(string="Customers read on", readonly=True, copy=False)
    last_error = fields.Text(readonly=True, copy=False)
    sign_in_redirect_uri = fields.Char(string="Redirect URI", compute="_compute_sign_in_redirect_uri")
    customer_ids = fields.One2many("azure.ad.partner.customer", "partner_tenant_id", string="Customers")
    customer_count = fields.Integer(string="Listed", compute="_compute_customer_counts")
    to_confirm_count = fields.Integer(string="To confirm", compute="_compute_customer_counts")
    connected_count = fields.Integer(string="Connected", compute="_compute_customer_counts")

    _tenant_uniq = Constraint("unique(tenant_id)", "This partner tenant is already signed in.")

    @api.depends("customer_ids.match_state", "customer_ids.integration_id")
    def _compute_customer_counts(self):
        for partner in self:
            customers = partner.customer_ids
            partner.customer_count = len(customers)
            partner.to_confirm_count = len(customers.filtered(lambda c: c.match_state == "new"))
            partner.connected_count = len(customers.filtered("integration_id"))

    def _compute_sign_in_redirect_uri(self):
        for partner in self:
            partner.sign_in_redirect_uri = partner._sign_in_redirect_uri()

    # ------------------------------------------------------------------ opening

    @api.model
    def _get_partner_tenant(self):
        """The partner tenant record (an MSP has one), created on first use."""
        return self.search([], limit=1) or self.sudo().create({}).sudo(False)

    @api.model
    def action_open_partner_tenant(self):
        """Settings › Connect through the partner tenant."""
        self._check_admin()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Partner tenant (GDAP)"),
            "res_model": self._name,
            "res_id": self._get_partner_tenant().id,
            "view_mode": "form",
            "target": "current",
        }

    def action_view_customers(self):
        self.ensure_one()
        action = self.env["ir.actions.actions"]._for_xml_id(
            "azure_ad_contacts.azure_ad_partner_customer_action"
        )
        action["domain"] = [("partner_tenant_id", "=", self.id)]
        return action

    # ------------------------------------------------------------------ sign-in

    def action_sign_in(self):
        """Microsoft's sign-in page for a partner administrator (authorization code with PKCE),
        with a fresh signed state; only this authenticated, CSRF-safe call starts one."""
        self.ensure_one()
        self._check_admin()
        _login, graph = self._get_endpoints()
        nonce = secrets.token_urlsafe(24)
        state = hash_sign(
            self.env(su=True),
            SIGN_IN_STATE_SCOPE,
            {"partner": self.id, "user": self.env.uid, "db": self.env.cr.dbname, "nonce": nonce},
            expiration_hours=SIGN_IN_VALIDITY_HOURS,
        )
        try:
            app = self._partner_msal_app("organizations", msal.SerializableTokenCache())
        except graph_client.GraphError as error:
            raise UserError(self._partner_error_message(error)) from error
        flow = delegated_auth.start_sign_in(app, graph, self._sign_in_redirect_uri(), state)
        self.sudo().write({"sign_in_nonce": nonce, "sign_in_flow": json.dumps(flow)})
        return {"type": "ir.actions.act_url", "url": flow["auth_uri"], "target": "self"}

    def _sign_in_redirect_uri(self):
        return f"{self.get_base_url()}/azure_ad_contacts/partner/callback"

    def _complete_sign_in(self, auth_response):
        """Redeems Microsoft's answer (the code) with the stored flow, keeps the token cache, and
        reads the partner's customers. Raises UserError with what went wrong."""
        self.ensure_one()
        self._check_admin()
        flow = json.loads(self.sudo().sign_in_flow or "{}")
        self.sudo().write({"sign_in_flow": False, "sign_in_nonce": False})
        try:
            app = self._partner_msal_app("organizations", msal.SerializableTokenCache())
            claims = delegated_auth.finish_sign_in(app, flow, auth_response)
        except graph_client.GraphError as error:
            raise UserError(self._partner_error_message(error)) from error
        tenant_id = claims["tid"].lower()
        if self.tenant_id and self.tenant_id != tenant_id:
            raise UserError(
                self.env._(
                    "%(user)s belongs to the tenant %(tenant)s, but this database is connected to the "
                    "partner tenant %(partner)s. Sign in with an account of the partner tenant, or "
                    "disconnect it first.",
                    user=claims.get("preferred_username") or claims["oid"],
                    tenant=tenant_id,
                    partner=self.tenant_id,
                )
            )
        previous = self.sudo().home_account_id
        login = claims.get("preferred_username") or claims.get("name") or claims["oid"]
        self.sudo().write(
            {
                "token_cache": app.token_cache.serialize(),
                "home_account_id": claims["home_account_id"],
                "tenant_id": tenant_id,
            }
        )
        self.sudo().write(
            {
                "state": "connected",
                "signed_in_as": login,
                "signed_in_date": fields.Datetime.now(),
                "last_error": False,
                "name": graph_client.domain_name(login.rpartition("@")[2]) or tenant_id,
            }
        )
        if previous and previous != claims["home_account_id"]:
            # Another administrator: no customer keeps acting on the previous one's sign-in.
            self._partner_integrations().sudo().write({"token_cache": False})
        # Those that failed for the partner's sign-in are tried again with the new one.
        self._partner_integrations()._retry_partner_failures()
        self.message_post(body=self.env._("%(user)s signed in to the partner tenant.", user=login))
        return self._refresh_customers(domains_budget=SIGN_IN_DOMAINS_BUDGET)

    def action_disconnect(self):
        """Forgets the partner's sign-in: every customer connected through it is disconnected
        (their contacts stay); the list of customers stays."""
        self.ensure_one()
        self._check_admin()
        integrations = self._partner_integrations().filtered(lambda i: i.state != "disconnected")
        integrations.action_disconnect()
        self.sudo().write(
            {"token_cache": False, "home_account_id": False, "sign_in_flow": False, "sign_in_nonce": False}
        )
        self.sudo().write({"state": "draft", "last_error": False})
        self.message_post(
            body=self.env._(
                "The partner tenant's sign-in was removed; %(count)s customers connected through it "
                "were disconnected.",
                count=len(integrations),
            )
        )
        return True

    def _partner_integrations(self):
        return self.env["azure.ad.integration"].search(
            [("connection_method", "=", "partner"), ("partner_customer_id.partner_tenant_id", "in", self.ids)]
        )

    # ------------------------------------------------------------------ Microsoft

    def _partner_msal_app(self, tenant, cache, http_cache=None):
        """A confidential client of the MSP's app at `tenant`'s authority, over `cache`: the
        same app and credentials as the customers connected by consent."""
        client_id, secret = self.env["azure.ad.integration"]._get_app_credentials()
        login, _graph = self._get_endpoints()
        return graph_client.build_msal_app(
            client_id,
            secret,
            login,
            tenant,
            token_cache=cache,
            http_cache=_MSAL_HTTP_CACHE if http_cache is None else http_cache,
        )

    def _delegated_tokens(
        self, tenant, scopes, cache_text, persist=None, fallback_cache=None, http_cache=None
    ):
        """A Graph client's token provider: the partner administrator's token for `tenant`, from
        MSAL's cache `cache_text` (refreshed there with its refresh token). `persist(text)` keeps
        the cache after a refresh, in the calling thread only (the ORM is not thread-safe: a
        page fetched by another thread just refreshes again next time). When that cache's
        sign-in no longer works, `fallback_cache` (the partner's own) is tried once. MSAL gets an
        HTTP cache of this provider's own (unless `http_cache` is given): from a shared one it
        would replay a refused refresh for a minute, after the relationship was renewed or the
        administrator signed in again."""
        self.ensure_one()
        home_account_id = self.sudo().home_account_id
        owner = threading.get_ident()
        caches = [text for text in (cache_text, fallback_cache) if text]
        current = {"app": None}
        http_cache = {} if http_cache is None else http_cache

        def build(text):
            cache = msal.SerializableTokenCache()
            cache.deserialize(text)
            current["app"] = self._partner_msal_app(tenant, cache, http_cache)

        def provider(force_refresh=False):
            if not home_account_id or not caches:
                raise delegated_auth.SignInRequiredError("No partner sign-in is stored.", code="no_sign_in")
            if current["app"] is None:
                build(caches[0])
            try:
                token = delegated_auth.acquire_delegated_token(
                    current["app"], scopes, home_account_id, force_refresh
                )
            except delegated_auth.SignInRequiredError:
                if len(caches) < 2:
                    raise
                caches.pop(0)  # the partner's own sign-in, once
                build(caches[0])
                token = delegated_auth.acquire_delegated_token(
                    current["app"], scopes, home_account_id, force_refresh
                )
                current["app"].token_cache.has_state_changed = True
            cache = current["app"].token_cache
            if persist and cache.has_state_changed and threading.get_ident() == owner:
                persist(cache.serialize())
                cache.has_state_changed = False
            return token

        return provider

    def _partner_client(self, max_wait=INTERACTIVE_MAX_WAIT):
        """Reads the partner tenant's relationships and customers with the stored sign-in."""
        self.ensure_one()
        _login, graph = self._get_endpoints()

        def persist(text):
            self.sudo().token_cache = text

        tokens = self._delegated_tokens(
            self.tenant_id or "organizations",
            delegated_auth.sign_in_scopes(graph),
            self.sudo().token_cache,
            persist,
        )
        return gdap.PartnerGraphClient(graph, tokens, timeout=GRAPH_TIMEOUT, max_wait=max_wait)

    def _customer_client(self, tenant_id, max_wait=INTERACTIVE_MAX_WAIT):
        """Reads a customer tenant with the partner's sign-in, without keeping the refreshed
        cache (the partner's own refresh token stays as it is: it is not revoked by use)."""
        self.ensure_one()
        _login, graph = self._get_endpoints()
        tokens = self._delegated_tokens(
            tenant_id, delegated_auth.customer_scopes(graph), self.sudo().token_cache
        )
        return graph_client.GraphClient(graph, tokens, timeout=GRAPH_TIMEOUT, max_wait=max_wait)

    # ------------------------------------------------------------------ the customer list

    def action_refresh_customers(self):
        self.ensure_one()
        self._check_admin()
        new = self._refresh_customers(domains_budget=SIGN_IN_DOMAINS_BUDGET)
        return self.action_view_customers() if new else True

    def _refresh_customers(self, domains_budget=None, max_wait=INTERACTIVE_MAX_WAIT):
        """Reads the partner's customers and relationships, brings the list up to date,
        proposes an Odoo customer for new ones, forecasts ends and marks ended connections.
        Returns the customers that are new in the list. Raises UserError when Microsoft
        refuses (the partner tenant then says what to do)."""
        self.ensure_one()
        client = self._partner_client(max_wait=max_wait)
        try:
            customers = dict(client.delegated_admin_customers())
            relationships = list(client.delegated_admin_relationships())
        except graph_client.GraphError as error:
            message = self._partner_error_message(error)
            values = {"last_error": message}
            if isinstance(error, delegated_auth.SignInRequiredError | graph_client.PermissionDeniedError):
                values["state"] = "error"
            self.sudo().write(values)
            _logger.warning("Azure AD partner tenant %s: customers not read: %s", self.tenant_id, error)
            raise UserError(message) from error
        first_read = not self.customer_ids
        new = self.env["azure.ad.partner.customer"]._update_from_partner(self, customers, relationships)
        nothing = not customers and not relationships
        self.sudo().write(
            {
                "last_refresh_date": fields.Datetime.now(),
                "state": "connected",
                # Not an error, but what a partner tenant does not look like.
                "last_error": nothing
                and self.env._(
                    "Microsoft lists no GDAP relationship of the tenant %(tenant)s. Was the sign-in made "
                    "with an account of your partner tenant? Sign in again with one, or create the GDAP "
                    "relationships in Partner Center.",
                    tenant=self.tenant_id,
                ),
            }
        )
        deadline = time.monotonic() + domains_budget if domains_budget is not None else None
        self.customer_ids._read_domains(deadline)
        self.customer_ids._propose_matches()
        self.customer_ids._watch_relationships()
        if self.customer_ids._domains_to_read():  # the rest in the background
            self.env.ref("azure_ad_contacts.azure_ad_partner_cron_refresh").sudo()._trigger()
        if new and not first_read:
            self._notify_new_customers(new)
        return new

    def _notify_new_customers(self, new):
        """New customers of the partner wait for a match: one open activity per administrator
        says how many."""
        waiting = self.customer_ids.filtered(lambda c: c.match_state == "new")
        summary = self.env._("%(count)s new customers of the partner to match", count=len(waiting))
        note = self.env._(
            "New customers of the partner tenant appeared: %(names)s. Confirm the Odoo customer "
            "proposed for each, or leave them unmatched.",
            names=", ".join(new.mapped("name")),
        )
        activity_type = "azure_ad_contacts.mail_activity_type_partner_customers"
        for user in self.env["azure.ad.integration"]._administrators():
            mine = self.activity_search([activity_type], user_id=user.id)
            if mine:
                mine.write({"summary": summary, "note": note})
            else:
                self.activity_schedule(activity_type, summary=summary, note=note, user_id=user.id)

    @api.model
    def _cron_refresh_partner_customers(self, batch_seconds=CRON_BATCH_SECONDS):
        """The daily job: every signed-in partner tenant's customers read again (new ones
        appear, ends are forecast, ended ones marked); verified domains not read yet are read
        for about `batch_seconds`, and the job goes on at once while some remain."""
        done = remaining = 0
        for partner in self.search([("state", "in", ("connected", "error")), ("tenant_id", "!=", False)]):
            read_before = len(partner.customer_ids.filtered("domains_date"))
            try:
                partner._refresh_customers(domains_budget=batch_seconds, max_wait=CRON_MAX_WAIT)
            except UserError as error:  # written on the partner tenant: what to do
                _logger.info("Azure AD partner tenant %s not refreshed: %s", partner.tenant_id, error)
                continue
            done += len(partner.customer_ids.filtered("domains_date")) - read_before
            remaining += len(partner.customer_ids._domains_to_read())
        self.env["ir.cron"]._notify_progress(done=max(done, 0), remaining=remaining)

    # ------------------------------------------------------------------ messages

    def _partner_error_message(self, error):
        """What a failure of the partner's own sign-in or listing means, and what to do."""
        if isinstance(error, delegated_auth.SignInRequiredError):
            return self.env._(
                "The partner administrator's sign-in no longer works (%(detail)s): it expired after "
                "90 days without use, was revoked, or a Conditional Access policy asks for a new "
                "sign-in. Sign in again as a partner administrator.",
                detail=error.code or error.detail,
            )
        if isinstance(error, delegated_auth.SignInFailedError):
            return self.env._("The sign-in at Microsoft did not complete: %(detail)s", detail=error.detail)
        if isinstance(error, graph_client.PermissionDeniedError):
            return self.env._(
                "Microsoft refuses to list the partner's GDAP relationships: grant the delegated "
                "permission DelegatedAdminRelationship.Read.All to your app and consent to it in "
                "the partner tenant (an administrator signing in can consent), then sign in again."
            )
        return self._graph_error_message(error)

    def _check_admin(self):
        if not self.env.is_system():
            raise AccessError(
                self.env._("Only administrators (Settings rights) can manage Azure AD integrations.")
            )
