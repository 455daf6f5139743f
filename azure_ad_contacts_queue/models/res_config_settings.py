"""How many customers sync at once: the capacity of the job channel root.azure_ad."""

from odoo import fields, models


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    azure_ad_sync_capacity = fields.Integer(
        string="Customers synced at once",
        help="How many customers' syncs run at the same time, across all Odoo servers (the "
        "capacity of the job channel root.azure_ad). Also limited by the job runner's "
        "max_capacity in the Odoo configuration.",
    )

    def get_values(self):
        values = super().get_values()
        values["azure_ad_sync_capacity"] = self._azure_ad_channel().capacity
        return values

    def set_values(self):
        result = super().set_values()
        channel = self._azure_ad_channel()
        if channel.capacity != self.azure_ad_sync_capacity:
            channel.capacity = self.azure_ad_sync_capacity
        return result

    def _azure_ad_channel(self):
        return self.env.ref("azure_ad_contacts_queue.queue_job_channel_azure_ad").sudo()
