from . import azure_ad_connect_wizard
from . import azure_ad_disconnect_wizard
from . import azure_ad_preview_line
from . import azure_ad_preview_wizard
from . import azure_ad_group_picker
from . import azure_ad_group_picker_line
from . import base_partner_merge_automatic_wizard
