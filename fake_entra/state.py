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
import random
import secrets
import threading
import time
import uuid

from . import assertion as client_assertion
from . import faults as faults_module
from .protocol import aad_error, encode_access_token, is_guid

DEFAULT_CLIENT_ID = "11111111-2222-3333-4444-555555555555"
DEFAULT_CLIENT_SECRET = "fake-entra-secret"
DEFAULT_APP_NAME = "Odoo Azure AD Contacts"
TOKEN_LIFETIME = 3599
STAT_KINDS = ("openid", "token", "users", "user", "count", "domains", "groups", "consent", "delta",
              "authorize", "gdap")
# Microsoft's delta tokens for directory objects are valid for seven days.
DELTA_TOKEN_LIFETIME = 7 * 24 * 3600
# Users per /users/delta page: Microsoft documents no size and does not take $top there.
DELTA_PAGE_SIZE = 200
RECENT_REQUESTS = 500
# Application permissions a consent grants by default (each token carries them as `roles`).
DEFAULT_ROLES = ("User.Read.All", "GroupMember.Read.All", "Domain.Read.All")
GROUP_MEMBER_ROLE = "GroupMember.Read.All"
# Members of a group with hidden membership (visibility HiddenMembership) need this one too.
HIDDEN_MEMBERS_ROLE = "Member.Read.Hidden"
# What is seen while a fresh consent spreads through Microsoft's replicas (see
# EntraState.set_consent_delay): the token endpoint still answers AADSTS700016; or tokens
# are issued but Graph answers 401 Authorization_IdentityNotFound; or tokens are issued
# without the new permissions (and keep lacking them: Graph 403 Authorization_RequestDenied).
CONSENT_DELAY_SYMPTOMS = ("token", "graph", "roles")
DEFAULT_LATENCY_JITTER = 0.1
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
        # The application permissions granted to the app in this tenant.
        self.roles = set(data.get("roles", DEFAULT_ROLES))
        if not data.get("groups_readable", True):
            self.roles.discard(GROUP_MEMBER_ROLE)
        self.service_principal_id = str(uuid.uuid4())  # the app's object in this tenant
        self.consent_ready_at = 0.0  # until then a fresh consent is still spreading
        self.consent_symptom = None
        # Added to the tenant but not proven by DNS: Graph lists them with isVerified false.
        self.unverified_domains = [str(d) for d in data.get("unverified_domains", [])]
        self.users = {}
        self._sorted = None
        # Change tracking for /users/delta: a version number that every change raises, and
        # per user the version at which each property (and the user itself) last changed.
        self.version = 0
        self.delta_epoch = 0  # delta tokens of older versions are expired
        self._log = []  # (version, user id), versions ascending
        self._property_versions = {}
        self._removed = {}  # user id -> (version, "changed" | "deleted")
        # (time, +1 or -1) of each user added or removed: what the index behind advanced
        # queries ($count) has not seen yet while it lags (see EntraState.set_index_lag).
        self._index_log = []
        self.add_users(data.get("users", []))
        self.set_groups(data.get("groups", []))

    def add_users(self, users):
        added = []
        for user in users:
            user = dict(user)
            user.setdefault("id", str(uuid.uuid4()))
            if str(user["id"]) not in self.users:
                self._index_log.append((time.time(), 1))
            self.users[str(user["id"])] = user
            self.track(user["id"], user, created=True)
            added.append(user)
        self.changed()
        return added

    def track(self, user_id, properties=(), created=False, removed=None):
        """Record a change of a user for delta queries: its (new) properties, its creation
        (or restoration) or its removal (``"changed"``: restorable, ``"deleted"``: for good)."""
        user_id = str(user_id)
        self.version += 1
        self._log.append((self.version, user_id))
        if removed:
            if user_id not in self._removed:
                self._index_log.append((time.time(), -1))
            self._removed[user_id] = (self.version, removed)
            self._property_versions.pop(user_id, None)
            return
        restored = created and user_id in self._removed  # deleted, then added with its id
        self._removed.pop(user_id, None)
        versions = self._property_versions.setdefault(user_id, {})
        if created:
            versions.clear()
            versions["@created"] = self.version
            if restored:
                versions["@restored"] = self.version
        for name in properties:
            versions[name] = self.version

    def changes_since(self, version):
        """Ids of the users changed after ``version``, in id order."""
        start = bisect.bisect_right(self._log, (version, "\uffff"))
        return sorted({user_id for _version, user_id in self._log[start:]})

    def change(self, user_id, since):
        """What happened to a user after version ``since``: ("removed", reason),
        ("created", None), ("restored", None) or ("changed", names of the properties changed)."""
        if user_id in self._removed and user_id not in self.users:
            return "removed", self._removed[user_id][1]
        versions = self._property_versions.get(user_id, {})
        if versions.get("@created", 0) > since:
            return ("restored" if versions.get("@restored", 0) > since else "created"), None
        return "changed", {name for name, version in versions.items() if version > since}

    def changed(self):
        self._sorted = None
        self._members = {}

    def indexed_count(self, lag):
        """How many users the eventually consistent index counts: the users as they were
        ``lag`` seconds ago (additions and removals since then not seen yet)."""
        since = time.time() - lag
        return len(self.users) - sum(step for moment, step in self._index_log if moment > since)

    @property
    def groups_readable(self):
        """May the app read group members (GroupMember.Read.All granted)?"""
        return GROUP_MEMBER_ROLE in self.roles

    def spreading(self, symptom):
        """Whether a fresh consent is still spreading, showing this symptom."""
        return self.consent_symptom == symptom and time.time() < self.consent_ready_at

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
        data["roles"] = sorted(self.roles)
        data["unverified_domains"] = list(self.unverified_domains)
        return data


class EntraState:
    """Apps, tenants, tokens, faults and stats behind one lock (the fake minus its server)."""

    def __init__(self, apps=None, tenants=None, consent_delay=0.0, consent_delay_symptom="token",
                 graph_latency_ms=0, graph_latency_jitter=DEFAULT_LATENCY_JITTER):
        self._lock = threading.RLock()
        self._initial_consent_delay = (consent_delay, consent_delay_symptom)
        self._initial_latency = (graph_latency_ms, graph_latency_jitter)
        if apps is None:
            apps = [{"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET}]
        self._initial_apps = [dict(app) for app in apps]
        # A tenant file is kept as its path and read again at each reset: a large tenant is
        # then held once (as the live tenant), not twice.
        self._initial_tenants = [
            copy.deepcopy(t) if isinstance(t, dict) else os.fspath(t) for t in (tenants or [])
        ]
        self.reset()

    # ----------------------------------------------------------------- control API
    def reset(self):
        """Back to the constructor's apps and tenants; no tokens, faults or stats."""
        with self._lock:
            self._apps = {}
            for app in self._initial_apps:
                self.add_app(**app)
            self._tenants = {}
            for source in self._initial_tenants:
                self.put_tenant(_tenant_data(source))
            self._tokens = {}
            self._faults = faults_module.FaultQueue()
            self._cut_handshakes = 0
            # Requests a 'timeout' fault still holds belong to the state before: they end
            # now, unanswered and uncounted (they would otherwise land in the next test's stats).
            released, self._released = getattr(self, "_released", None), threading.Event()
            if released is not None:
                released.set()
            self.set_consent_delay(*self._initial_consent_delay)
            self.set_graph_latency(*self._initial_latency)
            self.set_opaque_tokens(False)
            self.set_index_lag(0)
            self.set_delta_quirks()
            self._stale_listings = {}
            self.reset_stats()

    def add_app(self, client_id, client_secret=None, secret_expired=False, name=DEFAULT_APP_NAME,
                certificates=()):
        """Register (or replace) an app: a client secret, and/or ``certificates`` (PEM, the
        public part as uploaded to the app registration) whose private keys sign client
        assertions; an expired certificate is refused like an unknown one (AADSTS700027)."""
        registered = [client_assertion.registered_certificate(pem) for pem in certificates or ()]
        with self._lock:
            self._apps[client_id.lower()] = {
                "client_id": client_id, "client_secret": client_secret,
                "secret_expired": bool(secret_expired), "name": name, "certificates": registered,
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
            old, tenant.users = tenant.users, {}
            new = {str(user.get("id")): user for user in users if user.get("id") is not None}
            for user_id in old.keys() - new.keys():
                tenant.track(user_id, removed="changed")
            tenant.add_users([user for user in users if str(user.get("id")) not in old])
            for user_id, user in new.items():
                if user_id in old:
                    tenant.users[user_id] = dict(user)
                    before = old[user_id]
                    tenant.track(user_id, [name for name in before.keys() | user.keys()
                                           if before.get(name, _UNSET) != user.get(name, _UNSET)])
            tenant.changed()

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
            changes = {k: v for k, v in changes.items() if k != "id"}
            changed = [k for k, v in changes.items() if user.get(k, _UNSET) != v]
            user.update(changes)
            if changed:
                tenant.track(user["id"], changed)
            tenant.changed()
            return copy.deepcopy(user)

    def delete_user(self, tenant_id, user_id, permanent=False):
        """Delete a user: restorable for 30 days (delta: ``@removed`` reason ``changed``),
        or ``permanent`` (reason ``deleted``). Adding it again with its id restores it."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            user_id = self._user(tenant, user_id)["id"]
            del tenant.users[user_id]
            tenant.track(user_id, removed="deleted" if permanent else "changed")
            tenant.changed()

    def expire_delta_tokens(self, tenant_id):
        """Every delta token issued so far for the tenant is expired (as after 7 days)."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            tenant.delta_epoch = tenant.version + 1
            tenant.version += 1

    def set_delta_quirks(self, restored="full", expired="resyncRequired", replay=False,
                         empty_pages=False, page_size=DELTA_PAGE_SIZE):
        """How /users/delta answers where Microsoft's documentation allows several answers:

        ``restored``: a user deleted and then restored, in a round with ``$select`` or
        ``Prefer: return=minimal``, comes back with its properties (``"full"``), as its id only
        (``"id"``) or not at all (``"none"``) (microsoft-graph-docs-contrib#6555);
        ``expired``: an expired state token is answered 410 ``resyncRequired`` with a Location,
        or 400 ``syncStateNotFound`` without one; ``replay``: each page starts again with the
        last item of the page before (Microsoft: expect replays within a round);
        ``empty_pages``: before each page of items comes an empty one with a nextLink;
        ``page_size``: items per page (Microsoft documents none)."""
        if restored not in ("full", "id", "none"):
            raise ValueError(f"unknown restored answer {restored!r}")
        if expired not in ("resyncRequired", "syncStateNotFound"):
            raise ValueError(f"unknown expired answer {expired!r}")
        if int(page_size) < (2 if replay else 1):  # a replayed item alone would page forever
            raise ValueError("page_size must be at least 1 (2 with replay)")
        with self._lock:
            self._delta_quirks = {"restored": restored, "expired": expired, "replay": bool(replay),
                                  "empty_pages": bool(empty_pages), "page_size": int(page_size)}

    def delta_quirks(self):
        with self._lock:
            return dict(self._delta_quirks)

    def set_stale_listing(self, tenant_id, stale=True):
        """``/users`` answers from a replica frozen now, which sees no change made from now on
        until ``stale`` is False again, while the delta query (``$deltatoken=latest`` too) sees
        every change: Microsoft documents replication delays for ``/users`` and documents
        neither as consistent with the other."""
        with self._lock:
            tenant = self._tenant(tenant_id)
            if stale:
                self._stale_listings[tenant.tenant_id] = copy.deepcopy(tenant.sorted_users())
            else:
                self._stale_listings.pop(tenant.tenant_id, None)

    def user(self, tenant_id, user_id):
        """A copy of one user, or None when the tenant has none with that id."""
        with self._lock:
            found = self._tenants[tenant_id].users.get(str(user_id).lower()) or next(
                (user for uid, user in self._tenants[tenant_id].users.items()
                 if uid.lower() == str(user_id).lower()), None)
            return copy.deepcopy(found)

    def set_groups(self, tenant_id, groups):
        """Replace a tenant's groups: ``[{"id", "displayName", "members": [ids]}]``; members
        are user ids or ids of nested groups."""
        with self._lock:
            self._tenant(tenant_id).set_groups(groups)

    def set_groups_readable(self, tenant_id, readable):
        """Grant or withdraw GroupMember.Read.All: without it, group members answer 403.
        Like any permission, only tokens issued from now on see the change."""
        with self._lock:
            roles = self._tenant(tenant_id).roles
            if readable:
                roles.add(GROUP_MEMBER_ROLE)
            else:
                roles.discard(GROUP_MEMBER_ROLE)

    def set_roles(self, tenant_id, roles):
        """The application permissions granted in the tenant, e.g. ``["User.Read.All"]``.
        Tokens carry the permissions of the moment they were issued (their ``roles`` claim),
        as real ones do: a token issued before a grant keeps lacking it until it expires."""
        if isinstance(roles, str) or not all(isinstance(role, str) for role in roles):
            raise TypeError("roles must be a list of permission names")
        with self._lock:
            self._tenant(tenant_id).roles = set(roles)

    def set_graph_latency(self, milliseconds, jitter=DEFAULT_LATENCY_JITTER):
        """Every Graph request (users, delta, groups, domains; not the login side) is answered
        after ``milliseconds``, varied by up to ± ``jitter`` (a fraction), as Microsoft Graph
        takes its time: on the order of a second for a page of 999 users."""
        milliseconds, jitter = float(milliseconds), float(jitter)
        if milliseconds < 0 or not 0 <= jitter <= 1:
            raise ValueError("latency must be >= 0 and jitter between 0 and 1")
        with self._lock:
            self._graph_latency = (milliseconds / 1000, jitter)

    def graph_delay(self):
        """Seconds to wait before answering a Graph request."""
        with self._lock:
            seconds, jitter = self._graph_latency
        return seconds * (1 + random.uniform(-jitter, jitter)) if seconds else 0.0

    def set_opaque_tokens(self, opaque=True):
        """Issue opaque access tokens (not JWTs) from now on: Microsoft documents access
        tokens as opaque to clients, in a format that may change at any time."""
        with self._lock:
            self._opaque_tokens = bool(opaque)

    def set_index_lag(self, seconds):
        """Advanced queries (``/users/$count``, ``$count=true``) are answered from an index
        that is only eventually consistent: from now on it sees users added or removed in the
        last ``seconds`` only once that time has passed (0: at once). Microsoft documents
        replication delays without an upper bound."""
        seconds = float(seconds)
        if seconds < 0:
            raise ValueError("the index lag must be >= 0")
        with self._lock:
            self._index_lag = seconds

    def set_consent_delay(self, seconds, symptom="token"):
        """Consents granted from now on take ``seconds`` to spread; meanwhile Microsoft
        answers with ``symptom`` (one of CONSENT_DELAY_SYMPTOMS)."""
        if symptom not in CONSENT_DELAY_SYMPTOMS:
            raise ValueError(f"unknown symptom {symptom!r}; expected one of "
                             f"{', '.join(CONSENT_DELAY_SYMPTOMS)}")
        with self._lock:
            self._consent_delay = max(0.0, float(seconds))
            self._consent_delay_symptom = symptom

    def set_consent(self, tenant_id, granted):
        with self._lock:
            tenant = self._tenant(tenant_id)
            if granted and not tenant.consented:
                self._start_spreading(tenant)
            tenant.consented = bool(granted)

    def add_fault(self, **fault):
        """Queue a fault; see :mod:`fake_entra.faults` for the arguments."""
        fault = faults_module.make_fault(**fault)
        with self._lock:
            self._faults.add(fault)
        return fault.as_dict()

    def cut_handshakes(self, count=1):
        """The next ``count`` TLS connections are closed before their handshake, as a server or
        a load balancer dropping connections does: the client sees an ``SSLEOFError``. With
        ``close_connections()`` (the pooled keep-alive connections closed) a client's next
        request meets a dropped connection whichever way it reconnects."""
        with self._lock:
            self._cut_handshakes = max(0, int(count))

    def take_cut_handshake(self):
        """Whether the TLS connection being accepted is to be cut (see cut_handshakes)."""
        with self._lock:
            if not self._cut_handshakes:
                return False
            self._cut_handshakes -= 1
            return True

    def held_requests_released(self):
        """The event that ends the requests a 'timeout' fault holds: set by ``reset()`` and
        when the server stops."""
        with self._lock:
            return self._released

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
    def record(self, kind, method, path, status, received=None):
        """Counts a request as it is answered. The log keeps when it was received and answered
        (``time.monotonic()`` of the fake): which requests a client had in flight together."""
        with self._lock:
            if kind in self._counts:
                self._counts[kind] += 1
            self._recent.append({"method": method, "path": path, "status": status,
                                 "received": received, "answered": time.monotonic()})

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
            self.set_consent(tenant_id, True)

    def issue_token(self, tenant_segment, client_id, client_secret=None, resource=None, assertion=None):
        """Client-credentials grant (parameters already checked) → (HTTP status, JSON body).
        The app proves itself with ``client_secret`` or with ``assertion`` (client assertion
        type, the signed JWT, the token endpoint URLs its ``aud`` may name).
        The access token is a JWT (unsigned here) with the claims of a real app-only token:
        ``tid``, ``appid``, ``roles`` (the permissions granted at this moment), ``exp``…; or,
        after ``set_opaque_tokens()``, an opaque string that carries the same rights."""
        with self._lock:
            if tenant_segment.lower() in ("organizations", "common", "consumers"):
                return 400, aad_error("invalid_request", 900023, tenant=tenant_segment)
            tenant_id = self.resolve_tenant(tenant_segment)
            if tenant_id is None:
                return 400, aad_error("invalid_request", 90002, tenant=tenant_segment)
            tenant = self._tenants[tenant_id]
            app = self.app(client_id)
            if app is None or not tenant.consented or tenant.spreading("token"):
                return 400, aad_error("unauthorized_client", 700016,
                                      client_id=client_id, tenant=tenant.display_name)
            refused = self._check_credential(app, client_id, client_secret, assertion)
            if refused:
                return 401, refused
            now = int(time.time())
            # Microsoft leaves the claim out when no permission is granted.
            roles = [] if tenant.spreading("roles") else sorted(tenant.roles)
            claims = {
                "aud": resource or "https://graph.microsoft.com",
                "iss": f"https://sts.windows.net/{tenant_id}/",
                "iat": now, "nbf": now, "exp": now + TOKEN_LIFETIME,
                "app_displayname": app["name"], "appid": app["client_id"], "appidacr": "1",
                "idp": f"https://sts.windows.net/{tenant_id}/", "idtyp": "app",
                "oid": tenant.service_principal_id, **({"roles": roles} if roles else {}),
                "sub": tenant.service_principal_id, "tid": tenant_id,
                "uti": secrets.token_urlsafe(16), "ver": "1.0",
            }
            token = (f"Ew{secrets.token_urlsafe(96)}" if self._opaque_tokens
                     else encode_access_token(claims))
            self._tokens[token] = {
                "tenant_id": tenant_id, "client_id": app["client_id"],
                "expires_at": time.time() + TOKEN_LIFETIME, "roles": frozenset(roles),
            }
            return 200, {
                "token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
                "ext_expires_in": TOKEN_LIFETIME, "access_token": token,
            }

    def _check_credential(self, app, client_id, client_secret, assertion):
        """None when the request proves the app, else Entra's error body."""
        if assertion is not None:
            assertion_type, token, audiences = assertion
            try:
                client_assertion.check(assertion_type, token, client_id, app["certificates"], audiences,
                                       time.time())
            except client_assertion.AssertionRefused as refused:
                return aad_error("invalid_client", refused.code, reason=refused.reason)
            return None
        if not app["client_secret"] or not secrets.compare_digest(
                client_secret.encode(), app["client_secret"].encode()):
            return aad_error("invalid_client", 7000215, client_id=client_id)
        if app["secret_expired"]:
            return aad_error("invalid_client", 7000222, client_id=client_id)
        return None

    def token_roles(self, token):
        """The application permissions a token carries (empty if unknown)."""
        with self._lock:
            entry = self._tokens.get(token or "")
            return entry["roles"] if entry else frozenset()

    def group_hides_members(self, tenant_id, group_id):
        """Whether a group of the tenant has hidden membership (unknown groups: no)."""
        with self._lock:
            group = self._tenants[tenant_id].groups.get(str(group_id).lower())
            return bool(group) and str(group.get("visibility") or "").lower() == "hiddenmembership"

    def group(self, tenant_id, group_id):
        """A group's own properties (not its members); KeyError if unknown."""
        with self._lock:
            group = self._tenants[tenant_id].groups[str(group_id).lower()]
            return {key: copy.deepcopy(value) for key, value in group.items() if key != "members"}

    def token_tenant(self, token):
        """The tenant a token is bound to, if the token exists (expired or not)."""
        with self._lock:
            entry = self._tokens.get(token or "")
            return entry["tenant_id"] if entry else None

    def check_token(self, token, needs=()):
        """None if the bearer may read Graph, else ``(status, graph code, message)``.
        ``needs``: the permissions of which the token's ``roles`` must hold one."""
        with self._lock:
            entry = self._tokens.get(token)
            expired = entry is None or entry["expires_at"] <= time.time()
            if expired or entry["tenant_id"] not in self._tenants:
                return 401, "InvalidAuthenticationToken", \
                    "Access token has expired or is not yet valid."
            tenant = self._tenants[entry["tenant_id"]]
            if not tenant.consented:
                return 403, "Authorization_RequestDenied", \
                    "Insufficient privileges to complete the operation."
            if tenant.spreading("graph"):
                return 401, "Authorization_IdentityNotFound", \
                    "The identity of the calling application could not be established."
            if needs and not entry["roles"] & set(needs):
                return 403, "Authorization_RequestDenied", \
                    "Insufficient privileges to complete the operation."
            return None

    def user_count(self, tenant_id):
        """The tenant's users as the index behind advanced queries counts them (see
        set_index_lag)."""
        with self._lock:
            return self._tenants[tenant_id].indexed_count(self._index_lag)

    def users_page(self, tenant_id, after_id, top, project):
        """Up to ``top`` projected users after ``after_id``, and whether more follow."""
        with self._lock:
            ids, users = self._stale_listings.get(tenant_id) or self._tenants[tenant_id].sorted_users()
            start = bisect.bisect_right(ids, after_id.lower()) if after_id else 0
            page = [project(user) for user in users[start:start + top]]
            return page, start + top < len(users)

    def group_members_page(self, tenant_id, group_id, after_id, top, project, count=False):
        """(page, more?, last id, count) of a group's transitive members after ``after_id``;
        ``project(kind, member)`` returns the JSON object or None to leave a member out (a type
        cast); with ``count``, the number all pages hold, else None. KeyError: unknown group."""
        with self._lock:
            tenant = self._tenants[tenant_id]
            if group_id.lower() not in tenant.groups:
                raise KeyError(group_id)
            ids, members = tenant.transitive_members(group_id)
            start = bisect.bisect_right(ids, after_id.lower()) if after_id else 0
            page = []
            while start < len(ids) and len(page) < top:
                projected = project(*members[start])
                if projected is not None:
                    page.append(projected)
                start += 1
            if count:
                count = sum(project(*member) is not None for member in members)
            return page, start < len(ids), (ids[start - 1] if start else ""), count or None

    def groups_page(self, tenant_id, matches, after_id, top):
        """(page, more?) of the tenant's groups for which ``matches(group)`` holds, in id
        order after ``after_id``."""
        with self._lock:
            groups = sorted(self._tenants[tenant_id].groups.items())
            found = [group for gid, group in groups if gid > after_id.lower() and matches(group)]
            return copy.deepcopy(found[:top]), len(found) > top

    def delta_version(self, tenant_id):
        """(current version, oldest version a delta token may start from) of a tenant."""
        with self._lock:
            tenant = self._tenants[tenant_id]
            return tenant.version, tenant.delta_epoch

    def delta_page(self, tenant_id, since, after_id, size, project, replay=False):
        """(items, more?) of a delta round after user ``after_id`` (``replay``: from that user
        on, which the page before ended with): with ``since`` None, every current user
        (``project(user, None, False)``); else the users changed after version ``since``:
        ``project(user, changed property names or None if created, restored?)`` (None leaves
        the user out) or ``{"id", "@removed": {"reason"}}`` for removed ones."""
        with self._lock:
            tenant = self._tenants[tenant_id]
            after = bisect.bisect_left if replay else bisect.bisect_right
            if since is None:
                ids, users = tenant.sorted_users()
                start = after(ids, after_id.lower()) if after_id else 0
                return ([project(user, None, False) for user in users[start:start + size]],
                        start + size < len(users))
            items = []
            changed = tenant.changes_since(since)
            start = after(changed, after_id) if after_id else 0
            for user_id in changed[start:]:
                if len(items) == size:
                    return items, True
                kind, detail = tenant.change(user_id, since)
                if kind == "removed":
                    items.append({"id": user_id, "@removed": {"reason": detail}})
                elif user_id in tenant.users:
                    item = project(copy.deepcopy(tenant.users[user_id]),
                                   detail if kind == "changed" else None, kind == "restored")
                    if item is not None:
                        items.append(item)
            return items, False

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
    def _start_spreading(self, tenant):
        tenant.consent_ready_at = time.time() + self._consent_delay
        tenant.consent_symptom = self._consent_delay_symptom if self._consent_delay else None

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


_UNSET = object()


def _tenant_data(tenant):
    """A tenant dict, or the path of a tenant JSON file."""
    if isinstance(tenant, dict):
        return copy.deepcopy(tenant)
    with open(os.fspath(tenant), encoding="utf-8") as f:
        return json.load(f)
