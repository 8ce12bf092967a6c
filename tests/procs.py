"""Start the product's real processes (runner, Celery worker, daphne) against the test database.

Used by tests that need the whole path (runner -> journal -> worker -> websocket). Each process gets
the test database's name, a Redis database of its own and a Celery queue of its own, so a `make run`
on the same machine cannot steal its tasks. Output goes to a log file that is printed on failure.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

from django.conf import settings
from django.db import connection

from config.processes import group_members
from tests.leftovers import scratch_dir

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(**extra) -> dict:
    """Environment for a child process that must see the same database and Redis as the test."""
    db = connection.settings_dict
    env = dict(os.environ)
    if db["ENGINE"].endswith("sqlite3"):
        env["DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        user, host, port = db["USER"] or "postgres", db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        env["DATABASE_URL"] = f"postgres://{user}@{host}:{port}/{db['NAME']}"
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    # The session's store and media root (tests/leftovers.py), or what the test set in their place.
    env["WHATSMEOW_STORE"], env["MEDIA_ROOT"] = settings.WHATSMEOW_STORE, settings.MEDIA_ROOT
    env["REDIS_URL"] = settings.REDIS_URL
    env["CELERY_QUEUE"] = settings.CELERY_TASK_DEFAULT_QUEUE
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Proc:
    def __init__(self, name: str, args: list[str], env: dict):
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", dir=scratch_dir(), delete=False)
        self.popen = subprocess.Popen(
            args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig) -> None:
        if self.alive():
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM to the process group, then wait until every member is gone: a runner's children finish
        their own shutdown (spooling, journaling) after it exits, and a test's teardown must not flush
        the database under their feet (TRUNCATE against their inserts deadlocks)."""
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(5)
        if not wait_for_group_exit(self.popen.pid, timeout):
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            wait_for_group_exit(self.popen.pid, 5)

    def kill(self) -> None:
        """SIGKILL the process alone (not its group): what a crash looks like to its children."""
        if self.alive():
            self.popen.kill()
            self.popen.wait(5)


def wait_for_group_exit(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while group_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def manage(name: str, *args: str, env: dict | None = None) -> Proc:
    return Proc(name, [sys.executable, "manage.py", *args], env or process_env())


def celery_worker(env: dict | None = None, concurrency: int = 2, queue: str | None = None,
                  name: str = "worker") -> Proc:
    """A Celery worker for ``queue`` (by default the env's CELERY_QUEUE), named ``name``."""
    env = env or process_env()
    return Proc(
        name,
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "INFO", "-Q", queue or env["CELERY_QUEUE"],
         "--concurrency", str(concurrency), "--without-gossip", "--without-mingle", "-n",
         f"{'test' if name == 'worker' else name}-{os.getpid()}@%h"],
        env,
    )


def celery_beat(env: dict | None = None) -> Proc:
    """Beat with the Procfile's scheduler (django-celery-beat's database scheduler marking its ticks)."""
    return Proc("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "INFO", "--scheduler",
                         "config.beat:Scheduler"], env or process_env())


def daphne(port: int, env: dict | None = None) -> Proc:
    return Proc("web", [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
                env or process_env())


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail with what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
