"""The fake's directory: apps, tenants with their users and consent, tokens, faults and stats.

Everything is guarded by one re-entrant lock so the threaded HTTP server and in-process control
calls from tests can interleave freely. Control methods are the same for in-process use
(:class:`~fake_entra.server.FakeEntra` inherits them) and for the ``/_fake`` HTTP endpoints.
"""

import bisect
import collections
import copy
import json
import os
import secrets
import threading
import time
import uuid

from . import faults as faults_module
from .protocol import aad_error, is_guid

DEFAULT_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
DEFAULT_CLIENT_SECRET = "fake-entra-secret"
DEFAULT_APP_NAME = "Odoo Azure AD Contacts"
TOKEN_LIFETIME = 3599
STAT_KINDS = ("openid", "token", "users", "domains", "groups", "consent")
RECENT_REQUESTS = 500
TENANTS_DIR = os.path.join(os.path.dirname(__file__), "tenants")


def load_tenant_files(directory=TENANTS_DIR):
    """Read every ``*.json`` tenant file of ``directory`` (sorted by name)."""
    tenants = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json"):
            with open(os.path.join(directory, name), encoding="utf-8") as f:
                tenants.append(json.load(f))
    return tenants


class Tenant:
    def __init__(self, data):
        self.tenant_id = str(data["tenant_id"]).lower()
        if not is_guid(self.tenant_id):
            raise ValueError(f"tenant_id must be a GUID, got {data['tenant_id']!r}")
        self.display_name = data.get("display_name") or self.tenant_id
        self.consented = bool(data.get("consented", False))
        self.domains = [str(d) for d in data.get("domains", [])]
        # Added to the tenant but not proven by DNS: Graph lists them with isVerified false.
        self.unverified_domains = [str(d) for d in data.get("unverified_domains", [])]
        # May the app read group members (GroupMember.Read.All granted)?
        self.groups_readable = bool(data.get("groups_readable", True))
        self.users = {}
        self._sorted = None
        self.add_users(data.get("users", []))
        self.set_groups(data.get("groups", []))

    def add_users(self, users):
        added = []
        for user in users:
            user = dict(user)
            user.setdefault("id", str(uuid.uuid4()))
            self.users[str(user["id"])] = user
            added.append(user)
        self.changed()
        return added

    def changed(self):
        self._sorted = None
        self._members = {}

    def set_groups(self, groups):
        """Groups as ``{"id", "displayName", "members": [user or group ids]}``."""
        self.groups = {}
        for group in groups:
            group = {"displayName": None, **group, "members": [str(m) for m in group.get("members", [])]}
            if not is_guid(str(group.get("id", ""))):
                raise ValueError(f"group id must be a GUID, got {group.get('id')!r}")
            self.groups[str(group["id"]).lower()] = group
        self._members = {}

    def transitive_members(self, group_id):
        """(lowercase ids, member objects) of a group and its nested groups, in Graph's stable
        order (users and groups; members that no longer exist are left out)."""
        group_id = group_id.lower()
        if group_id not in self._members:
            users = {str(uid).lower(): user for uid, user in self.users.items()}
            found, todo, seen = {}, [group_id], {group_id}
            while todo:
                for member in self.groups[todo.pop()]["members"]:
                    member = member.lower()
                    if member in users:
                        found[member] = ("user", users[member])
                    elif member in self.groups and member not in seen:
                        seen.add(member)
                        found[member] = ("group", self.groups[member])
                        todo.append(member)
            ordered = sorted(found)
            self._members[group_id] = (ordered, [found[member] for member in ordered])
        return self._members[group_id]

    def sorted_users(self):
        """(lowercase ids, users) in Graph's stable order; cached until the next change."""
        if self._sorted is None:
            users = sorted(self.users.values(), key=lambda u: str(u["id"]).lower())
            self._sorted = ([str(u["id"]).lower() for u in users], users)
        return self._sorted

    def summary(self):
        return {
            "tenant_id": self.tenant_id, "display_name": self.display_name,
            "consented": self.consented, "domains": list(self.domains),
            "user_count": len(self.users),
        }

    def as_dict(self):
        data = self.summary()
        del data["user_count"]
        data["users"] = copy.deepcopy(list(self.users.values()))
        data["groups"] = copy.deepcopy(list(self.groups.values()))
        data["groups_readable"] = self.groups_readable
        data["unverified_domains"] = list(self.unverified_domains)
        return data


class EntraState:
    """Apps, tenants, tokens, faults and stats behind one lock (the fake minus its server)."""

    def __init__(self, apps=None, tenants=None):
        self._lock = threading.RLock()
        if apps is None:
            apps = [{"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}]
        self._initial_apps = [dict(app) for app in apps]
        self._initial_tenants = [_tenant_data(t) for t in (tenants or [])]
        self.reset()

    # ----------------------------------------------------------------- control API
    def reset(self):
        """Back to the constructor's apps and tenants; no tokens, faults or stats."""
        with self._lock:
            self._apps = {}
            for app in self._initial_apps:
                self.add_app(**app)
            self._tenants = {}
            for data in self._initial_tenants:
                self.put_tenant(data)
            self._tokens = {}
            self._faults = faults_module.FaultQueue()
            self.reset_stats()

    def add_app(self, client_id, client_secret, secret_expired=False, name=DEFAULT_APP_NAME):
        with self._lock:
            self._apps[client_id.lower()] = {
                "client_id": client_id, "client_secret": client_secret,
                "secret_expired": bool(secret_expired), "name": name,
            }

    def put_tenant(self, tenant):
        """Create or replace a tenant (the JSON format of ``tenants/*.json``)."""
        tenant = Tenant(tenant)
        with self._lock:
            self._tenants[tenant.tenant_id] = tenant
            return tenant.summary()

    def delete_tenant(self, tenant_id):
        """Remove a tenant: its tokens stop working and discovery answers AADSTS90002."""
        with self._lock:
            del self._tenants[self._tenant(tenant_id).tenant_id]

    def tenants(self):
        with self._lock:
            return [t.summary() for t in self._tenants.values()]

    def tenant(self, tenant_id):
        """A deep copy of one tenant, users included."""
        with self._lock:
            return self._tenant(tenant_id).as_dict()

    def set_users(self, tenant_id, users):
        with self._lock:
            tenant = self._tenant(tenant_id)
            tenant.users = {}
            tenant.add_users(users)

    def add_user(self, tenant_id, user):
        """Add one user (returns it, with its id) or a list of users (returns the list)."""
        with self._lock:
            added = self._tenant(tenant_id).add_users([user] if isinstance(user, dict) else user)
            return copy.deepcopy(added[0] if isinstance(user, dict) else added)

    def update_user(self, tenant_id, user_id, changes):
        """Merge ``changes`` into a user; a value of None makes the property null."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            user = self._user(tenant, user_id)
            user.update({k: v for k, v in changes.items() if k != "id"})
            tenant.changed()
            return copy.deepcopy(user)

    def delete_user(self, tenant_id, user_id):
        with self._lock:
            tenant = self._tenant(tenant_id)
            del tenant.users[self._user(tenant, user_id)["id"]]
            tenant.changed()

    def set_groups(self, tenant_id, groups):
        """Replace a tenant's groups: ``[{"id", "displayName", "members": [ids]}]``; members
        are user ids or ids of nested groups."""
        with self._lock:
            self._tenant(tenant_id).set_groups(groups)

    def set_groups_readable(self, tenant_id, readable):
        """Grant or withdraw GroupMember.Read.All: without it, group members answer 403."""
        with self._lock:
            self._tenant(tenant_id).groups_readable = bool(readable)

    def set_consent(self, tenant_id, granted):
        with self._lock:
            self._tenant(tenant_id).consented = bool(granted)

    def add_fault(self, **fault):
        """Queue a fault; see :mod:`fake_entra.faults` for the arguments."""
        fault = faults_module.make_fault(**fault)
        with self._lock:
            self._faults.add(fault)
        return fault.as_dict()

    def clear_faults(self):
        with self._lock:
            self._faults.clear()

    def expire_tokens(self):
        """Every access token issued so far is expired from now on."""
        with self._lock:
            for token in self._tokens.values():
                token["expires_at"] = 0

    def stats(self):
        with self._lock:
            return {
                "counts": dict(self._counts),
                "faults_fired": self._faults_fired,
                "connections": self._connections,
                "faults_pending": self._faults.pending(),
                "requests": list(self._recent),
            }

    def reset_stats(self):
        with self._lock:
            self._counts = dict.fromkeys(STAT_KINDS, 0)
            self._faults_fired = 0
            self._connections = 0  # TLS connections accepted (keep-alive reuse shows here)
            self._recent = collections.deque(maxlen=RECENT_REQUESTS)

    # ----------------------------------------------------------------- used by the handler
    def record(self, kind, method, path, status):
        with self._lock:
            if kind in self._counts:
                self._counts[kind] += 1
            self._recent.append({"method": method, "path": path, "status": status})

    def count_connection(self):
        with self._lock:
            self._connections += 1

    def take_fault(self, kind, tenant_id):
        with self._lock:
            fault = self._faults.take(kind, tenant_id)
            if fault is not None:
                self._faults_fired += 1
            return fault

    def resolve_tenant(self, segment):
        """Tenant id for a GUID or one of its domain names; None if unknown."""
        segment = (segment or "").lower()
        with self._lock:
            if segment in self._tenants:
                return segment
            for tenant in self._tenants.values():
                if segment in (d.lower() for d in tenant.domains):
                    return tenant.tenant_id
        return None

    def tenant_choices(self):
        with self._lock:
            return [(t.tenant_id, t.display_name) for t in self._tenants.values()]

    def app(self, client_id):
        with self._lock:
            app = self._apps.get((client_id or "").lower())
            return dict(app) if app else None

    def grant_consent(self, tenant_id, client_id):
        """The admin clicked Accept: the app gets its service principal in the tenant."""
        with self._lock:
            if self.app(client_id) is None:
                raise KeyError(client_id)
            self._tenant(tenant_id).consented = True

    def issue_token(self, tenant_segment, client_id, client_secret):
        """Client-credentials grant (parameters already checked) → (HTTP status, JSON body)."""
        with self._lock:
            if tenant_segment.lower() in ("organizations", "common", "consumers"):
                return 400, aad_error("invalid_request", 900023, tenant=tenant_segment)
            tenant_id = self.resolve_tenant(tenant_segment)
            if tenant_id is None:
                return 400, aad_error("invalid_request", 90002, tenant=tenant_segment)
            tenant = self._tenants[tenant_id]
            app = self.app(client_id)
            if app is None or not tenant.consented:
                return 400, aad_error("unauthorized_client", 700016,
                                      client_id=client_id, tenant=tenant.display_name)
            if not secrets.compare_digest(client_secret.encode(), app["client_secret"].encode()):
                return 401, aad_error("invalid_client", 7000215, client_id=client_id)
            if app["secret_expired"]:
                return 401, aad_error("invalid_client", 7000222, client_id=client_id)
            token = secrets.token_urlsafe(48)
            self._tokens[token] = {
                "tenant_id": tenant_id, "client_id": app["client_id"],
                "expires_at": time.time() + TOKEN_LIFETIME,
            }
            return 200, {
                "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME, "access_token": token,
            }

    def token_tenant(self, token):
        """The tenant a token is bound to, if the token exists (expired or not)."""
        with self._lock:
            entry = self._tokens.get(token or "")
            return entry["tenant_id"] if entry else None

    def check_token(self, token):
        """None if the bearer may read Graph, else ``(status, graph code, message)``."""
        with self._lock:
            entry = self._tokens.get(token)
            expired = entry is None or entry["expires_at"] <= time.time()
            if expired or entry["tenant_id"] not in self._tenants:
                return 401, "InvalidAuthenticationToken", \
                    "Access token has expired or is not yet valid."
            if not self._tenants[entry["tenant_id"]].consented:
                return 403, "Authorization_RequestDenied", \
                    "Insufficient privileges to complete the operation."
            return None

    def users_page(self, tenant_id, after_id, top, project):
        """Up to ``top`` projected users after ``after_id``, and whether more follow."""
        with self._lock:
            ids, users = self._tenants[tenant_id].sorted_users()
            start = bisect.bisect_right(ids, after_id.lower()) if after_id else 0
            page = [project(user) for user in users[start:start + top]]
            return page, start + top < len(users)

    def group_members_page(self, tenant_id, group_id, after_id, top, project):
        """(page, more?) of a group's transitive members after ``after_id``; ``project(kind,
        member)`` returns the JSON object or None to leave a member out (a type cast).
        Raises KeyError for an unknown group, PermissionError without GroupMember.Read.All."""
        with self._lock:
            tenant = self._tenants[tenant_id]
            if group_id.lower() not in tenant.groups:
                raise KeyError(group_id)
            if not tenant.groups_readable:
                raise PermissionError(group_id)
            ids, members = tenant.transitive_members(group_id)
            start = bisect.bisect_right(ids, after_id.lower()) if after_id else 0
            page = []
            while start < len(ids) and len(page) < top:
                projected = project(*members[start])
                if projected is not None:
                    page.append(projected)
                start += 1
            return page, start < len(ids), (ids[start - 1] if start else "")

    def domains(self, tenant_id):
        with self._lock:
            return list(self._tenants[tenant_id].domains)

    def unverified_domains(self, tenant_id):
        with self._lock:
            return list(self._tenants[tenant_id].unverified_domains)

    def revoke_consent(self, tenant_id):
        with self._lock:
            if tenant_id in self._tenants:
                self._tenants[tenant_id].consented = False

    # ----------------------------------------------------------------- helpers
    def _tenant(self, tenant_id):
        tenant = self._tenants.get(str(tenant_id).lower())
        if tenant is None:
            raise KeyError(f"unknown tenant {tenant_id}")
        return tenant

    @staticmethod
    def _user(tenant, user_id):
        user = tenant.users.get(str(user_id))
        if user is None:
            raise KeyError(f"unknown user {user_id} in tenant {tenant.tenant_id}")
        return user


def _tenant_data(tenant):
    """A tenant dict, or the path of a tenant JSON file."""
    if isinstance(tenant, dict):
        return copy.deepcopy(tenant)
    with open(os.fspath(tenant), encoding="utf-8") as f:
        return json.load(f)
