"""/health/detailed against the real processes: worker, beat and runner on a Redis of the test's own.

One scenario walks through the failures (each judged with everything else up): all up -> 200; the
worker stopped -> 503 naming the workers; the worker back -> 200; the runner killed -> 503 naming the
runners; Redis stopped -> 503 naming Redis. The view runs in the test process with its settings
pointed at the test's Redis (it reads REDIS_URL and the broker URL at call time).
"""

import signal

import pytest
from django.conf import settings
from django.db import close_old_connections
from django.test import override_settings
from django.urls import reverse

from tests import procs
from tests.connections.helpers import runner_env, start_runner, wait_status
from tests.factories import ConnectionFactory, TenantFactory
from tests.faults.kit import fault_env, redis_url

pytestmark = [pytest.mark.faults, pytest.mark.processes, pytest.mark.django_db(transaction=True)]
TOKEN = "health-test-token"


def failing(client) -> tuple[int, set, dict]:
    close_old_connections()
    response = client.get(reverse("health_detailed"), HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    body = response.json()
    return response.status_code, {k for k, v in body["checks"].items() if v["status"] != "ok"}, body


def wait_health(client, status, failing_parts, timeout=30.0):
    seen = {}

    def matches():
        seen["last"] = failing(client)
        code, parts, _ = seen["last"]
        return code == status and parts == failing_parts

    try:
        procs.wait_for(matches, timeout, 0.3, f"/health/detailed {status} failing {sorted(failing_parts)}")
    except AssertionError:
        print(seen.get("last"))
        raise
    return seen["last"][2]


def test_detailed_health_follows_worker_runner_and_redis(client, redis_server):
    conn = ConnectionFactory(tenant=TenantFactory(), name="Health", jid="5511930000001:1@s.whatsapp.net",
                             status="disconnected")
    env = fault_env(runner_env(), redis=redis_server, SIMULATOR_REDIS_URL=settings.REDIS_URL)
    url = redis_url(redis_server)
    started = []
    try:
        worker = procs.celery_worker(env)
        started.append(worker)
        started.append(procs.celery_beat(env))
        runner = start_runner("health", env)
        started.append(runner)
        with override_settings(REDIS_URL=url, CELERY_BROKER_URL=url, HEALTH_TOKEN=TOKEN, RUNNER_LEASE_SECONDS=3,
                               RUNNER_HEARTBEAT_SECONDS=0.5):
            wait_status(conn.pk, "connected", timeout=30, runner=runner)
            body = wait_health(client, 200, set())
            assert body["checks"]["workers"]["workers"], body
            assert [r["id"] for r in body["checks"]["runners"]["runners"]] == ["health"]
            assert body["checks"]["runners"]["runners"][0]["leases"] == [conn.pk]
            number = next(n for n in body["numbers"] if n["id"] == conn.pk)
            assert number["status"] == "connected" and number["heartbeat_age_seconds"] is not None
            assert body["journal"]["pending"] >= 0 and "oldest_pending_age_seconds" in body["journal"]

            worker.stop()
            body = wait_health(client, 503, {"workers"}, timeout=15)
            assert "no Celery worker" in body["checks"]["workers"]["error"]

            started.append(procs.celery_worker(env))
            wait_health(client, 200, set())

            runner.signal(signal.SIGKILL)  # the runner and its children, as a crash or an OOM kill
            body = wait_health(client, 503, {"runners"}, timeout=20)
            assert "runner health last seen" in body["checks"]["runners"]["error"]

            redis_server.stop()
            code, parts, body = failing(client)
            assert code == 503 and {"redis", "workers", "beat", "runners"} <= parts, body
            assert body["checks"]["database"]["status"] == "ok"
    except BaseException:
        for p in started:
            print(f"===== {p.name} =====\n{p.output()[-3000:]}")
        raise
    finally:
        for p in started:
            p.stop()
