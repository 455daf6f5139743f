"""Granular delegated admin privileges (GDAP): a partner tenant's relationships with its customers.

As Microsoft Graph documents them (``tenantRelationships/delegatedAdminRelationships`` and
``delegatedAdminCustomers``, resources ``delegatedAdminRelationship``,
``delegatedAdminAccessAssignment``, ``delegatedAdminCustomer``):

* A relationship belongs to the partner tenant and names one customer tenant, the Microsoft
  Entra roles the customer approved (``accessDetails.unifiedRoles``, role template ids), a
  ``status`` (``created`` … ``active`` … ``expiring``/``expired``, ``terminationRequested``/
  ``terminating``/``terminated``), ``endDateTime`` (activation + duration, at most two years)
  and ``autoExtendDuration`` (``PT0S``/``P0D``: it ends; ``P180D``: it is extended by 180 days
  when it reaches its end).
* Roles reach people through access assignments: a security group of the partner tenant
  (``accessContainer``) gets some of the relationship's roles; members of that group act in
  the customer tenant with those roles. Nobody else of the partner has any access.
* A ``delegatedAdminCustomer`` exists while at least one relationship with that customer is
  active, and disappears when none is (so an ended customer is simply no longer listed).

A partner tenant's JSON (``tenants/*.json``) lists its relationships under
``gdap_relationships`` in Microsoft's shape plus ``accessAssignments``; ``end_in_days`` (fake
only) sets ``endDateTime`` relative to now. :class:`GdapState` is mixed into the fake's state.
"""

import copy
import re
import time
import uuid
from datetime import datetime, timedelta, timezone

# Microsoft Entra built-in role template ids (docs: "Microsoft Entra built-in roles").
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
GLOBAL_READER = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"
DIRECTORY_WRITERS = "9360feb5-f418-4baa-8175-e2a00bac4301"
USER_ADMINISTRATOR = "fe930be7-5e62-47db-91af-98c3a49a38b1"
HELPDESK_ADMINISTRATOR = "729827e3-9c14-49f7-bb1b-9608f156bbb8"
GROUPS_ADMINISTRATOR = "fdd7a751-b60b-444a-984c-02652fe8fa1c"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
# Which roles let a user of another tenant (a partner's technician) read what, in delegated
# calls: the role lists of the Graph API reference ("List users", "List domains", "List
# group transitive members") and Partner Center's GDAP parity table (customer users:
# Directory Readers, Global Reader, User Administrator).
READ_USERS_ROLES = frozenset({
    DIRECTORY_READERS, GLOBAL_READER, USER_ADMINISTRATOR, DIRECTORY_WRITERS, GLOBAL_ADMINISTRATOR,
    HELPDESK_ADMINISTRATOR})
READ_DOMAINS_ROLES = READ_USERS_ROLES | {CLOUD_APPLICATION_ADMINISTRATOR, APPLICATION_ADMINISTRATOR,
                                         PRIVILEGED_ROLE_ADMINISTRATOR}
READ_GROUPS_ROLES = READ_USERS_ROLES | {GROUPS_ADMINISTRATOR}
# Roles that may grant tenant-wide consent to an app's delegated permissions.
CONSENT_ROLES = frozenset({GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR,
                           CLOUD_APPLICATION_ADMINISTRATOR, APPLICATION_ADMINISTRATOR})

STATUSES = ("created", "approvalPending", "approved", "activating", "active", "expiring", "expired",
            "terminationRequested", "terminating", "terminated")
ENDED_STATUSES = ("expiring", "expired", "terminationRequested", "terminating", "terminated")
AUTO_EXTEND = "P180D"
NO_AUTO_EXTEND = ("PT0S", "P0D")
MAX_TOP = 300  # "$top supports up to 300 objects"
DEFAULT_TOP = 100
CONTEXT = "https://graph.microsoft.com/v1.0/tenantRelationships/$metadata"


def iso(moment):
    """Graph's DateTimeOffset: UTC with seven fractional digits and a Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def parse_iso(value):
    """A DateTimeOffset as Graph writes it (up to seven fractional digits, Z or an offset)."""
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)?", value)
    if not match:
        raise ValueError(f"not a DateTimeOffset: {value!r}")
    moment = datetime.fromisoformat(match[1] + (match[3] or "Z").replace("Z", "+00:00"))
    return moment.replace(microsecond=int((match[2] or "0")[:6].ljust(6, "0")))


def _now():
    return datetime.fromtimestamp(time.time(), timezone.utc)


def relationship_id():
    """Microsoft's relationship ids are two GUIDs joined by a hyphen."""
    return f"{uuid.uuid4()}-{uuid.uuid4()}"


def make_relationship(data, customers):
    """A stored relationship from tenant JSON or a control call: Microsoft's properties plus
    ``accessAssignments``. ``customers`` maps tenant ids to display names (for the customer
    participant's name when the data leaves it out)."""
    data = copy.deepcopy(data)
    now = _now()
    customer = dict(data.get("customer") or {})
    tenant_id = str(customer.get("tenantId") or "").lower()
    if not tenant_id:
        raise ValueError("a relationship needs customer.tenantId")
    customer = {"tenantId": tenant_id,
                "displayName": customer.get("displayName") or customers.get(tenant_id) or tenant_id}
    status = data.get("status", "active")
    if status not in STATUSES:
        raise ValueError(f"unknown relationship status {status!r}")
    roles = [{"roleDefinitionId": str(role["roleDefinitionId"]).lower()}
             for role in (data.get("accessDetails") or {}).get("unifiedRoles", [])]
    duration_days = int(str(data.get("duration", "P730D")).strip("PD") or 730)
    if not 1 <= duration_days <= 730:
        raise ValueError("a relationship lasts between P1D and P730D")
    activated = parse_iso(data["activatedDateTime"]) if data.get("activatedDateTime") else (
        now - timedelta(days=max(0, duration_days - int(data.get("end_in_days", duration_days)))))
    if "end_in_days" in data:
        end = now + timedelta(days=float(data["end_in_days"]))
    elif data.get("endDateTime"):
        end = parse_iso(data["endDateTime"])
    else:
        end = activated + timedelta(days=duration_days)
    auto_extend = data.get("autoExtendDuration", "PT0S")
    if auto_extend not in (AUTO_EXTEND, *NO_AUTO_EXTEND):
        raise ValueError("autoExtendDuration is PT0S, P0D or P180D")
    pending = status in ("created", "approvalPending", "approved")
    assignments = []
    for assignment in data.get("accessAssignments", []):
        container = assignment.get("accessContainer") or {}
        assignments.append({
            "id": str(assignment.get("id") or uuid.uuid4()),
            "status": assignment.get("status", "active"),
            "accessContainer": {"accessContainerId": str(container["accessContainerId"]).lower(),
                                "accessContainerType": "securityGroup"},
            "accessDetails": {"unifiedRoles": [
                {"roleDefinitionId": str(role["roleDefinitionId"]).lower()}
                for role in (assignment.get("accessDetails") or {}).get("unifiedRoles", roles)]},
        })
    return {
        "id": str(data.get("id") or relationship_id()),
        "displayName": data.get("displayName") or f"{customer['displayName']} (GDAP)",
        "duration": f"P{duration_days}D",
        "customer": customer,
        "accessDetails": {"unifiedRoles": roles},
        "status": status,
        "autoExtendDuration": auto_extend,
        "createdDateTime": iso(activated - timedelta(minutes=5)),
        "lastModifiedDateTime": iso(now),
        "activatedDateTime": None if pending else iso(activated),
        "endDateTime": None if pending else iso(end),
        "accessAssignments": assignments,
    }


def relationship_json(relationship):
    """What ``GET …/delegatedAdminRelationships`` returns for a relationship."""
    public = {key: copy.deepcopy(value) for key, value in relationship.items()
              if key != "accessAssignments"}
    etag = uuid.uuid5(uuid.NAMESPACE_URL, relationship["id"] + relationship["lastModifiedDateTime"])
    return {"@odata.type": "#microsoft.graph.delegatedAdminRelationship",
            "@odata.etag": f'W/"{etag}"', **public}


def customer_json(tenant_id, display_name):
    etag = uuid.uuid5(uuid.NAMESPACE_URL, tenant_id + display_name)
    return {"@odata.type": "#microsoft.graph.delegatedAdminCustomer", "@odata.etag": f'W/"{etag}"',
            "id": tenant_id, "tenantId": tenant_id, "displayName": display_name}


class GdapState:
    """The partners' relationships (mixed into the fake before EntraState, whose lock guards them)."""

    def reset(self):
        self._relationships = {}  # partner tenant id -> {relationship id: relationship}
        super().reset()

    def put_tenant(self, tenant):
        summary = super().put_tenant(tenant)
        with self._lock:
            partner = summary["tenant_id"]
            names = {tid: t.display_name for tid, t in self._tenants.items()}
            self._relationships[partner] = {}
            for data in tenant.get("gdap_relationships", []):
                relationship = make_relationship(data, names)
                self._relationships[partner][relationship["id"]] = relationship
        return summary

    def delete_tenant(self, tenant_id):
        super().delete_tenant(tenant_id)
        with self._lock:
            self._relationships.pop(str(tenant_id).lower(), None)

    # ---------------------------------------------------------------- control methods
    def add_relationship(self, partner_tenant_id, customer_tenant_id, roles=(DIRECTORY_READERS,),
                         access_group_id=None, **properties):
        """A new relationship of the partner with a customer, active by default, for a security
        group of the partner (``access_group_id``; default: the partner tenant's first group)
        with the given roles. Other Microsoft properties (``status``, ``autoExtendDuration``,
        ``duration``, ``displayName``) and ``end_in_days`` may be given. Returns it."""
        with self._lock:
            partner = self._tenant(partner_tenant_id)
            if access_group_id is None:
                if not partner.groups:
                    raise ValueError("the partner tenant has no security group to give access to")
                access_group_id = next(iter(partner.groups))
            roles = [{"roleDefinitionId": role} for role in roles]
            names = {tid: t.display_name for tid, t in self._tenants.items()}
            relationship = make_relationship({
                **properties,
                "customer": {"tenantId": customer_tenant_id,
                             "displayName": properties.get("customer_name")},
                "accessDetails": {"unifiedRoles": roles},
                "accessAssignments": [{"accessContainer": {"accessContainerId": access_group_id},
                                       "accessDetails": {"unifiedRoles": roles}}],
            }, names)
            self._relationships.setdefault(partner.tenant_id, {})[relationship["id"]] = relationship
            return relationship_json(relationship)

    def end_relationship(self, relationship_id, status="terminated"):
        """The relationship ends now: ``terminated`` (the partner or customer ended it),
        ``expired`` (it reached its end date without auto-extension) or one of the states
        on the way (``expiring``, ``terminationRequested``, ``terminating``)."""
        if status not in ENDED_STATUSES:
            raise ValueError(f"{status!r} is not a status of an ending relationship")
        with self._lock:
            relationship = self._relationship(relationship_id)
            relationship["status"] = status
            relationship["lastModifiedDateTime"] = relationship["endDateTime"] = iso(_now())
            return relationship_json(relationship)

    def set_relationship(self, relationship_id, end_in_days=None, **properties):
        """Changes a relationship: ``end_in_days`` (its end date, from now), ``status``,
        ``autoExtendDuration`` or its roles (``roles``: those of the relationship and of its
        access assignments)."""
        with self._lock:
            relationship = self._relationship(relationship_id)
            if end_in_days is not None:
                relationship["endDateTime"] = iso(_now() + timedelta(days=float(end_in_days)))
            if "status" in properties:
                if properties["status"] not in STATUSES:
                    raise ValueError(f"unknown relationship status {properties['status']!r}")
                relationship["status"] = properties["status"]
            if "autoExtendDuration" in properties:
                if properties["autoExtendDuration"] not in (AUTO_EXTEND, *NO_AUTO_EXTEND):
                    raise ValueError("autoExtendDuration is PT0S, P0D or P180D")
                relationship["autoExtendDuration"] = properties["autoExtendDuration"]
            if "roles" in properties:  # as if the customer had approved these, and they were assigned
                roles = [{"roleDefinitionId": role} for role in properties["roles"]]
                relationship["accessDetails"]["unifiedRoles"] = roles
                for assignment in relationship["accessAssignments"]:
                    assignment["accessDetails"]["unifiedRoles"] = copy.deepcopy(roles)
            relationship["lastModifiedDateTime"] = iso(_now())
            return relationship_json(relationship)

    def remove_relationship(self, relationship_id):
        """The relationship is no longer listed at all (Microsoft keeps ended ones only for a
        while)."""
        with self._lock:
            for relationships in self._relationships.values():
                if relationships.pop(relationship_id, None) is not None:
                    return
            raise KeyError(f"unknown relationship {relationship_id}")

    def relationships(self, partner_tenant_id):
        with self._lock:
            self._advance(partner_tenant_id)
            return [relationship_json(r) for r in self._sorted_relationships(partner_tenant_id)]

    # ---------------------------------------------------------------- used by the handler
    def relationships_page(self, partner_tenant_id, after_id, top):
        """(relationships after ``after_id``, more?) in Graph's stable order."""
        with self._lock:
            self._advance(partner_tenant_id)
            found = [r for r in self._sorted_relationships(partner_tenant_id) if r["id"] > after_id]
            return [relationship_json(r) for r in found[:top]], len(found) > top

    def gdap_customers_page(self, partner_tenant_id, after_id, top):
        """(delegatedAdminCustomer objects after ``after_id``, more?): one per customer with an
        active relationship."""
        with self._lock:
            self._advance(partner_tenant_id)
            customers = {}
            for relationship in self._sorted_relationships(partner_tenant_id):
                if relationship["status"] == "active":
                    tenant = relationship["customer"]["tenantId"]
                    known = self._tenants.get(tenant)
                    customers[tenant] = known.display_name if known else \
                        relationship["customer"]["displayName"]
            found = [customer_json(tid, name) for tid, name in sorted(customers.items())
                     if tid > after_id]
            return found[:top], len(found) > top

    def gdap_roles(self, user_id, home_tenant_id, customer_tenant_id):
        """The roles a user of a partner tenant holds in a customer tenant through active
        relationships and access assignments (a frozenset), or None when it has no access at
        all there."""
        with self._lock:
            self._advance(home_tenant_id)
            partner = self._tenants.get(home_tenant_id)
            if partner is None:
                return None
            user_id = str(user_id).lower()
            found = None
            for relationship in self._relationships.get(home_tenant_id, {}).values():
                if (relationship["status"] != "active"
                        or relationship["customer"]["tenantId"] != customer_tenant_id):
                    continue
                approved = {role["roleDefinitionId"] for role in
                            relationship["accessDetails"]["unifiedRoles"]}
                for assignment in relationship["accessAssignments"]:
                    group_id = assignment["accessContainer"]["accessContainerId"]
                    if assignment["status"] != "active" or group_id not in partner.groups:
                        continue
                    members, _objects = partner.transitive_members(group_id)
                    if user_id in members:
                        roles = {role["roleDefinitionId"] for role in
                                 assignment["accessDetails"]["unifiedRoles"]} & approved
                        found = (found or frozenset()) | roles
            return found

    # ---------------------------------------------------------------- helpers
    def _relationship(self, relationship_id):
        for relationships in self._relationships.values():
            if relationship_id in relationships:
                return relationships[relationship_id]
        raise KeyError(f"unknown relationship {relationship_id}")

    def _sorted_relationships(self, partner_tenant_id):
        relationships = self._relationships.get(str(partner_tenant_id).lower(), {})
        return [relationships[rid] for rid in sorted(relationships)]

    def _advance(self, partner_tenant_id):
        """What time does to relationships: one that reaches its end date is extended by 180
        days if it auto-extends, else it has expired."""
        now = _now()
        for relationship in self._relationships.get(str(partner_tenant_id).lower(), {}).values():
            if relationship["status"] != "active" or not relationship["endDateTime"]:
                continue
            end = parse_iso(relationship["endDateTime"])
            if end > now:
                continue
            if relationship["autoExtendDuration"] == AUTO_EXTEND:
                while end <= now:
                    end += timedelta(days=180)
                relationship["endDateTime"] = iso(end)
            else:
                relationship["status"] = "expired"
            relationship["lastModifiedDateTime"] = iso(now)
