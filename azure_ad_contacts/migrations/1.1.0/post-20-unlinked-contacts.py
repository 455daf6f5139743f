"""Before 1.1.0, deleting an integration (or its customer) left its contacts with the Azure AD
mark and no integration; since 1.1.0 they lose mark and link, as they do now."""

from odoo.tools import SQL


def migrate(cr, version):
    cr.execute(
        SQL(
            """UPDATE res_partner
                  SET azure_ad_synced = FALSE, azure_ad_object_id = NULL, azure_ad_guest = FALSE,
                      azure_ad_archived = FALSE, azure_ad_synced_email = NULL
                WHERE azure_ad_integration_id IS NULL
                  AND (azure_ad_synced OR azure_ad_object_id IS NOT NULL OR azure_ad_guest
                       OR azure_ad_archived OR azure_ad_synced_email IS NOT NULL)"""
        )
    )
