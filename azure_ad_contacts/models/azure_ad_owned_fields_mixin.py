"""Fields that only the addon's own code writes (what a form shows read-only, and secrets): an
integration's state and tenant, a partner sign-in's tenant, a match's course, Microsoft's data.
The code writes them in superuser mode; a user, administrators included, cannot over the UI or
RPC (a state written by hand would skip what proves it). A context key would not do: callers
choose their context."""

from odoo import api, models
from odoo.exceptions import AccessError


class AzureAdOwnedFieldsMixin(models.AbstractModel):
    _name = "azure.ad.owned.fields.mixin"
    _description = "Azure AD: fields written by the addon's code only"

    # The names of those fields, per model; and those of them a new record may be given (the
    # customer of a new integration: chosen when it is made, and stays).
    _azure_ad_owned = ()
    _azure_ad_chosen_at_create = ()

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            for vals in vals_list:
                self._check_owned_fields(vals, creating=True)
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su:
            self._check_owned_fields(vals)
        return super().write(vals)

    @api.model
    def _azure_ad_owned_fields(self):
        """The fields only the addon's own code writes."""
        return self._azure_ad_owned

    @api.model
    def _check_owned_fields(self, vals, creating=False):
        names = [name for name in self._azure_ad_owned_fields() if name in vals]
        if creating:  # a new record names what it is chosen for; the rest as a new one has it
            names = [
                name
                for name in names
                if name not in self._azure_ad_chosen_at_create
                and vals[name]
                and vals[name] != self._owned_default(name)
            ]
        if names:
            raise AccessError(self._owned_fields_error(sorted(names)))

    @api.model
    def _owned_fields_error(self, names):
        return self.env._(
            "These fields of %(model)s are set by the Azure AD sync itself, not by hand: %(fields)s.",
            model=self._description,
            fields=", ".join(names),
        )

    @api.model
    def _owned_default(self, name):
        field = self._fields[name]
        return field.default(self) if field.default else False
