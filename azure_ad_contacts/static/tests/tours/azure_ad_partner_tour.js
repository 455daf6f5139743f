/**
 * Connecting through the partner tenant in a browser (tests/test_partner_ui.py starts it in
 * headless Chromium): Settings › Connect through the partner tenant › Sign in as partner
 * administrator. Microsoft's sign-in page is not an Odoo page: the test's browser plays the
 * partner administrator there (its account, then Accept); the tour resumes when Odoo is back.
 */
import { registry } from "@web/core/registry";
import { leavesPage } from "./series";

registry.category("web_tour.tours").add("azure_ad_contacts_partner", {
    steps: () => [
        {
            content: "Settings › Azure AD Contacts: the way to connect through the partner tenant",
            trigger: ".o_setting_box:contains(Connect every customer at once) .o_azure_ad_partner_open",
            run: "click",
        },
        leavesPage({
            content: "Not signed in yet: sign in as a partner administrator (off to Microsoft)",
            trigger: ".o_form_view .o_azure_ad_partner_sign_in",
            run: "click",
        }),
        {
            content: "Back from Microsoft: connected, with the administrator who signed in",
            trigger: ".o_form_view:contains(nancy.davolio@northwind-it.example) .o_statusbar_status .o_arrow_button_current:contains(Connected)",
            timeout: 30000,
        },
        {
            content: "The partner's three customers wait for their Odoo customer to be confirmed",
            trigger: ".o_form_view .alert-info:contains(3 customers of the partner wait for you)",
        },
        {
            content: "Fabrikam was matched by a verified domain",
            trigger: "div[name=customer_ids] .o_data_row:contains(Fabrikam, Inc.):contains(Verified domain):contains(Fabrikam Inc)",
        },
        {
            content: "Tailspin Toys by its name",
            trigger: "div[name=customer_ids] .o_data_row:contains(Tailspin Toys):contains(Name)",
        },
        {
            content: "Wingtip Toys has no Odoo customer yet: nothing proposed, no Confirm button",
            trigger: "div[name=customer_ids] .o_data_row:contains(Wingtip Toys):not(:has(.o_azure_ad_partner_confirm))",
        },
        {
            content: "Confirm Fabrikam",
            trigger: "div[name=customer_ids] .o_data_row:contains(Fabrikam, Inc.) .o_azure_ad_partner_confirm",
            run: "click",
        },
        {
            content: "Connected through the partner: the first sync runs in the background",
            trigger: ".o_notification:contains(Connected through the partner):contains(Fabrikam Inc is connected through the partner tenant)",
        },
        {
            content: "Fabrikam is confirmed",
            trigger: "div[name=customer_ids] .o_data_row:contains(Fabrikam, Inc.):contains(Confirmed)",
        },
    ],
});
