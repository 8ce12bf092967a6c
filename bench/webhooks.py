"""Webhook fan-out: what recording costs the live ingest, and how fast a real worker delivers.

    .venv/bin/python bench/webhooks.py [--messages 3000] [--batch 100] [--endpoints 1]

In a PostgreSQL database of its own (``inbox_bench_webhooks``, created and dropped here):

1. ``ingest``: ``--messages`` live inbound messages (real MessageEv protobufs from 200 customers), journaled
   and processed in batches of ``--batch`` as the worker does, for a number without webhooks and then for
   a number whose tenant has ``--endpoints`` endpoints subscribed to ``message.received``: messages/s of
   each, so the cost of recording deliveries on the ingest path shows.
2. ``delivery``: a real Celery worker (``--concurrency 2``) sends the recorded deliveries to a local HTTP
   receiver (204 at once, in this process): deliveries/s from the end of the ingest until the last one is
   accepted, and whether each conversation's events arrived in order.

Prints one JSON line and saves bench/results/webhooks.json. Issue 16's target is 1,000 messages/s of
fan-out without delaying the live inbox; this measures the two halves on this machine (see the result).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_webhooks")


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def live_events(n: int, prefix: str):
    from sync import events_builder as b

    base = 1_760_000_000_000
    return [b.serialize(b.message_ev(f"55119{i % 200:08d}@s.whatsapp.net", f"55119{i % 200:08d}@s.whatsapp.net",
                                     f"{prefix}{i:08d}", f"order {i}", base + i)) for i in range(n)]


def ingest(conn, events, batch: int) -> float:
    from sync.journal import journal_events
    from sync.processor import process_pending

    started = time.perf_counter()
    for i in range(0, len(events), batch):
        journal_events(conn.pk, [(name, data, None) for name, data in events[i:i + batch]], schedule=False)
        process_pending(conn.pk, wait=True)
    return time.perf_counter() - started


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--endpoints", type=int, default=1)
    args = parser.parse_args()

    admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DB_NAME}"')
    os.environ["DATABASE_URL"] = f"{PG}/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12")
    os.environ["CELERY_QUEUE"] = "bench-webhooks"
    os.environ["CHANNEL_LAYER_PREFIX"] = "bench-webhooks"
    os.environ["OUTBOUND_ALLOW_PRIVATE_ADDRESSES"] = "true"
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from api import webhooks
    from api.models import WebhookDelivery
    from connections.models import Connection
    from inbox.models import Tenant
    from tests import procs
    from tests.api.receiver import Receiver

    redis.Redis.from_url(os.environ["REDIS_URL"]).delete("bench-webhooks")
    receiver = Receiver()
    worker = None
    try:
        call_command("migrate", verbosity=0)
        plain = Tenant.objects.create(name="Plain", slug="plain")
        hooked = Tenant.objects.create(name="Hooked", slug="hooked")
        plain_conn = Connection.objects.create(tenant=plain, name="plain number")
        hooked_conn = Connection.objects.create(tenant=hooked, name="hooked number")
        endpoints = [webhooks.check_create_endpoint(hooked, url=receiver.url, events=["message.received"])
                     for _ in range(args.endpoints)]
        without_s = ingest(plain_conn, live_events(args.messages, "P"), args.batch)
        # Recording enqueues delivery tasks on commit; no worker runs yet, so they wait in the queue and
        # the ingest is measured alone.
        with_s = ingest(hooked_conn, live_events(args.messages, "H"), args.batch)
        total = WebhookDelivery.objects.for_tenant(hooked).count()
        assert total == args.messages * args.endpoints, total

        worker = procs.celery_worker(procs.process_env(LOG_LEVEL="WARNING", OUTBOUND_ALLOW_PRIVATE_ADDRESSES=True),
                                     concurrency=2)
        started = time.perf_counter()
        procs.wait_for(lambda: len(receiver.requests) >= total, timeout=600, interval=0.2,
                       message=f"{total} deliveries")
        delivery_s = time.perf_counter() - started
        by_chat: dict = {}
        for request in receiver.requests:
            message = request["body"]["data"]["message"]
            by_chat.setdefault(message["conversation_id"], []).append(message["id"])
        in_order = all(ids == sorted(ids) for ids in by_chat.values()) if args.endpoints == 1 else None
        result = {
            "bench": "webhooks", "at": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
            "cpus": os.cpu_count(), "load_avg": os.getloadavg()[0], "messages": args.messages, "batch": args.batch,
            "endpoints": len(endpoints),
            "ingest_without_webhooks_msgs_per_s": round(args.messages / without_s),
            "ingest_with_webhooks_msgs_per_s": round(args.messages / with_s),
            "deliveries": total, "delivery_s": round(delivery_s, 2),
            "deliveries_per_s": round(total / delivery_s),
            "in_order_per_conversation": in_order,
            "non_2xx": sum(1 for a in receiver.answers if a >= 300),
        }
    finally:
        if worker:
            worker.stop()
        receiver.close()
        from django.db import connections

        connections.close_all()
        admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    print(json.dumps(result))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "webhooks.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
