import { Component } from "@odoo/owl";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

/**
 * What went wrong with a customer's Azure AD sync, and the one button that fixes it: the one
 * alert of the customer's "Sync contacts" menu and of the integration's form.
 */
export class ErrorRemedy extends Component {
    static template = "azure_ad_contacts.ErrorRemedy";
    static props = {
        message: String,
        kind: { type: [String, Boolean], optional: true },
        onReconnect: { type: Function, optional: true },
        onOpenSettings: Function,
        onManage: { type: Function, optional: true },
        className: { type: String, optional: true },
    };
}

/** The integration form's error (<widget name="azure_ad_error_remedy"/>). */
export class IntegrationErrorRemedy extends Component {
    static template = "azure_ad_contacts.IntegrationErrorRemedy";
    static components = { ErrorRemedy };
    static props = standardWidgetProps;

    setup() {
        this.action = useService("action");
    }

    get data() {
        return this.props.record.data;
    }

    /** An excluded customer is not reconnected. */
    get reconnect() {
        return this.data.excluded ? undefined : () => this.onReconnect();
    }

    async onReconnect() {
        const record = this.props.record;
        if (!(await record.save())) {
            return;
        }
        await this.action.doActionButton({
            type: "object",
            name: "action_open_connect_wizard",
            resModel: record.resModel,
            resId: record.resId,
            resIds: [record.resId],
            context: record.context,
            onClose: () => record.load(),
        });
    }

    onOpenSettings() {
        return this.action.doAction("azure_ad_contacts.azure_ad_contacts_settings_action");
    }
}

registry.category("view_widgets").add("azure_ad_error_remedy", {
    component: IntegrationErrorRemedy,
    fieldDependencies: [
        { name: "last_error", type: "text" },
        { name: "last_error_kind", type: "selection" },
        { name: "excluded", type: "boolean" },
    ],
});
