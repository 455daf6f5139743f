"""Builds the wheel odoo-addon-azure_ad_contacts (pip wheel --no-deps .). Each addon, the bridges
included, has its own in setup/<addon>/; setup/addon_wheel.py says how they are made."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "setup"))
from addon_wheel import build

build("azure_ad_contacts", "azure_ad_contacts")
