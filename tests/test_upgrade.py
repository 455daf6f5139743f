"""Upgrades keep data. A database made by an earlier release of the addons — customers connected
to the fake Microsoft, synced contacts, options, run logs, delta state, helpdesk tickets, a queued
sync — is upgraded with `-u` to the current code: every row and value it had is still there
(unless an upgrade step changes it on purpose, see CHANGED_ON_PURPOSE), and its next sync writes
nothing.

The earlier releases' code comes from this repository's history (`git archive`); the database each
one made is built once and kept as a template (tests/cached_databases.py), so a run only copies it,
upgrades it and syncs it."""

import ast
import io
import subprocess
import tarfile

import pytest
from psycopg2 import sql

import odoo.release
from odoo.tests import get_db_name

from fake_entra.server import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

from . import cached_databases
from .cached_databases import ROOT
from .common import CONTOSO_ID, FABRIKAM_ID, fake_entra

ADDONS = ("azure_ad_contacts", "azure_ad_contacts_helpdesk", "azure_ad_contacts_queue")
# Every earlier release a database may come from: the first commit where the addon installed, and
# the last commit of each earlier manifest version. A new manifest version adds the last commit of
# the version before it here (test_every_earlier_version_has_a_release_to_upgrade_from says so).
RELEASES = {
    "first": ("1fec12aa226fe16d6c4e9149870dfce89188642e", "the first commit where the addon installs"),
    "1.0.0": (
        "e89ede3afebbc7fedaadc7dbac71fefac382acdb",
        "1.0.0 as main had it when 1.1.0's work began: delta sync, the helpdesk and queue bridges",
    ),
    "1.1.0": (
        "84e96e85561cd1d6e8db588f6bb4aaac6b1deaf3",
        "1.1.0 as main had it when 1.2.0's work began: other people's edits, self-healing, Odoo 19.0, GDAP",
    ),
}


def customer_company(contact, after):
    """1.1.0: synced contacts are in their customer's company (migrations/1.1.0/post-10)."""
    if contact["azure_ad_integration_id"] and contact["company_id"] is None and contact["parent_id"]:
        return after["res_partner"][contact["parent_id"]]["company_id"]
    return contact["company_id"]


def without_integration_nothing(column):
    """1.1.0: a contact without an integration has no Azure AD mark or link (post-20)."""
    return lambda contact, after: None if contact["azure_ad_integration_id"] is None else contact[column]


# 1.1.0: of a stored user the options filter out, only what decided it is kept (post-40).
FILTERED_KEEP = {
    "guest": {"id", "userType", "accountEnabled", "assignedLicenses"},
    "disabled": {"id", "userType", "accountEnabled", "assignedLicenses"},
    "unlicensed": {"id", "userType", "accountEnabled", "assignedLicenses"},
    "not_in_group": {"id", "userType", "accountEnabled", "assignedLicenses"},
    "excluded": {"id", "userType", "accountEnabled", "assignedLicenses", "mail", "proxyAddresses",
                 "userPrincipalName"},
}


def filtered_user_data(row, _after):
    keep = FILTERED_KEEP.get(row["skip_reason"])
    return row["data"] if keep is None else {k: v for k, v in row["data"].items() if k in keep}


def filtered_user_email_key(row, _after):
    filtered = row["skip_reason"] in FILTERED_KEEP and row["skip_reason"] != "excluded"
    return None if filtered else row["email_key"]


# What an upgrade step changes on purpose, by the release whose steps do it: {"table.column":
# what the row's value becomes, given the row before the upgrade and the tables after it}. A
# column named here may also be gone (an upgrade step that moves its data elsewhere checks it there).
CHANGED_ON_PURPOSE = {
    "1.1.0": {
        "res_partner.company_id": customer_company,
        "azure_ad_directory_user.data": filtered_user_data,
        "azure_ad_directory_user.email_key": filtered_user_email_key,
        **{
            f"res_partner.{column}": without_integration_nothing(column)
            for column in ("azure_ad_synced", "azure_ad_object_id", "azure_ad_guest", "azure_ad_archived",
                           "azure_ad_synced_email")
        },
    },
    # The contacts as the last run left them are rows of their own (post-10 drops the document).
    "1.2.0": {"azure_ad_integration.delta_rest": lambda _row, _after: None},
}


def changed_on_purpose(version):
    """What the upgrade steps after `version` (a release) change on purpose."""
    def key(release):
        return tuple(int(part) for part in release_of(release).split("."))

    return {
        column: expected
        for release, changes in CHANGED_ON_PURPOSE.items() if key(release) > key(version)
        for column, expected in changes.items()
    }


# A template's delta links stay valid for Microsoft's seven days: rebuilt before.
TEMPLATE_MAX_AGE = 6 * 24 * 3600
SEED, NEXT_SYNC = ROOT / "tests" / "upgrade" / "seed.py", ROOT / "tests" / "upgrade" / "next_sync.py"


def git(*args, text=True):
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=text, check=False)


def release_code(commit):
    """The addons as `commit` had them, unpacked from git history into .local/releases/<commit>/."""
    if git("cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        pytest.fail(
            f"commit {commit} (an earlier release) is not in this clone's history: the upgrade test takes "
            "the earlier code from git history. A shallow clone lacks it: `git fetch --unshallow` (or clone "
            "without --depth)."
        )
    folder = ROOT / ".local" / "releases" / commit
    if not folder.is_dir():
        present = git("ls-tree", "--name-only", commit).stdout.split()
        archive = git("archive", "--format=tar", commit, *[a for a in ADDONS if a in present], text=False)
        assert archive.returncode == 0, archive.stderr
        partial = folder.with_name(f"{commit}.partial")
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(partial, filter="data")
        partial.rename(folder)
    return folder


def manifest_version(folder, addon="azure_ad_contacts"):
    return ast.literal_eval((folder / addon / "__manifest__.py").read_text())["version"]


def release_of(version):
    """The release a manifest version names, whether it carries a series ("18.0.1.1.0", as
    manifests had before they ran on two series) or not ("1.1.0")."""
    return ".".join(version.split(".")[-3:])


def fake_microsoft():
    """The session's fake, as each release meets it: the fake's own tenants, consent granted."""
    fake = fake_entra()
    fake.reset()
    for tenant in (CONTOSO_ID, FABRIKAM_ID):
        fake.set_consent(tenant, True)
    return fake


def shell_env(fake):
    return {
        "FAKE_ENTRA_URL": fake.base_url, "REQUESTS_CA_BUNDLE": fake.certs.bundle_file,
        "AZURE_CLIENT_ID": DEFAULT_CLIENT_ID, "AZURE_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "CONTOSO_TENANT": CONTOSO_ID, "FABRIKAM_TENANT": FABRIKAM_ID,
    }


def release_database(name):
    """The template database `name`'s release made (built when missing), and what it noted."""
    commit = RELEASES[name][0]
    code = release_code(commit)
    addons = [addon for addon in ADDONS if (code / addon).is_dir()]
    dependencies = ["contacts", "mail"] + (["helpdesk_mgmt", "queue_job"] if len(addons) > 1 else [])

    def make(database):
        cached_databases.copy(cached_databases.with_modules(dependencies), database)
        path = cached_databases.addons_path(code)
        cached_databases.odoo_bin("-d", database, "-i", ",".join(addons), "--without-demo=all",
                                  "--stop-after-init", "--log-level=warn", f"--addons-path={path}")
        fake = fake_microsoft()
        made = cached_databases.odoo_shell(database, SEED.read_text(), path, env=shell_env(fake))
        return {"release": name, "commit": commit, "fake": fake.base_url, "made": made}

    fake_files = sorted((ROOT / "fake_entra").rglob("*.[pj][ys]*"))
    key = cached_databases.key_of(commit, cached_databases.odoo_source_key(), SEED, *fake_files,
                                  ROOT / "requirements" / f"odoo-addons-{odoo.release.series}.txt")
    template = cached_databases.cached(f"release_{name.replace('.', '')}", key, make, TEMPLATE_MAX_AGE)
    return template, cached_databases.note(template)


def tables(database):
    """{table: WHERE clause} of the rows that hold the addons' data: every table of a model the
    addons define or extend (all rows), the relation tables of their many2many fields, their
    settings, sync jobs and chatter."""
    def query(statement, params=(list(ADDONS),)):
        return [name for (name,) in cached_databases.execute(statement, params, database)]

    models = query(
        "SELECT m.model FROM ir_model m JOIN ir_model_data d ON d.model = 'ir.model' AND d.res_id = m.id "
        "WHERE d.module = ANY(%s) AND NOT m.transient"
    )
    relations = query(
        "SELECT f.relation_table FROM ir_model_fields f "
        "JOIN ir_model_data d ON d.model = 'ir.model.fields' AND d.res_id = f.id "
        "WHERE d.module = ANY(%s) AND f.ttype = 'many2many' AND f.relation_table IS NOT NULL"
    )
    existing = query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", ())
    chattered = "model IN ({})".format(", ".join(f"'{model}'" for model in models))
    found = {
        **{model.replace(".", "_"): "TRUE" for model in models},  # abstract ones have no table
        **{relation: "TRUE" for relation in relations},
        "ir_config_parameter": "key LIKE 'azure\\_ad\\_contacts.%'",
        "mail_message": chattered,
        "mail_tracking_value": f"mail_message_id IN (SELECT id FROM mail_message WHERE {chattered})",
        "queue_job": "model_name LIKE 'azure.ad.%'",
    }
    return {table: where for table, where in found.items() if table in existing}


def plain(value):
    return bytes(value) if isinstance(value, memoryview) else value


def snapshot(database):
    """{table: {id: {column: value}}} of the addons' data."""
    result = {}
    with cached_databases.connect(database) as connection, connection.cursor() as cr:
        for table, where in tables(database).items():
            cr.execute(sql.SQL("SELECT * FROM {} WHERE " + where).format(sql.Identifier(table)))
            columns = [column.name for column in cr.description]
            rows = [dict(zip(columns, map(plain, row), strict=True)) for row in cr]
            key = "id" if "id" in columns else None
            result[table] = {row[key] if key else tuple(row.values()): row for row in rows}
    connection.close()
    return result


def indexes(database):
    """{table: {index name: definition}} of the tables the sync writes a row per user or
    contact in (the other azure_ad_* tables also have the bridges' columns, where installed)."""
    result = {}
    with cached_databases.connect(database) as connection, connection.cursor() as cr:
        cr.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes"
            " WHERE tablename IN ('azure_ad_directory_user', 'azure_ad_contact_state')"
        )
        for table, name, definition in cr.fetchall():
            result.setdefault(table, {})[name] = definition
    connection.close()
    return result


def same(value, other):
    """Equal as Odoo reads them (an empty boolean or number is False or 0)."""
    return value == other or (value in (None, False) and other in (None, False))


def differences(before, after, changed_on_purpose=None, stamps=True):
    """What `after` lost or changed of `before`: a value that differs, but where
    `changed_on_purpose` says what it becomes (and, with `stamps` False, the write stamps)."""
    changed_on_purpose = changed_on_purpose or {}
    found = []
    for table, rows in before.items():
        if table not in after:
            found.append(f"table {table} is gone")
            continue
        for key, row in rows.items():
            now = after[table].get(key)
            if now is None:
                found.append(f"{table} {key} is gone")
                continue
            for column, value in row.items():
                expected = changed_on_purpose.get(f"{table}.{column}")
                if expected is None and column in ("write_date", "write_uid") and not stamps:
                    continue  # Odoo's stamp of a write
                if expected is not None:
                    value = expected(row, after)
                if column not in now:
                    if expected is None:
                        found.append(f"{table}.{column} is gone")
                elif not same(now[column], value):
                    found.append(f"{table} {key} {column}: {value!r} expected, {now[column]!r} found")
    return found


def point_at(database, old_url, new_url):
    """This run's fake Microsoft listens elsewhere than the one the template was made with: its
    address (in the settings, delta links and token caches) is replaced, as an administrator
    would configure a moved endpoint; nothing else changes."""
    text_columns = cached_databases.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb') AND ("
        "table_name LIKE 'azure\\_ad\\_%%' OR (table_name, column_name) = ('ir_config_parameter', 'value'))",
        (), database,
    )
    old_host, new_host = old_url.removeprefix("https://"), new_url.removeprefix("https://")
    with cached_databases.connect(database) as connection, connection.cursor() as cr:
        for table, column, data_type in text_columns:
            as_text = sql.SQL("{}::text").format(sql.Identifier(column))
            replaced = sql.SQL("replace({}, %s, %s)").format(as_text)
            if data_type == "jsonb":
                replaced = sql.SQL("({})::jsonb").format(replaced)
            update = sql.SQL("UPDATE {} SET {} = {} WHERE {} LIKE %s").format(
                sql.Identifier(table), sql.Identifier(column), replaced, as_text
            )
            cr.execute(update, [old_host, new_host, f"%{old_host}%"])
    connection.close()


@pytest.mark.parametrize("name", RELEASES)
def test_a_database_of_an_earlier_release_upgrades_keeping_its_data(name):
    commit, what = RELEASES[name]
    version = manifest_version(release_code(commit))
    # A manifest version with a series ("18.0.1.0.0") is for that series only.
    if version.count(".") == 4 and not version.startswith(f"{odoo.release.series}."):
        pytest.skip(f"release {name} ({what}) is for Odoo {version[:4]}, this is Odoo {odoo.release.series}")
    template, noted = release_database(name)
    made = noted["made"]
    assert made["contacts"] > 20 and made["linked"] > 20 and "failed" in made["states"], made
    assert {"connect", "api", "manual", "cron"} <= set(made["triggers"]), made
    database = f"{get_db_name()}_upgrade_{name.replace('.', '')}"
    cached_databases.copy(template, database)
    fake = fake_microsoft()
    point_at(database, noted["fake"], fake.base_url)

    before = snapshot(database)
    current = cached_databases.addons_path(ROOT)
    upgrade = ["-u", "azure_ad_contacts", "--stop-after-init", "--log-level=warn", f"--addons-path={current}"]
    cached_databases.odoo_bin("-d", database, *upgrade)
    upgraded = snapshot(database)
    # Odoo stamps the rows it fills new stored fields of: a write, nothing lost.
    lost = differences(before, upgraded, changed_on_purpose(version), stamps=False)
    assert not lost, f"the upgrade from {name} lost or changed:\n" + "\n".join(lost[:40])
    # These tables end up indexed as a fresh install indexes them (Odoo creates the indexes
    # fields ask for, but keeps those no field asks for any more).
    assert indexes(database) == indexes(get_db_name())

    fake.reset_stats()
    synced = cached_databases.odoo_shell(database, NEXT_SYNC.read_text(), current, env=shell_env(fake))
    after_sync = snapshot(database)
    assert len(synced["jobs"]) == made["queued"], synced
    assert len(synced["syncs"]) == 2, synced
    for result in synced["syncs"]:
        assert not result.get("error"), result
        assert (result["created"], result["updated"], result["archived"]) == (0, 0, 0), result
    # The sync's own bookkeeping (its run log, the integration's last run and delta link, the
    # job) is all it writes; the store of the tenant's users is filled by the first sync that has it.
    bookkeeping = {"azure_ad_integration", "azure_ad_sync_log", "queue_job"}
    bookkeeping |= {"mail_message", "mail_tracking_value"}
    if not before.get("azure_ad_directory_user"):
        bookkeeping.add("azure_ad_directory_user")
    if not before.get("azure_ad_contact_state"):  # filled by the first sync after 1.2.0's upgrade
        bookkeeping.add("azure_ad_contact_state")
    written = differences(
        {table: rows for table, rows in upgraded.items() if table not in bookkeeping},
        after_sync,
    )
    new_rows = {
        table: sorted(set(after_sync[table]) - set(rows)) for table, rows in upgraded.items()
        if table not in bookkeeping and set(after_sync[table]) - set(rows)
    }
    assert not written and not new_rows, f"the first sync after the upgrade wrote: {written[:20]} {new_rows}"
    if made["delta"]:  # the kept delta links serve: Microsoft's changes only, no full listing
        counts = fake.stats()["counts"]
        assert counts["users"] == 0 and counts["delta"] >= 2, counts
    cached_databases.drop(database)


def test_every_earlier_version_has_a_release_to_upgrade_from():
    """Each manifest version main has had, but the current one, has a release in RELEASES."""
    log = git("log", "--format=%H", "--", *[f"{addon}/__manifest__.py" for addon in ADDONS])
    if log.returncode != 0 or git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.fail("this clone has no history (shallow?): `git fetch --unshallow` gets it")
    current = {release_of(manifest_version(ROOT, addon)) for addon in ADDONS}
    seen = set()
    for commit in log.stdout.split():
        for addon in ADDONS:
            shown = git("show", f"{commit}:{addon}/__manifest__.py")
            if shown.returncode == 0:
                seen.add(release_of(ast.literal_eval(shown.stdout)["version"]))
    covered = {
        release_of(manifest_version(release_code(commit), addon))
        for commit, _what in RELEASES.values() for addon in ADDONS if (release_code(commit) / addon).is_dir()
    }
    assert seen - current <= covered, f"no release to upgrade from for {sorted(seen - current - covered)}"
