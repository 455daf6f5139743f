/**
 * Browser tour of the ticket form (tests/test_helpdesk.py starts it in headless Chromium):
 * a ticket from a person who is not synced yet suggests syncing the customer; "Sync now"
 * imports the person and makes them the requester.
 */
import { registry } from "@web/core/registry";

registry.category("web_tour.tours").add("azure_ad_contacts_helpdesk_sync_from_ticket", {
    steps: () => [
        {
            content: "The banner names the customer whose tenant owns the address",
            trigger: ".o_azure_ad_sync_suggestion:contains(Contoso Ltd):contains(not a synced contact yet)",
        },
        {
            content: "No Azure AD mark yet: the ticket has no synced requester",
            trigger: ".o_form_view:not(:has(.o_azure_ad_form_icon))",
        },
        {
            content: "Sync the customer from the ticket",
            trigger: ".o_azure_ad_sync_suggestion .o_azure_ad_sync_customer",
            run: "click",
        },
        {
            content: "The sync says who the requester is now",
            trigger: ".o_notification:contains(New Hire of Contoso Ltd is now the requester)",
            timeout: 30000,
        },
        {
            content: "The ticket shows the requester's Azure AD mark, and the banner is gone",
            trigger: ".o_form_view:has(.o_azure_ad_form_icon):not(:has(.o_azure_ad_sync_suggestion))",
        },
        {
            content: "The requester is the imported person, a contact of the customer",
            trigger: ".o_field_widget[name=partner_id] input:value(New Hire)",
        },
    ],
});
