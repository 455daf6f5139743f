"""Fault injection: scripted failures that the fake serves instead of (or before) a normal answer.

A fault matches a request by ``target`` (the endpoint kind: ``users``, ``user`` (one user read
by id), ``count``, ``token``, ``openid``, ``domains``, ``groups``, ``delta``, ``gdap`` (a partner's
GDAP relationships and customers), or ``any`` of these) and optionally by ``tenant``. Faults are
considered in the order they were added; the first one matching a request decides. ``after=N``
lets the first N matching requests through untouched, then the fault fires ``count`` times
(``count=None``: until cleared).

Microsoft's answers that a fake tenant cannot produce by itself: ``identity_not_found`` (Graph
401 Authorization_IdentityNotFound: Graph does not know the app's service principal yet),
``app_disabled`` (token endpoint AADSTS7000112: the customer disabled the app),
``resource_not_found`` (token endpoint AADSTS500011: the Graph resource asked for is not in
this cloud), ``redirect`` (307 to ``location``, e.g. a token endpoint that moved) and ``transient``
(token endpoint 400 ``temporarily_unavailable`` AADSTS90033: the worst case Entra's error table
allows for "a transient error has occurred. Please try again": an OAuth error answer, which MSAL
replays from its HTTP cache for a minute). ``503`` on the token endpoint answers as Entra does when
its directory is down: 503 ``temporarily_unavailable`` AADSTS90033.
"""

import itertools
from dataclasses import asdict, dataclass, field

KINDS = (
    "429", "500", "502", "503", "504", "timeout", "reset", "malformed", "wrong_shape",
    "foreign_next_link", "repeat_page", "revoke", "identity_not_found", "app_disabled",
    "resource_not_found", "redirect", "transient",
)
TARGETS = ("users", "user", "count", "token", "openid", "domains", "groups", "delta", "gdap", "any")
STATUS_KINDS = {"429": 429, "500": 500, "502": 502, "503": 503, "504": 504}
FOREIGN_NEXT_LINK = "https://graph.evil.example/v1.0/users?$skiptoken=x"
DEFAULT_RETRY_AFTER_429 = 1
DEFAULT_TIMEOUT_DELAY = 30.0
DEFAULT_REDIRECT_LOCATION = "https://login.evil.example/common/oauth2/v2.0/token"

_UNSET = object()
_ids = itertools.count(1)


@dataclass
class Fault:
    kind: str
    target: str = "any"
    tenant: str = None
    count: int = 1
    after: int = 0
    retry_after: int = None
    delay: float = DEFAULT_TIMEOUT_DELAY
    location: str = DEFAULT_REDIRECT_LOCATION
    id: int = field(default_factory=lambda: next(_ids))

    def matches(self, kind, tenant_id):
        if self.target != "any" and self.target != kind:
            return False
        return self.tenant is None or (tenant_id or "").lower() == self.tenant.lower()

    def as_dict(self):
        return asdict(self)


def make_fault(kind, target="any", tenant=None, count=1, after=0, retry_after=_UNSET,
               delay=DEFAULT_TIMEOUT_DELAY, location=DEFAULT_REDIRECT_LOCATION):
    """Validate the arguments of ``add_fault`` and build a :class:`Fault`."""
    kind = str(kind)
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    if target not in TARGETS:
        raise ValueError(f"unknown fault target {target!r}; expected one of {', '.join(TARGETS)}")
    if count is not None and int(count) < 1:
        raise ValueError("count must be >= 1 (or None for 'until cleared')")
    if retry_after is _UNSET:
        retry_after = DEFAULT_RETRY_AFTER_429 if kind == "429" else None
    return Fault(
        kind=kind, target=target, tenant=tenant,
        count=None if count is None else int(count), after=max(0, int(after)),
        retry_after=retry_after, delay=float(delay), location=str(location),
    )


class FaultQueue:
    """Ordered faults; not thread-safe on its own (the state's lock guards it)."""

    def __init__(self):
        self._faults = []

    def add(self, fault):
        self._faults.append(fault)

    def clear(self):
        self._faults.clear()

    def pending(self):
        return [fault.as_dict() for fault in self._faults]

    def take(self, kind, tenant_id):
        """Return the fault to apply to this request, or None, updating the counters."""
        for fault in self._faults:
            if not fault.matches(kind, tenant_id):
                continue
            if fault.after > 0:
                fault.after -= 1
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count == 0:
                    self._faults.remove(fault)
            return fault
        return None
