"""The "Choose groups" dialog of the group filter: search the tenant's groups by name."""

from odoo import Command, api, fields, models
from odoo.exceptions import UserError

from ..models.azure_ad_sync_mixin import option_values
from ..utils import graph_client

SEARCH_LIMIT = 25


class AzureAdGroupPicker(models.TransientModel):
    """Finds Entra groups by name (Microsoft Graph search) and adds the chosen ones to the
    integration's group filter, ids and names."""

    _name = "azure.ad.group.picker"
    _description = "Choose Azure AD groups"

    integration_id = fields.Many2one("azure.ad.integration", required=True, ondelete="cascade")
    search_text = fields.Char(string="Group name", help="The start of a word of the group's name.")
    line_ids = fields.One2many("azure.ad.group.picker.line", "picker_id", string="Groups found")
    searched = fields.Boolean()

    @api.model
    def _open_for(self, integration):
        picker = self.create({"integration_id": integration.id})
        return picker._reopen()

    def _reopen(self):
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Choose groups"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "target": "new",
        }

    def action_search(self):
        self.ensure_one()
        integration = self.integration_id
        integration._check_syncable()
        if not (self.search_text or "").strip():
            raise UserError(self.env._("Enter (the start of) a group name to search for."))
        try:
            client = integration._get_graph_client()
            groups = client.search_groups(self.search_text.strip(), limit=SEARCH_LIMIT)
        except graph_client.GraphError as error:
            raise UserError(integration._graph_error_message(error)) from error
        chosen = {group_id.lower() for group_id in option_values(integration.group_ids)}
        self.write(
            {
                "searched": True,
                "line_ids": [Command.clear()]
                + [
                    Command.create(
                        {
                            "object_id": group["id"],
                            "name": group["displayName"],
                            "selected": group["id"].lower() in chosen,
                        }
                    )
                    for group in groups
                ],
            }
        )
        return self._reopen()

    def action_add(self):
        """Adds the selected groups to the filter (keeping the groups chosen before)."""
        self.ensure_one()
        integration = self.integration_id
        integration._check_admin()
        selected = self.line_ids.filtered("selected")
        if not selected:
            raise UserError(self.env._("Select the groups to add."))
        integration._add_filter_groups({line.object_id: line.name for line in selected})
        return {"type": "ir.actions.act_window_close"}
