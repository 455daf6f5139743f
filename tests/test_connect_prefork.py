"""Connecting tenants whose first sync takes longer than an Odoo worker may take for a request,
on a real Odoo server in prefork mode (`workers = 2`, `limit_time_real` a few seconds): the
browser's hops over real HTTP (Connect, Microsoft's consent page, Odoo's callback), the
master killing a worker at its time limit, the cron worker running the first sync.

- A tenant Microsoft counts too many users for a request: the callback answers at once, the
  connection is committed, the customer shows the first sync running, and the scheduled job
  brings every contact.
- A tenant that looks small but whose first sync is slow (Microsoft takes its time): the first
  sync runs in the request and dies with its worker; the connection stays, and the first sync
  stays due for the scheduled job, which brings every contact."""

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from odoo import sql_db
from odoo.tests import get_db_name
from odoo.tools import config

from bench.cluster import copy_database, drop_database
from bench.servers import OdooServer
from fake_entra.generate import generate_tenant
from fake_entra.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from .common import fake_entra

# Seconds an HTTP worker may take; the first syncs below take longer. The cron worker may take
# as long as a first sync needs (see README, "Connecting a large tenant").
LIMIT_TIME_REAL = 5
LIMIT_TIME_REAL_CRON = 120
LARGE_ID = "5a1e0000-0000-4000-8000-000000000001"
SLOW_ID = "5a1e0000-0000-4000-8000-000000000002"
LARGE_USERS = 1000  # more than a request may sync, by the per-user cost alone
SLOW_USERS = 15
MICROSOFT_SLOW = 8  # seconds Microsoft takes for the first request of a first sync


def write_prefork_config(path, base_conf, db, http_port, gevent_port):
    """The test database's settings for a prefork server of `db` with short request limits."""
    options = [line for line in Path(base_conf).read_text().splitlines() if line.strip()]
    replaced = {"db_name", "dbfilter", "http_port"}
    options = [line for line in options if line.split("=")[0].strip() not in replaced]
    options += [
        f"db_name = {db}",
        f"dbfilter = ^{db}$",
        f"http_port = {http_port}",
        f"gevent_port = {gevent_port}",
        "workers = 2",
        "max_cron_threads = 1",
        f"limit_time_real = {LIMIT_TIME_REAL}",
        f"limit_time_real_cron = {LIMIT_TIME_REAL_CRON}",
    ]
    Path(path).write_text("\n".join(options) + "\n")
    return path


@pytest.fixture(scope="module")
def fake():
    fake = fake_entra()
    fake.reset()
    fake.put_tenant(generate_tenant(LARGE_USERS, seed=61, tenant_id=LARGE_ID, name="Large Corp",
                                    domain="large.example", plain=True))
    fake.put_tenant(generate_tenant(SLOW_USERS, seed=62, tenant_id=SLOW_ID, name="Slow Corp",
                                    domain="slow.example", plain=True))
    yield fake
    fake.reset()


@pytest.fixture(scope="module")
def server(fake, tmp_path_factory):
    """A prefork Odoo server on a copy of the test database (the addon installed, none of the
    tests' data: they roll back), pointed at the fake."""
    db = f"{get_db_name()}_prefork"
    sql_db.close_db(get_db_name())  # a template database must have no connection
    copy_database(config.rcfile, get_db_name(), db)
    # The ports after the test server's own: one for HTTP, one for the websocket worker.
    http_port = int(config["http_port"]) + 10
    log_dir = tmp_path_factory.mktemp("prefork")
    conf = write_prefork_config(log_dir / "odoo.conf", config.rcfile, db, http_port, http_port + 1)
    odoo = OdooServer("prefork", conf, http_port, log_dir, env={"REQUESTS_CA_BUNDLE": fake.certs.bundle_file})
    odoo.start()
    try:
        odoo.wait_ready()
        odoo.url = f"http://127.0.0.1:{http_port}"
        odoo.db = db
        rpc = odoo.rpc(db)
        for key, value in {
            "azure_ad_contacts.client_id": DEFAULT_CLIENT_ID,
            "azure_ad_contacts.client_secret": DEFAULT_CLIENT_SECRET,
            "azure_ad_contacts.login_endpoint": fake.base_url,
            "azure_ad_contacts.graph_endpoint": fake.base_url,
            "web.base.url": odoo.url,
        }.items():
            rpc("ir.config_parameter", "set_param", key, value)
        yield odoo
    finally:
        odoo.stop()
        drop_database(config.rcfile, db)


class Browser:
    """The administrator's browser, signed in to Odoo, and the customer administrator's hops at
    Microsoft."""

    def __init__(self, odoo):
        self.odoo = odoo
        self.session = requests.Session()
        self.call("/web/session/authenticate", {"db": odoo.db, "login": "admin", "password": "admin"})

    def call(self, path, params):
        response = self.session.post(
            f"{self.odoo.url}{path}", json={"jsonrpc": "2.0", "method": "call", "params": params}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        assert "error" not in body, body
        return body["result"]

    def connect(self, integration_id, tenant_id):
        """Connect, accept at Microsoft, and the callback: (its response or the error, seconds)."""
        action = self.call(
            "/web/dataset/call_kw/azure.ad.integration/action_connect",
            {"model": "azure.ad.integration", "method": "action_connect", "args": [[integration_id]],
             "kwargs": {}},
        )
        consent_url = action["url"]
        assert requests.get(consent_url, timeout=10).status_code == 200
        query = {k: v[0] for k, v in parse_qs(urlsplit(consent_url).query).items()}
        accepted = requests.post(
            consent_url.split("?")[0], data={**query, "tenant": tenant_id, "decision": "accept"},
            allow_redirects=False, timeout=10,
        )
        callback = accepted.headers["Location"]
        assert callback.startswith(f"{self.odoo.url}/azure_ad_contacts/oauth/callback?")
        started = time.monotonic()
        try:
            answer = self.session.get(callback, allow_redirects=False, timeout=60)
        except requests.ConnectionError as error:  # the worker died before it answered
            answer = error
        return answer, time.monotonic() - started


def new_customer(rpc, name):
    partner_id = rpc("res.partner", "create", {"name": name, "is_company": True})
    return partner_id, rpc("azure.ad.integration", "create", {"partner_id": partner_id})


def wait_for_first_sync(rpc, partner_id, timeout=90):
    """The customer as its form reads it, once the first sync is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        [customer] = rpc(
            "res.partner", "read", [partner_id],
            ["azure_ad_state", "azure_ad_first_sync_since", "azure_ad_last_run_summary"],
        )
        if not customer["azure_ad_first_sync_since"] or time.monotonic() > deadline:
            return customer
        time.sleep(0.5)


def synced_contacts(rpc, partner_id):
    return rpc("res.partner", "search_count",
               [("parent_id", "=", partner_id), ("azure_ad_synced", "=", True)])


def runs(rpc, integration_id):
    """The integration's run logs as (trigger, state)."""
    domain = [("integration_id", "=", integration_id)]
    logs = rpc("azure.ad.sync.log", "search_read", domain, ["trigger", "state"])
    return [(log["trigger"], log["state"]) for log in logs]


def test_large_and_slow_tenants_connect_under_worker_time_limits(fake, server):
    rpc = server.rpc(server.db)
    browser = Browser(server)

    # A large tenant: judged by Microsoft's count, the first sync goes to the background at once.
    fake.add_fault(kind="timeout", target="delta", tenant=LARGE_ID, delay=MICROSOFT_SLOW)
    partner_id, integration_id = new_customer(rpc, "Large Customer")
    answer, seconds = browser.connect(integration_id, LARGE_ID)
    assert not isinstance(answer, Exception), f"the callback died: {answer}\n{server.log_tail()}"
    assert answer.status_code in (302, 303) and seconds < LIMIT_TIME_REAL, (answer.status_code, seconds)
    assert answer.headers["Location"].endswith(f"/odoo/contacts/{partner_id}?azure_ad_connected=1")
    [integration] = rpc("azure.ad.integration", "read", [integration_id], ["state", "tenant_id"])
    assert (integration["state"], integration["tenant_id"]) == ("connected", LARGE_ID)
    [customer] = rpc("res.partner", "read", [partner_id], ["azure_ad_first_sync_since"])
    assert customer["azure_ad_first_sync_since"], "the customer does not show the first sync running"
    started = time.monotonic()
    customer = wait_for_first_sync(rpc, partner_id)
    took = time.monotonic() - started
    assert not customer["azure_ad_first_sync_since"], server.log_tail()
    assert customer["azure_ad_last_run_summary"].startswith(f"{LARGE_USERS} created"), customer
    assert synced_contacts(rpc, partner_id) == LARGE_USERS
    # Longer than a request may take: it had to run in the background.
    assert took + seconds > LIMIT_TIME_REAL, took
    assert runs(rpc, integration_id) == [("connect", "done")]

    # A tenant that looks small, with Microsoft slow: the first sync runs in the request, and the
    # master kills the worker at its time limit. The connection was committed before.
    fake.add_fault(kind="timeout", target="delta", tenant=SLOW_ID, delay=MICROSOFT_SLOW * 2)
    partner_id, integration_id = new_customer(rpc, "Slow Customer")
    answer, seconds = browser.connect(integration_id, SLOW_ID)
    assert isinstance(answer, Exception) or answer.status_code >= 500, answer
    assert seconds > LIMIT_TIME_REAL - 1  # stopped at the time limit
    [integration] = rpc("azure.ad.integration", "read", [integration_id], ["state", "tenant_id"])
    assert (integration["state"], integration["tenant_id"]) == ("connected", SLOW_ID)
    [customer] = rpc("res.partner", "read", [partner_id], ["azure_ad_first_sync_since"])
    assert customer["azure_ad_first_sync_since"] and synced_contacts(rpc, partner_id) == 0
    # The scheduled job is due to run it once the worker is gone; here an administrator runs it now.
    _model, cron_id = rpc("ir.model.data", "check_object_reference", "azure_ad_contacts",
                          "azure_ad_integration_cron_sync")
    triggers = rpc("ir.cron.trigger", "search_count", [("cron_id", "=", cron_id)])
    assert triggers, "no run of the scheduled job is due"
    rpc("ir.cron", "method_direct_trigger", [cron_id])
    customer = wait_for_first_sync(rpc, partner_id, timeout=10)
    assert not customer["azure_ad_first_sync_since"]
    assert synced_contacts(rpc, partner_id) == SLOW_USERS
    assert runs(rpc, integration_id) == [("connect", "done")]
