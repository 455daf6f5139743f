import { Component } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";
import { AZURE_AD_ICON_URL } from "../azure_ad_icon/azure_ad_icon";

/** The Azure AD logo in a view (<widget name="azure_ad_logo" size="40"/>): the one place
 * views get the image from, so that its path lives in AZURE_AD_ICON_URL only. */
export class AzureAdLogo extends Component {
    static template = "azure_ad_contacts.AzureAdLogo";
    static props = {
        ...standardWidgetProps,
        size: { type: Number, optional: true },
    };
    static defaultProps = { size: 20 };

    get iconUrl() {
        return AZURE_AD_ICON_URL;
    }
}

registry.category("view_widgets").add("azure_ad_logo", {
    component: AzureAdLogo,
    extractProps: ({ attrs }) => (attrs.size ? { size: parseInt(attrs.size, 10) } : {}),
});
