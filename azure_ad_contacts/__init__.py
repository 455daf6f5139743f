from . import controllers, models, series, wizards
