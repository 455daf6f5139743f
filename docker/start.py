#!/usr/bin/env python3
"""How the container starts Odoo (docker/Dockerfile, docker-compose.yml).

On the database ODOO_DATABASE (default `odoo`) it installs the addons asked for that the database
does not have yet: into a new database all of them, without demo data; into one that has them,
nothing (a restart does not reinstall anything). AZURE_AD_WITH chooses the extras, comma-separated:
`helpdesk` (OCA's helpdesk_mgmt and the bridge azure_ad_contacts_helpdesk) and `queue` (OCA's
queue_job and the bridge azure_ad_contacts_queue); empty, the addon alone. OCA's queue_job is
loaded server-wide whenever it is asked for or installed: its job runner lives in the server, and
without it queued syncs would never run. A database another Odoo series made is refused: Odoo
does not upgrade one series' database to the next.

Then the official image's entrypoint takes over: it adds the database connection (HOST, PORT,
USER, PASSWORD) and waits for PostgreSQL.
"""

import os
import sys
import time

import psycopg2

from odoo import release

SERIES = release.major_version
# Odoo's option for a new database without demo data, per series, as scripts/lib.sh's series
# block has it (WITHOUT_DEMO): 19.0 takes a flag there (and leaves demo data out by default).
WITHOUT_DEMO = {"18.0": "--without-demo=all", "19.0": "--without-demo"}
CORE = "azure_ad_contacts"
EXTRAS = {"helpdesk": "azure_ad_contacts_helpdesk", "queue": "azure_ad_contacts_queue"}
SERVER_WIDE_MODULES = "base,web,queue_job"


def wanted_modules(choice):
    """The addons to have installed for AZURE_AD_WITH's `choice`."""
    names = {name.strip().lower() for name in choice.replace(" ", ",").split(",") if name.strip()}
    unknown = sorted(names - EXTRAS.keys())
    if unknown:
        raise SystemExit(
            f"AZURE_AD_WITH={choice}: unknown {', '.join(unknown)} (choose from {', '.join(EXTRAS)})."
        )
    return [CORE, *(module for name, module in EXTRAS.items() if name in names)]


def installed_modules(connect, database, timeout=60):
    """{module: its version} of the modules installed in `database`; None when it does not exist
    or Odoo never set it up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            server = connect("postgres")
            break
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    try:
        with server.cursor() as cr:
            cr.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            if not cr.fetchone():
                return None
    finally:
        server.close()
    connection = connect(database)
    try:
        with connection.cursor() as cr:
            cr.execute("SELECT to_regclass('ir_module_module') IS NOT NULL")
            if not cr.fetchone()[0]:
                return None
            cr.execute(
                "SELECT name, latest_version FROM ir_module_module WHERE state IN ('installed', 'to upgrade')"
            )
            return dict(cr.fetchall())
    finally:
        connection.close()


def odoo_arguments(database, wanted, installed, series=SERIES):
    """Odoo's command line (Odoo `series`) for `database`, given the `wanted` and the `installed`
    modules."""
    made_by = (installed or {}).get("base") or f"{series}."
    if not made_by.startswith(f"{series}."):
        raise SystemExit(
            f"The database {database} is Odoo {'.'.join(made_by.split('.')[:2])}'s, this is Odoo {series}: "
            "start it with the series that made it (ODOO_VERSION), or use another database or project."
        )
    arguments = [f"--database={database}", f"--db-filter=^{database}$"]
    missing = [module for module in wanted if module not in (installed or ())]
    if missing:
        arguments.append(f"--init={','.join(missing)}")
    if installed is None:
        arguments.append(WITHOUT_DEMO[series])
    if EXTRAS["queue"] in wanted or "queue_job" in (installed or ()):
        arguments.append(f"--load={SERVER_WIDE_MODULES}")
    return arguments


def main():
    database = os.environ.get("ODOO_DATABASE") or "odoo"
    wanted = wanted_modules(os.environ.get("AZURE_AD_WITH", ""))

    password = os.environ.get("PASSWORD", "odoo")
    if os.environ.get("PASSWORD_FILE"):  # as the image's entrypoint reads it
        with open(os.environ["PASSWORD_FILE"]) as secret:
            password = secret.read()

    def connect(dbname):
        return psycopg2.connect(
            dbname=dbname,
            host=os.environ.get("HOST", "db"),
            port=os.environ.get("PORT", "5432"),
            user=os.environ.get("USER", "odoo"),
            password=password,
        )

    arguments = odoo_arguments(database, wanted, installed_modules(connect, database))
    print(f"Starting Odoo: {' '.join(arguments)}", flush=True)
    entrypoint = os.environ.get("ODOO_ENTRYPOINT", "/entrypoint.sh")
    os.execv(entrypoint, [entrypoint, "odoo", *arguments, *sys.argv[1:]])


if __name__ == "__main__":
    main()
