from . import azure_ad_integration, azure_ad_sync_log, res_config_settings, res_partner
