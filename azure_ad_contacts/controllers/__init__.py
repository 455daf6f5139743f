from . import main
from . import partner
