#!/usr/bin/env python3
"""azure_ad_contacts over XML-RPC or Odoo 19.0's JSON-2 API, with nothing but the standard library.

    examples/azure_ad_rpc.py --url http://localhost:8069 --db azure_ad_demo --user admin --password admin list
    examples/azure_ad_rpc.py ... sync --all                 # every connected, not excluded customer
    examples/azure_ad_rpc.py ... sync --customer "Contoso Ltd"
    examples/azure_ad_rpc.py ... log --limit 10
    examples/azure_ad_rpc.py --db azure_ad_demo --api-key KEY list     # JSON-2 (Odoo 19.0)

The user must be an Odoo administrator (Settings rights); an API key works as the password.
With --api-key (an API key of such a user, Preferences › Account Security) the calls go to
Odoo 19.0's JSON-2 API (POST /json/2/<model>/<method>), which replaces XML-RPC there (/xmlrpc
is deprecated on 19.0 and announced for removal in Odoo 20).
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
import xmlrpc.client

INTEGRATION = "azure.ad.integration"
LOG = "azure.ad.sync.log"


def connect(url, db, user, password):
    uid = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").authenticate(db, user, password, {})
    if not uid:
        sys.exit("Login failed: check --db, --user and --password.")
    models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def call(model, method, *args, **kwargs):
        return models.execute_kw(db, uid, password, model, method, list(args), kwargs)

    return call


class Refused(Exception):
    """Odoo refused a call (access denied, excluded, ...): its message."""


# JSON-2 takes named arguments: the domain of the model's searches, the ids of record methods.
DOMAIN_METHODS = {"search", "search_read", "search_count"}


def connect_json2(url, db, api_key):
    def call(model, method, *args, **kwargs):
        if args:
            kwargs["domain" if method in DOMAIN_METHODS else "ids"] = args[0]
        request = urllib.request.Request(
            f"{url}/json/2/{model}/{method}",
            data=json.dumps(kwargs).encode(),
            headers={
                "Authorization": f"bearer {api_key}",
                "Content-Type": "application/json; charset=utf-8",
                "X-Odoo-Database": db,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            body = error.read().decode(errors="replace")
            try:
                message = json.loads(body)["message"]
            except (ValueError, KeyError):
                message = body or str(error)
            raise Refused(message) from error

    return call


def list_integrations(call, out):
    fields = ["name", "tenant_id", "state", "excluded", "auto_sync", "last_sync_date"]
    for row in call(INTEGRATION, "search_read", [], fields=fields, order="name"):
        print(
            f"{row['id']:>5}  {row['name']:<30} {row['state']:<12} "
            f"{'excluded ' if row['excluded'] else ''}{'auto ' if row['auto_sync'] else ''}"
            f"last sync: {row['last_sync_date'] or '-'}",
            file=out,
        )


def sync(call, out, customer=None):
    domain = [("state", "=", "connected"), ("excluded", "=", False)]
    if customer:
        domain = [("name", "=", customer)]
    ids = call(INTEGRATION, "search", domain)
    if not ids:
        sys.exit(f"No integration found for {customer or 'connected customers'}.")
    results = call(INTEGRATION, "sync_contacts", ids)
    for result in results:
        status = (
            f"FAILED: {result['error']}"
            if result.get("error")
            else (
                "{created} created, {updated} updated, {unchanged} unchanged, {skipped} skipped".format(
                    **result
                )
            )
        )
        print(f"integration {result['integration_id']}: {status}", file=out)
    return results


def show_log(call, out, limit=20):
    fields = [
        "date_start",
        "partner_id",
        "trigger",
        "state",
        "created",
        "updated",
        "unchanged",
        "skipped",
        "error",
    ]
    for row in call(LOG, "search_read", [], fields=fields, limit=limit):
        print(
            f"{row['date_start']}  {row['partner_id'][1]:<25} {row['trigger']:<7} {row['state']:<7} "
            f"+{row['created']} ~{row['updated']} ={row['unchanged']} -{row['skipped']} {row['error'] or ''}",
            file=out,
        )


def main(argv=None, out=sys.stdout):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://localhost:8069")
    parser.add_argument("--db", required=True)
    parser.add_argument("--user", default="admin")
    credentials = parser.add_mutually_exclusive_group(required=True)
    credentials.add_argument("--password", help="password or API key (XML-RPC)")
    credentials.add_argument("--api-key", help="API key: Odoo 19.0's JSON-2 API instead of XML-RPC")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the customers' integrations")
    sync_parser = commands.add_parser("sync", help="sync one customer or all")
    target = sync_parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--customer", help="the customer's name")
    target.add_argument("--all", action="store_true")
    log_parser = commands.add_parser("log", help="the latest sync runs")
    log_parser.add_argument("--limit", type=int, default=20)
    args = parser.parse_args(argv)

    if args.api_key:
        call = connect_json2(args.url, args.db, args.api_key)
    else:
        call = connect(args.url, args.db, args.user, args.password)
    try:
        if args.command == "list":
            list_integrations(call, out)
        elif args.command == "sync":
            sync(call, out, None if args.all else args.customer)
        else:
            show_log(call, out, args.limit)
    except xmlrpc.client.Fault as fault:
        # Odoo's message is the last line of the fault string (access denied, excluded, ...).
        sys.exit(f"Odoo refused: {fault.faultString.strip().splitlines()[-1]}")
    except Refused as refused:
        sys.exit(f"Odoo refused: {refused}")


if __name__ == "__main__":
    main()
