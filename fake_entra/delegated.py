"""Users signing in and their tokens (delegated access), as the Microsoft identity platform
documents them:

* The authorization-code grant: ``/authorize`` hands out a one-time code (about ten minutes),
  bound to the app, the redirect URI and the PKCE challenge; the token endpoint redeems it for an
  access token, an ID token (with the request's ``nonce``), ``client_info`` and a refresh token.
* Refresh tokens are bound to a user and an app, not to a tenant or resource: redeemed against
  another tenant's authority they give a token for that tenant, if the user may act there. Each
  redemption returns a new refresh token; the old one is not revoked. A refresh token lasts 90
  days (AADSTS700082 after that); revoking a user's sessions (``revokeSignInSessions``) or
  disabling the user invalidates every one issued before (AADSTS50173).
* A partner's user acts in a customer tenant only through GDAP (see :mod:`fake_entra.gdap`): no
  active relationship giving it a role there answers AADSTS50020; the app itself must also have
  been authorized in the customer tenant (its delegated permissions granted there: by the
  customer's admin consent, or by the partner through Partner Center), else AADSTS90099.
* A user token's ``scp`` holds the delegated permissions granted, ``wids`` the user's directory
  roles in that tenant; Graph allows what both allow (a member reads its own directory).
"""

import base64
import hashlib
import json
import secrets
import time

from .gdap import CONSENT_ROLES, READ_DOMAINS_ROLES, READ_GROUPS_ROLES, READ_USERS_ROLES
from .protocol import DOMAINS_ROLES, GROUPS_ROLES, USERS_ROLES, aad_error, encode_access_token

AUTH_CODE_LIFETIME = 600
REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600
USER_TOKEN_LIFETIME = 3599
# The Graph delegated permissions the fake knows; the app's registration asks for the default ones
# (a tenant-wide admin consent grants them all).
KNOWN_SCOPES = frozenset({
    "User.Read", "User.ReadBasic.All", "User.Read.All", "Domain.Read.All", "GroupMember.Read.All",
    "Group.Read.All", "Directory.Read.All", "DelegatedAdminRelationship.Read.All",
    "DelegatedAdminRelationship.ReadWrite.All"})
DEFAULT_DELEGATED_SCOPES = ("User.Read", "User.Read.All", "Domain.Read.All", "GroupMember.Read.All",
                            "DelegatedAdminRelationship.Read.All")
USER_CONSENTABLE = frozenset({"User.Read"})
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
GDAP_PERMISSIONS = ("DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All")
# Which directory roles a user of another tenant needs for what a Graph call needs.
_ROLES_NEEDED = {USERS_ROLES: READ_USERS_ROLES, GROUPS_ROLES: READ_GROUPS_ROLES,
                 DOMAINS_ROLES: READ_DOMAINS_ROLES}


def _b64(data):
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def pkce_matches(verifier, challenge, method):
    if method == "plain":
        return secrets.compare_digest(verifier, challenge)
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return secrets.compare_digest(digest, challenge)


class DelegatedState:
    """Codes, refresh tokens and the delegated permissions granted per tenant (mixed into
    the fake before EntraState, whose lock guards them)."""

    def reset(self):
        self._codes = {}
        self._refresh_tokens = {}
        self._delegated_scopes = {}  # tenant id -> delegated permissions granted to the app
        self._sessions_revoked = {}  # user id -> time of revokeSignInSessions
        super().reset()

    def put_tenant(self, tenant):
        summary = super().put_tenant(tenant)
        scopes = tenant.get("delegated_scopes")
        if scopes is None:
            scopes = DEFAULT_DELEGATED_SCOPES if tenant.get("consented") else ()
        with self._lock:
            self._delegated_scopes[summary["tenant_id"]] = set(scopes)
        return summary

    def set_consent(self, tenant_id, granted):
        """An admin consent (``.default``) grants the app's delegated permissions too; removing
        the app's service principal takes them all."""
        super().set_consent(tenant_id, granted)
        with self._lock:
            scopes = self._delegated_scopes.setdefault(self._tenant(tenant_id).tenant_id, set())
            if granted:
                scopes.update(DEFAULT_DELEGATED_SCOPES)
            else:
                scopes.clear()

    # ---------------------------------------------------------------- control methods
    def set_delegated_scopes(self, tenant_id, scopes):
        """The delegated permissions granted to the app in a tenant, e.g. by the partner's
        Partner Center consent (``applicationconsents``) in a customer tenant; [] removes the
        app's authorization there."""
        unknown = set(scopes) - KNOWN_SCOPES
        if unknown:
            raise ValueError(f"unknown delegated permissions: {', '.join(sorted(unknown))}")
        with self._lock:
            self._delegated_scopes[self._tenant(tenant_id).tenant_id] = set(scopes)

    def delegated_scopes(self, tenant_id):
        with self._lock:
            return sorted(self._delegated_scopes.get(self._tenant(tenant_id).tenant_id, ()))

    def revoke_sign_in_sessions(self, user):
        """``revokeSignInSessions``: every refresh token of the user issued so far is invalid."""
        with self._lock:
            _tenant, found = self.find_user(user)
            if found is None:
                raise KeyError(f"unknown user {user}")
            self._sessions_revoked[str(found["id"]).lower()] = time.time()

    def age_refresh_tokens(self, days):
        """Every refresh token issued so far was issued ``days`` earlier (time passing)."""
        with self._lock:
            for entry in self._refresh_tokens.values():
                entry["issued_at"] -= float(days) * 86400

    # ---------------------------------------------------------------- used by the handler
    def find_user(self, login):
        """(tenant, user) for a sign-in name (UPN or mail) or object id; (None, None) if none."""
        login = (login or "").strip().lower()
        with self._lock:
            for tenant in self._tenants.values():
                for user in tenant.users.values():
                    names = {str(user.get(key) or "").lower() for key in ("userPrincipalName", "mail", "id")}
                    if login and login in names:
                        return tenant, user
        return None, None

    def is_consent_admin(self, user):
        return bool(set(user.get("directoryRoles", ())) & CONSENT_ROLES)

    def missing_consent(self, tenant_id, scopes):
        """The requested delegated permissions not granted to the app in the tenant."""
        with self._lock:
            granted = self._delegated_scopes.get(tenant_id, set())
            return sorted(set(scopes) - granted - OIDC_SCOPES - {".default"})

    def grant_delegated(self, tenant_id, scopes):
        with self._lock:
            self._delegated_scopes.setdefault(tenant_id, set()).update(set(scopes) - OIDC_SCOPES)

    def new_auth_code(self, client_id, redirect_uri, user, tenant_id, scopes, nonce, challenge,
                      method):
        code = secrets.token_urlsafe(48)
        with self._lock:
            self._codes[code] = {
                "client_id": client_id.lower(), "redirect_uri": redirect_uri, "user_id": user["id"],
                "tenant_id": tenant_id, "scopes": list(scopes), "nonce": nonce,
                "challenge": challenge, "method": method or "plain",
                "expires_at": time.time() + AUTH_CODE_LIFETIME, "redeemed": False,
            }
        return code

    def check_client(self, client_id, secret, assertion=None):
        """None if the app authenticates (its secret, or a client assertion signed with one of
        its certificates), else (HTTP status, Entra error body)."""
        with self._lock:
            app = self.app(client_id)
            if app is None:
                return 400, aad_error("unauthorized_client", 700016, client_id=client_id, tenant="")
            if not secret and assertion is None:
                return 401, aad_error("invalid_client", 7000218)
            refused = self._check_credential(app, client_id, secret, assertion)
            return (401, refused) if refused else None

    def redeem_code(self, client_id, form, resource, base_url):
        """The authorization_code grant → (HTTP status, JSON body)."""
        with self._lock:
            entry = self._codes.get(form.get("code") or "")
            if entry is None or entry["client_id"] != client_id.lower():
                return 400, aad_error("invalid_grant", 9002313)
            if entry["redeemed"]:
                return 400, aad_error("invalid_grant", 54005)
            if time.time() > entry["expires_at"]:
                return 400, aad_error("invalid_grant", 70008)
            if form.get("redirect_uri") != entry["redirect_uri"]:
                return 400, aad_error("invalid_grant", 50148, redirect_uri=form.get("redirect_uri"))
            if entry["challenge"] and not pkce_matches(form.get("code_verifier") or "",
                                                       entry["challenge"], entry["method"]):
                return 400, aad_error("invalid_grant", 501481)
            entry["redeemed"] = True
            tenant = self._tenants.get(entry["tenant_id"])
            user = tenant.users.get(entry["user_id"]) if tenant else None
            if user is None:
                return 400, aad_error("invalid_grant", 50173)
            scopes = set(entry["scopes"]) - OIDC_SCOPES
            return self._user_tokens(client_id, tenant, user, tenant, scopes, resource, base_url,
                                     nonce=entry["nonce"])

    def redeem_refresh_token(self, segment, client_id, form, resource, base_url):
        """The refresh_token grant against ``segment``'s authority → (HTTP status, JSON body)."""
        with self._lock:
            entry = self._refresh_tokens.get(form.get("refresh_token") or "")
            if entry is None or entry["client_id"] != client_id.lower():
                return 400, aad_error("invalid_grant", 9002313)
            if time.time() - entry["issued_at"] > REFRESH_TOKEN_LIFETIME:
                return 400, aad_error("invalid_grant", 700082)
            home = self._tenants.get(entry["tenant_id"])
            user = home.users.get(entry["user_id"]) if home else None
            revoked = self._sessions_revoked.get(str(entry["user_id"]).lower(), 0)
            if user is None or user.get("accountEnabled") is False or revoked >= entry["issued_at"]:
                return 400, aad_error("invalid_grant", 50173)
            if segment.lower() in ("organizations", "common"):
                target = home
            else:
                target_id = self.resolve_tenant(segment)
                if target_id is None:
                    return 400, aad_error("invalid_request", 90002, tenant=segment)
                target = self._tenants[target_id]
            scopes = {scope for scope in (form.get("scope") or "").split()
                      if scope not in OIDC_SCOPES}
            return self._user_tokens(client_id, home, user, target, scopes, resource, base_url)

    # ---------------------------------------------------------------- helpers
    def _user_tokens(self, client_id, home, user, target, scopes, resource, base_url, nonce=None):
        """Tokens for `user` (of tenant `home`) in tenant `target`, for the delegated permissions
        `scopes` (names; ".default": all granted)."""
        app = self.app(client_id)
        if target.tenant_id == home.tenant_id:
            roles = frozenset(user.get("directoryRoles", ()))
        else:
            roles = self.gdap_roles(user["id"], home.tenant_id, target.tenant_id)
            if not roles:  # no active relationship gives this user any role there
                return 400, aad_error("invalid_grant", 50020, user=user.get("userPrincipalName"),
                                      idp=home.tenant_id, tenant=target.tenant_id,
                                      client_id=client_id, app_name=app["name"])
        granted = self._delegated_scopes.get(target.tenant_id, set())
        if target.tenant_id != home.tenant_id and not granted:
            return 400, aad_error("invalid_grant", 90099, client_id=client_id, app_name=app["name"],
                                  tenant=target.tenant_id)
        names = {scope.rsplit("/", 1)[-1] for scope in scopes}
        if ".default" in names:
            names = (names - {".default"}) | granted
        if names - granted:
            return 400, aad_error("invalid_grant", 65001, client_id=client_id, app_name=app["name"])
        now = int(time.time())
        claims = {
            "aud": resource, "iss": f"https://sts.windows.net/{target.tenant_id}/",
            "iat": now, "nbf": now, "exp": now + USER_TOKEN_LIFETIME, "acr": "1",
            "amr": ["pwd", "mfa"], "app_displayname": app["name"], "appid": app["client_id"],
            "appidacr": "1", "idtyp": "user", "name": user.get("displayName"), "oid": user["id"],
            "scp": " ".join(sorted(names)), "sub": secrets.token_urlsafe(16),
            "tid": target.tenant_id, "upn": user.get("userPrincipalName"),
            "uti": secrets.token_urlsafe(16), "ver": "1.0", "wids": sorted(roles),
            **({} if target is home else {"idp": f"https://sts.windows.net/{home.tenant_id}/"}),
        }
        # Opaque when the fake says so (set_opaque_tokens): clients must not read them.
        access_token = (f"Ew{secrets.token_urlsafe(96)}" if self._opaque_tokens
                        else encode_access_token(claims))
        self._tokens[access_token] = {
            "tenant_id": target.tenant_id, "client_id": app["client_id"],
            "expires_at": time.time() + USER_TOKEN_LIFETIME, "roles": frozenset(), "kind": "user",
            "scopes": frozenset(names), "wids": frozenset(roles), "user_id": user["id"],
            "home_tenant": home.tenant_id,
        }
        refresh_token = secrets.token_urlsafe(64)
        self._refresh_tokens[refresh_token] = {
            "client_id": client_id.lower(), "user_id": user["id"], "tenant_id": home.tenant_id,
            "issued_at": time.time(),
        }
        id_claims = {
            "aud": app["client_id"], "iss": f"{base_url}/{target.tenant_id}/v2.0", "iat": now,
            "nbf": now, "exp": now + USER_TOKEN_LIFETIME, "name": user.get("displayName"),
            "oid": user["id"], "preferred_username": user.get("userPrincipalName"),
            "sub": user["id"], "tid": target.tenant_id, "ver": "2.0",
            **({"nonce": nonce} if nonce else {}),
        }
        return 200, {
            "token_type": "Bearer", "scope": " ".join(f"{resource}/{name}" for name in sorted(names)),
            "expires_in": USER_TOKEN_LIFETIME, "ext_expires_in": USER_TOKEN_LIFETIME,
            "access_token": access_token, "refresh_token": refresh_token,
            "id_token": encode_access_token(id_claims),
            "client_info": _b64({"uid": user["id"], "utid": home.tenant_id}),
        }

    def check_token(self, token, needs=()):
        """A user's token may read what its delegated permissions (``scp``) allow, in its own
        tenant as a member, elsewhere with the directory roles GDAP gave it (``wids``)."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry.get("kind") != "user":
                return super().check_token(token, needs)
            if entry["expires_at"] <= time.time() or entry["tenant_id"] not in self._tenants:
                return 401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
            denied = 403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
            if needs and not entry["scopes"] & set(needs):
                return denied
            roles_needed = _ROLES_NEEDED.get(tuple(needs))
            if (roles_needed is not None and entry["tenant_id"] != entry["home_tenant"]
                    and not entry["wids"] & roles_needed):
                return denied
            return None
