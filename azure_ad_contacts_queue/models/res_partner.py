"""The Action menu's "Sync contacts from Azure AD" queues one job per selected customer."""

from odoo import models

from odoo.addons.azure_ad_contacts.utils.notification import display_notification


class ResPartner(models.Model):
    _inherit = "res.partner"

    def _azure_ad_sync_integrations(self, integrations):
        jobs = integrations._enqueue_sync("manual")
        return display_notification(
            "info",
            self.env._("Azure AD sync queued"),
            self.env._(
                "%(count)s sync(s) queued: you will be notified as each one is done.", count=len(jobs)
            ),
        )
