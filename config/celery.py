import logging

from celery import Celery
from celery.signals import celeryd_init, worker_process_init

from config.env import use_default_settings_module

use_default_settings_module()  # production unless told otherwise (config/env.py)

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_process_init.connect
def _freeze_startup_heap(**kwargs):
    from config.heap import freeze_startup_heap

    freeze_startup_heap()


@celeryd_init.connect
def _webhook_worker_priority(options=None, **kwargs):
    """A worker for WEBHOOK_QUEUE alone runs at WEBHOOK_WORKER_NICE (config/priority.py), before its pool starts."""
    from django.conf import settings

    from config.priority import consumed_queues, is_webhook_worker, lower_autogroup, lower_priority

    queues = consumed_queues(options or {})
    if settings.WEBHOOK_WORKER_NICE and is_webhook_worker(queues, settings.WEBHOOK_QUEUE,
                                                           settings.CELERY_TASK_DEFAULT_QUEUE):
        nice = lower_priority(settings.WEBHOOK_WORKER_NICE)
        autogroup = lower_autogroup(settings.WEBHOOK_WORKER_NICE)
        log = logging.getLogger("config.priority")
        (log.info if autogroup in ("off", "lowered") else log.warning)(
            "worker.priority_lowered", extra={"queues": sorted(queues), "nice": nice, "autogroup": autogroup})
