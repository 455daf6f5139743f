"""Request handlers for delegated access and GDAP (mixed into EntraRequestHandler):

* ``GET|POST /{tenant}/oauth2/v2.0/authorize``: sign-in and consent pages, then the redirect
  with a one-time code (see :mod:`fake_entra.signin`);
* the token endpoint's ``authorization_code`` and ``refresh_token`` grants (see
  :mod:`fake_entra.delegated`);
* ``GET /v1.0/tenantRelationships/delegatedAdminCustomers`` and ``…/delegatedAdminRelationships``
  (see :mod:`fake_entra.gdap`): the signed-in partner's own, ``$top`` up to 300, paged with
  ``@odata.nextLink``; delegated (or application) permission DelegatedAdminRelationship.Read.All.
"""

import secrets

from . import consent, protocol, signin
from .delegated import GDAP_PERMISSIONS, OIDC_SCOPES, USER_CONSENTABLE
from .gdap import CONTEXT, DEFAULT_TOP, MAX_TOP

USER_GRANTS = ("authorization_code", "refresh_token")


class DelegatedHandler:
    # ------------------------------------------------------------------ sign-in
    def _authorize(self, segment):
        params = dict(self.query)
        if self.command == "POST":
            params.update(self._form())
        action = self.path.split("?", 1)[0]
        app = self.fake.app(params.get("client_id"))
        if app is None:
            return self._send_html(400, consent.error_page(
                700016, client_id=params.get("client_id", ""), tenant=segment))
        redirect_uri = params.get("redirect_uri") or ""
        if not consent.valid_redirect_uri(redirect_uri):
            return self._send_html(400, consent.error_page(50011, redirect_uri=redirect_uri))
        state = params.get("state")
        if params.get("response_type") != "code":
            return self._redirect(signin.error_redirect(
                redirect_uri, "unsupported_response_type", None, state))
        if params.get("code_challenge") and params.get("code_challenge_method", "plain") not in (
                "S256", "plain"):
            return self._redirect(signin.error_redirect(redirect_uri, "invalid_request", None, state))
        path_tenant = None
        if segment.lower() not in ("organizations", "common"):
            path_tenant = self.fake.resolve_tenant(segment)
            if path_tenant is None:
                return self._send_html(400, consent.error_page(90002, tenant=segment))
        if self.command != "POST" or not params.get("login"):
            return self._send_html(200, signin.sign_in_page(action, app["name"], params))
        tenant, user = self.fake.find_user(params["login"])
        if user is None or (path_tenant and tenant.tenant_id != path_tenant):
            return self._send_html(200, signin.sign_in_page(
                action, app["name"], params,
                error=f"AADSTS50034: {protocol.AADSTS[50034].format(login=params['login'])}"))
        scopes = [scope.rsplit("/", 1)[-1] for scope in (params.get("scope") or "").split()]
        missing = self.fake.missing_consent(tenant.tenant_id, scopes)
        if params.get("prompt") == "consent":
            missing = sorted(set(scopes) - OIDC_SCOPES)
        decision = params.get("decision")
        if missing and not decision:
            return self._send_html(200, signin.permissions_page(
                action, app["name"], params, user.get("userPrincipalName"), missing,
                self.fake.is_consent_admin(user)))
        if missing and decision != "accept":
            return self._redirect(signin.error_redirect(redirect_uri, "access_denied", 65004, state))
        needs_admin = set(missing) - USER_CONSENTABLE
        if needs_admin and not (self.fake.is_consent_admin(user) and params.get("consent_org")):
            return self._send_html(403, consent.error_page(90094, app_name=app["name"]))
        if missing:
            self.fake.grant_delegated(tenant.tenant_id, missing)
        code = self.fake.new_auth_code(
            app["client_id"], redirect_uri, user, tenant.tenant_id, scopes, params.get("nonce"),
            params.get("code_challenge"), params.get("code_challenge_method"))
        self._redirect(signin.code_redirect(redirect_uri, code, state, secrets.token_hex(16)))

    def _user_token(self, segment, form, client_id, secret, assertion=None):
        """The token endpoint for a user: a code or a refresh token, for Graph. The app proves
        itself as for its own tokens: a client secret or a client assertion (certificate)."""
        problem = self.fake.check_client(client_id, secret, assertion)
        if problem:
            return self._send_json(*problem)
        scopes = (form.get("scope") or "").split()
        resources = {scope.rsplit("/", 1)[0].rstrip("/").lower() for scope in scopes if "/" in scope}
        if len(resources) > 1:
            return self._send_json(400, protocol.aad_error("invalid_scope", 70011, scope=form.get("scope")))
        resource = resources.pop() if resources else self._base_url()
        if resource not in self.server.graph_resources:
            return self._send_json(400, protocol.aad_error("invalid_resource", 500011,
                                                           resource=resource, tenant=segment))
        if form.get("grant_type") == "authorization_code":
            status, payload = self.fake.redeem_code(client_id, form, resource, self._base_url())
        else:
            status, payload = self.fake.redeem_refresh_token(
                segment, client_id, form, resource, self._base_url())
        self._send_json(status, payload, [("Pragma", "no-cache")])

    # ------------------------------------------------------------------ GDAP
    def _gdap_customers(self):
        self._gdap_list("delegatedAdminCustomers", self.fake.gdap_customers_page)

    def _gdap_relationships(self):
        self._gdap_list("delegatedAdminRelationships", self.fake.relationships_page)

    def _gdap_list(self, name, page_of):
        partner = self._graph_tenant(GDAP_PERMISSIONS)
        if partner is None:
            return
        for option in ("$filter", "$orderby", "$search", "$count", "$expand", "$skip"):
            if self._query(option) is not None:
                return self._graph_error(400, "Request_UnsupportedQuery",
                                         f"fake_entra does not implement {option} here.")
        raw_top = self._query("$top")
        top = DEFAULT_TOP
        if raw_top is not None:
            top = int(raw_top) if raw_top.strip().isdigit() else -1
            if not 1 <= top <= MAX_TOP:
                return self._graph_error(400, "Request_BadRequest",
                                         f"Invalid page size '{raw_top}': $top supports up to {MAX_TOP}.")
        try:
            after = protocol.decode_skiptoken(self._query("$skiptoken")) \
                if self._query("$skiptoken") is not None else ""
        except ValueError as exc:
            return self._graph_error(400, "Request_BadRequest", str(exc))
        items, more = page_of(partner, after, top)
        payload = {"@odata.context": f"{CONTEXT}#{name}", "value": items}
        if more:
            token = protocol.encode_skiptoken(items[-1]["id"])
            payload["@odata.nextLink"] = (f"{self._base_url()}/v1.0/tenantRelationships/{name}"
                                          f"?$top={top}&$skiptoken={token}")
        self._send_json(200, payload)
