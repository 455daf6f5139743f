"""Prepares the demo database: the addon points at the bundled fake Entra tenant.

Usage (called by bin/demo):
    demo_setup.py -c CONF -d DB --check-installed      exit 0 if the addon is installed in DB
    demo_setup.py -c CONF -d DB --fake-entra URL --port PORT
"""

import argparse
import sys
from pathlib import Path

import psycopg2

from odoo.api import SUPERUSER_ID, Environment
from odoo.modules.registry import Registry
from odoo.tools import config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fake_entra.control import FakeEntraControl
from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


def addon_installed(database):
    try:
        connection = psycopg2.connect(
            dbname=database,
            host=config["db_host"],
            port=config["db_port"],
            user=config["db_user"],
            password=config["db_password"] or None,
        )
    except psycopg2.OperationalError:
        return False
    with connection, connection.cursor() as cr:
        cr.execute("SELECT to_regclass('ir_module_module') IS NOT NULL")
        if not cr.fetchone()[0]:
            return False
        cr.execute("SELECT state FROM ir_module_module WHERE name = 'azure_ad_contacts'")
        row = cr.fetchone()
    connection.close()
    return bool(row and row[0] == "installed")


def configure(database, fake_entra_url, port):
    registry = Registry(database)
    with registry.cursor() as cr:
        env = Environment(cr, SUPERUSER_ID, {})
        params = env["ir.config_parameter"]
        params.set_param("azure_ad_contacts.client_id", DEFAULT_CLIENT_ID)
        params.set_param("azure_ad_contacts.client_secret", DEFAULT_CLIENT_SECRET)
        params.set_param("azure_ad_contacts.login_endpoint", fake_entra_url)
        params.set_param("azure_ad_contacts.graph_endpoint", fake_entra_url)
        params.set_param("web.base.url", f"http://localhost:{port}")
        env.ref("base.user_admin").password = "admin"
        # The fake keeps its state in memory: restore the consents of customers connected by
        # consent (a partner administrator's sign-in cannot be restored: sign in again).
        control = FakeEntraControl(fake_entra_url)
        connected = [("state", "=", "connected"), ("connection_method", "=", "consent")]
        for integration in env["azure.ad.integration"].search(connected):
            control.set_consent(integration.tenant_id, True)
            print(f"  {integration.name}: consent restored in the fake tenant {integration.tenant_id}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", dest="conf", required=True)
    parser.add_argument("-d", dest="database", required=True)
    parser.add_argument("--check-installed", action="store_true")
    parser.add_argument("--fake-entra")
    parser.add_argument("--port", type=int, default=8069)
    args = parser.parse_args()
    config.parse_config(["-c", args.conf, "-d", args.database])
    if args.check_installed:
        sys.exit(0 if addon_installed(args.database) else 1)
    configure(args.database, args.fake_entra, args.port)


if __name__ == "__main__":
    main()
