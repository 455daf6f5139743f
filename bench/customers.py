"""``python -m bench.customers``: many customers, one round of syncs, with Microsoft's latency
(``bin/bench-customers`` creates the database; see README.md › Many customers, several servers).

A fresh database with the queue_job bridge and C customers of U users each on the fake Entra/Graph
server. After one untimed first sync of every customer, each configuration syncs every customer
once more (a scheduled round: mostly waiting on Microsoft) and is timed until the last one is done:

- the plain scheduled job (one customer after the other in one process, as without queue_job);
- queue_job on one server with the channel root.azure_ad at capacity 1, 2 and 4;
- queue_job on two servers (sharing the database, behind one balancer) at capacity 4.
"""

import argparse
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from fake_entra.server import FakeEntra

from .cluster import cluster, create_database, run_odoo, seed, tenants, wait_for_jobs

ROOT = Path(__file__).resolve().parent.parent
TARGET_SPEEDUP = 3.0  # capacity 4 against the plain scheduled job


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="bin/bench-customers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--users", type=int, default=200, help="users per customer")
    parser.add_argument("--graph-latency-ms", type=float, default=500, help="Microsoft Graph's answer time")
    parser.add_argument("--check", action="store_true", help=f"exit 1 below {TARGET_SPEEDUP}x at capacity 4")
    parser.add_argument("--conf", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--out-dir", default=str(ROOT / ".local" / "bench-customers"))
    return parser.parse_args(argv)


def plain_round(conf, db, env):
    """The core's scheduled job over every customer, in one process; returns its seconds."""
    script = textwrap.dedent("""
        import time
        integrations = env["azure.ad.integration"].search([])
        started = time.monotonic()
        for integration in integrations:
            integration._cron_sync_one()
            env.cr.commit()
        print("SECONDS", time.monotonic() - started)
    """)
    out = run_odoo(conf, db, "--no-http", command=("shell",), stdin=script, env=env, timeout=3600)
    return float(next(line for line in out.splitlines() if line.startswith("SECONDS")).split()[1])


def queued_round(servers, db, integration_ids, capacity):
    """Every customer as a job at channel capacity `capacity`; returns seconds and the servers
    that ran jobs."""
    rpc = servers[0].rpc(db)
    settings = rpc("res.config.settings", "create", {"azure_ad_sync_capacity": capacity})
    rpc("res.config.settings", "execute", [settings])
    time.sleep(1)  # the runner reloads the channel's capacity
    started = time.monotonic()
    uuids = rpc("azure.ad.integration", "sync_contacts_async", integration_ids)
    jobs = wait_for_jobs(rpc, uuids, timeout=3600)
    seconds = time.monotonic() - started
    failed = [job for job in jobs if job["state"] != "done"]
    if failed:
        raise RuntimeError(f"{len(failed)} job(s) failed: {failed[0]['exc_info']}")
    return seconds, len({job["worker_pid"] for job in jobs})


def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with FakeEntra(cert_dir=str(out_dir / "certs")) as fake:
        tenant_list = tenants(args.customers, args.users, seed=1000)
        for tenant in tenant_list:
            fake.put_tenant(tenant)
        env = {**os.environ, "REQUESTS_CA_BUNDLE": fake.certs.bundle_file}
        print(f"==> database {args.db}: {args.customers} customers of {args.users} users", flush=True)
        create_database(args.conf, args.db)
        ids = seed(args.conf, args.db, fake.base_url, tenant_list, env=env)
        print("==> first sync of every customer (untimed, no latency)", flush=True)
        plain_round(args.conf, args.db, env)

        fake.set_graph_latency(args.graph_latency_ms)
        rows = []
        print(f"==> rounds with Graph latency {args.graph_latency_ms:.0f} ms", flush=True)
        seconds = plain_round(args.conf, args.db, env)
        rows.append(("plain scheduled job", 1, 1, seconds))
        print(f"    plain scheduled job: {seconds:.1f} s", flush=True)
        # Servers started for each round: Odoo 19.0's queue_job reads the capacity from their
        # configuration only (18.0's from the database, which the round's setting writes).
        for server_count, capacity in ((1, 1), (1, 2), (1, 4), (2, 4)):
            with cluster(args.conf, args.db, server_count, out_dir, env=env, channel_capacity=capacity) as (
                servers,
                _balancer,
            ):
                seconds, used = queued_round(servers, args.db, ids, capacity)
            label = f"queue_job, {server_count} server{'s' if server_count > 1 else ''}"
            rows.append((label, server_count, capacity, seconds))
            print(f"    {label}, capacity {capacity}: {seconds:.1f} s ({used} server(s) ran jobs)")

    plain = rows[0][3]
    print(f"\n{args.customers} customers x {args.users} users, Graph latency {args.graph_latency_ms:.0f} ms")
    print("| configuration | capacity | round (s) | customers/min | speed-up |\n|---|---:|---:|---:|---:|")
    for label, _servers, capacity, seconds in rows:
        per_minute = args.customers * 60 / seconds
        print(f"| {label} | {capacity} | {seconds:.1f} | {per_minute:.0f} | {plain / seconds:.2f}x |")
    (out_dir / "results.json").write_text(json.dumps(rows, indent=1))
    one_server_4 = next(
        seconds for label, servers, capacity, seconds in rows if servers == 1 and capacity == 4
    )
    speedup = plain / one_server_4
    verdict = "PASS" if speedup >= TARGET_SPEEDUP else "MISS"
    print(
        f"\n{verdict}  capacity 4 on one server: {speedup:.2f}x the plain scheduled job "
        f"(target >= {TARGET_SPEEDUP}x)"
    )
    return 1 if args.check and verdict == "MISS" else 0


if __name__ == "__main__":
    sys.exit(main())
