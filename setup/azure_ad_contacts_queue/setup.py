"""The wheel odoo-addon-azure_ad_contacts_queue (setup/addon_wheel.py says how it is made):
    pip wheel --no-deps setup/azure_ad_contacts_queue
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from addon_wheel import build

build("azure_ad_contacts_queue", "odoo/addons/azure_ad_contacts_queue")
