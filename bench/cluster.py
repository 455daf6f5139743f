"""Many customers on the fake Entra/Graph server, synced by one or several Odoo servers through
OCA queue_job: a fresh database with the bridge azure_ad_contacts_queue, its customers seeded,
and the servers started behind one balancer. Used by the multi-server test and by
``bin/bench-customers``."""

import configparser
import subprocess
import sys
import textwrap
import time
import uuid
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg2

from fake_entra.generate import generate_tenant
from fake_entra.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .servers import Balancer, OdooServer, free_port, odoo_bin, write_config

ROOT = Path(__file__).resolve().parent.parent


def tenants(count, users, seed=0):
    """`count` consented tenants of `users` plain users each (deterministic)."""
    result = []
    for index in range(count):
        tenant = generate_tenant(
            users,
            seed=seed + index,
            tenant_id=str(uuid.UUID(int=(seed + index + 1) << 64 | 0xA2D)),
            name=f"Customer {index + 1:04d}",
            domain=f"customer{index + 1:04d}.example",
            plain=True,
        )
        tenant["consented"] = True
        result.append(tenant)
    return result


def run_odoo(conf, db, *args, command=(), stdin=None, env=None, timeout=900):
    """odoo-bin (or one of its commands, e.g. ``shell``) with the database's config; raises
    with its output when it fails."""
    process = subprocess.run(
        [sys.executable, odoo_bin(), *command, "-c", str(conf), "-d", db, f"--db-filter=^{db}$", *args],
        cwd=ROOT,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if process.returncode:
        raise RuntimeError(
            f"odoo-bin {' '.join(args)} failed:\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
        )
    return process.stdout


def _run_on_server(base_conf, statement):
    """Runs `statement` on the server's `postgres` database, outside a transaction (as CREATE
    and DROP DATABASE must)."""
    options = configparser.ConfigParser()
    options.read(base_conf)
    options = options["options"]
    password = options.get("db_password")
    connection = psycopg2.connect(
        dbname="postgres",
        host=options.get("db_host"),
        port=options.get("db_port"),
        user=options.get("db_user"),
        password=None if password in (None, "False") else password,
    )
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
    finally:
        connection.close()


def drop_database(base_conf, db):
    """Drops `db` (and its filestore stays: these databases store no attachments)."""
    _run_on_server(base_conf, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def copy_database(base_conf, template, db):
    """`db` as a copy of `template` (which nobody may be connected to): seconds, where
    installing the modules takes minutes on a busy machine. The filestore is not copied."""
    drop_database(base_conf, db)
    _run_on_server(base_conf, f'CREATE DATABASE "{db}" TEMPLATE "{template}"')


def create_database(base_conf, db, modules="azure_ad_contacts_queue"):
    """A fresh database with `modules` installed (no demo data)."""
    drop_database(base_conf, db)
    run_odoo(base_conf, db, "-i", modules, "--without-demo=all", "--stop-after-init", "--log-level=warn")


def seed(conf, db, fake_url, tenant_list, capacity=None, auto_sync=False, env=None):
    """The addon pointed at the fake, and one connected customer per tenant; returns their
    integration ids."""
    script = textwrap.dedent(f"""
        params = env["ir.config_parameter"].sudo()
        params.set_param("azure_ad_contacts.client_id", {DEFAULT_CLIENT_ID!r})
        params.set_param("azure_ad_contacts.client_secret", {DEFAULT_CLIENT_SECRET!r})
        params.set_param("azure_ad_contacts.login_endpoint", {fake_url!r})
        params.set_param("azure_ad_contacts.graph_endpoint", {fake_url!r})
        integrations = env["azure.ad.integration"]
        for name, tenant_id in {[(t["display_name"], t["tenant_id"]) for t in tenant_list]!r}:
            customer = env["res.partner"].create({{"name": name, "is_company": True}})
            integrations |= integrations.create({{
                "partner_id": customer.id, "state": "connected", "tenant_id": tenant_id,
                "auto_sync": {auto_sync!r},
            }})
        capacity = {capacity!r}
        if capacity is not None:
            channel = env.ref("azure_ad_contacts_queue.queue_job_channel_azure_ad")
            env["azure_ad.series"]._set_channel_capacity(channel.id, capacity)  # 18.0: the database's
        env.cr.commit()
        print("INTEGRATIONS", integrations.ids)
    """)
    out = run_odoo(conf, db, "--no-http", command=("shell",), stdin=script, env=env)
    line = next(line for line in out.splitlines() if line.startswith("INTEGRATIONS"))
    return [int(value) for value in line.split(" ", 1)[1].strip("[]").split(",")]


@contextmanager
def cluster(base_conf, db, servers, log_dir, env=None, max_capacity=8, channel_capacity=None):
    """`servers` Odoo servers of `db` behind one balancer, each with the job runner (only
    one of them leads it at a time); yields (servers, balancer). `channel_capacity`: the channel
    root.azure_ad's where the configuration holds it (19.0; 18.0: seed() puts it in the database)."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    ports = [free_port() for _ in range(servers)]
    with ExitStack() as stack:
        balancer = stack.enter_context(Balancer(ports))
        started = []
        for index, port in enumerate(ports):
            conf = write_config(
                log_dir / f"odoo-{db}-{index}.conf",
                base_conf,
                db,
                runner_port=balancer.port,
                max_capacity=max_capacity,
                channel_capacity=channel_capacity,
            )
            server = OdooServer(f"{db}-{index}", conf, port, log_dir, env=env).start()
            stack.callback(server.stop)
            started.append(server)
        for server in started:
            server.wait_ready()
        yield started, balancer


def wait_for_jobs(rpc, uuids, timeout=600, on_poll=None):
    """Polls until every job of `uuids` is done (or failed); returns their records."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = rpc(
            "queue.job",
            "search_read",
            [("uuid", "in", list(uuids))],
            fields=[
                "uuid",
                "state",
                "worker_pid",
                "date_started",
                "date_done",
                "result",
                "exc_info",
            ],
        )
        if on_poll:
            on_poll(jobs)
        if len(jobs) == len(uuids) and all(job["state"] in ("done", "failed") for job in jobs):
            return jobs
        if time.monotonic() > deadline:
            states = sorted(job["state"] for job in jobs)
            raise TimeoutError(f"jobs not done after {timeout} s: {states}")
        time.sleep(0.5)
