"""One benchmark phase in a fresh Odoo process: ``python -m bench.phases PHASE CONFIG.json``.

The process loads the registry, notes its RSS, runs the phase and prints one JSON line:
seconds, RSS after loading the registry, peak RSS of the whole process (``VmHWM``), and
the rows of ``res_partner`` its transaction inserted, updated and deleted
(``pg_stat_xact_user_tables``). A sync is timed up to and including its commit; a floor up to
its flush, and is then rolled back (so the sync, not the floor, pays for a commit).
"""

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psutil

from odoo import api
from odoo.modules.registry import Registry
from odoo.tools import SQL, config, split_every

ADMIN_UID = 2  # base.user_admin: an administrator calling over RPC, as the API does
BATCH = 1000
READ_FIELDS = ["name", "email", "function", "mobile", "azure_ad_object_id", "azure_ad_synced"]
WRITE_FIELDS = {"jobTitle": "function", "mobilePhone": "mobile"}  # Graph -> res.partner


@contextmanager
def measured(cfg, phase, result):
    """Times the block; with cfg["profile"], pyinstrument records it into the output folder."""
    profiler = None
    if cfg.get("profile"):
        from pyinstrument import Profiler  # a dev tool, imported only when asked

        profiler = Profiler(interval=0.001)
        profiler.start()
    started, cpu_started = time.perf_counter(), time.process_time()
    yield
    result["seconds"] = time.perf_counter() - started
    result["cpu_seconds"] = time.process_time() - cpu_started  # this process only, not PostgreSQL's
    if profiler:
        profiler.stop()
        out = Path(cfg["out_dir"]) / f"profile-{phase}"
        out.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
        out.with_suffix(".html").write_text(profiler.output_html())


def partner_writes(cr):
    """Rows of res_partner this transaction inserted, updated and deleted so far (flush first)."""
    cr.execute(
        "SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_xact_user_tables WHERE relname = 'res_partner'"
    )
    return dict(zip(("inserted", "updated", "deleted"), cr.fetchone(), strict=True))


def undo(cr, result):
    """A floor leaves no trace: the rows it wrote are counted, then rolled back, so that the
    next phase finds the same data (VACUUM runs between phases)."""
    result["writes"] = partner_writes(cr)
    cr.rollback()
    return result


def sync_context(env):
    """The environment the sync applies its plan with (res.partner._azure_ad_apply_plan)."""
    from odoo.addons.azure_ad_contacts.models.res_partner import SYNC_CONTEXT

    return env["res.partner"].sudo().with_context(**SYNC_CONTEXT)


def _read_json(path):
    """A JSON file's content, parsed from the file: a large tenant is not held as text too."""
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def setup(env, cfg):
    """Settings pointed at the fake, the customer with a connected integration, and the exact
    create values the sync will use (for the create floor)."""
    from odoo.addons.azure_ad_contacts.utils import reconcile

    params = env["ir.config_parameter"].sudo()
    for key in ("client_id", "client_secret", "login_endpoint", "graph_endpoint"):
        params.set_param(f"azure_ad_contacts.{key}", cfg[key])
    customer = env["res.partner"].create({"name": "Bench Customer Ltd", "is_company": True})
    integration = env["azure.ad.integration"].create({"partner_id": customer.id})
    # Connected without a consent (the fake tenant has one): only superuser mode writes these.
    integration.sudo().write({"state": "connected", "tenant_id": cfg["tenant_id"]})
    users = _read_json(cfg["tenant_file"])["users"]
    common = {
        "azure_ad_integration_id": integration.id,
        "azure_ad_synced": True,
        "parent_id": customer.id,
        "type": "contact",
        "is_company": False,
    }
    creates = [{**values, **common} for values in reconcile.build_plan([users], []).creates]
    del users
    with open(cfg["create_values_file"], "w", encoding="utf-8") as out:
        json.dump(creates, out)
    env.cr.commit()
    env.cr.execute("SHOW server_version")
    return {
        "customer_id": customer.id,
        "integration_id": integration.id,
        "count": len(creates),
        "postgresql": env.cr.fetchone()[0],
    }


def _floor_create(partners, cfg, phase):
    values = _read_json(cfg["create_values_file"])
    result = {"count": len(values)}
    with measured(cfg, phase, result):
        for batch in split_every(BATCH, values, list):
            partners.create(batch)
        partners.env.flush_all()
    return undo(partners.env.cr, result)


def floor_create(env, cfg):
    """Plain batched create in the default context: Odoo's own floor (target P1). In superuser
    mode, as the sync creates: only it may set the Azure AD mark and link the values carry."""
    return _floor_create(env["res.partner"].sudo(), cfg, "floor_create")


def floor_create_ctx(env, cfg):
    """The same create in the sync's environment (sudo, no chatter, no tracking)."""
    return _floor_create(sync_context(env), cfg, "floor_create_ctx")


def _floor_write(partners, cfg, phase):
    changes = json.loads(Path(cfg["changes_file"]).read_text())
    cr = partners.env.cr
    cr.execute(
        SQL(
            "SELECT id, azure_ad_object_id FROM res_partner"
            " WHERE parent_id = %s AND azure_ad_object_id = ANY(%s)",
            cfg["customer_id"],
            list(changes),
        )
    )
    values = {
        partner_id: {field: changes[object_id][key] for key, field in WRITE_FIELDS.items()}
        for partner_id, object_id in cr.fetchall()
    }
    result = {"count": len(values)}
    with measured(cfg, phase, result):
        for partner in partners.browse(list(values)):  # one recordset: shared prefetching
            partner.write(values[partner.id])
        partners.env.flush_all()
    return undo(cr, result)


def floor_write(env, cfg):
    """Plain write of the changed values, record by record (each has its own), default context."""
    return _floor_write(env["res.partner"], cfg, "floor_write")


def floor_write_ctx(env, cfg):
    return _floor_write(sync_context(env), cfg, "floor_write_ctx")


def floor_search_read(env, cfg):
    """Plain search_read of the customer's contacts: what reading them costs in Odoo."""
    result = {}
    with measured(cfg, "floor_search_read", result):
        rows = env["res.partner"].search_read([("parent_id", "=", cfg["customer_id"])], READ_FIELDS)
        result["writes"] = partner_writes(env.cr)
    result["count"] = len(rows)
    return result


def sync(env, cfg, phase):
    """`sync_contacts()` as an administrator calls it over RPC, then the commit."""
    integration = env["azure.ad.integration"].browse(cfg["integration_id"])
    result = {}
    with measured(cfg, phase, result):
        [outcome] = integration.sync_contacts()
        env.flush_all()
        result["writes"] = partner_writes(env.cr)
        committing = time.perf_counter()
        env.cr.commit()
        result["commit_seconds"] = time.perf_counter() - committing
    logs = env["azure.ad.sync.log"]
    log = logs.search([("integration_id", "=", integration.id)], order="id desc", limit=1)
    # Untimed: one contact per address and per Entra user, however large the tenant.
    env.cr.execute(
        SQL(
            "SELECT count(*), count(DISTINCT lower(email)), count(DISTINCT azure_ad_object_id)"
            " FROM res_partner WHERE parent_id = %s",
            cfg["customer_id"],
        )
    )
    result.update(
        contacts=list(env.cr.fetchone()),
        outcome=outcome,
        count=sum(outcome[key] for key in ("created", "updated", "unchanged")),
        graph_requests=log.graph_requests,
        log_state=log.state,
        error=log.error or None,
        sync_mode=log.sync_mode,
    )
    return result


def sync_full(env, cfg):
    """"Full sync": the scheduled safety net, listing every user again."""
    return sync(env(context={"azure_ad_full_sync": True}), cfg, "sync_full")


PHASES = {
    "setup": setup,
    "floor_create": floor_create,
    "floor_create_ctx": floor_create_ctx,
    "floor_write": floor_write,
    "floor_write_ctx": floor_write_ctx,
    "floor_search_read": floor_search_read,
    "sync_first": lambda env, cfg: sync(env, cfg, "sync_first"),
    "sync_unchanged": lambda env, cfg: sync(env, cfg, "sync_unchanged"),
    "sync_changed": lambda env, cfg: sync(env, cfg, "sync_changed"),
    "sync_full": sync_full,
}


def peak_rss_kb():
    """This process's peak RSS in KiB. Not ru_maxrss: Linux carries that over from the
    process that started this one (fork, then exec), here the benchmark's, which has held the
    whole tenant by then; VmHWM is this program's own."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def main():
    phase, cfg_path = sys.argv[1:3]
    cfg = json.loads(Path(cfg_path).read_text())
    config.parse_config(
        ["-c", cfg["odoo_conf"], "-d", cfg["db"], "--log-level=warn"], setup_logging=True
    )
    registry = Registry(cfg["db"])
    rss_base_kb = psutil.Process().memory_info().rss // 1024
    with registry.cursor() as cr:
        result = PHASES[phase](api.Environment(cr, ADMIN_UID, {}), cfg)
    result.update(
        phase=phase, rss_base_kb=rss_base_kb, rss_peak_kb=peak_rss_kb()
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
