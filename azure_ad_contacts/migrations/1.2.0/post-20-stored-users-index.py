"""Before 1.2.0 the stored users had an index of their own on integration_id. The unique index
on (integration_id, object_id) serves the same lookups, and every stored user wrote both; Odoo
keeps an index a field no longer asks for, so it is dropped here."""

from odoo.tools import SQL


def migrate(cr, version):
    if not version:
        return
    cr.execute(SQL("DROP INDEX IF EXISTS azure_ad_directory_user__integration_id_index"))
