from celery import Celery

from config.env import use_default_settings_module

use_default_settings_module()  # production unless told otherwise (config/env.py)

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
