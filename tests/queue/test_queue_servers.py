"""Two Odoo servers sharing one PostgreSQL database, as two machines would, with OCA's job runner
dispatching through a balancer: twenty customers synced as jobs on both servers, never more at
once than the channel allows, and a server killed in the middle of a run loses nothing.

Real parts only: odoo-bin processes, queue_job's runner, the fake Entra/Graph server answering
after Microsoft-like latency."""

import os
import time
from collections import Counter
from datetime import datetime

import pytest

from odoo.tests import get_db_name
from odoo.tools import config

from bench.cluster import cluster, create_database, seed, tenants, wait_for_jobs

from ..common import fake_entra

CUSTOMERS = 20
USERS = 30
CAPACITY = 4


def max_running_at_once(jobs):
    """The most jobs whose [started, done] intervals overlap."""
    edges = []
    for job in jobs:
        edges.append((datetime.fromisoformat(job["date_started"]), 1))
        edges.append((datetime.fromisoformat(job["date_done"]), -1))
    running = peak = 0
    for _moment, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += step
        peak = max(peak, running)
    return peak


def contacts_per_customer(rpc, integration_ids):
    groups = rpc(
        "res.partner",
        "read_group",
        [("azure_ad_integration_id", "in", integration_ids)],
        ["email:count_distinct"],
        ["azure_ad_integration_id"],
        lazy=False,
    )
    return {group["azure_ad_integration_id"][0]: (group["__count"], group["email"]) for group in groups}


@pytest.fixture(scope="module")
def fake():
    fake = fake_entra()
    fake.reset()
    yield fake
    fake.reset()


@pytest.fixture(scope="module")
def database(fake):
    db = f"{get_db_name()}_servers"
    tenant_list = tenants(CUSTOMERS, USERS, seed=500)
    for tenant in tenant_list:
        fake.put_tenant(tenant)
    create_database(config.rcfile, db)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": fake.certs.bundle_file}
    integration_ids = seed(config.rcfile, db, fake.base_url, tenant_list, capacity=CAPACITY, env=env)
    return db, env, tenant_list, integration_ids


def test_two_servers_sync_every_customer_and_survive_a_killed_server(fake, database, tmp_path):
    db, env, tenant_list, integration_ids = database
    fake.set_graph_latency(300)
    with cluster(config.rcfile, db, 2, tmp_path, env=env, channel_capacity=CAPACITY) as (servers, _balancer):
        rpc = servers[0].rpc(db)

        uuids = rpc("azure.ad.integration", "sync_contacts_async", integration_ids)
        jobs = wait_for_jobs(rpc, uuids, timeout=300)
        assert [job["state"] for job in jobs] == ["done"] * CUSTOMERS, [job["exc_info"] for job in jobs]
        # Both servers ran jobs; never more at once than the channel's capacity.
        assert {job["worker_pid"] for job in jobs} == {server.pid for server in servers}
        assert 1 < max_running_at_once(jobs) <= CAPACITY
        logs = rpc(
            "azure.ad.sync.log",
            "search_read",
            [("integration_id", "in", integration_ids)],
            fields=["integration_id", "state", "created", "job_id"],
        )
        assert Counter(log["integration_id"][0] for log in logs) == Counter(integration_ids)
        assert {(log["state"], log["created"]) for log in logs} == {("done", USERS)}
        assert {log["job_id"][0] for log in logs} == set(rpc("queue.job", "search", [("uuid", "in", uuids)]))
        assert contacts_per_customer(rpc, integration_ids) == dict.fromkeys(integration_ids, (USERS, USERS))

        # Five new users per tenant, Microsoft slower: then one server dies in the middle of a run.
        for index, tenant in enumerate(tenant_list):
            for number in range(5):
                fake.add_user(
                    tenant["tenant_id"],
                    {
                        "id": f"{index:08x}-0000-4000-8000-{number:012x}",
                        "givenName": "New",
                        "surname": f"Hire {number}",
                        "displayName": f"New Hire {number}",
                        "mail": f"new.hire{number}@customer{index + 1:04d}.example",
                        "userType": "Member",
                        "accountEnabled": True,
                    },
                )
        fake.set_graph_latency(1500)
        victim = servers[1]
        killed = {}

        def kill_when_running(jobs):
            if not killed and any(
                job["state"] == "started" and job["worker_pid"] == victim.pid for job in jobs
            ):
                killed["jobs"] = [
                    job["uuid"]
                    for job in jobs
                    if job["worker_pid"] == victim.pid and job["state"] == "started"
                ]
                victim.kill()

        uuids = rpc("azure.ad.integration", "sync_contacts_async", integration_ids)
        started = time.monotonic()
        jobs = wait_for_jobs(rpc, uuids, timeout=420, on_poll=kill_when_running)
        assert killed, "no job ran on the second server"
        # The interrupted jobs were queued again and finished on the server that lives.
        assert [job["state"] for job in jobs] == ["done"] * CUSTOMERS, [job["exc_info"] for job in jobs]
        assert {job["worker_pid"] for job in jobs if job["uuid"] in killed["jobs"]} == {servers[0].pid}
        assert contacts_per_customer(rpc, integration_ids) == dict.fromkeys(
            integration_ids, (USERS + 5, USERS + 5)
        )
        print(f"converged {time.monotonic() - started:.0f} s after the kill round started")
