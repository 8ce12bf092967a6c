from celery import Celery
from celery.signals import worker_process_init

from config.env import use_default_settings_module

use_default_settings_module()  # production unless told otherwise (config/env.py)

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_heap(**kwargs):
    from config.heap import freeze_startup_heap

    freeze_startup_heap()
