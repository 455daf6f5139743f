"""Before 1.2.0 an integration kept the contacts as its last run left them in one JSON
document (delta_rest), read and written whole at every run; they are rows of their own now
(azure.ad.contact.state). The document is dropped: the first run after the upgrade plans
every stored user once, as after a change of the options, and fills the rows."""

from odoo.tools import SQL


def migrate(cr, version):
    if not version:
        return
    cr.execute(SQL("ALTER TABLE azure_ad_integration DROP COLUMN IF EXISTS delta_rest"))
