from django.core.wsgi import get_wsgi_application

from config.env import use_default_settings_module

use_default_settings_module()  # production unless told otherwise (config/env.py)
application = get_wsgi_application()
