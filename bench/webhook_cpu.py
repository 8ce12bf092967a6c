"""The CPU cost of delivering one webhook event, in one process: robust on a shared machine.

    .venv/bin/python bench/webhook_cpu.py [--events 5000] [--batch 100] [--partitions 4] [--rounds 3] [--profile]

In a PostgreSQL database of its own (``BENCH_DB``, default ``inbox_bench_webhook_cpu``, created and dropped
here) ``--events`` live MessageEv protobufs over 400 customers and 4 numbers go through the product's
ingest (``journal_events`` then ``sync.processor.process_pending``, in this process), which records one
``message.received`` delivery each for an endpoint with batches of ``--batch``. Then, ``--rounds`` times,
every delivery is made pending again with no payload (what a first attempt finds) and
``api.webhooks.deliver_pending`` drains them all to a threaded receiver in a process of its own
(bench/webhooks.py's; it verifies each signature; not counted). Measured per round: the delivering thread's CPU time
(``time.thread_time``: the serialization, signing, HTTP client and ORM work of the worker) and the CPU
time of its PostgreSQL backend (``/proc/<pid>/stat`` of ``pg_backend_pid()``: the delivery rows' reads and
``--phases`` adds one round with each phase's CPU, in this thread and in its backend (schedstat);
``--profile`` adds one round
under cProfile and prints its top functions to stderr.

Prints one JSON line and saves bench/results/webhook_cpu.json.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import platform
import pstats
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from benchlib import PG, admin

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_webhook_cpu")
TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this connection's PostgreSQL backend."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


PHASES = {  # what the delivery path spends its CPU on: (module, function) wrapped for --phases
    "page_queries": ("api.webhooks", "_pending_page"),
    "build_payloads": ("api.webhooks", "build_payloads"),
    "serializers": ("api.webhooks", "_objects"),
    "request_body": ("api.webhooks", "request_body"),
    "signing": ("api.webhooks", "sign"),
    "http_post": ("api.webhooks", "post_json_pooled"),
    "save_attempts": ("api.webhooks", "_save_attempts"),
    "failure_count": ("api.webhooks", "_count"),
    "pending_state": ("api.webhooks", "_pending_state"),
}


def backend_ns(pid: int) -> int:
    """Nanoseconds on a CPU of a PostgreSQL backend so far (``/proc/<pid>/schedstat``: precise, unlike the
    10 ms ticks of ``stat`` that a short statement rounds to nothing)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def wrap_phases() -> tuple[dict[str, float], dict[str, float]]:
    """Accumulate each phase's thread CPU time and its database backend's (phases nest: build_payloads holds
    serializers)."""
    import importlib

    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    spent, spent_db = dict.fromkeys(PHASES, 0.0), dict.fromkeys(PHASES, 0.0)

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t, d = time.thread_time(), backend_ns(pid)
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.thread_time() - t
                spent_db[name] += (backend_ns(pid) - d) / 1e9
        return wrapper

    for name, (module, attr) in PHASES.items():
        mod = importlib.import_module(module)
        if hasattr(mod, attr):  # an older api.webhooks (a before/after run) may lack one
            setattr(mod, attr, timed(name, getattr(mod, attr)))
    return spent, spent_db


def ingest(numbers, events: int, customers: int) -> None:
    from django.utils import timezone

    from sync import events_builder as b
    from sync.journal import journal_events
    from sync.processor import process_pending

    for start in range(0, events, 500):
        now = timezone.now()
        conn = numbers[(start // 500) % len(numbers)]
        batch = []
        for i in range(start, min(events, start + 500)):
            chat = f"55119{i % customers:08d}@s.whatsapp.net"
            batch.append((*b.serialize(b.message_ev(chat, chat, f"W{i:08d}", f"order {i}",
                                                     int(time.time() * 1000))), now))
        journal_events(conn.pk, batch, schedule=False)
    for conn in numbers:
        while process_pending(conn.pk, time_budget=60).more:
            pass


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="one more round under cProfile (stderr)")
    parser.add_argument("--phases", action="store_true",
                        help="one more round with each phase's CPU time (its functions wrapped)")
    args = parser.parse_args()

    admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB_NAME}", DJANGO_SETTINGS_MODULE="config.settings.test", LOG_LEVEL="WARNING",
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13"), CELERY_QUEUE="bench-webhook-cpu",
        WEBHOOK_PARTITIONS=str(args.partitions), WEBHOOK_BATCH_MAX=str(max(100, args.batch)),
        CHANNEL_LAYER_PREFIX="bench-webhook-cpu", OUTBOUND_ALLOW_PRIVATE_ADDRESSES="true",
    )
    import django

    django.setup()
    import redis
    from django.core.management import call_command
    from webhooks import Receiver

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    call_command("migrate", verbosity=0)
    receiver = Receiver()
    try:
        result = run(args, receiver)
    finally:
        receiver.close()
        from django.db import connections

        connections.close_all()
        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()  # the delivery tasks nobody consumes
        admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    print(json.dumps(result))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "webhook_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def record_round(tenant, log) -> dict:
    """The cost in the writer's transaction (the ingest's, for the live inbox): ``record_events`` of the
    logged events again, in batches of 500 as an ingest batch records them; rolled back."""
    from django.db import transaction

    from inbox import integrations

    rows = list(log.order_by("id").values_list("object_id", "ordering_key"))
    events = [integrations.Event(integrations.MESSAGE_RECEIVED, key, oid) for oid, key in rows]
    with transaction.atomic():
        db0, cpu0 = backend_cpu_s(), time.thread_time()
        for start in range(0, len(events), 500):
            with transaction.atomic():
                integrations.record_events(tenant.pk, events[start:start + 500])
        cpu, db = time.thread_time() - cpu0, backend_cpu_s() - db0
        transaction.set_rollback(True)
    return {"writer_cpu_ms_per_event": cpu * 1000 / len(events), "db_cpu_ms_per_event": db * 1000 / len(events)}


def run(args, receiver) -> dict:
    from api import webhooks
    from api.models import WebhookDelivery
    from connections.models import Connection
    from inbox.models import Tenant

    tenant = Tenant.objects.create(name="Hooked", slug="hooked")
    numbers = [Connection.objects.create(tenant=tenant, name=f"number {i}", status="connected") for i in range(4)]
    endpoint = webhooks.check_create_endpoint(tenant, url=receiver.url, events=["message.received"],
                                              batch_size=args.batch)
    receiver.set_secret(endpoint.secret)
    t0 = time.monotonic()
    ingest(numbers, args.events, 400)
    ingest_s = time.monotonic() - t0
    log = WebhookDelivery.objects.for_tenant(tenant)
    recorded = log.count()
    assert recorded == args.events, (recorded, args.events)

    def one_round() -> dict:
        log.update(status="pending", payload=None, attempts=0, next_attempt_at=None, response_code=None)
        receiver.take()
        db0, cpu0, wall0 = backend_cpu_s(), time.thread_time(), time.perf_counter()
        webhooks.deliver_pending(endpoint.pk, None, budget_seconds=600)
        wall, cpu, db = time.perf_counter() - wall0, time.thread_time() - cpu0, backend_cpu_s() - db0
        taken = receiver.take()
        events = [(at, event) for at, body in taken["requests"] for event in body]
        assert len(events) == args.events and not taken["bad_signatures"], (len(events), taken["bad_signatures"])
        assert not log.exclude(status="succeeded").exists()
        last: dict = {}
        for _, event in events:  # each conversation's events arrive in the order they were recorded
            m = event["data"]["message"]
            assert last.get(m["conversation_id"], 0) < m["id"]
            last[m["conversation_id"]] = m["id"]
        return {"worker_cpu_ms_per_event": cpu * 1000 / args.events, "db_cpu_ms_per_event": db * 1000 / args.events,
                "events_per_s_wall": args.events / wall, "requests": len(taken["requests"])}

    rounds = [one_round() for _ in range(args.rounds)]
    recording = [record_round(tenant, log) for _ in range(args.rounds)]
    profile_top = None
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        one_round()
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(45)
        print(out.getvalue(), file=sys.stderr)
        profile_top = True

    phases = None
    if args.phases:
        spent, spent_db = wrap_phases()
        total = one_round()
        phases = {"total": round(total["worker_cpu_ms_per_event"], 4),
                  **{k: round(v * 1000 / args.events, 4) for k, v in spent.items()},
                  "database_backend": {"total": round(total["db_cpu_ms_per_event"], 4),
                                       **{k: round(v * 1000 / args.events, 4) for k, v in spent_db.items()}}}

    def med(key, values=rounds):
        return statistics.median(r[key] for r in values)

    worker, db = med("worker_cpu_ms_per_event"), med("db_cpu_ms_per_event")
    return {
        "benchmark": "webhook_cpu", "at": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "events": args.events,
        "batch": args.batch, "partitions": args.partitions, "rounds": args.rounds, "ingest_s": round(ingest_s, 2),
        "worker_cpu_ms_per_event": round(worker, 4), "db_cpu_ms_per_event": round(db, 4),
        "cpu_ms_per_event": round(worker + db, 4), "events_per_cpu_s": round(1000 / (worker + db)),
        "events_per_s_wall": round(med("events_per_s_wall")), "requests_per_round": rounds[0]["requests"],
        "recording_in_writer_cpu_ms_per_event": round(med("writer_cpu_ms_per_event", recording), 4),
        "recording_db_cpu_ms_per_event": round(med("db_cpu_ms_per_event", recording), 4),
        "per_round": [{k: round(v, 4) for k, v in r.items()} for r in rounds], "profiled": bool(profile_top),
        "phases_cpu_ms_per_event": phases,
        "checked": "every signature verified, every event once, order per conversation, every log row succeeded",
    }


if __name__ == "__main__":
    main()
