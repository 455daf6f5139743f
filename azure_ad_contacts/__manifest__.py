{
    "name": "Azure AD Contacts",
    "summary": "Import and keep your customers' Microsoft Entra ID (Azure AD) users "
    "up to date as Odoo contacts",
    "version": "18.0.1.0.0",
    "category": "Sales/CRM",
    "license": "LGPL-3",
    "author": "Azure AD Contacts contributors",
    "website": "https://github.com/azure-ad-contacts/azure_ad_contacts",
    "development_status": "Beta",
    "depends": ["contacts", "mail"],
    "external_dependencies": {"python": ["msal"]},
    "data": [
        "security/azure_ad_contacts_security.xml",
        "security/ir.model.access.csv",
        "views/azure_ad_sync_log_views.xml",
        # Before the integration views: their buttons open the settings action.
        "views/res_config_settings_views.xml",
        "views/azure_ad_integration_views.xml",
        "views/res_partner_views.xml",
        "views/azure_ad_contacts_templates.xml",
        "views/azure_ad_contacts_menus.xml",
        "data/ir_actions_server_data.xml",
        "data/ir_cron_data.xml",
    ],
    "demo": ["demo/azure_ad_integration_demo.xml"],
    "assets": {
        "web.assets_backend": ["azure_ad_contacts/static/src/**/*"],
        "web.assets_tests": ["azure_ad_contacts/static/tests/tours/**/*"],
    },
    "installable": True,
    "application": False,
}
