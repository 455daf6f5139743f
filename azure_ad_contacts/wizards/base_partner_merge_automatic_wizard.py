"""Odoo's "Merge contacts": merged customers keep their Azure AD integrations, merged contacts
one Azure AD link."""

from odoo import models


class BasePartnerMergeAutomaticWizard(models.TransientModel):
    _inherit = "base.partner.merge.automatic.wizard"

    def _update_foreign_keys(self, src_partners, dst_partner):
        # Odoo moves what refers to the merged partners with SQL, and deletes the rows a
        # constraint refuses (a customer's second integration): integrations move first.
        self.env["azure.ad.integration"]._move_to_merged_customer(src_partners, dst_partner)
        return super()._update_foreign_keys(src_partners, dst_partner)

    def _update_values(self, src_partners, dst_partner):
        # Odoo writes every set field of the merged partners on the one that stays: the
        # Azure AD link (written by the sync only, one contact per user) is settled apart.
        link = self.env["res.partner"]._azure_ad_take_merged_link(src_partners, dst_partner)
        result = super()._update_values(src_partners, dst_partner)
        if link:
            dst_partner._azure_ad_give_link(link)
        return result
