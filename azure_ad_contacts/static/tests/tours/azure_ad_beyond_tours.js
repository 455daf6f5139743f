/**
 * Browser tours of the options beyond S1-S19 (tests/test_beyond_ui.py starts them):
 * a leaver option, the preview wizard and its Apply, the pins on a synced contact.
 */
import { registry } from "@web/core/registry";

const tours = registry.category("web_tour.tours");

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
