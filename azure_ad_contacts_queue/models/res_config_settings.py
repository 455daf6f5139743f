"""How many customers sync at once: the capacity of the job channel root.azure_ad."""

from odoo import fields, models

from odoo.addons.azure_ad_contacts import series


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    azure_ad_sync_capacity = fields.Integer(
        string="Customers synced at once",
        help="How many customers' syncs run at the same time, across all Odoo servers (the "
        "capacity of the job channel root.azure_ad). Also limited by the job runner's "
        "max_capacity in the Odoo configuration. On Odoo 19.0 it is set in the Odoo configuration "
        "only: [queue_job] channels = root:4,root.azure_ad:2.",
    )
    # Odoo 19.0's queue_job takes capacities from the configuration only.
    azure_ad_sync_capacity_editable = fields.Boolean(
        string="Capacity set here", default=series.CHANNEL_CAPACITY_IN_DATABASE
    )

    def get_values(self):
        values = super().get_values()
        values["azure_ad_sync_capacity"] = series.channel_capacity(self._azure_ad_channel())
        return values

    def set_values(self):
        result = super().set_values()
        channel = self._azure_ad_channel()
        if series.CHANNEL_CAPACITY_IN_DATABASE and channel.capacity != self.azure_ad_sync_capacity:
            channel.capacity = self.azure_ad_sync_capacity
        return result

    def _azure_ad_channel(self):
        return self.env.ref("azure_ad_contacts_queue.queue_job_channel_azure_ad").sudo()
