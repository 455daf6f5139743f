"""Odoo server processes sharing one database, as several machines would, and a round-robin
TCP balancer in front of them: what the queue_job bridge's multi-server test and the
many-customers benchmark start."""

import itertools
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import xmlrpc.client
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def odoo_bin():
    """odoo-bin of the source the virtualenv runs (odoo is a namespace package on 19.0: its
    release module tells where)."""
    import odoo.release

    return str(Path(odoo.release.__file__).resolve().parent.parent / "odoo-bin")


def channel_capacities_in_config():
    """Whether OCA queue_job takes channel capacities from the configuration only (19.0), not
    from the database (18.0): azure_ad_contacts/series.py, seen from outside Odoo."""
    import odoo.release

    return odoo.release.version_info[0] >= 19


def write_config(path, base_conf, db, *, runner_port, max_capacity, channel_capacity=None):
    """An Odoo config for one server of `db`: the base config's database settings, queue_job
    as a server-wide module, and its job runner sending jobs to `runner_port` (the balancer in
    front of all servers), at most `max_capacity` at once. The channel root.azure_ad's capacity
    is the database's on 18.0 (Job Queue › Channels), `channel_capacity` here on 19.0."""
    lines = [line for line in Path(base_conf).read_text().splitlines() if line.strip()]
    keep = [line for line in lines if line.split("=")[0].strip() not in {"db_name", "dbfilter", "http_port"}]
    keep += [
        f"db_name = {db}",
        f"dbfilter = ^{db}$",
        "server_wide_modules = base,web,queue_job",
        "max_cron_threads = 0",
        "",
        "[queue_job]",
        f"max_capacity = {max_capacity}",
        "scheme = http",
        "host = 127.0.0.1",
        f"port = {runner_port}",
    ]
    if channel_capacity and channel_capacities_in_config():
        keep.append(f"channels = root:{max_capacity},root.azure_ad:{channel_capacity}")
    Path(path).write_text("\n".join(keep) + "\n")
    return path


class OdooServer:
    """One `odoo-bin` process (threaded server) on its own port."""

    def __init__(self, name, conf, port, log_dir, env=None):
        self.name = name
        self.conf = conf
        self.port = port
        self.log_path = Path(log_dir) / f"odoo-{name}.log"
        # Its job runner follows its config file (write_config), never the environment of
        # whoever starts it (the test process runs no runner: tests/queue/conftest.py).
        self.env = {
            name: value
            for name, value in {**os.environ, **(env or {})}.items()
            if not name.startswith("ODOO_QUEUE_JOB_")
        }
        self.process = None

    def start(self):
        log = open(self.log_path, "a")  # noqa: SIM115 - the process owns it
        self.process = subprocess.Popen(
            [
                sys.executable,
                odoo_bin(),
                "-c",
                str(self.conf),
                "--http-port",
                str(self.port),
                "--log-level=info",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout=120):
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}/web/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Odoo {self.name} exited: {self.log_tail()}")
            try:
                if requests.get(url, timeout=5).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"Odoo {self.name} did not answer on {url}: {self.log_tail()}")

    @property
    def pid(self):
        return self.process.pid

    def kill(self):
        """As a machine that dies: no shutdown, no goodbye to PostgreSQL."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self):
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def rpc(self, db, login="admin", password="admin"):
        return Rpc(f"http://127.0.0.1:{self.port}", db, login, password)


class Rpc:
    """execute_kw over XML-RPC as a user."""

    def __init__(self, url, db, login, password):
        self.db, self.password = db, password
        self.uid = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").authenticate(db, login, password, {})
        if not self.uid:
            raise RuntimeError(f"cannot log in as {login} on {db}")
        self.models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def __call__(self, model, method, *args, **kwargs):
        return self.models.execute_kw(self.db, self.uid, self.password, model, method, list(args), kwargs)


class Balancer:
    """A round-robin TCP balancer on 127.0.0.1, as in front of several Odoo machines: each new
    connection goes to the next backend that accepts it (a dead one is skipped)."""

    def __init__(self, backend_ports):
        self.backends = list(backend_ports)
        self._next = itertools.cycle(range(len(self.backends)))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="balancer")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._listener.close()
        self._thread.join(5)

    def _connect_backend(self):
        for _ in range(len(self.backends)):
            port = self.backends[next(self._next)]
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue
        return None

    def _serve(self):
        self._listener.settimeout(0.5)
        while not self._stop.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            backend = self._connect_backend()
            if backend is None:
                client.close()
                continue
            threading.Thread(target=_pipe, args=(client, backend), daemon=True).start()


def _pipe(left, right):
    """Copies bytes both ways until either side closes."""
    for sock in (left, right):
        sock.settimeout(None)
    peers = {left: right, right: left}
    with selectors.DefaultSelector() as selector:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        try:
            while True:
                for key, _events in selector.select(timeout=600):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    peers[key.fileobj].sendall(data)
        except OSError:
            return
        finally:
            left.close()
            right.close()
