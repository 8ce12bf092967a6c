"""Runner benchmark: how fast the runner reacts, with real processes on PostgreSQL and Redis.

    .venv/bin/python bench/runner.py [--connections 20] [--nudges 30]

In a database of its own (``inbox_bench_runner``, created and dropped here): starts one runner
(simulator transport) and measures (1) start -> all connections connected, (2) nudge -> event
journaled (a `simulate` text through Redis, supervisor, child, simulator, journal), (3) queued reply
-> sent (a `send` nudge through the outbox). Prints one JSON line and saves bench/results/runner.json.
Target: nudge reaction p95 < 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import drop_product_database, product_database  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_runner")


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 4)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--nudges", type=int, default=30)
    args = parser.parse_args()

    product_database(DB_NAME, "redis://127.0.0.1:6379/7", settings="config.settings.local",
                     CELERY_QUEUE="bench-runner", EVENT_SPOOL_DIR=f"/tmp/bench-runner-spool-{os.getpid()}")
    from django.db import close_old_connections

    from connections.models import Connection
    from connections.nudge import nudge
    from inbox.models import Contact, Conversation, Message, Tenant
    from sync.models import RawEvent

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    conns = [Connection.objects.create(tenant=tenant, name=f"n{i}", transport="simulator",
                                       jid=f"55119222{i:05d}:1@s.whatsapp.net") for i in range(args.connections)]
    runner = subprocess.Popen([sys.executable, "manage.py", "run_connections", "--runner-id", "bench"], cwd=ROOT,
                              env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        t0 = time.monotonic()
        while Connection.objects.unscoped().filter(status="connected").count() < len(conns):
            if time.monotonic() - t0 > 120:
                raise SystemExit("not all connected after 120 s")
            time.sleep(0.05)
        all_connected = time.monotonic() - t0

        nudge_latency = []
        for i in range(args.nudges):
            conn = conns[i % len(conns)]
            text = f"bench-{uuid.uuid4().hex[:8]}"
            before = RawEvent.objects.unscoped().filter(connection=conn, event_name="MessageEv").count()
            t = time.monotonic()
            nudge(conn.pk, "simulate", kind="text", text=text, **{"from": "+5511999990001"})
            while RawEvent.objects.unscoped().filter(connection=conn, event_name="MessageEv").count() == before:
                time.sleep(0.005)
            nudge_latency.append(time.monotonic() - t)

        send_latency = []
        contact = Contact.objects.create(tenant=tenant, display_name="c")
        for i in range(min(args.nudges, 20)):
            conn = conns[i % len(conns)]
            conv, _ = Conversation.objects.unscoped().get_or_create(
                tenant=tenant, connection=conn, chat_jid="5511999990001@s.whatsapp.net",
                                                         defaults={"contact": contact})
            from django.utils import timezone

            m = Message.objects.create(tenant=tenant, connection=conn, conversation=conv, direction="out", status="queued",
                                       external_id=f"local-{uuid.uuid4().hex}", body="reply", sent_at=timezone.now())
            t = time.monotonic()
            nudge(conn.pk, "send")
            while Message.objects.unscoped().filter(pk=m.pk, status="queued").exists() or \
                    Message.objects.unscoped().filter(pk=m.pk, status="sending").exists():
                time.sleep(0.005)
            send_latency.append(time.monotonic() - t)
            close_old_connections()
    finally:
        runner.terminate()
        runner.wait(20)
        close_old_connections()
        from django.db import connections

        connections.close_all()
        drop_product_database(DB_NAME)

    result = {
        "bench": "runner", "connections": args.connections, "cpus": os.cpu_count(), "python": platform.python_version(),
        "start_to_all_connected_s": round(all_connected, 3),
        "nudge_to_journal_s": {"p50": round(statistics.median(nudge_latency), 4), "p95": pct(nudge_latency, 0.95),
                               "max": round(max(nudge_latency), 4), "n": len(nudge_latency)},
        "nudge_to_sent_s": {"p50": round(statistics.median(send_latency), 4), "p95": pct(send_latency, 0.95),
                            "max": round(max(send_latency), 4), "n": len(send_latency)},
        "target": "nudge reaction p95 < 1 s",
        "ok": pct(nudge_latency, 0.95) < 1.0 and pct(send_latency, 0.95) < 1.0,
    }
    line = json.dumps(result)
    print(line)
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "results" / "runner.json").write_text(line + "\n")


if __name__ == "__main__":
    main()
