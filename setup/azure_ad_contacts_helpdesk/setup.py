"""The wheel odoo-addon-azure_ad_contacts_helpdesk (setup/addon_wheel.py says how it is made):
    pip wheel --no-deps setup/azure_ad_contacts_helpdesk
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from addon_wheel import build

build("azure_ad_contacts_helpdesk", "odoo/addons/azure_ad_contacts_helpdesk")
