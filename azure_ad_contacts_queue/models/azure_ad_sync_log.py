"""The run log of a sync run as a job links to its job."""

from odoo import fields, models


class AzureAdSyncLog(models.Model):
    _inherit = "azure.ad.sync.log"

    job_id = fields.Many2one("queue.job", readonly=True, ondelete="set null", index="btree_not_null")
