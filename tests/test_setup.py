"""The setup script (scripts/lib.sh) as a newcomer's machine meets it: Odoo's source in either
layout, addon wheels beside it, and a port freed by a stopped demo."""

import configparser
import importlib
import socket
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import odoo.release
from odoo.tools import config

ROOT = Path(__file__).resolve().parent.parent


def lib_sh(script, **env):
    """Runs `script` in bash after sourcing scripts/lib.sh; returns the completed process."""
    return subprocess.run(
        ["bash", "-c", f"source scripts/lib.sh && {script}"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "VENV": sys.prefix, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def addons_path_of(conf_file):
    parser = configparser.ConfigParser()
    parser.read(conf_file)
    return parser["options"]["addons_path"].split(",")


@pytest.mark.parametrize("layout", ["nightly archive", "git clone"])
def test_generated_config_names_only_folders_that_exist(tmp_path, layout):
    source = tmp_path / "odoo-18.0"
    (source / "odoo" / "addons").mkdir(parents=True)
    if layout == "git clone":
        (source / "addons").mkdir()
    conf_file = tmp_path / "odoo.conf"
    result = lib_sh(f'write_odoo_conf "{conf_file}" somedb 8069', ODOO_SRC=str(source))
    assert result.returncode == 0, result.stderr
    paths = addons_path_of(conf_file)
    assert paths[0] == str(ROOT)
    assert all(Path(path).is_dir() for path in paths), paths
    assert (str(source / "addons") in paths) == (layout == "git clone")


@pytest.mark.parametrize("layout", ["nightly archive", "git clone"])
def test_the_screenshot_script_names_only_folders_that_exist(tmp_path, monkeypatch, layout):
    screenshots = importlib.import_module("scripts.screenshots")
    source = tmp_path / "odoo-18.0"
    (source / "odoo" / "addons").mkdir(parents=True)
    if layout == "git clone":
        (source / "addons").mkdir()
    monkeypatch.setattr(screenshots, "ODOO_SRC", source)
    paths = screenshots.addons_path().split(",")
    assert paths[0] == str(ROOT) and all(Path(path).is_dir() for path in paths)
    assert (str(source / "addons") in paths) == (layout == "git clone")


def test_the_running_suite_has_no_missing_addons_folder():
    # Odoo only warns about a missing folder at start, then fails every HTTP request.
    paths = config["addons_path"]  # a comma-separated string on 18.0, a list on 19.0
    paths = paths.split(",") if isinstance(paths, str) else paths
    assert all(Path(path).is_dir() for path in paths), paths


def test_odoo_comes_from_the_source_and_addon_wheels_cannot_shadow_it():
    site_packages = Path(sysconfig.get_paths()["purelib"])
    # odoo is a namespace package on 19.0 (no odoo/__init__.py): its release module tells.
    assert not Path(odoo.release.__file__).is_relative_to(site_packages), odoo.release.__file__
    # OCA's wheels install odoo/addons/<name> into site-packages: a namespace portion only.
    assert not (site_packages / "odoo" / "__init__.py").exists()
    # ... and Odoo finds the wheel's addon beside the source's.
    helpdesk = importlib.import_module("odoo.addons.helpdesk_mgmt")
    assert Path(helpdesk.__file__).is_relative_to(site_packages)


def _port_in_time_wait():
    """A port whose listener has closed, with the server's side of a connection in TIME_WAIT
    (as after clicking through the demo and stopping it)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _address = listener.accept()
        accepted.close()  # the server closes first: its side waits in TIME_WAIT
        client.close()
    return port


def test_a_port_with_connections_in_time_wait_is_free():
    port = _port_in_time_wait()
    with socket.socket() as naive, pytest.raises(OSError):
        naive.bind(("0.0.0.0", port))  # what the check did before: refused
    result = lib_sh(f'check_port_free {port} "hint"')
    assert result.returncode == 0, result.stderr


def test_a_port_something_listens_on_is_taken():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = lib_sh(f'check_port_free {port} "Stop it."')
    assert result.returncode == 1
    assert f"port {port} is already taken" in result.stderr and "Stop it." in result.stderr


def test_missing_odoo_source_says_how_to_get_it(tmp_path):
    result = lib_sh("check_odoo_src", ODOO_SRC=str(tmp_path / "nowhere"))
    assert result.returncode == 1
    assert "Odoo source not found" in result.stderr and "ODOO_SRC" in result.stderr
    assert "18.0 or 19.0" in result.stderr
    assert "nightly" in result.stderr and "git clone" in result.stderr


def test_each_series_gets_its_own_virtualenv_and_pins(tmp_path):
    for series in ("18.0", "19.0"):
        source = tmp_path / f"odoo-{series}"
        (source / "odoo").mkdir(parents=True)
        major = series.split(".")[0]
        (source / "odoo" / "release.py").write_text(f"version_info = ({major}, 0, 0, FINAL, 0, '')\n")
        result = lib_sh('echo "$ODOO_SERIES $VENV"', ODOO_SRC=str(source), VENV="")
        assert result.stdout.split() == [series, str(ROOT / f".venv-{series}")], result.stderr
        assert (ROOT / "requirements" / f"odoo-addons-{series}.txt").exists()


def test_ci_fails_when_a_series_source_is_missing(tmp_path):
    result = subprocess.run(
        ["bin/test", "--version"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "CI": "1", "TEST_SERIES": "17.0"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Odoo 17.0 source not found at /opt/odoo-17.0: CI tests every series" in result.stderr
