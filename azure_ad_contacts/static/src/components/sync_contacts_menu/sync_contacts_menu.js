import { Component, onMounted, onWillUnmount } from "@odoo/owl";
import { browser } from "@web/core/browser/browser";
import { router } from "@web/core/browser/router";
import { Dropdown } from "@web/core/dropdown/dropdown";
import { DropdownItem } from "@web/core/dropdown/dropdown_item";
import { _t } from "@web/core/l10n/translation";
import { registry } from "@web/core/registry";
import { useService } from "@web/core/utils/hooks";
import { standardWidgetProps } from "@web/views/widgets/standard_widget_props";
import { AZURE_AD_ICON_URL } from "../azure_ad_icon/azure_ad_icon";
import { ErrorRemedy } from "../error_remedy/error_remedy";

// The consent callback sends the admin back to the customer with ?azure_ad_connected=1.
// Read it once, when the web client loads: the router rewrites the URL soon after.
let connectedOnLoad = new URLSearchParams(browser.location.search).has("azure_ad_connected");

const NOT_CONNECTED = ["none", "draft", "disconnected"];
// While the first sync runs in the background, how often the form asks whether it is done (ms).
const FIRST_SYNC_POLL_INTERVAL = 3000;

/**
 * "Sync contacts" on a customer company's Contacts & Addresses tab: connect the customer's
 * Azure AD tenant, or manage its integration; shows the status and what to do about errors.
 * The view puts it under groups="base.group_system": other users never receive it.
 */
export class SyncContactsMenu extends Component {
    static template = "azure_ad_contacts.SyncContactsMenu";
    static components = { Dropdown, DropdownItem, ErrorRemedy };
    static props = standardWidgetProps;

    setup() {
        this.action = useService("action");
        this.notification = useService("notification");
        this.orm = useService("orm");
        this.iconUrl = AZURE_AD_ICON_URL;
        onMounted(() => {
            this.confirmConnection();
            this.watchFirstSync();
        });
        onWillUnmount(() => browser.clearTimeout(this.pollTimer));
    }

    get data() {
        return this.props.record.data;
    }

    get integrationState() {
        return this.data.azure_ad_state || "none";
    }

    get canConnect() {
        return NOT_CONNECTED.includes(this.integrationState) && !this.data.azure_ad_excluded;
    }

    get canManage() {
        return !["none", "draft"].includes(this.integrationState) || this.data.azure_ad_excluded;
    }

    get error() {
        // While Microsoft spreads a new consent, an earlier error is not what matters.
        return (!this.data.azure_ad_consent_waiting && this.data.azure_ad_last_error) || "";
    }

    get firstSyncStarted() {
        const date = this.data.azure_ad_first_sync_since;
        return date ? date.toRelative() : "";
    }

    get lastSync() {
        const date = this.data.azure_ad_last_sync_date;
        return date ? date.toRelative() : "";
    }

    confirmConnection() {
        if (!connectedOnLoad || this.integrationState !== "connected") {
            return;
        }
        connectedOnLoad = false;
        // Once: a reload of the page must not confirm again.
        router.replaceState({ azure_ad_connected: undefined });
        // A first sync in the background tells its outcome with a notification of its own.
        if (!this.data.azure_ad_first_sync_since) {
            this.notification.add(this.data.azure_ad_last_run_summary || "", {
                title: _t("Connected to Azure AD"),
                type: "success",
            });
        }
    }

    /** While the first sync runs in the background, asks now and then whether it is done, and
     * then shows the customer as it is now (the status line with the counts). */
    watchFirstSync() {
        browser.clearTimeout(this.pollTimer);
        if (!this.data.azure_ad_first_sync_since) {
            return;
        }
        this.pollTimer = browser.setTimeout(async () => {
            const record = this.props.record;
            const [partner] = await this.orm.read(record.resModel, [record.resId], ["azure_ad_first_sync_since"]);
            if (partner && !partner.azure_ad_first_sync_since && !record.dirty) {
                await record.load();
            }
            this.watchFirstSync();
        }, FIRST_SYNC_POLL_INTERVAL);
    }

    async callPartner(method) {
        const record = this.props.record;
        if (!(await record.save())) {
            return; // the form shows what is missing
        }
        await this.action.doActionButton({
            type: "object",
            name: method,
            resModel: record.resModel,
            resId: record.resId,
            resIds: [record.resId],
            context: record.context,
            onClose: () => record.load(),
        });
    }

    onConnect() {
        return this.callPartner("action_azure_ad_connect");
    }

    onManage() {
        return this.callPartner("action_azure_ad_manage");
    }

    onOpenSettings() {
        return this.action.doAction("azure_ad_contacts.azure_ad_contacts_settings_action");
    }
}

registry.category("view_widgets").add("azure_ad_sync_contacts", {
    component: SyncContactsMenu,
    // Read with the customer (the view puts the widget, and so these, under base.group_system).
    fieldDependencies: [
        { name: "azure_ad_state", type: "selection" },
        { name: "azure_ad_excluded", type: "boolean" },
        { name: "azure_ad_last_sync_date", type: "datetime" },
        { name: "azure_ad_last_run_summary", type: "char" },
        { name: "azure_ad_last_error", type: "text" },
        { name: "azure_ad_last_error_kind", type: "selection" },
        { name: "azure_ad_consent_waiting", type: "boolean" },
        { name: "azure_ad_first_sync_since", type: "datetime" },
    ],
});
