from . import azure_ad_microsoft_mixin
from . import azure_ad_consent_mixin
from . import azure_ad_sync_mixin
from . import azure_ad_delta_mixin
from . import azure_ad_integration
from . import azure_ad_sync_log
from . import res_config_settings
from . import res_partner
