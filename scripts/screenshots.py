"""Takes the README's screenshots (docs/screenshots/*.png) from a live demo.

Starts everything itself on spare ports and stops it afterwards: the fake Microsoft Entra ID,
Odoo with a fresh demo database (azure_ad_contacts, demo data, German), and headless Chromium,
driven over the DevTools protocol (websocket-client) the way a user clicks through:
connect Contoso through the (fake) Microsoft consent page, sync, disconnect dialog, contacts
list and tooltip, German, an error an administrator can act on, and the partner tenant (GDAP):
a partner administrator's sign-in, the partner's customers with their proposals, one confirmed.

Usage: .venv-18.0/bin/python scripts/screenshots.py [--out docs/screenshots] [--keep-db]
"""

import argparse
import base64
import contextlib
import getpass
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2
import requests
import websocket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fake_entra.control import FakeEntraControl

ODOO_SRC = Path(os.environ.get("ODOO_SRC", "/opt/odoo-18.0"))
PYTHON = sys.executable
STATE = ROOT / ".local"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
CONTOSO_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


def addons_path():
    """The project's addons, then the source's addons/ folder where it has one (a git clone
    has, Odoo's nightly archive has not: Odoo adds odoo/addons itself), as scripts/lib.sh does."""
    folders = [ROOT, ODOO_SRC / "addons"]
    return ",".join(str(folder) for folder in folders if folder.is_dir())
WIDTH, HEIGHT = 1280, 800

# Finds a visible element by CSS selector and (optionally) a text it contains.
FIND_JS = """(sel, text) => [...document.querySelectorAll(sel)].find(
    (el) => (!text || el.textContent.includes(text)) && el.getClientRects().length)"""


def log(message):
    print(f"[screenshots] {message}", flush=True)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url, timeout=120, verify=True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=5, verify=verify).status_code < 500:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


class Chrome:
    """Headless Chromium over the DevTools protocol: navigate, wait, click, hover, capture."""

    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="screenshots-chromium-")
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--ignore-certificate-errors",  # the fake Microsoft's CA is not in Chromium's store
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = Path(self.profile, "DevToolsActivePort")
        for _ in range(100):
            if port_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = requests.get(f"http://127.0.0.1:{port}/json", timeout=10).json()
        url = next(page["webSocketDebuggerUrl"] for page in pages if page["type"] == "page")
        self.ws = websocket.create_connection(url, suppress_origin=True, timeout=60)
        self.ids = itertools.count(1)
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method, **params):
        message_id = next(self.ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def eval(self, expression):
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def goto(self, url):
        self.call("Page.navigate", url=url)
        self.wait_ready()

    def wait_ready(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                if self.eval("document.readyState") == "complete":
                    return
            time.sleep(0.2)
        raise RuntimeError("page did not load")

    def find_expr(self, selector, text=None):
        return f"({FIND_JS})({json.dumps(selector)}, {json.dumps(text)})"

    def wait(self, selector, text=None, timeout=45):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):  # the page may be navigating
                if self.eval(f"!!{self.find_expr(selector, text)}"):
                    return
            time.sleep(0.2)
        self.capture(STATE / "screenshots-failure.png")
        raise RuntimeError(f"not found: {selector} {text or ''} (see .local/screenshots-failure.png)")

    def center(self, selector, text=None):
        self.wait(selector, text)
        return self.eval(
            f"""(() => {{ const el = {self.find_expr(selector, text)};
                el.scrollIntoView({{block: "nearest"}});
                const r = el.getBoundingClientRect();
                return [r.x + r.width / 2, r.y + r.height / 2]; }})()"""
        )

    def dismiss_refresh_notice(self):
        """Closes Odoo's "The page is out of date" notice: on a server that has just built its
        asset bundles, the bus announces them to every page (not what the screenshots show)."""
        with contextlib.suppress(RuntimeError):
            self.eval(
                """document.querySelectorAll(".o_notification").forEach((n) => {
                    if (/out of date|veraltet/.test(n.textContent)) {
                        n.querySelector(".o_notification_close")?.click();
                    }
                })"""
            )

    def click(self, selector, text=None):
        self.dismiss_refresh_notice()
        x, y = self.center(selector, text)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def hover(self, selector, text=None):
        x, y = self.center(selector, text)
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def scroll_to(self, selector, text=None):
        self.wait(selector, text)
        self.eval(f"{self.find_expr(selector, text)}.scrollIntoView({{block: 'start'}})")

    def rpc(self, route, params):
        """A JSON-RPC call from the page (with its session cookie)."""
        return self.eval(
            f"""fetch({json.dumps(route)}, {{method: "POST", headers: {{"Content-Type": "application/json"}},
                body: JSON.stringify({{jsonrpc: "2.0", method: "call", params: {json.dumps(params)}}})}})
                .then((r) => r.json()).then((r) => {{ if (r.error) throw new Error(JSON.stringify(r.error));
                return r.result; }})"""
        )

    def call_kw(self, model, method, args, **kwargs):
        return self.rpc(
            f"/web/dataset/call_kw/{model}/{method}",
            {"model": model, "method": method, "args": args, "kwargs": kwargs},
        )

    def capture(self, path, clip=None):
        params = {"format": "png"}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        Path(path).write_bytes(base64.b64decode(data))

    def close(self):
        with contextlib.suppress(Exception):
            self.ws.close()
        self.process.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)


class Demo:
    """Fake Entra + Odoo on spare ports, with a fresh demo database."""

    def __init__(self, database):
        self.database = database
        self.odoo_port = free_port()
        self.fake_port = free_port()
        self.fake_url = f"https://127.0.0.1:{self.fake_port}"
        self.base_url = f"http://localhost:{self.odoo_port}"
        self.conf = STATE / f"odoo-{database}.conf"
        self.certs = STATE / "certs"
        self.processes = []

    def odoo_bin(self, *args):
        return [PYTHON, str(ODOO_SRC / "odoo-bin"), "-c", str(self.conf), "-d", self.database, *args]

    def write_conf(self):
        STATE.mkdir(exist_ok=True)
        db = {
            "host": os.environ.get("PGHOST", "127.0.0.1"),
            "port": os.environ.get("PGPORT", "5432"),
            "user": os.environ.get("PGUSER") or getpass.getuser(),
            "password": os.environ.get("PGPASSWORD") or "False",
        }
        self.conf.write_text(
            "[options]\n"
            f"db_host = {db['host']}\ndb_port = {db['port']}\ndb_user = {db['user']}\n"
            f"db_password = {db['password']}\ndb_name = {self.database}\ndbfilter = ^{self.database}$\n"
            f"list_db = False\naddons_path = {addons_path()}\n"
            f"data_dir = {STATE / 'data'}\nhttp_port = {self.odoo_port}\n"
        )
        return db

    def drop_database(self, db):
        connection = psycopg2.connect(
            dbname="postgres",
            host=db["host"],
            port=db["port"],
            user=db["user"],
            password=None if db["password"] == "False" else db["password"],
        )
        connection.autocommit = True
        with connection.cursor() as cr:
            cr.execute(f'DROP DATABASE IF EXISTS "{self.database}"')
        connection.close()
        shutil.rmtree(STATE / "data" / "filestore" / self.database, ignore_errors=True)

    def start(self, db):
        log(f"fake Microsoft Entra ID on {self.fake_url}")
        self.certs.mkdir(parents=True, exist_ok=True)
        self.fake = self.spawn(
            [PYTHON, "-m", "fake_entra", "--port", str(self.fake_port), "--cert-dir", str(self.certs)]
        )
        bundle = str(self.certs / "fake-entra-bundle.pem")
        wait_http(f"{self.fake_url}/_fake/health", verify=False)
        # requests lets this variable beat any verify=: this process (the control API) and Odoo
        # (MSAL, Graph) trust the fake's CA through it.
        os.environ["REQUESTS_CA_BUNDLE"] = bundle
        self.env = dict(os.environ)
        self.control = FakeEntraControl(self.fake_url, ca_file=bundle)
        log(f"fresh database {self.database} with demo data and German (a few minutes)")
        self.drop_database(db)
        for options in (
            ["-i", "contacts,azure_ad_contacts"],
            # A second step: at database creation, --load-language would replace English.
            ["--load-language=de_DE"],
        ):
            subprocess.run(
                self.odoo_bin(*options, "--stop-after-init", "--log-level=warn"),
                check=True,
                env=self.env,
                cwd=ROOT,
            )
        subprocess.run(
            [
                PYTHON,
                "scripts/demo_setup.py",
                "-c",
                str(self.conf),
                "-d",
                self.database,
                "--fake-entra",
                self.fake_url,
                "--port",
                str(self.odoo_port),
            ],
            check=True,
            env=self.env,
            cwd=ROOT,
        )
        log(f"Odoo on {self.base_url}")
        self.spawn(self.odoo_bin("--log-level=warn", "--max-cron-threads=0"))
        wait_http(f"{self.base_url}/web/health")

    def spawn(self, command):
        process = subprocess.Popen(command, cwd=ROOT, env=getattr(self, "env", None), start_new_session=True)
        self.processes.append(process)
        return process

    def stop(self):
        for process in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(20)


def take(chrome, out, name, clip=None):
    chrome.dismiss_refresh_notice()
    time.sleep(0.6)  # let transitions and toasts settle
    path = out / f"{name}.png"
    chrome.capture(path, clip)
    log(f"wrote {path.relative_to(ROOT)}")


def run(demo, chrome, out):
    base = demo.base_url
    chrome.goto(f"{base}/web/login")
    credentials = {"db": demo.database, "login": "admin", "password": "admin"}
    admin = chrome.rpc("/web/session/authenticate", credentials)["uid"]

    def set_language(lang):
        chrome.call_kw("res.users", "write", [[admin], {"lang": lang}])
        chrome.rpc("/web/session/authenticate", credentials)  # the session's context takes it

    set_language("en_US")
    companies = [[["name", "=", "Contoso Ltd"], ["is_company", "=", True]]]
    contoso = chrome.call_kw("res.partner", "search_read", companies, fields=["id"])[0]["id"]
    customer_url = f"{base}/odoo/contacts/{contoso}"

    # A first visit builds the web client's asset bundles (some lazily): pages opened while a
    # bundle is built would show "The page is out of date".
    chrome.goto(f"{base}/odoo")
    chrome.wait(".o_main_navbar")
    time.sleep(5)

    # 1. The customer's Contacts & Addresses tab: the Sync contacts menu, not connected yet.
    chrome.goto(customer_url)
    chrome.click(".o_notebook .nav-link", "Contacts & Addresses")
    chrome.click(".o_azure_ad_sync_contacts_toggle")
    chrome.wait(".o_azure_ad_connect", "Sync with Azure AD")
    take(chrome, out, "01_sync_contacts_menu")

    # 2. The connect wizard.
    chrome.click(".o_azure_ad_connect")
    chrome.wait(".modal .o_azure_ad_wizard_connect")
    take(chrome, out, "02_connect_wizard")

    # 3. Microsoft's consent page (the fake), where the customer's administrator accepts.
    chrome.click(".modal .o_azure_ad_wizard_connect")
    chrome.wait("#accept")
    take(chrome, out, "03_microsoft_consent")
    chrome.click("#accept")

    # 4. Back on the customer: the confirmation and the imported contacts with their icon.
    chrome.wait(".o_notification", "Connected to Azure AD")
    chrome.scroll_to(".o_notebook")
    chrome.wait(".o_kanban_record .o_azure_ad_icon")
    take(chrome, out, "04_customer_connected")

    # 5. The manage page.
    demo.control.add_user(
        CONTOSO_TENANT,
        {
            "id": "0f0e0d0c-1111-4222-8333-944455556666",
            "givenName": "Nina",
            "surname": "Neumann",
            "displayName": "Nina Neumann",
            "jobTitle": "Service Desk Lead",
            "mail": "nina.neumann@contoso.example",
            "userType": "Member",
            "accountEnabled": True,
        },
    )
    chrome.goto(customer_url)
    chrome.click(".o_azure_ad_sync_contacts_toggle")
    chrome.click(".o_azure_ad_manage")
    chrome.wait(".o_azure_ad_last_run_counts", "created")
    take(chrome, out, "05_manage_page")

    # 6. Sync now, and its notification with the counts.
    chrome.click(".o_azure_ad_sync_now")
    chrome.wait(".o_notification", "Azure AD sync done")
    take(chrome, out, "06_sync_now")

    # 7. Disconnect asks first, and says that imported contacts stay.
    chrome.click(".o_form_statusbar .o_azure_ad_disconnect")
    chrome.wait(".modal .o_azure_ad_disconnect_wizard")
    take(chrome, out, "07_disconnect_confirmation")
    chrome.click(".modal .btn", "Cancel")

    # 8. The contacts list: filter "Synced from Azure AD", the Azure AD column.
    chrome.goto(f"{base}/odoo/contacts")
    chrome.click(".o_searchview_dropdown_toggler")
    chrome.click(".o_filter_menu .o_menu_item", "Synced from Azure AD")
    chrome.click(".o_switch_view.o_list")
    chrome.wait(".o_list_view .o_data_row .o_azure_ad_icon")
    chrome.eval("document.activeElement && document.activeElement.blur()")
    take(chrome, out, "08_contacts_list")

    # 9. A synced contact: the icon and its tooltip.
    chrome.click(".o_list_view .o_data_row td.o_data_cell", "Adele Vance")
    chrome.hover(".o_form_view .o_azure_ad_form_icon .o_azure_ad_icon")
    chrome.wait(".o_popover", "Managed by Azure AD")
    take(chrome, out, "09_contact_tooltip", clip={"x": 0, "y": 0, "width": WIDTH, "height": 420})

    # 10. The same customer in German.
    set_language("de_DE")
    chrome.goto(customer_url)
    chrome.click(".o_notebook .nav-link", "Kontakte & Adressen")
    chrome.scroll_to(".o_notebook")
    chrome.click(".o_azure_ad_sync_contacts_toggle")
    chrome.wait(".o_azure_ad_manage", "Verwaltung der Azure AD-Integration")
    take(chrome, out, "10_german")
    set_language("en_US")

    # 11./12. Consent revoked at Microsoft: the error and what to do, on both pages.
    demo.control.set_consent(CONTOSO_TENANT, False)
    demo.control.expire_tokens()
    chrome.goto(customer_url)
    chrome.click(".o_azure_ad_sync_contacts_toggle")
    chrome.click(".o_azure_ad_manage")
    chrome.click(".o_azure_ad_sync_now")
    chrome.wait(".o_form_view .o_azure_ad_error", "consent again")
    chrome.click(".o_notification .o_notification_close")  # the page says it too
    take(chrome, out, "11_error_manage_page")
    chrome.goto(customer_url)
    chrome.scroll_to(".o_notebook")
    chrome.wait(".o_azure_ad_error .o_azure_ad_reconnect")
    take(chrome, out, "12_error_customer_form")
    run_partner(demo, chrome, out)


def run_partner(demo, chrome, out):
    """Connecting through the partner tenant (GDAP): Settings, Microsoft's sign-in for the
    partner administrator, the partner's customers with their proposals, one confirmed."""
    base = demo.base_url
    # 13. Settings › Azure AD Contacts: the way in.
    chrome.goto(f"{base}/odoo/settings#azure_ad_contacts")
    chrome.scroll_to(".o_setting_box", "Connect every customer at once")
    take(chrome, out, "13_partner_settings")
    chrome.click(".o_azure_ad_partner_open")
    # 14. Microsoft's sign-in (the fake): the partner administrator, then the permissions.
    chrome.click(".o_azure_ad_partner_sign_in")
    chrome.wait("#login")
    chrome.eval("document.getElementById('login').value = 'nancy.davolio@northwind-it.example'")
    chrome.click("#next")
    chrome.wait("#accept")
    take(chrome, out, "14_partner_permissions")
    chrome.click("#accept")
    # 15. Back in Odoo: the partner's customers, each with the Odoo customer proposed.
    chrome.wait("div[name=customer_ids] .o_data_row", "Verified domain")
    chrome.scroll_to("div[name=customer_ids]")
    take(chrome, out, "15_partner_customers")
    # 16. Fabrikam confirmed: connected through the partner, its first sync in the background.
    chrome.click("div[name=customer_ids] .o_data_row .o_azure_ad_partner_confirm")
    chrome.wait(".o_notification", "connected through the partner tenant")
    take(chrome, out, "16_partner_confirmed")


def main():
    # `kill` stops the demo too: the cleanup below runs on SIGTERM as on Ctrl+C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--database", default="azure_ad_screenshots")
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    demo = Demo(args.database)
    db = demo.write_conf()
    chrome = None
    try:
        demo.start(db)
        chrome = Chrome()
        run(demo, chrome, args.out.resolve())
    finally:
        if chrome:
            chrome.close()
        demo.stop()
    if not args.keep_db:
        demo.drop_database(db)
        demo.conf.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
