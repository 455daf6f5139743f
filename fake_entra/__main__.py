"""``python -m fake_entra``: run the fake Entra ID + Graph server until SIGTERM/SIGINT.

Prints ``FAKE_ENTRA_URL=…`` and ``FAKE_ENTRA_CA_BUNDLE=…`` on stdout (for scripts); requests are
logged briefly to stderr. Only loopback addresses can be bound.
"""

import argparse
import logging
import os
import signal
import sys
import threading

from .server import DEFAULT_CERT_DIR, FakeEntra, check_loopback
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, TENANTS_DIR, load_tenant_files

_logger = logging.getLogger("fake_entra")


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m fake_entra",
        description="Run the fake Entra ID + Graph server (HTTPS) until SIGTERM/SIGINT.")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8443, help="port (0: any free port)")
    parser.add_argument("--cert-dir", default=DEFAULT_CERT_DIR, help="where the certs live")
    parser.add_argument("--tenants-dir", default=TENANTS_DIR,
                        help="load every *.json tenant of this directory ('' for none)")
    parser.add_argument("--tenant", action="append", default=[], metavar="FILE",
                        help="an extra tenant JSON file (repeatable)")
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--graph-latency-ms", type=float, default=0, metavar="MS",
                        help="answer each Graph request after MS milliseconds (± 10 %%), as "
                             "Microsoft Graph takes its time")
    args = parser.parse_args(argv)
    try:
        check_loopback(args.host)
    except ValueError as exc:
        parser.error(str(exc))

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s fake_entra %(message)s")
    tenants = load_tenant_files(args.tenants_dir) if args.tenants_dir else []
    tenants += [os.path.abspath(path) for path in args.tenant]
    if args.graph_latency_ms < 0:
        parser.error("--graph-latency-ms must be >= 0")
    fake = FakeEntra(host=args.host, port=args.port, cert_dir=args.cert_dir, tenants=tenants,
                     apps=[{"client_id": args.client_id, "client_secret": args.client_secret}],
                     graph_latency_ms=args.graph_latency_ms)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with fake:
        print(f"FAKE_ENTRA_URL={fake.base_url}", flush=True)
        print(f"FAKE_ENTRA_CA_BUNDLE={fake.certs.bundle_file}", flush=True)
        _logger.info("serving %d tenant(s) on %s", len(fake.tenants()), fake.base_url)
        while not stop.wait(0.5):
            pass
    _logger.info("stopped")


if __name__ == "__main__":
    main()
