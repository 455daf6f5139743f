{
    "name": "Azure AD Contacts - Job Queue",
    "summary": "Sync your customers' Microsoft Entra ID (Azure AD) users as OCA queue jobs, "
    "in parallel and across several Odoo servers",
    "version": "1.0.0",
    "category": "Contacts",
    "license": "LGPL-3",
    "author": "Azure AD Contacts contributors",
    "website": "https://github.com/azure-ad-contacts/azure_ad_contacts",
    "development_status": "Beta",
    "depends": ["azure_ad_contacts", "queue_job"],
    "data": [
        "data/queue_job_data.xml",
        "views/azure_ad_sync_log_views.xml",
        "views/res_config_settings_views.xml",
    ],
    "auto_install": True,
    "installable": True,
}
