"""Contacts synced before 1.1.0 were created without a company: they get their customer's, as
the sync now creates them (Odoo's company rule then shows them only where it shows the
customer). A contact whose user belongs to another company keeps none, as Odoo requires."""

from odoo.tools import SQL


def migrate(cr, version):
    cr.execute(
        SQL(
            """UPDATE res_partner AS contact SET company_id = customer.company_id
                 FROM res_partner AS customer
                WHERE contact.parent_id = customer.id
                  AND contact.azure_ad_integration_id IS NOT NULL
                  AND contact.company_id IS NULL
                  AND customer.company_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM res_users AS login
                                   WHERE login.partner_id = contact.id
                                     AND login.company_id <> customer.company_id)"""
        )
    )
