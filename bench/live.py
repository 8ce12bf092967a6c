"""Live-update latency with the real processes: runner (simulator) -> journal -> worker -> Channels -> sockets.

    .venv/bin/python bench/live.py [--clients 20] [--rate 20] [--seconds 60]

In a PostgreSQL database of its own (``inbox_bench_live``: dropped, migrated, seeded with seed_demo,
dropped again at the end) it starts the three processes of the product as `make run` would: web
(daphne), worker (celery, its own queue) and runner (run_connections, simulator transport). Then:

- ``--clients`` websocket clients log in to acme (Django sessions of acme-agent and acme-admin, made
  with the test client's force_login) and open ``/ws/t/acme/?conversation=<id>``: each joins the tenant
  inbox group and the thread group of one conversation, exactly as an open conversation page does.
- ``--rate`` inbound messages per second for ``--seconds`` are injected into that conversation through
  the runner: the bench publishes the same Redis nudge `manage.py simulate` sends (one per message, with
  a unique text), the runner's simulator session emits a real neonize MessageEv, the runner journals it.
- Each client records when the thread fragment of each message (``<article ... data-upsert="thread">``
  with that text) arrives. List updates are coalesced by design (a few per second per tenant), so they
  are not per-message fragments; the thread fragment is.

Latency start point: the journal row's ``received_at``, stamped by the runner's child process when the
simulator session hands it the event (the "runner receives an event" moment); end point: the client's
receive time (same machine, same clock). Also reported: nudge publish -> client (an upper bound that
includes the nudge hop) and received_at -> Message row committed by the worker (where the time goes).
Missed = (messages x clients) - fragments received within ``--drain`` seconds after the last send.

Bounded: the whole run has a hard deadline (SIGALRM); children are stopped in ``finally``; everything
talks to 127.0.0.1 only. Prints one JSON line and saves bench/results/live.json.
Target: p50 < 50 ms, p99 < 250 ms, nothing missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import benchlib
from benchlib import port_open, product_database, save_result, start_product, stop_product, summary, time_limit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


wait_for = partial(benchlib.wait_for, interval=0.05)
DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_live")
SENDER = "5511987650001"  # Fernanda Costa in seed_demo's acme: the conversation every client has open
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0, help="inbound messages per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--drain", type=float, default=10.0, help="seconds to wait for stragglers")
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--keep-db", action="store_true", help="leave the database for inspection")
    args = parser.parse_args()
    time_limit("bench/live.py", int(args.seconds + args.drain + 240))
    product_database(DB_NAME, "redis://127.0.0.1:6379/6", CELERY_QUEUE="bench-live",
                     EVENT_SPOOL_DIR=f"/tmp/bench-live-spool-{os.getpid()}")
    from django.core.management import call_command

    call_command("seed_demo", verbosity=0)
    started = []
    try:
        port = start_product(started, "bench-live", args.worker_concurrency)
        result = run(args, port, started)
    finally:
        stop_product(started, DB_NAME, args.keep_db)
    save_result(result, "live.json")


def run(args, port, started) -> dict:
    from django.contrib.auth import get_user_model
    from django.test import Client

    from connections.models import Connection
    from connections.nudge import nudge
    from inbox.models import Conversation, Message

    conn = Connection.objects.unscoped().get(tenant__slug="acme")
    wait_for(lambda: Connection.objects.unscoped().filter(pk=conn.pk, status="connected").exists(), 60,
             "the runner to connect acme's number", started)
    wait_for(lambda: port_open(port), 30, "daphne to listen", started)

    # Warm-up through the whole path (also proves the worker consumes the bench's queue).
    warm = f"warm-up {uuid.uuid4().hex[:8]}"
    nudge(conn.pk, "simulate", kind="text", text=warm, **{"from": "+" + SENDER})
    wait_for(lambda: Message.objects.unscoped().filter(connection=conn, body=warm).exists(), 60,
             "the warm-up message to be processed", started)
    conversation = Conversation.objects.unscoped().get(connection=conn, chat_jid=f"{SENDER}@s.whatsapp.net")

    cookies = []
    for username in ("acme-agent", "acme-admin"):
        client = Client()
        client.force_login(get_user_model().objects.get(username=username))
        cookies.append(client.cookies["sessionid"].value)

    run_tag = uuid.uuid4().hex[:6]
    total = int(args.rate * args.seconds)
    texts = [f"lb-{run_tag}-{i:05d}" for i in range(total)]
    marker = re.compile(rf"lb-{run_tag}-(\d{{5}})")
    url = f"ws://127.0.0.1:{port}/ws/t/acme/?conversation={conversation.pk}"
    arrivals, list_arrivals, nudged_at, meta = asyncio.run(
        drive(args, url, port, cookies, texts, marker, lambda text: nudge(
            conn.pk, "simulate", kind="text", text=text, **{"from": "+" + SENDER})))

    # Start points: the journal rows the runner stamped (received_at), matched to texts via the message id.
    from neonize.proto import Neonize_pb2 as N

    from sync.models import RawEvent

    id_to_index = {}
    committed_at = {}
    for external_id, body, created_at in (Message.objects.unscoped().filter(connection=conn, body__startswith=f"lb-{run_tag}-")
                                          .values_list("external_id", "body", "created_at")):
        index = int(body.rsplit("-", 1)[1])
        id_to_index[external_id] = index
        committed_at[index] = created_at.timestamp()
    received_at = {}
    for payload, at in (RawEvent.objects.unscoped().filter(connection=conn, event_name="MessageEv")
                        .values_list("payload", "received_at")):
        ev = N.Message()
        ev.ParseFromString(bytes(payload))
        if ev.Info.ID in id_to_index:
            received_at[id_to_index[ev.Info.ID]] = at.timestamp()

    latencies, from_nudge = [], []
    for client_arrivals in arrivals:
        for index, at in client_arrivals.items():
            if index in received_at:
                latencies.append((at - received_at[index]) * 1000)
            from_nudge.append((at - nudged_at[index]) * 1000)
    expected = total * args.clients
    got = sum(len(a) for a in arrivals)
    worker_ms = [(committed_at[i] - received_at[i]) * 1000 for i in committed_at if i in received_at]
    lat = summary(latencies)
    result = {
        "benchmark": "live",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "clients": args.clients, "rate_per_s": args.rate, "seconds": args.seconds, "messages": total,
        "messages_journaled": len(received_at), "messages_stored": len(committed_at),
        "fragments_expected": expected, "fragments_received": got, "missed": expected - got,
        "start_point": "journal row received_at (stamped by the runner's session process when the simulator "
                       "hands it the MessageEv); end point: the websocket client's receive time; same host clock",
        "fragment": "the message's thread fragment (<article data-upsert=thread>) on the conversation group every "
                    "client joined; list rows are coalesced (<= ~4/s per tenant) and reported separately",
        "latency_ms": lat,
        "nudge_to_client_ms": summary(from_nudge),
        "received_to_stored_ms": summary(worker_ms),
        "list_updates_per_client": round(statistics.mean(list_arrivals), 1) if list_arrivals else 0,
        "send_lag_max_ms": round(meta["send_lag_max_ms"], 1),
        "connect_s": round(meta["connect_s"], 2),
        "targets": {"p50_ms": 50, "p99_ms": 250, "missed": 0},
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }
    result["pass"] = bool(lat.get("n")) and lat["p50"] < 50 and lat["p99"] < 250 and result["missed"] == 0
    return result


async def drive(args, url, port, cookies, texts, marker, send_one):  # noqa: C901 - a benchmark's script
    """Connect the clients, inject the messages at the rate, collect arrivals; returns per-client dicts."""
    import websockets

    total = len(texts)
    arrivals = [dict() for _ in range(args.clients)]
    list_counts = [0] * args.clients
    done = asyncio.Event()
    t_connect = time.monotonic()
    sockets = []
    for i in range(args.clients):
        ws = await websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=15, max_size=2**22,
                                      additional_headers={"Cookie": f"sessionid={cookies[i % len(cookies)]}"})
        sockets.append(ws)
    connect_s = time.monotonic() - t_connect

    async def receive(i, ws):
        mine = arrivals[i]
        try:
            async for frame in ws:
                now = time.time()
                if 'data-upsert="list"' in frame:
                    list_counts[i] += 1
                for article in ARTICLE.findall(frame):
                    if 'data-upsert="thread"' not in article:
                        continue
                    for m in marker.finditer(article):
                        mine.setdefault(int(m.group(1)), now)
                if len(mine) >= total:
                    return
        except websockets.ConnectionClosed as exc:
            if not done.is_set():
                print(f"client {i} closed early: {exc}", file=sys.stderr)

    receivers = [asyncio.create_task(receive(i, ws)) for i, ws in enumerate(sockets)]
    await asyncio.sleep(0.5)  # let the runner and worker settle after the connects
    nudged_at = {}
    loop = asyncio.get_running_loop()
    start = loop.time()
    lag_max = 0.0
    for index, text in enumerate(texts):
        due = start + index / args.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        lag_max = max(lag_max, loop.time() - due)
        nudged_at[index] = time.time()
        send_one(text)
    try:
        await asyncio.wait_for(asyncio.gather(*receivers), timeout=args.drain)
    except TimeoutError:
        pass
    done.set()
    for task in receivers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    return arrivals, list_counts, nudged_at, {"send_lag_max_ms": lag_max * 1000, "connect_s": connect_s}


if __name__ == "__main__":
    main()
