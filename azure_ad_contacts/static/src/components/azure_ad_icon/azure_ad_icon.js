import { Component } from "@odoo/owl";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { standardFieldProps } from "@web/views/fields/standard_field_props";

export const AZURE_AD_ICON_URL = "/azure_ad_contacts/static/src/img/azure_ad.svg";

/** The Azure AD mark of a synced contact, on a boolean field such as azure_ad_synced. */
export class AzureAdIcon extends Component {
    static template = "azure_ad_contacts.AzureAdIcon";
    static props = {
        ...standardFieldProps,
        showLabel: { type: Boolean, optional: true },
    };

    get iconUrl() {
        return AZURE_AD_ICON_URL;
    }

    get tooltip() {
        // One literal: the translation extractor does not join concatenated strings.
        return _t("Managed by Azure AD: each sync overwrites the name, job position and mobile of this contact, and the fields its integration also syncs, with the values from Microsoft Entra ID.");
    }
}

export const azureAdIcon = {
    component: AzureAdIcon,
    displayName: _t("Azure AD icon"),
    supportedTypes: ["boolean"],
    supportedOptions: [{ label: _t("Show label"), name: "label", type: "boolean" }],
    extractProps: ({ options }) => ({ showLabel: Boolean(options.label) }),
};

registry.category("fields").add("azure_ad_icon", azureAdIcon);
