"""``python -m bench``: the benchmark on a database that has the addon installed
(``bin/bench`` creates it). See README.md › Benchmark.

Generates an N-user tenant, serves it from the fake Entra/Graph server in its own process, then
runs each phase (bench/phases.py) in a fresh Odoo process, in this order: setup, the two create
floors, the fetch floor (plain `requests`, no Odoo), the first sync, the search_read floor, the
unchanged re-sync (changes only), then 1 % of the users are changed in the fake, the two write
floors, the re-sync with those changes (changes only), and a full reconcile. VACUUM ANALYZE
before each timed phase, so that every phase finds the table in the same shape.
"""

import argparse
import ast
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import requests

from fake_entra.control import FakeEntraControl
from fake_entra.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from . import report

ROOT = Path(__file__).resolve().parent.parent


def _user_select():
    """The $select the sync sends, read from utils/graph_client.py without importing the addon."""
    tree = ast.parse((ROOT / "azure_ad_contacts" / "utils" / "graph_client.py").read_text())
    (value,) = [
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["USER_SELECT"]
    ]
    return ast.literal_eval(value)


USER_SELECT = _user_select()
TENANT_ID = "5e7c4a1b-be0c-4c3b-9a7e-6b3e1f2d4c50"
CHANGE_EVERY = 100  # 1 % of the users


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bin/bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=50_000, help="tenant size N (default 50,000)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with 1 when a target P1-P8 is missed (default: only crashes fail)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="record each timed phase with pyinstrument into the output folder "
        "(slows the phases down: not for the table)",
    )
    parser.add_argument(
        "--graph-latency-ms",
        type=float,
        default=0,
        metavar="MS",
        help="the fake answers each Graph request after MS milliseconds (± 10 %%), as Microsoft "
        "Graph does (about 500 for a page of 999 users); default 0",
    )
    parser.add_argument("--conf", required=True, help="Odoo config of the benchmark database")
    parser.add_argument("--db", required=True, help="the benchmark database (addon installed)")
    parser.add_argument(
        "--out-dir",
        default=str(ROOT / ".local" / "bench"),
        help="tenant file, fake log, results JSON and profiles",
    )
    return parser.parse_args(argv)


@contextmanager
def fake_server(tenant_file, out_dir, graph_latency_ms=0):
    """`python -m fake_entra` serving only the benchmark tenant, in its own process."""
    log = open(out_dir / "fake_entra.log", "w")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fake_entra",
            "--port",
            "0",
            "--tenants-dir",
            "",
            "--tenant",
            str(tenant_file),
            "--cert-dir",
            str(out_dir / "certs"),
            "--graph-latency-ms",
            str(graph_latency_ms),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        announced = {}
        while len(announced) < 2:
            line = process.stdout.readline()
            if not line:
                raise RuntimeError(f"the fake Entra server exited; see {log.name}")
            key, _, value = line.strip().partition("=")
            announced[key] = value
        yield announced["FAKE_ENTRA_URL"], announced["FAKE_ENTRA_CA_BUNDLE"]
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def run_phase(phase, cfg_file):
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "bench.phases", phase, str(cfg_file)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    result = json.loads(out.strip().splitlines()[-1])
    print(
        f"  {phase:<18} {result.get('seconds', 0):8.2f} s   "
        f"({time.perf_counter() - started:.1f} s with Odoo's start-up)",
        flush=True,
    )
    return result


def vacuum(cfg):
    conn = psycopg2.connect(
        dbname=cfg["db"],
        host=os.environ.get("PGHOST"),
        port=os.environ.get("PGPORT"),
        user=os.environ.get("PGUSER"),
        password=os.environ.get("PGPASSWORD"),
    )
    conn.autocommit = True
    with conn.cursor() as cr:
        cr.execute("VACUUM ANALYZE res_partner")
    conn.close()


def change_users(users, fake):
    """Changes job title and mobile of every 100th user in the fake; returns the changes."""
    changes = {}
    for index, user in enumerate(users[::CHANGE_EVERY]):
        change = {"jobTitle": f"{user['jobTitle']} (changed)", "mobilePhone": f"+1 555 {index:07d}"}
        fake.update_user(TENANT_ID, user["id"], change)
        changes[user["id"]] = change
    return changes


def fetch_floor(fake_url, tenant_id):
    """Paging through the tenant with plain `requests`, no Odoo: the documented listing the
    first sync makes (999 users a page), after one token request. What Microsoft's latency
    alone costs."""
    result = {}
    started = time.perf_counter()
    with requests.Session() as session:
        token = session.post(
            f"{fake_url}/{tenant_id}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
                "scope": f"{fake_url}/.default",
            },
            timeout=60,
        ).json()["access_token"]
        url = f"{fake_url}/v1.0/users?$select={','.join(USER_SELECT)}&$top=999"
        count = 0
        while url:
            response = session.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
            response.raise_for_status()
            body = response.json()
            count += len(body["value"])
            url = body.get("@odata.nextLink")
    result.update(seconds=time.perf_counter() - started, cpu_seconds=0.0, count=count)
    print(f"  {'floor_fetch':<18} {result['seconds']:8.2f} s   (plain requests, no Odoo)", flush=True)
    return result


def check_outcomes(results, users, changed):
    """The syncs must have done their job, or the timings mean nothing (a crash, not a FAIL)."""
    expected = {
        "sync_first": {"created": users, "updated": 0, "unchanged": 0},
        "sync_unchanged": {"created": 0, "updated": 0, "unchanged": users},
        "sync_changed": {"created": 0, "updated": changed, "unchanged": users - changed},
        "sync_full": {"created": 0, "updated": 0, "unchanged": users},
    }
    for phase, counts in expected.items():
        outcome = results[phase]["outcome"]
        if (
            results[phase]["log_state"] != "done"
            or any(outcome[k] != v for k, v in counts.items())
            or results[phase]["contacts"] != [users] * 3  # contacts, distinct emails, distinct users
        ):
            raise RuntimeError(
                f"{phase} did not sync as expected: {outcome}, contacts {results[phase]['contacts']} "
                f"(expected {counts}; error: {results[phase]['error']})"
            )


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the fake on the way out
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tenant_file = out_dir / f"tenant-{args.users}.json"
    print(f"Generating a {args.users:,}-user tenant: {tenant_file}", flush=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "fake_entra.generate",
            "--users",
            str(args.users),
            "--plain",
            "--consented",
            "--seed",
            "5",
            "--tenant-id",
            TENANT_ID,
            "--name",
            "Bench Corp",
            "--domain",
            "bench.example",
            "--out",
            str(tenant_file),
        ],
        cwd=ROOT,
        check=True,
    )
    results = {}
    with fake_server(tenant_file, out_dir, args.graph_latency_ms) as (fake_url, ca_bundle):
        print(f"Fake Entra/Graph server: {fake_url} (Graph latency {args.graph_latency_ms:g} ms)",
              flush=True)
        # requests lets this variable beat `verify=`: this process and the phases trust the fake.
        os.environ["REQUESTS_CA_BUNDLE"] = ca_bundle
        fake = FakeEntraControl(fake_url, ca_file=ca_bundle)
        cfg = {
            "odoo_conf": args.conf,
            "db": args.db,
            "out_dir": str(out_dir),
            "profile": args.profile,
            "tenant_id": TENANT_ID,
            "tenant_file": str(tenant_file),
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "login_endpoint": fake_url,
            "graph_endpoint": fake_url,
            "create_values_file": str(out_dir / "create-values.json"),
            "changes_file": str(out_dir / "changes.json"),
        }
        cfg_file = out_dir / "config.json"
        cfg_file.write_text(json.dumps(cfg))

        def timed(phase):
            vacuum(cfg)
            fake.reset_stats()
            results[phase] = run_phase(phase, cfg_file)
            results[phase]["fake"] = fake.stats()["counts"]

        print("Phases (each in a fresh Odoo process):", flush=True)
        results["setup"] = run_phase("setup", cfg_file)
        cfg.update(
            customer_id=results["setup"]["customer_id"], integration_id=results["setup"]["integration_id"]
        )
        cfg_file.write_text(json.dumps(cfg))
        for phase in ("floor_create", "floor_create_ctx"):
            timed(phase)
        fake.reset_stats()
        results["floor_fetch"] = fetch_floor(fake_url, TENANT_ID)
        results["floor_fetch"]["fake"] = fake.stats()["counts"]
        for phase in ("sync_first", "floor_search_read", "sync_unchanged"):
            timed(phase)
        users = json.loads(tenant_file.read_text())["users"]
        changes = change_users(users, fake)
        Path(cfg["changes_file"]).write_text(json.dumps(changes))
        del users
        for phase in ("floor_write", "floor_write_ctx", "sync_changed", "sync_full"):
            timed(phase)

    (out_dir / f"results-{args.users}.json").write_text(json.dumps(results, indent=1))
    check_outcomes(results, args.users, len(changes))
    targets = report.print_report(results, args.users, args.graph_latency_ms)
    if args.check and any(target.passed is False for target in targets):
        return 1
    return 0
