"""Databases that are slow to make (Odoo's addons installed, an earlier release's data), made once
and kept as PostgreSQL template databases: later runs, CI's fresh clones included, copy them in a
second. A template's name carries a key of everything it was made from, so a change of any of
those makes a new one; the others of its kind are dropped two weeks after they were made."""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
from psycopg2 import sql

import odoo.release
from odoo.tools import config

ROOT = Path(__file__).resolve().parent.parent
ODOO_SRC = Path(odoo.release.__file__).resolve().parent.parent
UNUSED_FOR = 14 * 24 * 3600
PREFIX = "aadc_cache_"


def connect(dbname="postgres"):
    connection = psycopg2.connect(
        dbname=dbname,
        host=config["db_host"] or None,
        port=config["db_port"] or None,
        user=config["db_user"] or None,
        password=config["db_password"] or None,
    )
    connection.autocommit = True
    return connection


def execute(statement, params=(), dbname="postgres"):
    with contextlib.closing(connect(dbname)) as connection, connection.cursor() as cr:
        cr.execute(statement, params)
        return cr.fetchall() if cr.description else None


def odoo_source_key():
    """What identifies the Odoo source in use: its place, its release and its files' dates (an
    unpacked newer nightly, or a pulled clone, changes them)."""
    marks = [str(ODOO_SRC), (ODOO_SRC / "odoo" / "release.py").read_text()]
    files = ("PKG-INFO", "odoo/release.py", "odoo/modules/loading.py", "odoo/addons/base/__manifest__.py")
    for name in files:
        path = ODOO_SRC / name
        if path.exists():
            marks.append(f"{name} {path.stat().st_mtime_ns} {path.stat().st_size}")
    return "\n".join(marks)


def key_of(*parts):
    """A short key of strings and files (their content)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.read_bytes() if isinstance(part, Path) else str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:12]


def pip_environment(**extra):
    """The environment for pip: without the fake Microsoft's CA bundle, which the suite puts in
    REQUESTS_CA_BUNDLE for Odoo, and which pip would trust instead of the package index's CA."""
    left_out = ("REQUESTS_CA_BUNDLE", "ODOO_SERIES")
    return {**{key: value for key, value in os.environ.items() if key not in left_out}, **extra}


def config_file():
    """The suite's Odoo configuration file (Odoo 19 names it config["config"])."""
    return config.get("config") or config.rcfile


def odoo_bin(*args, python=sys.executable, env=None, timeout=900, cwd=None):
    """odoo-bin with the suite's configuration (database server, data folder), `args` after it;
    its output is returned, and shown in the failure when it fails."""
    command = [str(python), str(ODOO_SRC / "odoo-bin"), "-c", config_file(), *map(str, args)]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout,
        cwd=cwd or ROOT, check=False, stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result.stdout


def odoo_shell(database, script, addons_path, python=sys.executable, env=None):
    """Runs the Python `script` in `odoo-bin shell` on `database` (`env` is Odoo's environment
    there); returns the JSON the script prints on its last line."""
    command = [
        str(python), str(ODOO_SRC / "odoo-bin"), "shell", "-c", config_file(), "-d", database,
        f"--addons-path={addons_path}", "--log-level=warn", "--no-http",
    ]
    result = subprocess.run(
        command, input=script, capture_output=True, text=True, env={**os.environ, **(env or {})},
        timeout=900, cwd=ROOT, check=False,
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise AssertionError(f"odoo-bin shell failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return json.loads(lines[-1])


def addons_path(*folders):
    """Odoo's own addons (both source layouts) after `folders`."""
    paths = [*map(str, folders), str(ODOO_SRC / "odoo" / "addons")]
    if (ODOO_SRC / "addons").is_dir():
        paths.append(str(ODOO_SRC / "addons"))
    return ",".join(paths)


def exists(dbname):
    return bool(execute("SELECT 1 FROM pg_database WHERE datname = %s", [dbname]))


def drop(dbname):
    if exists(dbname):
        execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE false ALLOW_CONNECTIONS true").format(
            sql.Identifier(dbname)))
        execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
    shutil.rmtree(Path(config["data_dir"]) / "filestore" / dbname, ignore_errors=True)


def copy(template, dbname):
    """`dbname` anew as a copy of `template`."""
    drop(dbname)
    create = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(*map(sql.Identifier, (dbname, template)))
    for attempt in range(30):
        try:
            execute(create)
            return
        except psycopg2.errors.ObjectInUse:  # another run copies it at this very moment
            time.sleep(0.5 + attempt * 0.1)
    raise AssertionError(f"the template {template} stayed busy")


def note(dbname):
    """What was noted on a cached database when it was made (its comment)."""
    query = "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s"
    rows = execute(query, [dbname])
    return json.loads(rows[0][0]) if rows and rows[0][0] else {}


def cached(kind, key, make, max_age=None):
    """The name of the template `kind`+`key`, made when missing (or older than `max_age`
    seconds): `make(dbname)` builds it in a database of its own, which then becomes the template
    (frozen: no connections) and takes the dict `make` returns as its note."""
    name = f"{PREFIX}{kind}_{key}"

    def fresh():
        return exists(name) and (max_age is None or time.time() - note(name).get("built", 0) < max_age)

    if not fresh():
        building = f"{PREFIX}build_{os.getpid()}_{kind}"[:63]
        drop(building)
        try:
            noted = {**(make(building) or {}), "built": time.time()}
            if not fresh():  # another run may have made it meanwhile: theirs is as good
                _freeze(building, name, noted)
        finally:
            drop(building)
    _drop_unused(kind, keep=name)
    return name


def _freeze(building, name, noted):
    """The database `building` becomes the template `name`, with its note."""
    building, template = sql.Identifier(building), sql.Identifier(name)
    execute(sql.SQL("COMMENT ON DATABASE {} IS {}").format(building, sql.Literal(json.dumps(noted))))
    drop(name)
    execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(building, template))
    execute(sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(template))


def _drop_unused(kind, keep):
    """Templates of `kind` made from anything else more than two weeks ago."""
    for (name,) in execute("SELECT datname FROM pg_database WHERE datname LIKE %s AND datname != %s",
                           [f"{PREFIX}{kind}_%", keep]):
        if time.time() - note(name).get("built", 0) > UNUSED_FOR:
            with contextlib.suppress(psycopg2.Error):
                drop(name)


# Attachments in the database, not the filestore: a copy of the template is then complete.
ATTACHMENTS_IN_DATABASE = """
env["ir.config_parameter"].set_param("ir_attachment.location", "db")
env["ir.attachment"].force_storage()
env.cr.commit()
print("{}")
"""


def with_modules(modules):
    """A template with Odoo's (and OCA's) `modules` installed, without demo data."""
    modules = sorted(modules)
    pinned = ROOT / "requirements" / f"odoo-addons-{odoo.release.series}.txt"

    def make(dbname):
        odoo_bin("-d", dbname, "-i", ",".join(modules), "--without-demo=all", "--stop-after-init",
                 "--log-level=warn", f"--addons-path={addons_path()}")
        odoo_shell(dbname, ATTACHMENTS_IN_DATABASE, addons_path())
        return {"modules": modules}

    return cached(f"odoo{key_of(*modules)[:4]}", key_of(odoo_source_key(), pinned, *modules), make)
