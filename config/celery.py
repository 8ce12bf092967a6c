import logging

from celery import Celery, states
from celery.signals import celeryd_init, task_postrun, task_prerun, worker_process_init

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
def _background_worker_priority(options=None, **kwargs):
    """A worker for WEBHOOK_QUEUE or JOURNAL_QUEUE alone runs at that queue's nice value (config/priority.py),
    set before its pool starts."""
    from django.conf import settings

    from config.priority import background_nice, consumed_queues, lower_autogroup, lower_priority

    queues = consumed_queues(options or {})
    wanted = background_nice(queues, settings)
    if wanted:
        nice = lower_priority(wanted)
        autogroup = lower_autogroup(wanted)
        log = logging.getLogger("config.priority")
        (log.info if autogroup in ("off", "lowered") else log.warning)(
            "worker.priority_lowered", extra={"queues": sorted(queues), "nice": nice, "autogroup": autogroup})


# --- the worker's database connection, kept between tasks ------------------------------------------
# A connection per task started a PostgreSQL backend per task (~5 % of the worker's CPU in a live flood and
# more on the server; docs/measurements.md). Celery's Django fixup closes only every CELERY_DB_REUSE_MAX tasks
# (settings), and this decides what a connection may carry from one task to the next: nothing of a failed
# task (say an advisory lock its ``finally`` could not release because the unlock failed too), nothing of a
# connection that saw a database error, nothing older than WORKER_CONN_MAX_AGE; and the first query of each
# task checks that the connection is alive (CONN_HEALTH_CHECKS). A killed worker's sessions end with it.


@worker_process_init.connect
def _keep_database_connections(**kwargs):
    from django.conf import settings
    from django.db import connections

    for conn in connections.all():
        conn.settings_dict["CONN_MAX_AGE"] = settings.WORKER_CONN_MAX_AGE


@task_prerun.connect
def _check_database_connections(sender=None, **kwargs):
    if _ran_in_worker(sender):
        from django.db import close_old_connections

        close_old_connections()  # too old or broken: closed; otherwise checked on its first query


@task_postrun.connect
def _end_task_database_connections(sender=None, state=None, **kwargs):
    if not _ran_in_worker(sender):
        return
    from django.db import close_old_connections, connections

    for conn in connections.all(initialized_only=True):
        if state != states.SUCCESS or conn.errors_occurred:
            conn.close()  # the server ends the session: its advisory locks and settings go with it
    close_old_connections()


def _ran_in_worker(task) -> bool:
    """Not called eagerly (``task.apply()``, tests): that runs inside the caller's connection and transaction."""
    return task is not None and not getattr(task.request, "is_eager", False)
