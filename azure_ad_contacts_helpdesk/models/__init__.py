from . import azure_ad_integration
from . import helpdesk_ticket
from . import res_partner
