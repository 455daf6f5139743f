"""Before 1.1.0 the stored directory users kept every selected property of the users the
options filter out (guests, disabled accounts, ...): they keep only what decided it now."""

from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    if not version:
        return
    api.Environment(cr, SUPERUSER_ID, {})["azure.ad.directory.user"]._strip_filtered()
