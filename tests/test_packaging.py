"""The wheels, checked the way a user meets them: one per addon, named and depending as OCA's do,
for the Odoo series asked for; installed into a clean virtualenv beside Odoo's source, and from
there into a database."""

import ast
import email.parser
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import odoo.release
from odoo.tests import get_db_name

from . import cached_databases
from .cached_databases import ODOO_SRC, ROOT

_spec = importlib.util.spec_from_file_location("addon_wheel", ROOT / "setup" / "addon_wheel.py")
addon_wheel = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(addon_wheel)
ADDONS = addon_wheel.OWN_ADDONS


def manifest(addon, root=ROOT):
    return ast.literal_eval((root / addon / "__manifest__.py").read_text())


def pip_wheel(out, setup_dir, env=None):
    """`pip wheel` as a user runs it (started, not waited for)."""
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out]
    return subprocess.Popen(
        [*command, setup_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=env or cached_databases.pip_environment(),
    )


def build_wheels(out, root=ROOT, series=None, addons=ADDONS):
    """The wheel of each addon, built side by side from setup/<addon>, for `series` (ODOO_SERIES)."""
    env = cached_databases.pip_environment(**({"ODOO_SERIES": series} if series else {}))
    builds = {addon: pip_wheel(out, root / "setup" / addon, env) for addon in addons}
    for build in builds.values():
        output = build.communicate()[0]
        if build.returncode != 0:
            raise AssertionError(output)
    return {addon: next(Path(out).glob(f"odoo_addon_{addon}-*.whl")) for addon in addons}


def metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.parser.Parser().parsestr(archive.read(name).decode())


def requires(wheel):
    """{canonical name: specifier} of a wheel's dependencies."""
    return {
        canonicalize_name(req.name): str(req.specifier)
        for req in map(Requirement, metadata(wheel).get_all("Requires-Dist") or [])
    }


# The wheels are built for the Odoo series the suite runs on.
SERIES = odoo.release.series


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    try:
        addon_wheel.series_and_version(manifest("azure_ad_contacts")["version"], SERIES)
    except SystemExit as refused:
        pytest.skip(str(refused))
    return build_wheels(tmp_path_factory.mktemp("wheels"), series=SERIES)


@pytest.mark.parametrize("addon", ADDONS)
def test_each_addon_has_a_wheel_that_holds_all_of_it(wheels, addon):
    with zipfile.ZipFile(wheels[addon]) as archive:
        names = set(archive.namelist())
    prefix = f"odoo/addons/{addon}/"
    for data_file in manifest(addon)["data"] + manifest(addon).get("demo", []):
        assert prefix + data_file in names, data_file
    tracked = subprocess.run(
        ["git", "ls-files", addon], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    expected = {prefix + name.removeprefix(f"{addon}/") for name in tracked}
    expected = {name for name in expected if "/tests/" not in name}
    assert expected and expected <= names, sorted(expected - names)
    assert not {name for name in names if "/tests/" in name or "__pycache__" in name}
    # A namespace package only: the wheel must not ship (and shadow) odoo itself.
    assert "odoo/__init__.py" not in names and "odoo/addons/__init__.py" not in names
    dist_info = f"odoo_addon_{addon}-{metadata(wheels[addon])['Version']}.dist-info"
    assert {name.split("/")[0] for name in names} == {"odoo", dist_info}


def python_dependencies(addon):
    """{canonical name: specifier} of the Python libraries the manifest names."""
    needs = map(Requirement, manifest(addon).get("external_dependencies", {}).get("python", []))
    return {canonicalize_name(need.name): str(need.specifier) for need in needs}


def test_wheels_are_named_versioned_and_depend_as_oca_addons(wheels):
    pinned = f"=={SERIES}.*"
    for addon, wheel in wheels.items():
        meta = metadata(wheel)
        assert canonicalize_name(meta["Name"]) == canonicalize_name(f"odoo-addon-{addon}")
        release = manifest(addon)["version"].removeprefix(f"{SERIES}.")
        assert meta["Version"] == f"{SERIES}.{release}" and release.count(".") == 2
        assert meta["License"] == "LGPL-3" and f"Framework :: Odoo :: {SERIES}" in meta.get_all("Classifier")
    assert "msal" in python_dependencies("azure_ad_contacts")
    core = {"odoo": pinned, "odoo-addon-azure-ad-contacts": pinned}
    addons = {
        "azure_ad_contacts": {"odoo": pinned},
        "azure_ad_contacts_helpdesk": {**core, "odoo-addon-helpdesk-mgmt": pinned},
        "azure_ad_contacts_queue": {**core, "odoo-addon-queue-job": pinned},
    }
    for addon, needs in addons.items():
        assert requires(wheels[addon]) == {**needs, **python_dependencies(addon)}, addon


def test_the_root_setup_builds_the_core_addon(tmp_path, wheels):
    env = cached_databases.pip_environment(ODOO_SERIES=SERIES)  # the series the suite runs on
    output, _ = pip_wheel(tmp_path, ROOT, env=env).communicate()
    assert "ERROR" not in output, output
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name == wheels["azure_ad_contacts"].name
    with zipfile.ZipFile(wheel) as built, zipfile.ZipFile(wheels["azure_ad_contacts"]) as other:
        assert sorted(built.namelist()) == sorted(other.namelist())


def copy_of_the_project(tmp_path, version):
    """setup/ and the addons in `tmp_path`, every manifest at `version`."""
    shutil.copytree(ROOT / "setup", tmp_path / "setup", symlinks=True)
    for addon in ADDONS:
        shutil.copytree(ROOT / addon, tmp_path / addon, ignore=shutil.ignore_patterns("__pycache__"))
        manifest_file = tmp_path / addon / "__manifest__.py"
        text = manifest_file.read_text()
        manifest_file.write_text(re.sub(r'"version": "[^"]*"', f'"version": "{version}"', text))
    return tmp_path


def test_the_odoo_series_is_a_parameter_of_the_build(tmp_path):
    root = copy_of_the_project(tmp_path / "project", "1.1.0")  # Odoo prefixes it with its series
    # A migration script is a Python file outside any package: it ships all the same.
    migration = root / "azure_ad_contacts" / "migrations" / "1.1.0" / "post-10-example.py"
    migration.parent.mkdir(parents=True, exist_ok=True)
    migration.write_text("def migrate(cr, version):\n    pass\n")
    # Every wheel for 19.0; without ODOO_SERIES, the default series (the core addon's is enough).
    for series, addons in (("19.0", ADDONS), (None, ["azure_ad_contacts"])):
        wheels = build_wheels(tmp_path / f"wheels-{series}", root=root, series=series, addons=addons)
        expected = series or "18.0"
        for addon, wheel in wheels.items():
            assert wheel.name == f"odoo_addon_{addon}-{expected}.1.1.0-py3-none-any.whl"
            assert f"Framework :: Odoo :: {expected}" in metadata(wheel).get_all("Classifier")
            odoo_wheels = {spec for name, spec in requires(wheel).items() if name.startswith("odoo")}
            assert odoo_wheels == {f"=={expected}.*"}
        with zipfile.ZipFile(wheels["azure_ad_contacts"]) as archive:
            assert "odoo/addons/azure_ad_contacts/migrations/1.1.0/post-10-example.py" in archive.namelist()


def test_a_manifest_written_for_one_series_is_not_built_for_another(tmp_path):
    root = copy_of_the_project(tmp_path / "project", "18.0.1.1.0")
    refused = r"manifest version 18\.0\.1\.1\.0 is for Odoo 18\.0, not 19\.0: build with that series"
    core = ["azure_ad_contacts"]
    with pytest.raises(AssertionError, match=refused):
        build_wheels(tmp_path / "wheels", root=root, series="19.0", addons=core)
    with pytest.raises(AssertionError, match=r"ODOO_SERIES=17\.0: the addons are made for Odoo 18\.0 and"):
        build_wheels(tmp_path / "wheels", root=root, series="17.0", addons=core)
    assert not list((tmp_path / "wheels").glob("*.whl"))


def odoo_addon(name):
    """The folder of an addon Odoo's source ships, None when it ships none of that name."""
    for folder in (ODOO_SRC / "odoo" / "addons", ODOO_SRC / "addons"):
        if (folder / name / "__manifest__.py").exists():
            return folder / name
    return None


def test_every_dependency_is_part_of_odoo_or_a_pinned_wheel():
    pinned = {}
    for line in (ROOT / "requirements" / f"odoo-addons-{SERIES}.txt").read_text().splitlines():
        if line.split("#")[0].strip():
            req = Requirement(line.split("#")[0])
            pinned[canonicalize_name(req.name)] = req
    for addon in ADDONS:
        for dependency in manifest(addon)["depends"]:
            if dependency in addon_wheel.OCA_ADDONS:
                assert odoo_addon(dependency) is None, f"{dependency} is part of Odoo"
                assert canonicalize_name(f"odoo-addon-{dependency}") in pinned, f"{dependency} is not pinned"
            else:
                assert dependency in ADDONS or odoo_addon(dependency), f"{addon}: {dependency} is not Odoo's"
    # The OCA wheels of the series; a Python library one of them needs may be pinned beside them
    # (queue_job 19.0: openupgradelib).
    for name, req in pinned.items():
        assert not name.startswith("odoo-addon-") or str(req.specifier).startswith(f"=={SERIES}."), req
    assert {"odoo-addon-helpdesk-mgmt", "odoo-addon-queue-job"} <= set(pinned)


def run(command, env=None):
    command = list(map(str, command))
    env = env or cached_databases.pip_environment()
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


INSTALLED_FROM = """
import json, odoo.modules
names = json.loads({names!r})
modules = env["ir.module.module"].search([("name", "in", names)])
print(json.dumps({{m.name: [m.state, odoo.modules.get_module_path(m.name)] for m in modules}}))
"""


def test_wheels_install_into_a_clean_virtualenv_beside_odoo_and_then_into_a_database(wheels, tmp_path):
    """What a user does with a source checkout of Odoo: a virtualenv whose path names the source
    (as scripts/lib.sh makes one), Odoo's requirements, the wheels and what they ask for; pip
    cannot see the source's odoo, so the addon wheels go in without resolving it."""
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    site_packages = Path(purelib.strip())
    (site_packages / "odoo-src.pth").write_text(f"{ODOO_SRC}\n")
    # python-ldap needs LDAP headers and serves auth_ldap only (scripts/lib.sh leaves it out too).
    odoo_requirements = tmp_path / "odoo-requirements.txt"
    lines = (ODOO_SRC / "requirements.txt").read_text().splitlines()
    odoo_requirements.write_text("\n".join(line for line in lines if not line.startswith("python-ldap")))
    constraints = str(ROOT / "requirements" / "build-constraints.txt")
    pip_env = cached_databases.pip_environment(PIP_CONSTRAINT=constraints, PIP_BUILD_CONSTRAINT=constraints)
    run([python, "-m", "pip", "install", "-q", "-r", odoo_requirements], env=pip_env)
    run([python, "-m", "pip", "install", "-q", "--no-deps", *wheels.values()])
    # What the wheels ask for besides Odoo and each other, at the versions the project pins.
    needs = {
        name: spec for wheel in wheels.values() for name, spec in requires(wheel).items()
        if name != "odoo" and name not in {canonicalize_name(f"odoo-addon-{addon}") for addon in ADDONS}
    }
    addons = [f"{name}{spec}" for name, spec in needs.items() if name.startswith("odoo-addon-")]
    libraries = [f"{name}{spec}" for name, spec in needs.items() if not name.startswith("odoo-addon-")]
    assert len(addons) == 2 and libraries
    pinned = ROOT / "requirements"
    oca_pins = pinned / f"odoo-addons-{SERIES}.txt"
    run([python, "-m", "pip", "install", "-q", "--no-deps", "-c", oca_pins, *addons])
    # What OCA's wheels need besides Odoo, pinned beside them (queue_job 19.0: openupgradelib).
    oca_libraries = [
        line.split("#")[0].strip() for line in oca_pins.read_text().splitlines()
        if line.split("#")[0].strip() and not line.startswith("odoo-addon-")
    ]
    if oca_libraries:
        run([python, "-m", "pip", "install", "-q", *oca_libraries])
    run([python, "-m", "pip", "install", "-q", "-c", pinned / "dev.txt", *libraries])
    # Every declared dependency is met, but Odoo's (its source, which pip does not see).
    check = subprocess.run(
        [python, "-m", "pip", "check"], capture_output=True, text=True, check=False,
        env=cached_databases.pip_environment(),
    )
    unmet = check.stdout.strip().splitlines()
    assert all(line.endswith("requires odoo, which is not installed.") for line in unmet), unmet
    assert len(unmet) == len(ADDONS) + len(addons), unmet

    # Into a database, from where the wheels put the addons (the project's folder is not on
    # the addons path): Odoo's and OCA's addons from a cached database, the wheels' installed.
    template = cached_databases.with_modules(["contacts", "mail", "helpdesk_mgmt", "queue_job"])
    database = f"{get_db_name()}_wheels"
    cached_databases.copy(template, database)
    try:
        addons_path = cached_databases.addons_path()
        cached_databases.odoo_bin(
            "-d", database, "-i", ",".join(ADDONS), "--stop-after-init", "--without-demo=all",
            "--log-level=warn", f"--addons-path={addons_path}", python=python, cwd=tmp_path,
        )
        names = [*ADDONS, "helpdesk_mgmt", "queue_job"]
        installed = cached_databases.odoo_shell(
            database, INSTALLED_FROM.format(names=json.dumps(names)), addons_path, python=python
        )
    finally:
        cached_databases.drop(database)
    for name in names:
        state, path = installed[name]
        assert state == "installed", (name, state)
        assert Path(path).is_relative_to(site_packages / "odoo" / "addons"), (name, path)
