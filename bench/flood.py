"""A live flood through the whole product: many numbers at once, optionally beside a large history sync.

    .venv/bin/python bench/flood.py [--numbers 100] [--rate 20] [--seconds 60] [--history 100000]

In a PostgreSQL database of its own (``inbox_bench_flood``: created, migrated, dropped at the end) it
starts the product's processes as `make run` would: runner (simulator transport, its session children),
Celery worker and daphne. Tenant "live" has ``--numbers`` paired numbers; tenant "archive" has one more.

- One websocket client per live number, logged in as an agent of "live" (one agent and session per
  client), has that number's customer conversation open (``/ws/t/live/?conversation=<id>``), as an agent with a thread open would.
- The simulated WhatsApp server gets, for every live number, ``--rate`` messages per second from its
  customer for ``--seconds`` (paced by due time, delivered by each number's session in the runner).
- With ``--history N``, five seconds in, the archive number's phone sends an N-message history sync
  (HistorySyncEv chunks of 4,000 messages over 2,000 chats) through the same runner and worker. The chunks
  are built before the flood and staged on the simulated server (``stage_history``), which hands the
  session their bytes, as whatsmeow hands neonize an event it decoded on its own threads.

Measured per message: runner receipt (the journal row's ``received_at``, stamped in the session's
process) to the moment its thread fragment reaches the client that has the conversation open (same
host clock). Also: the journal backlog of the live numbers sampled every second (it must not grow),
lost (delivered by the server, neither journaled nor stored), not stored by the end (journaled, still pending
when the bench stops), duplicated (journaled or stored twice), fragments missed, CPU per message per role,
how long the history sync took to be stored, and the gaps between one socket's conversation-list updates
during the flood (``list_update_gap_ms``). Prints one JSON line and saves
bench/results/flood.json (flood-history.json with --history).
Target (issue 9): 100 numbers x 20 msg/s for 60 s, with and without a 100k history sync beside it:
p99 <= 250 ms, no growing backlog, 0 lost, 0 duplicated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from itertools import pairwise
from pathlib import Path

import benchlib
from benchlib import PG, CpuMeter, host_loop_ms, product_database, start_product, stop_product, summary, time_limit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


wait_for = partial(benchlib.wait_for, interval=0.2)
DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_flood")
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--numbers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second per number")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--history", type=int, default=0, help="messages of a history sync run beside the flood")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for stragglers")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--no-journal-worker", action="store_true",
                        help="no journal worker of its own (history syncs in the live worker, as before the Procfile's "
                             "journal line)")
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    time_limit("bench/flood.py", int(args.seconds + args.drain + 600))
    loop_ms = host_loop_ms()  # before anything of ours runs
    product_database(DB_NAME, "redis://127.0.0.1:6379/5", CELERY_QUEUE=f"bench-{DB_NAME}",
                     CHANNEL_LAYER_PREFIX=f"bench-{DB_NAME}", EVENT_SPOOL_DIR=f"/tmp/bench-flood-spool-{os.getpid()}",
                     JOURNAL_QUEUE=f"bench-{DB_NAME}" if args.no_journal_worker else f"bench-{DB_NAME}.journal")
    started = []
    try:
        ids = seed(args.numbers)
        port = start_product(started, "bench-flood", args.worker_concurrency)
        result = run(args, port, started, ids)
        result["process_warnings"] = warnings_of(started)
        result["host_loop_ms"] = loop_ms
    except BaseException:
        for proc in started:
            lines = [x for x in proc.output().splitlines() if '"level": "INFO"' not in x]
            print(f"===== {proc.name}\n" + "\n".join(x[:500] for x in lines[-40:]), file=sys.stderr)
        raise
    finally:
        stop_product(started, DB_NAME, args.keep_db)
    line = json.dumps(result)
    print(line)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / ("flood-history.json" if args.history else "flood.json")).write_text(line + "\n")


def warnings_of(started) -> dict:
    """Per process, how many WARNING/ERROR lines of each event name it logged (what went wrong, if anything)."""
    from collections import Counter

    out = {}
    for proc in started:
        counts = Counter()
        for line in proc.output().splitlines():
            if '"level": "WARNING"' in line or '"level": "ERROR"' in line:
                try:
                    counts[json.loads(line).get("event", "?")] += 1
                except ValueError:
                    counts["(not json)"] += 1
        if counts:
            out[proc.name] = dict(counts.most_common(10))
    return out


def seed(numbers: int) -> dict:
    from django.contrib.auth import get_user_model

    from connections.models import Connection
    from inbox.models import Membership, Tenant
    from sync.processor import finish_idle_runs  # noqa: F401 - loads the sync app's models

    live = Tenant.objects.create(name="Live", slug="live")
    archive = Tenant.objects.create(name="Archive", slug="archive")
    conns = [Connection.objects.create(tenant=live, name=f"Live {i:03d}", transport="simulator",
                                       jid=f"55118{i:07d}:1@s.whatsapp.net") for i in range(numbers)]
    hist = Connection.objects.create(tenant=archive, name="Archive", transport="simulator", jid="5511700000000:1@s.whatsapp.net")
    # One agent per socket, each with a session of its own (what the sockets' access re-checks read).
    agents = [get_user_model().objects.create_user(f"flood-agent-{i:03d}") for i in range(numbers)]
    Membership.objects.bulk_create([Membership(user=agent, tenant=live, role="agent") for agent in agents])
    return {"live": [c.pk for c in conns], "history": hist.pk, "agents": [a.pk for a in agents]}


def customer(i: int) -> str:
    return f"+55119{i:08d}"


def run(args, port, started, ids) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from connections.models import Connection
    from connections.nudge import nudge
    from connections.transport.simulator import inbound_specs, queue_inbound, stage_history
    from inbox.models import Message
    from sync import events_builder as eb

    live = ids["live"]
    every = [*live, ids["history"]]
    wait_for(lambda: Connection.objects.unscoped().filter(pk__in=every, status="connected").count() == len(every), 180,
             "every number connected", started)
    # One warm-up message per number: its conversation exists before the clients open it.
    for i, cid in enumerate(live):
        queue_inbound(cid, inbound_specs(customer(i), "warm-up", 1))
    wait_for(lambda: Message.objects.unscoped().filter(connection_id__in=live, body="warm-up").count() == len(live), 180,
             "the warm-up messages stored", started)
    # The customer's conversation of each number: the one its warm-up message went to (each number also has the
    # simulator's demo chats from its initial history sync; picking any conversation of the number let a socket
    # sometimes open one of those and miss every fragment of the flood).
    conversation = dict(Message.objects.unscoped().filter(connection_id__in=live, body="warm-up")
                        .values_list("connection_id", "conversation_id"))
    cookies = []
    for agent in get_user_model().objects.filter(pk__in=ids["agents"]).order_by("pk"):
        client = Client()
        client.force_login(agent)
        cookies.append(client.cookies["sessionid"].value)

    if args.history:
        stage_history(ids["history"], eb.bulk_history(args.history, 2000, 4000, id_prefix="SIMHIST"))
    tag = uuid.uuid4().hex[:5].upper()
    count = int(args.rate * args.seconds)
    marker = re.compile(rf"fl-{tag}-(\d{{3}}) #(\d+)")
    backlog: list[tuple[float, int]] = []
    stop = threading.Event()
    history = {}
    timing = {}

    meter = cpu_meter(started)

    def begin() -> float:
        """Once every client is connected: the server gets the flood (and the history sync); returns
        the time to stop listening."""
        meter.start_idle()  # every socket open, nothing flowing until the flood starts
        start = timing["start"] = time.time() + 5.0
        for i, cid in enumerate(live):
            queue_inbound(cid, inbound_specs(customer(i), f"fl-{tag}-{i:03d}", count, args.rate,
                                             batch=f"{tag}{i:03d}", start=start))
        threading.Thread(target=sample_backlog, args=(live, start, backlog, stop, meter), daemon=True).start()
        if os.environ.get("BENCH_PIDS_FILE"):  # for a profiler attached from outside (docs/measurements.md)
            Path(os.environ["BENCH_PIDS_FILE"]).write_text(json.dumps(
                {"flood_start": start, "flood_end": start + args.seconds, **{p.name: p.popen.pid for p in started}}))
        if args.history:
            threading.Thread(target=history_sync, args=(ids["history"], args.history, start + 5, history, nudge),
                             daemon=True).start()
        return start + args.seconds + args.drain

    urls = [f"ws://127.0.0.1:{port}/ws/t/live/?conversation={conversation[cid]}" for cid in live]
    arrivals, meta = asyncio.run(drive(urls, port, cookies, marker, count, begin))
    meter.stop()  # every fragment arrived (or the deadline passed); before the bench reads its results
    stop.set()
    start = timing["start"]

    from neonize.proto import Neonize_pb2 as N

    from sync.models import RawEvent

    received_at, journaled = {}, 0
    for payload, at in (RawEvent.objects.unscoped().filter(connection_id__in=live, event_name="MessageEv")
                        .values_list("payload", "received_at").iterator(chunk_size=5000)):
        ev = N.Message()
        ev.ParseFromString(bytes(payload))
        mid = ev.Info.ID
        if mid.startswith(f"SIM{tag}"):
            journaled += 1
            received_at[(int(mid[3 + len(tag):6 + len(tag)]), int(mid[-6:]))] = at.timestamp()
    stored_at = {}
    for ext, created in (Message.objects.unscoped().filter(connection_id__in=live, external_id__startswith=f"SIM{tag}")
                         .values_list("external_id", "created_at").iterator(chunk_size=5000)):
        stored_at[(int(ext[3 + len(tag):6 + len(tag)]), int(ext[-6:]))] = created.timestamp()
    stored = len(stored_at)
    latencies = [(at - received_at[key]) * 1000 for key, at in arrivals.items() if key in received_at]
    expected = count * len(live)
    lat = summary(latencies)
    flood_end = start + args.seconds
    during = [n for t, n in backlog if t <= flood_end]
    # How often an open inbox's conversation list was brought up to date while the flood ran: the gaps between
    # one socket's list updates (the coalescer's design: one per LIST_FLUSH_INTERVAL, 250 ms, per tenant).
    list_gaps = [(b - a) * 1000 for frames in meta["list_frames"]
                 for a, b in pairwise(frames) if start + 1 <= a and b <= flood_end]
    result = {
        "benchmark": "flood", "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "numbers": len(live), "rate_per_number": args.rate, "seconds": args.seconds,
        "messages_per_s": args.rate * len(live), "messages": expected,
        "journaled_unique": len(received_at), "journal_rows": journaled, "stored": stored,
        # Lost: neither journaled nor stored. A journaled message not stored yet when the bench stops (a backlog the
        # drain did not clear) is durable, not lost: ``not_stored_by_end`` counts those.
        "lost": expected - len(set(received_at) | set(stored_at)), "not_stored_by_end": expected - stored,
        "duplicated": journaled - len(received_at),
        "fragments_received": len(arrivals), "fragments_missed": expected - len(arrivals),
        "latency_ms": lat,
        "list_update_gap_ms": summary(list_gaps),
        "received_to_stored_ms": summary([(at - received_at[k]) * 1000 for k, at in stored_at.items() if k in received_at]),
        "backlog_live_rows": {"max": max(during, default=0), "at_end_of_flood": during[-1] if during else None,
                              "first_half_mean": round(statistics.mean(during[:len(during) // 2]), 1) if during else None,
                              "second_half_mean": round(statistics.mean(during[len(during) // 2:]), 1) if during else None},
        "history": history or None,
        "cpu": cpu_report(meter, stored),
        "start_point": "journal row received_at (stamped by the runner's session process); end point: the client "
                       "with that conversation open receives the message's thread fragment; same host clock",
        "clients": len(urls), "connect_s": round(meta["connect_s"], 2), "sockets_closed_early": meta["closed_early"],
        "worker_concurrency": args.worker_concurrency, "journal_worker": not args.no_journal_worker,
        "targets": {"p99_ms": 250, "lost": 0, "duplicated": 0, "backlog": "not growing"},
        "cpus": os.cpu_count(), "python": platform.python_version(), "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }
    result["pass"] = (bool(lat.get("n")) and lat["p99"] <= 250 and result["lost"] == 0 and result["duplicated"] == 0
                      and result["not_stored_by_end"] == 0 and result["fragments_missed"] == 0)
    return result


def cpu_meter(started) -> CpuMeter:
    """CPU per role: the runner (its supervisor apart from its session children), the Celery worker,
    daphne, the bench's own socket clients, and the PostgreSQL backends of the bench's two databases."""
    import psycopg

    roles = {proc.name: proc.popen.pid for proc in started}
    admin_conn = psycopg.connect(f"{PG}/postgres", autocommit=True)
    lock = threading.Lock()

    def pg_pids() -> list[int]:
        with lock:
            return [r[0] for r in admin_conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND pid <> pg_backend_pid()",
                [[DB_NAME, f"{DB_NAME}_whatsmeow"]]).fetchall()]

    return CpuMeter(roles, split_leader=("runner",), pg_pids=pg_pids)


ROLE_NAMES = {"runner_leader": "runner supervisor", "runner": "runner children", "worker": "celery worker",
              "journal": "journal worker (history sync)",
              "web": "daphne", "bench": "bench (socket clients, backlog sampler)"}


def cpu_report(meter: CpuMeter, messages: int) -> dict:
    report = meter.report(messages)
    for key in ("cpu_s", "cpu_ms_per_message", "idle_cpu_ms_per_s", "marginal_cpu_ms_per_message"):
        if key in report:
            report[key] = {ROLE_NAMES.get(k, k): v for k, v in report[key].items()}
    total = report["product_cpu_ms_per_message"]
    cores = os.cpu_count() or 1
    # What this CPU cost allows at most if the product had every core to itself (no bench clients, no
    # other work): an upper bound, latency aside. With the idle cost known: (cores - idle) / marginal.
    report["msgs_per_s_ceiling_on_all_cores"] = round(cores * 1000 / total) if total else None
    marginal = report.get("product_marginal_cpu_ms_per_message")
    if marginal and marginal > 0:
        report["msgs_per_s_ceiling_from_marginal"] = round((cores * 1000 - report["product_idle_cpu_ms_per_s"])
                                                           / marginal)
    return report


def sample_backlog(live, start, out, stop, meter):
    """Pending journal rows of the live numbers, once a second from the flood's start (and the CPU meter's
    start and PostgreSQL backend polls)."""
    from django.db import connection, transaction

    from sync.models import RawEvent

    while time.time() < start:
        time.sleep(0.05)
    meter.start()
    while not stop.is_set():
        meter.poll()
        with transaction.atomic():
            # Through the partial index of due rows: on a fresh database's statistics the planner read the whole
            # journal (20-37 ms a count, counted as the product's PostgreSQL CPU since it is this database's backend).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL enable_seqscan = off")
            pending = RawEvent.objects.unscoped().filter(connection_id__in=live, state="pending").count()
        out.append((time.time(), pending))
        time.sleep(1.0)
    connection.close()


def history_sync(connection_id, messages, at, out, nudge):
    from django.db import connection

    from inbox.models import Message

    while time.time() < at:
        time.sleep(0.05)
    t = time.time()
    nudge(connection_id, "simulate", kind="history", staged=1)  # the chunks stage_history left
    while time.time() - t < 600:
        n = Message.objects.unscoped().filter(connection_id=connection_id, external_id__startswith="SIMHIST").count()
        out.update(messages=messages, stored=n, seconds=round(time.time() - t, 1))
        if n >= messages:
            break
        time.sleep(0.5)
    connection.close()


async def drive(urls, port, cookies, marker, count, begin):
    """Open one socket per conversation (each with its agent's session), then ``begin()`` the flood; collect
    (number, message) -> first arrival time until every fragment arrived or the deadline ``begin`` returned."""
    import websockets

    arrivals: dict[tuple[int, int], float] = {}
    list_frames: list[list[float]] = [[] for _ in urls]  # per socket: when a conversation-list update came
    closes: dict[str, int] = {}  # close code -> sockets the server closed early
    t_connect = time.monotonic()
    sockets = []
    for url, cookie in zip(urls, cookies, strict=True):
        sockets.append(await websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=30, max_size=2**22,
                                                additional_headers={"Cookie": f"sessionid={cookie}"}))
    connect_s = time.monotonic() - t_connect
    total = count * len(urls)

    async def receive(ws, lists):
        try:
            async for frame in ws:
                now = time.time()
                if 'data-upsert="list"' in frame:
                    lists.append(now)
                for article in ARTICLE.findall(frame):
                    if 'data-upsert="thread"' in article:
                        for m in marker.finditer(article):
                            arrivals.setdefault((int(m.group(1)), int(m.group(2)) - 1), now)
                if len(arrivals) >= total:
                    return
        except websockets.ConnectionClosed as exc:
            closes[str(exc.rcvd.code if exc.rcvd else None)] = closes.get(str(exc.rcvd.code if exc.rcvd else None), 0) + 1
            return

    tasks = [asyncio.create_task(receive(ws, lists)) for ws, lists in zip(sockets, list_frames, strict=True)]
    deadline = begin()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=max(1.0, deadline - time.time()))
    except TimeoutError:
        pass
    for task in tasks:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return arrivals, {"connect_s": connect_s, "closed_early": closes, "list_frames": list_frames}


if __name__ == "__main__":
    main()
