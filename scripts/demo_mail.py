"""Simulates an email arriving at the helpdesk of the demo database.

The message goes through Odoo's mail gateway (``mail.thread.message_process``), exactly as
a mail fetched by an incoming mail server or piped by ``odoo-mailgate.py`` would, and
becomes an OCA Helpdesk ticket.

Usage (bin/demo must be running, or have run once):
    .venv-18.0/bin/python scripts/demo_mail.py                       # from Adele Vance (Contoso)
    .venv-18.0/bin/python scripts/demo_mail.py --from "Megan Bowen <MEGAN.bowen@contoso.example>"
    .venv-18.0/bin/python scripts/demo_mail.py --from new.hire@contoso.example --join
        # --join: the person is added to the fake Contoso tenant first (a new employee who
        # is not synced yet): the ticket suggests "Sync now" instead of a new contact.
"""

import argparse
import os
import sys
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from pathlib import Path

from odoo.api import SUPERUSER_ID, Environment
from odoo.modules.registry import Registry
from odoo.tests.common import get_db_name
from odoo.tools import config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fake_entra.control import FakeEntraControl

CONTOSO_TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"


def build_message(sender, subject, body):
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "helpdesk@msp.example"
    message["Subject"] = subject
    message["Message-Id"] = make_msgid(domain="demo.example")
    message.set_content(body)
    return message.as_bytes()


def join_tenant(fake_entra_url, sender):
    """Adds the sender to the fake Contoso tenant (through its control API)."""
    name, address = getaddresses([sender])[0]
    given, _, surname = (name or address.split("@")[0].replace(".", " ").title()).partition(" ")
    control = FakeEntraControl(fake_entra_url, ca_file=os.environ.get("REQUESTS_CA_BUNDLE"))
    control.add_user(
        CONTOSO_TENANT_ID,
        {
            "givenName": given,
            "surname": surname,
            "displayName": f"{given} {surname}".strip(),
            "mail": address,
            "userPrincipalName": address,
            "accountEnabled": True,
            "userType": "Member",
        },
    )
    print(f"  {address} joined the fake Contoso tenant (not synced yet).")


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", dest="conf", default=str(ROOT / ".local" / "odoo-demo.conf"))
    parser.add_argument("-d", dest="database", help="default: the database of the config file")
    parser.add_argument("--from", dest="sender", default="Adele Vance <adele.vance@contoso.example>")
    parser.add_argument("--subject", default="My laptop does not start")
    parser.add_argument("--body", default="Hi, since this morning my laptop shows a black screen.")
    parser.add_argument("--join", action="store_true", help="add the sender to the fake Contoso tenant first")
    parser.add_argument(
        "--fake-entra",
        default=f"https://127.0.0.1:{os.environ.get('FAKE_ENTRA_PORT', '8443')}",
        help="URL of the running fake Entra server (for --join)",
    )
    args = parser.parse_args()
    if not Path(args.conf).is_file():
        sys.exit(f"{args.conf} not found: run bin/demo first.")
    os.environ.setdefault("REQUESTS_CA_BUNDLE", str(ROOT / ".local" / "certs" / "fake-entra-bundle.pem"))
    config.parse_config(["-c", args.conf, *(["-d", args.database] if args.database else [])])
    args.database = get_db_name()  # the one database (config["db_name"] is a list on 19.0)
    if args.join:
        join_tenant(args.fake_entra, args.sender)

    registry = Registry(args.database)
    with registry.cursor() as cr:
        env = Environment(cr, SUPERUSER_ID, {})
        ticket = env["helpdesk.ticket"].browse(
            env["mail.thread"].message_process(
                "helpdesk.ticket", build_message(args.sender, args.subject, args.body)
            )
        )
        print(f"  Ticket {ticket.number} '{ticket.name}' from {args.sender}")
        if ticket.azure_ad_synced:
            print(
                f"  Requester: {ticket.partner_id.name} (synced from Azure AD), "
                f"customer: {ticket.commercial_partner_id.name}"
            )
        elif ticket.azure_ad_suggested_customer_id:
            print(
                f"  Not a contact yet, but an address of {ticket.azure_ad_suggested_customer_id.name}'s "
                "tenant: open the ticket and click 'Sync now' in its banner."
            )
        else:
            print(f"  Requester: {ticket.partner_id.name or '(none)'}")
        port = config["http_port"]
        print(f"  http://localhost:{port}/odoo/helpdesk.ticket/{ticket.id}")


if __name__ == "__main__":
    main()
