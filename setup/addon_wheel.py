"""Builds the wheel of one addon the way OCA names and lays them out.

`odoo-addon-<addon>` installs the addon's folder as `odoo/addons/<addon>/` (a namespace package:
no `odoo/__init__.py`, so it never shadows Odoo itself). The manifest is the single source of
truth: the wheel's version is the manifest's for one Odoo series, its dependencies are Odoo of
that series, the wheels of the addons it depends on that are not part of Odoo, and its Python
`external_dependencies`.

The series is `ODOO_SERIES` (e.g. `ODOO_SERIES=19.0 pip wheel --no-deps setup/azure_ad_contacts`);
without it, the series the manifest's version names, else 18.0. A manifest version without a
series ("1.1.0") is Odoo's own convention: Odoo prefixes it with the series it runs, and so does
the wheel.
"""

import ast
import atexit
import glob
import os
import shutil
import tempfile
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).resolve().parent.parent
OWN_ADDONS = ("azure_ad_contacts", "azure_ad_contacts_helpdesk", "azure_ad_contacts_queue")
# Addons our manifests depend on that Odoo does not ship: OCA's, each a wheel of its own.
# Every other dependency is part of Odoo (tests/test_packaging.py checks both lists).
OCA_ADDONS = ("helpdesk_mgmt", "queue_job")
SERIES = ("18.0", "19.0")
DEFAULT_SERIES = "18.0"


def read_manifest(addon):
    return ast.literal_eval((ROOT / addon / "__manifest__.py").read_text())


def series_and_version(manifest_version, wanted_series=None):
    """(series, wheel version) of a manifest version: "18.0.1.1.0" is for 18.0 only, "1.1.0"
    for any series (the wheel version is then "<series>.1.1.0")."""
    parts = manifest_version.split(".")
    own_series = ".".join(parts[:2]) if len(parts) == 5 else None
    series = wanted_series or own_series or DEFAULT_SERIES
    if series not in SERIES:
        raise SystemExit(f"ODOO_SERIES={series}: the addons are made for Odoo {' and '.join(SERIES)}.")
    if own_series and own_series != series:
        raise SystemExit(
            f"The manifest version {manifest_version} is for Odoo {own_series}, not {series}: "
            "build with that series, or give the manifest a version without a series."
        )
    release = parts[2:] if own_series else parts
    if len(release) != 3 or not all(part.isdigit() for part in release):
        raise SystemExit(f"Manifest version {manifest_version!r} is not <series>.x.y.z nor x.y.z.")
    return series, ".".join([series, *release])


def requirements(manifest, series):
    """Odoo of the series, the wheels of the addons it depends on that Odoo does not ship, and
    the Python libraries the manifest names."""
    addon_wheels = [
        f"odoo-addon-{dependency}=={series}.*"
        for dependency in manifest["depends"]
        if dependency in OWN_ADDONS or dependency in OCA_ADDONS
    ]
    python = manifest.get("external_dependencies", {}).get("python", [])
    return [f"odoo=={series}.*", *addon_wheels, *python]


def shipped_files(addon_dir):
    """Paths (relative to the addon) of everything the addon needs at run time: all its files
    but tests, caches and hidden files. Python files outside packages (migration scripts) too."""
    for path in sorted(addon_dir.rglob("*")):
        relative = path.relative_to(addon_dir)
        hidden = any(part == "tests" or part.startswith((".", "__pycache__")) for part in relative.parts)
        if not (hidden or path.is_dir() or path.suffix in (".pyc", ".pyo")):
            yield relative


def build(addon, source_dir):
    """setup() for `addon`, whose folder is `source_dir` relative to the calling setup.py."""
    manifest = read_manifest(addon)
    series, version = series_and_version(manifest["version"], os.environ.get("ODOO_SERIES"))
    addon_dir = ROOT / addon
    package = f"odoo.addons.{addon}"
    files = list(shipped_files(addon_dir))
    package_dirs = {relative.parent for relative in files if relative.name == "__init__.py"}
    packages = sorted(".".join([package, *directory.parts]) for directory in package_dirs)
    # Files that are not modules of a package: data, views, assets, migration scripts.
    data = [
        glob.escape(str(relative))
        for relative in files
        if relative.suffix != ".py" or relative.parent not in package_dirs
    ]
    # A fresh build folder each time: setuptools would otherwise ship files left over from an
    # earlier build (of another version, or of files since deleted).
    build_base = tempfile.mkdtemp(prefix=f"{addon}-build-")
    atexit.register(shutil.rmtree, build_base, ignore_errors=True)
    readme = addon_dir / "README.rst"
    setup(
        name=f"odoo-addon-{addon}",
        version=version,
        description=manifest["summary"],
        long_description=readme.read_text() if readme.exists() else manifest["summary"],
        long_description_content_type="text/x-rst",
        author=manifest["author"],
        url=manifest["website"],
        license=manifest["license"],
        python_requires=">=3.10",
        install_requires=requirements(manifest, series),
        package_dir={package: source_dir},
        packages=packages,
        package_data={package: data},
        include_package_data=False,
        zip_safe=False,
        options={"build": {"build_base": build_base}, "egg_info": {"egg_base": build_base}},
        classifiers=[
            "Framework :: Odoo",
            f"Framework :: Odoo :: {series}",
            "Programming Language :: Python :: 3",
        ],
    )
