"""Ingestion benchmark: a 100,000-message history sync through the real journal and processor.

    .venv/bin/python bench/ingest.py [--messages 100000] [--conversations 2000] [--chunk 4000] [--keep]

A real Celery worker (``--no-worker`` to leave it out) consumes the conversation-list flush tasks
the processor enqueues, so their rendering competes for the same 2 cores as in production.

Builds real HistorySyncEv chunks with neonize's generated classes (about 4,000 messages each, as
WhatsApp sends them), journals them for one connection and processes the journal on PostgreSQL in a
database of its own (``inbox_bench``, created and dropped here). Then adds the history batches'
message-text search entries from the search backlog (ADR-10; ``search_index_s``, reported beside the
ingest, not inside it: the inbox shows the messages before they are searchable), replays the whole
journal (must create 0 rows) and times a plain COPY of the same message rows into a scratch table with the
message table's columns and its unique index (three times, the median kept). Prints one JSON line and saves it to
bench/results/ingest.json. ``ingest_phases_s``: seconds per phase of the processing (``sync.timing``;
``decode_beside_copy`` overlaps ``message_copy``; ``commit`` is the COMMIT and the on-commit publishing
after it). Targets (2-core machine): >= 40,000 messages/s (issue 10); ingest/COPY >= 0.25.
"""

from __future__ import annotations

import argparse
import io
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
DB_NAME = os.environ.get("BENCH_DB", "inbox_bench")


def recreate_database():
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database():
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process on this machine so far (/proc/PID/stat): the database
    backend's share of the work, which wall-clock times on a shared, loaded machine blur."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_chunks(n_messages: int, n_conversations: int, chunk_size: int) -> list[bytes]:
    """Serialized HistorySyncEv chunks (sync.events_builder.bulk_history)."""
    from sync import events_builder as b

    return [ev.SerializeToString() for ev in b.bulk_history(n_messages, n_conversations, chunk_size)]


def _drop_queued_flushes():
    """The list-flush tasks the run enqueued (no worker consumes the bench's queue; in production a
    worker renders those rows on its own process) and the ids they would have flushed."""
    import redis

    r = redis.Redis.from_url(os.environ["REDIS_URL"])
    r.delete("bench-ingest", *r.keys("live:*"))


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=2_000)
    parser.add_argument("--chunk", type=int, default=4_000, help="messages per HistorySyncEv chunk")
    parser.add_argument("--batch-size", type=int, default=50, help="max journal rows per processing transaction")
    parser.add_argument("--keep", action="store_true", help="keep the inbox_bench database afterwards")
    parser.add_argument("--no-worker", action="store_true",
                        help="no Celery worker for the list-flush tasks (they are dropped at the end)")
    args = parser.parse_args()

    recreate_database()
    os.environ["DATABASE_URL"] = f"{PG}/{DB_NAME}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # A Redis database and Celery queue of the bench's own: the list-flush tasks the processor enqueues
    # (inbox.tasks.flush_live_updates_task) go to the bench's worker, never to a test or dev worker.
    os.environ["REDIS_URL"] = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    os.environ["CELERY_QUEUE"] = "bench-ingest"
    os.environ["CHANNEL_LAYER_PREFIX"] = "bench-ingest"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.db.models import Sum

    from connections.models import Connection
    from inbox.models import Contact, Conversation, Message, MessageSearchEntry, Tenant
    from sync.journal import journal_events
    from sync.models import RawEvent, SearchBacklog, SyncRun
    from sync.processor import finish_run, process_pending, requeue, start_run
    from sync.search_index import index_search_backlog

    worker = None
    try:
        call_command("migrate", verbosity=0)
        if not args.no_worker:
            # A real worker on the bench's queue renders and sends the conversation-list rows the
            # processor queues (inbox.tasks.flush_live_updates_task), on the same 2 cores, as in
            # production; its CPU is not the ingesting process's but it competes for the machine.
            from tests import procs

            worker = procs.celery_worker(procs.process_env(LOG_LEVEL="WARNING"), concurrency=1)
            procs.wait_for(lambda: " ready." in worker.output(), timeout=60, message="the bench's Celery worker")
        tenant = Tenant.objects.create(name="Bench", slug="bench")
        conn = Connection.objects.create(tenant=tenant, name="bench number")
        # Open the broker connection before timing, as a long-running worker process has it open: the
        # first publish of a process costs ~35 ms of connection setup. The flush finds nothing to send.
        from inbox.tasks import flush_live_updates_task

        flush_live_updates_task.delay(tenant.pk)
        # What a worker process does when it starts (config/celery.py): its startup heap (Django, the apps,
        # neonize's protobuf classes) out of the garbage collector's full collections (config/heap.py).
        from config.heap import freeze_startup_heap

        freeze_startup_heap()
        t = time.perf_counter()
        chunks = build_chunks(args.messages, args.conversations, args.chunk)
        build_s = time.perf_counter() - t
        payload_mb = sum(len(c) for c in chunks) / 1e6

        # --- ingest: journal + process, as the runner and the worker do ---------------------------
        from sync.timing import phase_timings

        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        cpu = (time.process_time(), cpu_seconds(backend))
        with phase_timings() as totals:
            t = time.perf_counter()
            journal_events(conn.pk, [("HistorySyncEv", c, None) for c in chunks], schedule=False)
            journal_s = time.perf_counter() - t
            summary = process_pending(conn.pk, batch_size=args.batch_size, wait=True)
            ingest_s = time.perf_counter() - t
        ingest_cpu = {"python": round(time.process_time() - cpu[0], 3), "postgres": round(cpu_seconds(backend) - cpu[1], 3)}
        phases = {k: round(v, 3) for k, v in totals.items()}
        messages = Message.objects.unscoped().filter(connection=conn).count()
        assert messages == args.messages, f"expected {args.messages} messages, found {messages}"
        history_run = SyncRun.objects.unscoped().get(kind="history")
        counts = {"contacts": Contact.objects.unscoped().count(),
                  "conversations": Conversation.objects.unscoped().count(), "messages": messages}

        # --- search: the history batches' search entries, added after the ingest (ADR-10) --------
        backlog = SearchBacklog.objects.unscoped().filter(connection=conn).aggregate(n=Sum("messages"))["n"] or 0
        t = time.perf_counter()
        indexed = index_search_backlog(conn.pk, wait=True, yield_to_journal=False)
        search_s = time.perf_counter() - t
        searchable = Message.objects.unscoped().filter(connection=conn).exclude(body="").count()
        assert indexed.indexed == searchable == MessageSearchEntry.objects.unscoped().count(), (indexed, searchable)

        # --- replay: the whole journal again; must create nothing --------------------------------
        with transaction.atomic():
            requeue(RawEvent.objects.unscoped().filter(connection=conn))
            run = start_run(conn, SyncRun.Kind.REPLAY)
        t = time.perf_counter()
        replay = process_pending(conn.pk, batch_size=args.batch_size, run=run, wait=True)
        replay_s = time.perf_counter() - t
        with transaction.atomic():
            run = finish_run(run)
        new_rows = Message.objects.unscoped().filter(connection=conn).count() - messages
        after = {"contacts": Contact.objects.unscoped().count(), "conversations": Conversation.objects.unscoped().count(),
                 "messages": Message.objects.unscoped().count()}

        # --- COPY baseline: the same rows into a scratch table with the unique index --------------
        table = Message._meta.db_table
        with connection.cursor() as cursor:
            raw = cursor.cursor
            buf = io.BytesIO()
            export = f"COPY (SELECT * FROM {table} WHERE connection_id = %s) TO STDOUT"  # noqa: S608
            with raw.copy(export, [conn.pk]) as cp:
                for data in cp:
                    buf.write(data)
            # Three times into a fresh table, the median kept: one COPY takes a few tenths of a second
            # and moves with whatever else this shared machine runs at that moment.
            copy_runs, copy_cpu = [], []
            for _ in range(3):
                cursor.execute("DROP TABLE IF EXISTS bench_copy")
                cursor.execute(f"CREATE TABLE bench_copy AS SELECT * FROM {table} WITH NO DATA")  # noqa: S608
                cursor.execute("CREATE UNIQUE INDEX bench_copy_unique ON bench_copy (connection_id, external_id)")
                t, c = time.perf_counter(), cpu_seconds(backend)
                with transaction.atomic():
                    with connection.cursor() as c2, c2.cursor.copy("COPY bench_copy FROM STDIN") as cp:
                        cp.write(buf.getvalue())
                copy_runs.append(time.perf_counter() - t)
                copy_cpu.append(cpu_seconds(backend) - c)
            copy_s = sorted(copy_runs)[1]
            cursor.execute("SELECT count(*) FROM bench_copy")
            copied = cursor.fetchone()[0]
            cursor.execute("SELECT version()")
            pg_version = cursor.fetchone()[0].split(" on ")[0]
        assert copied == messages

        rate = args.messages / ingest_s
        copy_rate = copied / copy_s
        result = {
            "benchmark": "ingest",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "messages": args.messages,
            "conversations": args.conversations,
            "chunks": len(chunks),
            "messages_per_chunk": args.messages // len(chunks),
            "payload_mb": round(payload_mb, 2),
            "build_s": round(build_s, 3),
            "journal_s": round(journal_s, 3),
            "ingest_s": round(ingest_s, 3),
            "messages_per_s": round(rate),
            "search_backlog_messages": backlog,
            "search_index_s": round(search_s, 3),
            "search_entries": indexed.indexed,
            "ingest_then_search_messages_per_s": round(args.messages / (ingest_s + search_s)),
            "replay_s": round(replay_s, 3),
            "replay_messages_per_s": round(args.messages / replay_s),
            "replay_new_rows": new_rows,
            "replay_changed_counts": after != counts,
            "copy_s": round(copy_s, 3),
            "copy_runs_s": [round(x, 3) for x in copy_runs],
            "copy_rows_per_s": round(copy_rate),
            "ingest_vs_copy": round(rate / copy_rate, 3),
            "ingest_phases_s": phases,
            # CPU seconds of the ingest (this process, all its threads; its database backend) and of the
            # baseline COPY's backend (median of the three): what the work costs, whatever else the machine runs.
            "ingest_cpu_s": ingest_cpu,
            "copy_cpu_s": round(sorted(copy_cpu)[1], 3),
            "ingest_vs_copy_cpu": round(sorted(copy_cpu)[1] / (ingest_cpu["python"] + ingest_cpu["postgres"]), 3),
            "rows": counts,
            "history_run": {"received": history_run.received, "saved": history_run.saved,
                            "duplicates": history_run.duplicates, "progress": history_run.progress,
                            "chunks": history_run.chunks, "discrepancy": history_run.discrepancy},
            "replay_run": {"received": run.received, "saved": run.saved, "duplicates": run.duplicates,
                           "discrepancy": run.discrepancy},
            "processed": summary.processed, "replay_processed": replay.processed,
            "targets": {"messages_per_s": 40_000, "ingest_vs_copy": 0.25},
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "postgres": pg_version,
        }
        result["pass"] = bool(rate >= 40_000 and result["ingest_vs_copy"] >= 0.25 and new_rows == 0
                              and not result["replay_changed_counts"])
        if worker is not None:
            time.sleep(1.0)  # the last trailing flush
            result["list_flush_tasks"] = worker.output().count("flush_live_updates_task[") // 2  # received + succeeded
    finally:
        if worker is not None:
            worker.stop()
        connection.close()
        if not args.keep:
            drop_database()
        _drop_queued_flushes()
    line = json.dumps(result)
    print(line)
    out = ROOT / "bench" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n")
    return result


if __name__ == "__main__":
    main()
