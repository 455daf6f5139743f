/**
 * Browser tours of the customer form and of the sync options (tests/test_ui.py starts them in
 * headless Chromium).
 * Microsoft's consent page is not an Odoo page: the test's browser plays the customer's
 * administrator there and clicks Accept; the tour resumes when Odoo is back.
 */
import { rpc } from "@web/core/network/rpc";
import { registry } from "@web/core/registry";
import { contactsTab, contactsTabGerman, leavesPage } from "./series";

const tours = registry.category("web_tour.tours");

const openContactsTab = {
    content: "Open the customer's tab of contacts",
    trigger: `.o_notebook .nav-link:contains(${contactsTab})`,
    run: "click",
};
const openSyncContactsMenu = {
    content: "Open the Sync contacts menu",
    trigger: ".o_azure_ad_sync_contacts_toggle",
    run: "click",
};

const openSyncRuns = {
    content: "Open the run history",
    trigger: ".o_notebook .nav-link:contains(Sync runs)",
    run: "click",
};

/** From the customer form to Microsoft's consent page, where the customer's admin accepts. */
const connectSteps = () => [
    openContactsTab,
    {
        content: "Not connected yet: no status",
        trigger: ".o_azure_ad_sync_contacts_menu:not(:has(.o_azure_ad_error))",
    },
    openSyncContactsMenu,
    {
        content: "Not connected: the menu offers Sync with Azure AD, not Manage",
        trigger: ".o_azure_ad_sync_contacts_dropdown:not(:has(.o_azure_ad_manage)) .o_azure_ad_connect:contains(Sync with Azure AD)",
        run: "click",
    },
    {
        content: "The wizard says what will happen",
        trigger: ".modal .o_azure_ad_connect_wizard:contains(administrator of the customer):contains(take a few minutes):contains(Credentials are never stored)",
    },
    leavesPage({
        content: "Connect: off to Microsoft's consent page (the customer's admin accepts there)",
        trigger: ".modal .o_azure_ad_wizard_connect:contains(Connect)",
        run: "click",
    }),
];

const connectedSteps = [
    {
        content: "Back on the customer: the confirmation with the counts",
        trigger: ".o_notification:contains(Connected to Azure AD):contains(15 created, 0 updated, 0 unchanged, 6 skipped)",
        timeout: 30000,
    },
    {
        content: "The confirmation shows once: the URL no longer asks for it",
        trigger: ".o_form_view",
        run() {
            if (window.location.search.includes("azure_ad_connected")) {
                throw new Error(`still in the URL: ${window.location.href}`);
            }
        },
    },
    {
        content: "The status says connected, with the last sync",
        trigger: ".o_azure_ad_status:contains(Connected to Azure AD):contains(Last sync)",
    },
];

tours.add("azure_ad_contacts_connect", {
    steps: () => [
        ...connectSteps(),
        ...connectedSteps,
        {
            content: "The imported contacts, with the Azure AD icon",
            trigger: ".o_field_x2many_kanban .o_kanban_record:contains(Adele Vance) .o_azure_ad_icon img",
        },
        {
            content: "The contact that exists only in Odoo has no icon",
            trigger: ".o_field_x2many_kanban .o_kanban_record:contains(External Auditor):not(:has(.o_azure_ad_icon))",
        },
        openSyncContactsMenu,
        {
            content: "Connected: the menu offers Manage Azure AD integration",
            trigger: ".o_azure_ad_sync_contacts_dropdown:not(:has(.o_azure_ad_connect)) .o_azure_ad_manage:contains(Manage Azure AD integration)",
        },
    ],
});

tours.add("azure_ad_contacts_connect_waiting", {
    steps: () => [
        ...connectSteps(),
        {
            content: "Microsoft does not confirm the consent yet: the waiting page, not an error",
            trigger: "#azure_ad_consent_waiting:contains(Waiting for Microsoft):contains(nothing has failed) #azure_ad_consent_check_again",
            timeout: 20000,
        },
        {
            content: "It shows the time waited",
            trigger: "#azure_ad_consent_waiting .o_azure_ad_waited:not(:contains(0:00))",
        },
        {
            content: "Check again, at once",
            trigger: "#azure_ad_consent_check_again:enabled",
            run: "click",
        },
        leavesPage({
            content: "Microsoft still spreads it: a second check, still waiting (then the page goes back to the customer)",
            trigger: "#azure_ad_consent_waiting:not(.d-none) .o_azure_ad_checks:contains(2)",
        }),
        ...connectedSteps,
    ],
});

tours.add("azure_ad_contacts_connect_background", {
    steps: () => [
        ...connectSteps(),
        {
            content: "Back on the customer: connected, the first sync running in the background",
            trigger: ".o_azure_ad_status:contains(Connected to Azure AD) .o_azure_ad_first_sync:contains(First sync running in the background)",
            timeout: 30000,
        },
        {
            content: "No contacts yet",
            trigger: ".o_form_view:not(:has(.o_field_x2many_kanban .o_kanban_record:contains(Adele Vance)))",
        },
        {
            content: "The scheduled job runs (here started by hand, as Settings › Scheduled Actions › Run Manually does)",
            trigger: ".o_azure_ad_first_sync",
            async run() {
                const [cron] = await rpc("/web/dataset/call_kw/ir.model.data/search_read", {
                    model: "ir.model.data",
                    method: "search_read",
                    args: [[["module", "=", "azure_ad_contacts"], ["name", "=", "azure_ad_integration_cron_sync"]], ["res_id"]],
                    kwargs: {},
                });
                await rpc("/web/dataset/call_kw/ir.cron/method_direct_trigger", {
                    model: "ir.cron",
                    method: "method_direct_trigger",
                    args: [[cron.res_id]],
                    kwargs: {},
                });
            },
        },
        {
            content: "The form notices by itself: the counts of the first sync",
            trigger: ".o_azure_ad_status:not(:has(.o_azure_ad_first_sync)) .o_azure_ad_last_run:contains(15 created, 0 updated, 0 unchanged, 6 skipped)",
            timeout: 20000,
        },
        {
            content: "and the imported contacts",
            trigger: ".o_field_x2many_kanban .o_kanban_record:contains(Adele Vance) .o_azure_ad_icon img",
        },
    ],
});

tours.add("azure_ad_contacts_sync_and_disconnect", {
    steps: () => [
        openContactsTab,
        openSyncContactsMenu,
        {
            content: "Manage Azure AD integration",
            trigger: ".o_azure_ad_manage",
            run: "click",
        },
        {
            content: "The manage page: tenant, state, last run's counts, options",
            trigger: ".o_form_view:has(.o_field_widget[name=tenant_id]:contains(9188040d)):has(.o_statusbar_status .o_arrow_button_current:contains(Connected)):has(.o_azure_ad_last_run_counts:contains(15 created)):has(.o_field_widget[name=include_guests])",
        },
        openSyncRuns,
        {
            content: "and the run history: the first sync, at connect",
            trigger: ".o_field_widget[name=sync_log_ids] .o_data_row:contains(Connect)",
        },
        {
            content: "Sync now",
            trigger: ".o_azure_ad_sync_now:contains(Sync now)",
            run: "click",
        },
        {
            content: "While it runs (Microsoft asked to wait 2 s), the button shows the progress",
            trigger: ".o_azure_ad_sync_now:disabled:contains(Syncing…):has(.o_azure_ad_sync_seconds)",
        },
        {
            content: "The notification with the counts",
            trigger: ".o_notification:contains(Azure AD sync done):contains(1 created, 0 updated, 15 unchanged, 6 skipped)",
            timeout: 30000,
        },
        openSyncRuns,
        {
            content: "The run history shows the manual run",
            trigger: ".o_field_widget[name=sync_log_ids] .o_data_row:contains(Manual)",
        },
        {
            content: "Disconnect",
            trigger: ".o_form_statusbar .o_azure_ad_disconnect",
            run: "click",
        },
        {
            content: "The confirmation says that imported contacts stay",
            trigger: ".modal .o_azure_ad_disconnect_wizard:contains(Imported contacts stay):has(.o_field_widget[name=contact_count]:contains(16))",
        },
        {
            content: "Disconnect, again, in the confirmation",
            trigger: ".modal .o_azure_ad_confirm_disconnect",
            run: "click",
        },
        {
            content: "Disconnected",
            trigger: ".o_notification:contains(is no longer connected to Azure AD)",
        },
        {
            content: "The page shows it and offers Reconnect",
            trigger: ".o_form_view:not(:has(.modal)) .o_statusbar_status .o_arrow_button_current:contains(Disconnected)",
        },
        {
            content: "No Sync now any more",
            trigger: ".o_form_statusbar:has(.o_azure_ad_reconnect):not(:has(.o_azure_ad_sync_now))",
        },
        {
            content: "Back to the customer",
            trigger: ".o_breadcrumb .breadcrumb-item a:contains(Contoso Ltd)",
            run: "click",
        },
        {
            content: "The customer shows the disconnection; contacts were kept",
            trigger: ".o_azure_ad_status:contains(Disconnected from Azure AD)",
        },
        {
            content: "The synced contacts are still there",
            trigger: ".o_field_x2many_kanban .o_kanban_record:contains(Adele Vance)",
        },
        openSyncContactsMenu,
        {
            content: "Disconnected: connect again, or manage",
            trigger: ".o_azure_ad_sync_contacts_dropdown:has(.o_azure_ad_manage) .o_azure_ad_connect",
        },
    ],
});

tours.add("azure_ad_contacts_icons", {
    steps: () => [
        {
            content: "Contacts kanban: synced contacts carry the Azure AD icon",
            trigger: ".o_kanban_view .o_kanban_record:contains(Adele Vance) .o_azure_ad_card_icon .o_azure_ad_icon",
        },
        {
            content: "Filter: Synced from Azure AD",
            trigger: ".o_searchview_dropdown_toggler",
            run: "click",
        },
        {
            trigger: ".o_filter_menu .o_menu_item:contains(Synced from Azure AD)",
            run: "click",
        },
        {
            content: "Only synced contacts remain",
            trigger: ".o_kanban_view:not(:has(.o_kanban_record:contains(External Auditor))) .o_kanban_record:contains(Adele Vance)",
        },
        {
            content: "List view",
            trigger: ".o_switch_view.o_list",
            run: "click",
        },
        {
            content: "The list's Azure AD column shows the icon",
            trigger: ".o_list_view .o_data_row:contains(Adele Vance) td[name=azure_ad_synced] .o_azure_ad_icon",
        },
        {
            content: "Open the contact",
            trigger: ".o_list_view .o_data_row td.o_data_cell:contains(Adele Vance)",
            run: "click",
        },
        {
            content: "The contact form shows the icon",
            trigger: ".o_form_view .o_azure_ad_form_icon .o_azure_ad_icon:contains(Azure AD)",
            run: "hover",
        },
        {
            content: "Its tooltip says what a sync overwrites",
            trigger: ".o_popover:contains(Managed by Azure AD):contains(name, job position and mobile)",
        },
        {
            content: "A person has no Sync contacts menu (only customer companies do)",
            trigger: ".o_form_view:has(.o_field_widget[name=name]):not(:has(.o_azure_ad_sync_contacts_menu))",
        },
    ],
});

tours.add("azure_ad_contacts_no_menu", {
    steps: () => [
        openContactsTab,
        {
            content: "The contacts and their Azure AD icon are visible",
            trigger: ".o_field_x2many_kanban .o_kanban_record:contains(Adele Vance) .o_azure_ad_icon",
        },
        {
            content: "but no Sync contacts menu: integration details are for administrators",
            trigger: ".o_form_view:not(:has(.o_azure_ad_sync_contacts_menu)):not(:has(.o_azure_ad_sync_contacts))",
        },
    ],
});

tours.add("azure_ad_contacts_error_consent", {
    steps: () => [
        openContactsTab,
        {
            content: "The customer form says consent is missing, and offers Reconnect",
            trigger: ".o_azure_ad_error:contains(consent again) .o_azure_ad_reconnect",
            run: "click",
        },
        {
            content: "Reconnect opens the connect wizard",
            trigger: ".modal:has(.o_azure_ad_connect_wizard) .o_azure_ad_wizard_connect:contains(Reconnect)",
        },
        {
            trigger: ".modal .btn:contains(Cancel)",
            run: "click",
        },
        openSyncContactsMenu,
        {
            trigger: ".o_azure_ad_manage",
            run: "click",
        },
        {
            content: "The manage page shows the error and its Reconnect button",
            trigger: ".o_form_view .o_azure_ad_error:contains(consent again) .o_azure_ad_reconnect_error",
        },
    ],
});

tours.add("azure_ad_contacts_error_secret", {
    steps: () => [
        openContactsTab,
        {
            content: "The customer form says the secret expired, and links to the settings",
            trigger: ".o_azure_ad_error:contains(AADSTS7000222) .o_azure_ad_open_settings",
            run: "click",
        },
        {
            content: "The settings of the Azure AD app",
            trigger: ".o_setting_container .o_field_widget[name=azure_ad_client_secret]",
        },
    ],
});

tours.add("azure_ad_contacts_error_throttled", {
    steps: () => [
        openContactsTab,
        {
            content: "The customer form says Microsoft throttles, and when to try again",
            trigger: ".o_azure_ad_error:contains(throttling):contains(try again in) .o_azure_ad_manage_error",
            run: "click",
        },
        {
            content: "The manage page shows it too, with Sync now at hand",
            trigger: ".o_form_view:has(.o_azure_ad_error:contains(throttling)) .o_azure_ad_sync_now",
        },
    ],
});

tours.add("azure_ad_contacts_german", {
    steps: () => [
        {
            content: "Kontakte & Adressen",
            trigger: `.o_notebook .nav-link:contains(${contactsTabGerman})`,
            run: "click",
        },
        {
            content: "The status in German",
            trigger: ".o_azure_ad_status:contains(Mit Azure AD verbunden):contains(Letzte Synchronisierung)",
        },
        {
            content: "Kontakte synchronisieren",
            trigger: ".o_azure_ad_sync_contacts_toggle:contains(Kontakte synchronisieren)",
            run: "click",
        },
        {
            content: "Verwaltung der Azure AD-Integration",
            trigger: ".o_azure_ad_manage:contains(Verwaltung der Azure AD-Integration)",
            run: "click",
        },
        {
            content: "Jetzt synchronisieren, Trennen",
            trigger: ".o_form_statusbar:has(.o_azure_ad_sync_now:contains(Jetzt synchronisieren)) .o_azure_ad_disconnect:contains(Trennen)",
            run: "click",
        },
        {
            content: "The confirmation in German",
            trigger: ".modal:contains(Von Azure AD trennen) .o_azure_ad_disconnect_wizard:contains(Importierte Kontakte bleiben)",
        },
        {
            trigger: ".modal .o_azure_ad_confirm_disconnect:contains(Trennen)",
        },
        {
            trigger: ".modal .btn:contains(Abbrechen)",
            run: "click",
        },
        {
            content: "Still connected",
            trigger: ".o_form_view:not(:has(.modal)) .o_statusbar_status .o_arrow_button_current:contains(Verbunden)",
        },
    ],
});

// The sync options: a leaver option, the preview wizard and its Apply, the pins on a synced contact.

tours.add("azure_ad_contacts_preview", {
    steps: () => [
        {
            content: "Open the integration's sync options",
            trigger: ".o_notebook .nav-link:contains(Sync options)",
            run: "click",
        },
        {
            content: "Deleted users: archive their contacts",
            trigger: ".o_field_widget[name=deleted_action] input[data-value=archive]",
            run: "click",
        },
        {
            content: "The safety threshold shows up with the archive option",
            trigger: ".o_field_widget[name=archive_max_percent]",
        },
        {
            content: "Preview (the form is saved first)",
            trigger: ".o_form_statusbar button[name=action_preview]",
            run: "click",
        },
        {
            content: "The preview says nothing is written yet, and that Apply confirms the archives",
            trigger: ".modal:contains(Nothing has been written yet) .alert-info:contains(safety threshold)",
        },
        {
            content: "The update, old → new",
            trigger: ".modal .o_data_row:contains(P0 Person):contains(Job Position: – → CFO)",
        },
        {
            content: "Open the contacts to archive",
            trigger: ".modal .nav-link:contains(To archive)",
            run: "click",
        },
        {
            content: "The deleted user's contact, and why",
            trigger: ".modal .o_data_row:contains(P2 Person):contains(deleted from Azure AD)",
        },
        {
            content: "Apply",
            trigger: ".modal button[name=action_apply]",
            run: "click",
        },
        {
            content: "Done, with the archived count",
            trigger: ".o_notification:contains(Azure AD sync done):contains(1 updated):contains(1 archived)",
            timeout: 30000,
        },
    ],
});

tours.add("azure_ad_contacts_pins", {
    steps: () => [
        {
            content: "Open the contact's Azure AD tab",
            trigger: ".o_notebook .nav-link:contains(Azure AD)",
            run: "click",
        },
        {
            content: "The department Azure AD has",
            trigger: ".o_field_widget[name=azure_ad_department] input:value(Sales)",
        },
        {
            content: "Pin it: never overwrite",
            trigger: ".o_field_widget[name=azure_ad_never_overwrite] input",
            run: "click",
        },
        {
            content: "Save",
            trigger: ".o_form_button_save",
            run: "click",
        },
        {
            content: "Saved",
            trigger: ".o_form_saved",
        },
    ],
});
