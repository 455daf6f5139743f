"""The Microsoft seam of an integration: app credentials, endpoints, the MSAL app and its token
cache, the Graph client, and what a Microsoft error means for the administrator."""

import logging
import threading

import msal

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..utils import graph_client, graph_errors, msal_app

_logger = logging.getLogger(__name__)
GRAPH_TIMEOUT = 30  # seconds per Graph request
# Seconds a sync may wait for Microsoft's throttling in one request: short while a user
# waits on an HTTP worker, longer in the scheduled job.
INTERACTIVE_MAX_WAIT = 30
CRON_MAX_WAIT = 120
# MSAL keeps discovery documents and throttling state in it, so per-tenant apps built for
# every sync don't fetch the OpenID configuration again; one dict per thread of the server.
_MSAL_HTTP_CACHE = graph_client.ThreadLocalHttpCache()


class AzureAdMicrosoftMixin(models.AbstractModel):
    _name = "azure.ad.microsoft.mixin"
    _description = "Azure AD: access to Microsoft"

    # MSAL's serialized cache: only the short-lived app token, never a credential.
    token_cache = fields.Text(groups="base.group_system", copy=False, prefetch=False)

    def _get_endpoints(self):
        params = self.env["ir.config_parameter"].sudo()
        login = (
            params.get_param("azure_ad_contacts.login_endpoint") or graph_client.DEFAULT_LOGIN_ENDPOINT
        ).rstrip("/")
        graph = (
            params.get_param("azure_ad_contacts.graph_endpoint") or graph_client.DEFAULT_GRAPH_ENDPOINT
        ).rstrip("/")
        for endpoint in (login, graph):
            if not endpoint.startswith("https://"):
                raise UserError(self.env._("Azure AD endpoints must use https: %(url)s", url=endpoint))
        return login, graph

    def _get_msal_app(self, http_cache=None, tenant_id=None):
        """Factory seam for MSAL (tests may replace it): a confidential client for this
        customer's tenant over the stored token cache; for another `tenant_id` (a consent
        being proven), over an empty one."""
        return self._msal_app_builder(tenant_id)(http_cache=http_cache)

    def _msal_app_builder(self, tenant_id=None, http_cache=None):
        """A plain function that builds the MSAL app of `_get_msal_app` (keywords: http_cache,
        by default `http_cache` or the process-wide one; token_cache; http_client). What it
        needs from the database is read now: it may be called later from the thread that
        prefetches pages, which must not touch the ORM."""
        self.ensure_one()
        client_id, credential = self._get_app_credentials()
        login, _graph = self._get_endpoints()
        tenant = tenant_id or self.tenant_id
        stored = None if tenant_id else self.sudo().token_cache
        default_cache = _MSAL_HTTP_CACHE if http_cache is None else http_cache

        def build(http_cache=None, token_cache=None, http_client=None):
            if token_cache is None:
                token_cache = msal.SerializableTokenCache()
                if stored:
                    token_cache.deserialize(stored)
            return graph_client.build_msal_app(
                client_id,
                credential,
                login,
                tenant,
                token_cache=token_cache,
                http_cache=default_cache if http_cache is None else http_cache,
                http_client=http_client,
            )

        return build

    def _prove_consent(self, tenant_id, wait):
        """An app token for `tenant_id` and one Graph read, retried for up to `wait` seconds
        while Microsoft spreads a fresh consent (graph_client.prove_consent); each try with a
        new MSAL app and HTTP cache, since MSAL replays a failed answer for a minute."""
        self.ensure_one()
        _login, graph = self._get_endpoints()

        def waiting(error, attempt, remaining):
            _logger.info(
                "Azure AD consent of %s: Microsoft does not confirm it yet (try %s, %.0f s left): %s",
                self.name,
                attempt,
                remaining,
                error,
            )

        return graph_client.prove_consent(
            lambda http_cache: self._get_msal_app(http_cache=http_cache, tenant_id=tenant_id),
            graph,
            expected_tenant=tenant_id,
            timeout=wait,
            on_wait=waiting,
            client_options={"timeout": GRAPH_TIMEOUT, "max_wait": INTERACTIVE_MAX_WAIT},
        )

    def _get_graph_client(self, http_cache=None, max_wait=INTERACTIVE_MAX_WAIT):
        """Factory seam for the Graph client, with a token provider that keeps MSAL's
        cache (the app token) on the integration. `max_wait` bounds the time spent
        waiting for Microsoft's Retry-After/backoff in one request."""
        self.ensure_one()
        _login, graph = self._get_endpoints()
        # The MSAL app is built at the first token request, inside the client's retries; a
        # missing configuration fails here already.
        tokens = msal_app.AppTokens(self._msal_app_builder(http_cache=http_cache), graph)
        owner = threading.get_ident()

        def token_provider(force_refresh=False):
            token = tokens(force_refresh)
            cache = tokens.app.token_cache
            # Only the request's own thread uses the ORM; a token renewed while a worker
            # thread pages is simply acquired again by the next sync.
            if cache.has_state_changed and threading.get_ident() == owner:
                self.sudo().token_cache = cache.serialize()
                cache.has_state_changed = False
            return token

        return graph_client.GraphClient(graph, token_provider, timeout=GRAPH_TIMEOUT, max_wait=max_wait)

    @api.model
    def _graph_error_kind(self, error):
        """Which remedy the UI offers for a Graph error (see last_error_kind)."""
        if isinstance(
            error,
            graph_client.ConsentMissingError
            | graph_client.PermissionDeniedError
            | graph_client.TenantNotFoundError,
        ):
            return "consent"
        if isinstance(error, graph_errors.AppCredentialError):
            return "secret"
        if isinstance(error, graph_client.ThrottledError | graph_client.ServiceUnavailableError):
            return "throttled"
        return "other"

    def _graph_error_message(self, error):
        """A message an administrator can act on, for each kind of Microsoft failure."""
        customer = self.name
        if isinstance(error, graph_client.AuthenticationError):
            return self._token_error_message(error)
        if isinstance(error, graph_client.HiddenMembershipError):
            return self.env._(
                "A group of the group filter of %(customer)s hides its membership: reading its members "
                "needs the application permission Member.Read.Hidden. Grant it to your Azure AD app, "
                "then reconnect so that a customer administrator consents again, or remove the group "
                "from the filter.",
                customer=customer,
            )
        if isinstance(error, graph_client.GroupPermissionError):
            return self.env._(
                "The app may not read the group members of %(customer)s (Authorization_RequestDenied). "
                "Grant the application permission GroupMember.Read.All to your Azure AD app, then "
                "reconnect so that a customer administrator consents again, or remove the group "
                "filter.",
                customer=customer,
            )
        if isinstance(error, graph_client.GroupNotFoundError):
            return self.env._(
                "A group of the group filter of %(customer)s does not exist in its tenant "
                "(%(detail)s). Correct the group ids in the integration's options. Nothing was changed.",
                customer=customer,
                detail=error.detail,
            )
        if isinstance(error, graph_client.PermissionDeniedError):
            return self.env._(
                "The app may not read the users of %(customer)s (Authorization_RequestDenied). "
                "Make sure the application permission User.Read.All is granted, then reconnect "
                "so that a customer administrator consents again.",
                customer=customer,
            )
        if isinstance(error, graph_client.PagingLimitError):
            return self.env._(
                "Microsoft Graph kept sending pages past any plausible end (%(detail)s); the sync "
                "was stopped and nothing was changed. Try again later.",
                detail=error.detail,
            )
        if isinstance(error, graph_client.ThrottledError):
            return self.env._(
                "Microsoft Graph is throttling requests for %(customer)s. Nothing was changed; "
                "try again in %(seconds)s seconds.",
                customer=customer,
                seconds=int(error.retry_after or 60),
            )
        if isinstance(error, graph_client.ServiceUnavailableError):
            return self.env._(
                "Microsoft could not be reached or is unavailable (%(detail)s). Nothing was "
                "changed; try again later.",
                detail=error.detail,
            )
        if isinstance(error, graph_client.UntrustedHostError):
            return self.env._(
                "Microsoft Graph sent a link to an unexpected host (%(detail)s); the sync was "
                "stopped and nothing was changed.",
                detail=error.detail,
            )
        if isinstance(error, graph_client.MalformedResponseError):
            return self.env._(
                "Microsoft Graph answered with malformed data (%(detail)s). Nothing was changed; "
                "try again later.",
                detail=error.detail,
            )
        return self.env._("Microsoft Graph error: %(detail)s", detail=error.detail)

    def _token_error_message(self, error):
        """What a refused app token (graph_client.AuthenticationError) means, and what to do."""
        customer = self.name
        if isinstance(error, graph_client.AppDisabledError):
            return self.env._(
                "The app is disabled in the tenant of %(customer)s (AADSTS7000112). A customer "
                "administrator must enable it again (Microsoft Entra admin center › Enterprise "
                "applications › the app › Properties › Enabled for users to sign in), then Reconnect.",
                customer=customer,
            )
        if isinstance(error, graph_client.ConsentMissingError):
            return self.env._(
                "Microsoft says the app is not (or no longer) consented in the tenant of "
                "%(customer)s (%(code)s). Reconnect: a customer administrator must grant "
                "consent again.",
                customer=customer,
                code=error.code or "AADSTS700016",
            )
        if isinstance(error, graph_client.ClientSecretError):
            if error.expired:
                return self.env._(
                    "The client secret of your Azure AD app has expired (AADSTS7000222). Create a "
                    "new secret in the Azure portal and enter it in Settings › Azure AD Contacts. "
                    "This affects all customers."
                )
            return self.env._(
                "The client secret of your Azure AD app is invalid (AADSTS7000215). Check the "
                "secret (its value, not its ID) in Settings › Azure AD Contacts. This affects all "
                "customers."
            )
        if isinstance(error, graph_errors.CertificateError):
            return self._certificate_error_message(error)
        if isinstance(error, graph_client.TenantNotFoundError):
            return self.env._(
                "Microsoft does not know the tenant %(tenant)s of %(customer)s (AADSTS90002). "
                "Check the login endpoint in the settings, or reconnect.",
                tenant=self.tenant_id,
                customer=customer,
            )
        if isinstance(error, graph_client.CloudMismatchError):
            return self.env._(
                "The login endpoint and the Graph endpoint belong to different Microsoft clouds "
                "(AADSTS500011: the login service does not know the Graph resource). Set both "
                "endpoints of the same cloud in Settings › Azure AD Contacts."
            )
        if isinstance(error, graph_client.TenantMismatchError):
            return self.env._(
                "Microsoft proved the consent for another tenant than the one it reported "
                "(%(detail)s). Nothing was connected; connect %(customer)s again.",
                detail=error.detail,
                customer=customer,
            )
        return self.env._(
            "Microsoft refused to issue a token for %(customer)s: %(detail)s",
            customer=customer,
            detail=error.detail,
        )

    def _certificate_error_message(self, error):
        """What a refused client assertion (graph_errors.CertificateError) means, and what to do."""
        if error.code == "AADSTS700024":
            return self.env._(
                "Microsoft refused the app's certificate login because its time is off (AADSTS700024: "
                "the client assertion is not within its valid time range). Check the clock of the Odoo "
                "server. This affects all customers."
            )
        return self.env._(
            "Microsoft refused the certificate of your Azure AD app (%(code)s): it is not registered on "
            "the app, or it has expired. Upload the certificate to the app registration (Certificates & "
            "secrets), or give the app's current certificate and its private key in Settings › Azure AD "
            "Contacts. This affects all customers. Microsoft says: %(detail)s",
            code=error.code or "AADSTS700027",
            detail=error.detail,
        )
