"""What differs between the Odoo series the addons run on, 18.0 and 19.0, in one place.

The models, views and tests are written once, against what both series offer; where a series
lacks something, this module supplies it (scripts/lib.sh is the shell's counterpart: sources,
virtualenvs, the OCA wheels of each series). README.md › "Odoo 18.0 and 19.0" documents the
differences users see.
"""

from odoo import Command, api, models, release

SERIES = release.major_version

# SQL constraints are `models.Constraint` class attributes on 19.0 (`_sql_constraints` is
# ignored there); on 18.0 the same declaration becomes an entry of `_sql_constraints`. Either way
# PostgreSQL's constraint is named "<table>_<attribute without its underscore>".
if hasattr(models, "Constraint"):
    Constraint = models.Constraint
else:

    class Constraint:
        def __init__(self, definition, message=""):
            self.definition = definition
            self.message = message

        def __set_name__(self, owner, name):
            own = owner.__dict__.get("_sql_constraints", [])
            owner._sql_constraints = [*own, (name[1:], self.definition, self.message)]


# JSON-RPC routes: type "jsonrpc" on 19.0, where "json" is its deprecated alias; 18.0 knows "json" only.
JSON_ROUTE = "jsonrpc" if release.version_info[0] >= 19 else "json"

# Odoo 19.0's JSON-2 API (POST /json/2/<model>/<method>, the rpc addon), beside XML-RPC.
JSON2_API = release.version_info[0] >= 19

# The field of a user's groups (and of an action's: data/series_data.xml): `group_ids` on 19.0,
# `groups_id` on 18.0.
GROUPS_FIELD = "group_ids" if release.version_info[0] >= 19 else "groups_id"

# Odoo 19.0 has no mobile on a contact; the addon declares it (models/res_partner.py), and
# shows it in the form on 19.0 where 18.0's form has its own.
PARTNER_FORM_HAS_MOBILE = release.version_info[0] < 19

# OCA queue_job (the queue bridge): a channel's capacity is a database field on 18.0, which the
# bridge's setting writes; on 19.0 it is the servers' configuration only
# (`[queue_job] channels = root:4,root.azure_ad:2`), which the setting shows.
CHANNEL_CAPACITY_IN_DATABASE = release.version_info[0] < 19


def channel_capacity(channel):
    """The capacity the job runner gives the queue_job channel `channel`."""
    if CHANNEL_CAPACITY_IN_DATABASE:
        return channel.capacity
    from odoo.addons.queue_job.jobrunner.channels import ChannelManager
    from odoo.addons.queue_job.jobrunner.runner import _channels

    manager = ChannelManager()
    manager.simple_configure(_channels())
    configured = manager.get_channel_by_name(channel.complete_name, parent_fallback=True)
    # Not configured on its own: the runner's root capacity bounds it.
    return configured.capacity or manager.get_channel_by_name("root").capacity or 0


class AzureAdSeries(models.AbstractModel):
    """The data that differs between the series (data/series_data.xml calls it on every install
    and update)."""

    _name = "azure_ad.series"
    _description = "Azure AD Contacts: what differs between Odoo series"

    @api.model
    def _apply_data(self):
        # The server action "Sync contacts from Azure AD" is for administrators.
        action = self.env.ref("azure_ad_contacts.res_partner_action_sync_azure_ad")
        action[GROUPS_FIELD] = [Command.link(self.env.ref("base.group_system").id)]
        self.env.ref("azure_ad_contacts.res_partner_view_form_mobile").active = not PARTNER_FORM_HAS_MOBILE

    @api.model
    def _set_channel_capacity(self, channel_id, capacity):
        """A queue_job channel's capacity where the database holds it (18.0)."""
        if CHANNEL_CAPACITY_IN_DATABASE:
            self.env["queue.job.channel"].browse(channel_id).capacity = capacity
