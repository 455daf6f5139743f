"""The benchmark's own logic (bench/): the targets when a run leaves floors out, and the tenant
kept between runs. Plain pytest functions, no Odoo: run with
``python -m pytest -p no:odoo tests/test_bench.py``. (That the benchmark runs: bin/test's smoke run.)
"""

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (unlike `python -m pytest`) doesn't add the cwd
    sys.path.insert(0, str(ROOT))

from bench import report, run

USERS = 5000


def phase(seconds, rss_mib=150, count=USERS, **extra):
    return {
        "seconds": seconds,
        "cpu_seconds": seconds * 0.8,
        "count": count,
        "rss_peak_kb": rss_mib * report.MIB,
        "rss_base_kb": 130 * report.MIB,
        **extra,
    }


def sync(seconds, users_pages, delta, graph_requests, **writes):
    return phase(
        seconds,
        fake={"users": users_pages, "delta": delta, "token": 0, "openid": 1},
        graph_requests=graph_requests,
        writes=writes,
    )


def results():
    """A run at N = 5,000 and 500 ms in which every target passes (see README › Benchmark)."""
    return {
        "setup": {"seconds": 0.0, "postgresql": "15.20"},
        "sync_first": sync(5.9, 6, 1, 7, inserted=USERS),
        "floor_create": phase(11.3, rss_mib=165, writes={"inserted": USERS}),
        "floor_create_ctx": phase(5.5, writes={"inserted": USERS}),
        "floor_fetch": phase(3.2, rss_mib=0, fake={"users": 6, "delta": 0, "token": 1, "openid": 0}),
        "sync_unchanged": sync(0.76, 0, 1, 1),
        "floor_search_read": phase(0.12),
        "sync_changed": sync(0.76, 0, 1, 1, updated=50),
        "floor_write": phase(0.08, count=50, writes={"updated": 50}),
        "floor_write_ctx": phase(0.05, count=50, writes={"updated": 50}),
        "sync_full": sync(3.9, 6, 1, 7),
    }


def by_number(targets):
    return {target.name.split()[0]: target for target in targets}


def test_every_target_is_measured_when_no_floor_is_left_out(capsys):
    targets = by_number(report.print_report(results(), USERS, 500))
    assert {number: t.verdict for number, t in targets.items()} == {
        "P1": "PASS", "P2": "PASS", "P3": "n/a ", "P4": "PASS",
        "P5": "PASS", "P6": "PASS", "P7": "PASS", "P8": "PASS",
    }  # fmt: skip
    assert all(target.measured for target in targets.values())
    assert "not measured" not in capsys.readouterr().out


def test_targets_against_a_floor_left_out_are_not_measured_neither_passed_nor_failed(capsys):
    """bin/bench --skip-default-floor: P1 is measured against the default-context create
    floor; P4 against the sync's-context one instead; the others still are what they were."""
    measured = by_number(report.targets(results(), USERS, 500))
    left_out = results()
    del left_out["floor_create"]
    targets = by_number(report.print_report(left_out, USERS, 500))
    out = capsys.readouterr().out
    for number in ("P1",):
        assert (targets[number].measured, targets[number].passed, targets[number].verdict) == (
            False,
            None,
            "SKIP",
        )
        assert targets[number].detail.startswith("not measured: the ")
        assert f"SKIP  {targets[number].name}" in out
    for number in ("P2", "P3", "P5", "P6", "P7", "P8"):
        assert targets[number] == measured[number]
    ctx_peak = left_out["floor_create_ctx"]["rss_peak_kb"] / report.MIB
    assert targets["P4"].measured
    assert f"{ctx_peak:.0f} MiB (sync's-context create floor" in targets["P4"].detail
    # --check fails on a missed target only: a target not measured is none.
    assert not any(target.passed is False for target in targets.values())
    rows = [line for line in out.splitlines() if "not measured (--skip-default-floor)" in line]
    assert [row.strip().split("  ")[0] for row in rows] == ["floor: create, default context"]


def test_a_target_missed_with_a_floor_left_out_still_fails():
    left_out = results()
    del left_out["floor_create"]
    left_out["sync_first"]["seconds"] = 7.0  # 1.27 × the sync's-context floor
    targets = by_number(report.targets(left_out, USERS, 500))
    assert (targets["P6"].passed, targets["P6"].verdict) == (False, "FAIL")


def test_the_options_are_understood():
    args = run.parse_args(["--conf", "x.conf", "--db", "x"])
    assert (args.reuse_tenant, args.skip_default_floor) == (False, False)
    args = run.parse_args(["--conf", "x.conf", "--db", "x", "--reuse-tenant", "--skip-default-floor"])
    assert (args.reuse_tenant, args.skip_default_floor) == (True, True)
    assert run.DEFAULT_FLOORS == ("floor_create",)


@pytest.fixture
def generations(monkeypatch):
    """The tenants the benchmark generates (the generator runs for real: a few users)."""
    calls = []
    generate = run.subprocess.run

    def counted(command, **kwargs):
        calls.append(command)
        return generate(command, **kwargs)

    monkeypatch.setattr(run.subprocess, "run", counted)
    return calls


def test_a_tenant_is_reused_only_when_asked_and_generated_the_same_way(tmp_path, monkeypatch, generations):
    first = run.prepare_tenant(tmp_path, 12)
    assert len(generations) == 1 and first.exists()
    content = first.read_bytes()
    assert b'"userPrincipalName"' in content and content.count(b'"accountEnabled"') == 12
    # Without being asked, the tenant is generated again (to the same place: the same content).
    assert run.prepare_tenant(tmp_path, 12) == first
    assert len(generations) == 2 and first.read_bytes() == content
    # Asked: taken as it is.
    first.write_bytes(content + b"\n")  # proof that it is not written again
    assert run.prepare_tenant(tmp_path, 12, reuse=True) == first
    assert len(generations) == 2 and first.read_bytes() == content + b"\n"
    # Another N is another tenant.
    other = run.prepare_tenant(tmp_path, 13, reuse=True)
    assert other != first and len(generations) == 3
    # A changed generator: the tenant kept for N is not reused, and is replaced.
    generator = tmp_path / "generate.py"
    generator.write_text(run.GENERATOR.read_text() + "\n# changed\n")
    monkeypatch.setattr(run, "GENERATOR", generator)
    changed = run.prepare_tenant(tmp_path, 12, reuse=True)
    assert changed != first and len(generations) == 4
    assert sorted(path.name for path in tmp_path.glob("tenant-*")) == sorted([changed.name, other.name])


def test_an_interrupted_generation_leaves_nothing_to_reuse(tmp_path, monkeypatch):
    def interrupted(command, **kwargs):
        Path(command[command.index("--out") + 1]).write_text('{"users": [')
        raise KeyboardInterrupt

    monkeypatch.setattr(run.subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run.prepare_tenant(tmp_path, 12, reuse=True)
    assert not run.tenant_path(tmp_path, 12).exists()
