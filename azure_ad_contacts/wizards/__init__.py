from . import azure_ad_connect_wizard
