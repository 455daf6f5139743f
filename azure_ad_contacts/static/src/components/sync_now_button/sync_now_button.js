import { Component, onWillUnmount, useState } from "@odoo/owl";
import { browser } from "@web/core/browser/browser";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";

/**
 * "Sync now" on the integration's form: runs action_sync_now and shows the run's progress
 * (a spinner and the seconds elapsed) until its notification with the counts arrives.
 */
export class SyncNowButton extends Component {
    static template = "azure_ad_contacts.SyncNowButton";
    static props = standardWidgetProps;

    setup() {
        this.action = useService("action");
        this.progress = useState({ running: false, seconds: 0 });
        onWillUnmount(() => browser.clearInterval(this.timer));
    }

    async onClick() {
        const record = this.props.record;
        if (this.progress.running || !(await record.save())) {
            return;
        }
        Object.assign(this.progress, { running: true, seconds: 0 });
        this.timer = browser.setInterval(() => this.progress.seconds++, 1000);
        try {
            await this.action.doActionButton({
                type: "object",
                name: "action_sync_now",
                resModel: record.resModel,
                resId: record.resId,
                resIds: [record.resId],
                context: record.context,
            });
        } finally {
            browser.clearInterval(this.timer);
            this.progress.running = false;
        }
    }
}

registry.category("view_widgets").add("azure_ad_sync_now", { component: SyncNowButton });
