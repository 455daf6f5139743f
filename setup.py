"""Builds the wheel odoo-addon-azure_ad_contacts (odoo/addons/azure_ad_contacts/...).

The manifest is the single source of truth for the version and the Python dependencies.
"""

import ast
from pathlib import Path

from setuptools import find_packages, setup

ADDON = "azure_ad_contacts"
HERE = Path(__file__).resolve().parent
manifest = ast.literal_eval((HERE / ADDON / "__manifest__.py").read_text())

setup(
    name=f"odoo-addon-{ADDON}",
    version=manifest["version"],
    description=manifest["summary"],
    long_description=(HERE / ADDON / "README.rst").read_text(),
    long_description_content_type="text/x-rst",
    author=manifest["author"],
    url=manifest["website"],
    license=manifest["license"],
    python_requires=">=3.10",
    install_requires=["odoo==18.0.*", *manifest["external_dependencies"]["python"]],
    package_dir={f"odoo.addons.{ADDON}": ADDON},
    packages=[f"odoo.addons.{ADDON}"]
    + [f"odoo.addons.{ADDON}.{pkg}" for pkg in find_packages(ADDON, exclude=["tests*"])],
    package_data={
        f"odoo.addons.{ADDON}": [
            "README.rst",
            "data/*.xml",
            "data/*.sql",
            "demo/*.xml",
            "i18n/*.po",
            "i18n/*.pot",
            "migrations/*/*.py",
            "readme/*.md",
            "security/*.xml",
            "security/*.csv",
            "static/description/*",
            "static/src/**/*",
            "views/*.xml",
            "wizards/*.xml",
        ]
    },
    include_package_data=False,
    zip_safe=False,
    classifiers=[
        "Framework :: Odoo",
        "Framework :: Odoo :: 18.0",
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)",
    ],
)
