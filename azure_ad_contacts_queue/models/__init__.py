from . import azure_ad_integration
from . import azure_ad_sync_log
from . import queue_job
from . import res_config_settings
from . import res_partner
