"""The Celery worker's CPU per live message, alone and repeatable: the live sweep in this process.

    .venv/bin/python bench/sweep.py [--numbers 100] [--per-number 5] [--rounds 20] [--statements]

bench/flood.py measures the whole product, but on a shared machine its worker figure moves with how far
behind the worker fell (a backlog makes bigger, cheaper batches: 0.33-0.66 ms per message between runs
of one tree). This holds the batch's shape fixed: ``--numbers`` numbers of one tenant each journal
``--per-number`` inbound text messages (real MessageEv protobufs, what the simulator sends), then one
``sync.sweep.sweep_live(pause=0)`` stores, renders and publishes them (thread fragments to the real channel
layer, on Redis), then one coalesced list flush (``inbox.list_coalescer.flush_list_updates``, what the
sweep does itself at most ~4 times a second per tenant; the bench holds the tenant's gate during the sweep
so the flush is measured apart). Repeated ``--rounds`` times after
``--warmup`` rounds; CPU seconds (``time.process_time``) of this process and of its PostgreSQL backend,
per message, medians over the rounds; prints one JSON line and saves bench/results/sweep.json. A
database of its own (``BENCH_DB``, default inbox_bench_sweep), created and dropped; Redis
``BENCH_REDIS_URL``. Compare trees by running each in turn, alternately. ``--statements`` adds, per statement
site of a sweep (file:line of the product's frame that ran it), its median and worst wall time per round and
the number of statements per round (the COPY and the commit are not statements to Django's execute wrapper).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from benchlib import admin, cpu_seconds, host_loop_ms, product_database  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_sweep")


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=100)
    parser.add_argument("--per-number", type=int, default=5, help="messages per number per sweep")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--statements", action="store_true",
                        help="also list the statements of the last round: where they come from, how long they took")
    args = parser.parse_args()

    try:
        product_database(DB_NAME, "redis://127.0.0.1:6379/12", settings="config.settings.test",
                         CELERY_QUEUE=f"bench-{DB_NAME}", CHANNEL_LAYER_PREFIX=f"bench-{DB_NAME}")
        from django.db import connection

        return run(args, connection)
    finally:
        connection.close()
        admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def run(args, connection) -> dict:
    import gc

    from config.heap import freeze_startup_heap
    from config.redis import redis_client
    from connections.models import Connection
    from inbox.list_coalescer import _key as list_key
    from inbox.list_coalescer import flush_list_updates
    from inbox.models import Message, Tenant
    from sync import events_builder as b
    from sync.journal import journal_many
    from sync.sweep import sweep_live

    tenant = Tenant.objects.create(name="Live", slug="live")
    numbers = [Connection.objects.create(tenant=tenant, name=f"number {i}") for i in range(args.numbers)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = cursor.fetchone()[0]
    seq = 0
    gc.collect()
    freeze_startup_heap()  # as a Celery worker process does at start (config/celery.py)

    def journal_round():
        nonlocal seq
        events = {}
        for i, conn in enumerate(numbers):
            chat = f"55119{i:08d}@s.whatsapp.net"
            batch = []
            for _ in range(args.per_number):
                seq += 1
                ev = b.message_ev(chat, chat, f"3EB0{seq:016X}", f"Flood message {seq} from {chat}",
                                  1_796_000_000_000 + seq, push_name=f"Customer {i}")
                batch.append((*b.serialize(ev), None))
            events[conn.pk] = batch
        journal_many(events, schedule=False)

    sweep_ms, flush_ms, pg_ms, wall_ms = [], [], [], []
    per_round = args.numbers * args.per_number
    trace: list[tuple[str, float]] = []
    for n in range(args.warmup + args.rounds):
        journal_round()
        # The live sweep flushes the list rows itself when the tenant's gate is free (ADR-7 amended); held here,
        # as when a flush went out less than LIST_FLUSH_INTERVAL ago, so the list flush below is measured apart.
        for kind in ("gate", "trailing"):
            redis_client().set(list_key(kind, tenant.pk), "1", px=60_000)
        traced = args.statements and n >= args.warmup
        cpu, pg, wall = time.process_time(), cpu_seconds(backend), time.perf_counter()
        if traced:
            trace.append(("round", 0.0))
            with connection.execute_wrapper(partial(_traced, trace)):
                summary = sweep_live(pause=0)
        else:
            summary = sweep_live(pause=0)  # the round alone, not the pause after it
        assert summary.saved == per_round and not summary.handed_over, summary.as_dict()
        swept, pg_swept, wall_swept = time.process_time(), cpu_seconds(backend), time.perf_counter()
        flush_list_updates(tenant.pk)
        flushed = time.process_time()
        if n >= args.warmup:
            sweep_ms.append((swept - cpu) * 1000 / per_round)
            flush_ms.append((flushed - swept) * 1000 / per_round)
            pg_ms.append((pg_swept - pg) * 1000 / per_round)
            wall_ms.append((wall_swept - wall) * 1000)
    stored = Message.objects.unscoped().count()
    assert stored == per_round * (args.warmup + args.rounds)
    result = {
        "benchmark": "sweep", "numbers": args.numbers, "per_number": args.per_number, "rounds": args.rounds,
        "messages_per_sweep": per_round,
        "cpu_ms_per_message": {
            "sweep (store, render, publish)": round(statistics.median(sweep_ms), 4),
            "list flush (once per sweep)": round(statistics.median(flush_ms), 4),
            "postgres backend (sweep)": round(statistics.median(pg_ms), 4),
        },
        "sweep_ms_per_message_min_max": [round(min(sweep_ms), 4), round(max(sweep_ms), 4)],
        "sweep_wall_ms": round(statistics.median(wall_ms), 1),
        "load_avg_1m": os.getloadavg()[0],
        "host_loop_ms": host_loop_ms(),
    }
    if args.statements:
        result["statements"] = _statements(trace)
    line = json.dumps(result)
    print(line)
    (ROOT / "bench" / "results" / "sweep.json").write_text(line + "\n")
    return result


def _statements(trace: list[tuple[str, float]]) -> dict:
    """Per statement site of a sweep (in the order of the first round): median wall ms over the rounds,
    and the slowest round's."""
    rounds: list[list[tuple[str, float]]] = []
    for where, ms in trace:
        if where == "round":
            rounds.append([])
        else:
            rounds[-1].append((where, ms))
    sites: dict[str, list[float]] = {}
    for statements in rounds:
        seen: dict[str, float] = {}
        for where, ms in statements:
            seen[where] = seen.get(where, 0.0) + ms
        for where, ms in seen.items():
            sites.setdefault(where, []).append(ms)
    return {"per_round": statistics.median(len(r) for r in rounds),
            "ms_per_round": round(statistics.median(sum(ms for _, ms in r) for r in rounds), 1),
            "sites": [f"{statistics.median(v):6.2f} ms (max {max(v):6.2f})  {where}" for where, v in sites.items()]}


def _traced(trace: list, execute, sql, params, many, context):
    """Django's execute wrapper: the statement's wall time and the first frame of ours that issued it."""
    import traceback

    frames = [f for f in traceback.extract_stack()[:-1] if f"{ROOT}/" in f.filename and "/bench/" not in f.filename
              and "/.venv/" not in f.filename]
    where = f"{Path(frames[-1].filename).relative_to(ROOT)}:{frames[-1].lineno} {frames[-1].name}" if frames else "?"
    start = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        trace.append((where, (time.perf_counter() - start) * 1000))


if __name__ == "__main__":
    main()
