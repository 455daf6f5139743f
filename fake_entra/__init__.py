"""A fake Microsoft Entra ID + Microsoft Graph server for tests, the demo and benchmarks.

Real MSAL and ``requests`` talk to it over HTTPS on 127.0.0.1; see :mod:`fake_entra.server`.

Modules: ``server`` (FakeEntra: lifecycle, TLS), ``state`` (apps, tenants, tokens, stats and the
control methods), ``handler`` (Entra ID / Graph endpoints), ``protocol`` (Microsoft's JSON
shapes), ``assertion`` (certificate credentials: the client assertion checked as Entra does),
``consent`` (admin-consent page), ``delegated`` / ``signin`` (users signing in, their tokens),
``gdap`` / ``gdap_handler`` (a partner's relationships with its customers), ``faults`` (fault
injection), ``control_api`` / ``control`` (the ``/_fake`` HTTP API and its client), ``certs``,
``generate``; demo tenants in
``tenants/*.json``.
"""

from .certs import CertPaths, ensure_certs
from .control import FakeEntraControl
from .server import FakeEntra
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, TENANTS_DIR, load_tenant_files

__all__ = [
    "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET", "TENANTS_DIR", "CertPaths", "FakeEntra",
    "FakeEntraControl", "ensure_certs", "generate_tenant", "generate_users", "load_tenant_files",
]


def __getattr__(name):
    # Imported lazily so that ``python -m fake_entra.generate`` does not import itself twice.
    if name in ("generate_tenant", "generate_users"):
        from . import generate

        return getattr(generate, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
