"""A Microsoft partner's GDAP relationships with its customers, as Microsoft Graph lists them
(plain Python, no Odoo): which customer tenants the partner reaches, with which roles, until when.

Graph: ``GET /v1.0/tenantRelationships/delegatedAdminCustomers`` (a customer is listed while at
least one relationship with it is active) and ``…/delegatedAdminRelationships`` (every
relationship: ``status``, ``endDateTime``, ``autoExtendDuration``, ``accessDetails.unifiedRoles``),
``$top`` up to 300, delegated permission DelegatedAdminRelationship.Read.All in the partner tenant.
"""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .graph_client import GraphClient, clean_error_text, is_object_id

# Microsoft Entra built-in role template ids (the roles a relationship can carry).
DIRECTORY_READERS = "88d8e3e3-8f55-4a1e-953a-9b9898b8876b"
ROLE_NAMES = {
    DIRECTORY_READERS: "Directory Readers",
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451": "Global Reader",
    "fe930be7-5e62-47db-91af-98c3a49a38b1": "User Administrator",
    "9360feb5-f418-4baa-8175-e2a00bac4301": "Directory Writers",
    "62e90394-69f5-4237-9190-012177145e10": "Global Administrator",
    "729827e3-9c14-49f7-bb1b-9608f156bbb8": "Helpdesk Administrator",
    "158c047a-c907-4556-b7ef-446551a6b5f7": "Cloud Application Administrator",
    "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3": "Application Administrator",
    "e8611ab8-c189-46e8-94e1-60213ab1f814": "Privileged Role Administrator",
    "29232cdf-9323-42fd-ade2-1d097af3e4de": "Exchange Administrator",
    "3a2c62db-5318-420d-8d74-23affee5d9d5": "Intune Administrator",
    "fdd7a751-b60b-444a-984c-02652fe8fa1c": "Groups Administrator",
    "4d6ac14f-3453-41d0-bef9-a3e0c569773a": "License Administrator",
    "7be44c8a-adaf-4e2a-84d6-ab2649e08a13": "Privileged Authentication Administrator",
    "f023fd81-a637-4b56-95fd-791ac0226033": "Service Support Administrator",
    "194ae4cb-b126-40b2-bd5b-6091b380977d": "Security Administrator",
    "5d6b6bb7-de71-4623-b4af-96380a352509": "Security Reader",
}
# Roles with which a partner's technician reads a customer's users and verified domains (Graph's
# "List users" and "List domains" role lists; Partner Center's GDAP parity table names Directory
# Readers, Global Reader and User Administrator for reading customer users). Directory Readers is
# the least privileged.
USER_READING_ROLES = frozenset({
    DIRECTORY_READERS,
    "f2ef992c-3afb-46b9-b7cf-a126ee74c451",  # Global Reader
    "fe930be7-5e62-47db-91af-98c3a49a38b1",  # User Administrator
    "9360feb5-f418-4baa-8175-e2a00bac4301",  # Directory Writers
    "62e90394-69f5-4237-9190-012177145e10",  # Global Administrator
})
ACTIVE = "active"
PENDING_STATUSES = frozenset({"created", "approvalPending", "approved", "activating"})
STATUSES = (*sorted(PENDING_STATUSES), ACTIVE, "expiring", "expired", "terminationRequested",
            "terminating", "terminated")
# autoExtendDuration values that mean "ends at endDateTime" (P180D extends by six months).
NO_AUTO_EXTEND = frozenset({"PT0S", "P0D", ""})
PAGE_SIZE = 300  # "$top supports up to 300 objects"
_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)?")


def parse_datetime(value):
    """A Graph DateTimeOffset (up to seven fractional digits) as a naive UTC datetime (Odoo's
    convention); None when absent or not a date."""
    if not isinstance(value, str):
        return None
    match = _DATETIME.fullmatch(value.strip())
    if not match:
        return None
    try:
        moment = datetime.fromisoformat(match[1])
    except ValueError:
        return None
    offset = match[3] or "Z"
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        moment -= sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6]))
    return moment.replace(microsecond=int((match[2] or "0")[:6].ljust(6, "0")))


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


@dataclass(frozen=True)
class Relationship:
    """One GDAP relationship, as far as connecting customers cares."""

    relationship_id: str
    name: str
    customer_tenant_id: str
    customer_name: str
    status: str
    end: datetime | None  # naive UTC; None while pending
    auto_extend: bool
    roles: frozenset

    @property
    def reads_users(self):
        """Active, with a role that reads the customer's users."""
        return self.status == ACTIVE and bool(self.roles & USER_READING_ROLES)

    @property
    def role_names(self):
        return sorted(ROLE_NAMES.get(role, role) for role in self.roles)


def parse_relationship(item):
    """A Relationship from one item of Graph's list, None if it is not one (whatever Graph sends
    is input: ids checked, texts cleaned and capped)."""
    if not isinstance(item, dict):
        return None
    customer = item.get("customer") if isinstance(item.get("customer"), dict) else {}
    tenant_id = customer.get("tenantId")
    relationship_id = item.get("id")
    if not is_object_id(tenant_id) or not isinstance(relationship_id, str) or not relationship_id.strip():
        return None
    details = item.get("accessDetails") if isinstance(item.get("accessDetails"), dict) else {}
    roles = details.get("unifiedRoles") if isinstance(details.get("unifiedRoles"), list) else []
    status = item.get("status") if item.get("status") in STATUSES else "unknownFutureValue"
    extend = item.get("autoExtendDuration")
    return Relationship(
        relationship_id=clean_error_text(relationship_id, 100),
        name=clean_error_text(item.get("displayName") or "", 200),
        customer_tenant_id=tenant_id.strip().lower(),
        customer_name=clean_error_text(customer.get("displayName") or "", 200),
        status=status,
        end=parse_datetime(item.get("endDateTime")),
        auto_extend=isinstance(extend, str) and extend.strip().upper() not in NO_AUTO_EXTEND,
        roles=frozenset(
            role["roleDefinitionId"].strip().lower()
            for role in roles
            if isinstance(role, dict) and is_object_id(role.get("roleDefinitionId"))
        ),
    )


def parse_customer(item):
    """(tenant id, display name) of a delegatedAdminCustomer, None if it is not one."""
    if not isinstance(item, dict) or not is_object_id(item.get("tenantId")):
        return None
    return item["tenantId"].strip().lower(), clean_error_text(item.get("displayName") or "", 200)


@dataclass(frozen=True)
class CustomerAccess:
    """What the partner's relationships with one customer give it, taken together.

    `state`: ``active`` (a relationship reads users), ``no_role`` (active relationships, none
    with a role that reads users), ``pending`` (waiting for the customer's approval), ``ended``
    (none active: expired, terminated, or no longer listed). `end`: when the access ends (None:
    unknown, or auto-extended)."""

    state: str
    end: datetime | None = None
    auto_extend: bool = False


def customer_access(relationships):
    """The CustomerAccess that `relationships` (all with one customer) give."""
    relationships = list(relationships)
    reading = [r for r in relationships if r.reads_users]
    if reading:
        if any(r.auto_extend for r in reading):
            return CustomerAccess("active", None, True)
        ends = [r.end for r in reading if r.end]
        return CustomerAccess("active", max(ends) if ends else None, False)
    if any(r.status == ACTIVE for r in relationships):
        return CustomerAccess("no_role")
    if any(r.status in PENDING_STATUSES for r in relationships):
        return CustomerAccess("pending")
    ends = [r.end for r in relationships if r.end]
    return CustomerAccess("ended", max(ends) if ends else None)


class PartnerGraphClient(GraphClient):
    """Reads the partner tenant's GDAP relationships and customers (the client's token is a
    partner user's, with DelegatedAdminRelationship.Read.All)."""

    def delegated_admin_customers(self):
        """(tenant id, display name) of each customer with an active relationship."""
        return self._listing("delegatedAdminCustomers", parse_customer)

    def delegated_admin_relationships(self):
        """Every relationship of the partner, as Relationship."""
        return self._listing("delegatedAdminRelationships", parse_relationship)

    def _listing(self, name, parse):
        url = f"{self.graph_endpoint}/v1.0/tenantRelationships/{name}?$top={PAGE_SIZE}"
        for page in self._pages(url):
            for item in page:
                parsed = parse(item)
                if parsed:
                    yield parsed
