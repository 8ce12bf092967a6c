"""Webhook fan-out beside the live inbox: real processes, a real receiver, one run.

    .venv/bin/python bench/webhooks.py [--rate 1000] [--seconds 20] [--numbers 4] [--customers 400]
                                       [--batch 100] [--partitions 4] [--backlog 10000] [--hook-nice 10]

In a PostgreSQL database of its own (``inbox_bench_webhooks``, created and dropped here) it starts the
product's processes: web (daphne, for the inbox's websocket), a worker for the default queue (the journal
processing that feeds the live inbox) and a worker for the webhook queue (``WEBHOOK_QUEUE``, at
``nice --hook-nice``: the deployment docs/api.md recommends), each ``--concurrency 2``. A threaded HTTP/1.1 receiver in this
process verifies every request's signature and answers 204.

Messages enter through the product's ingest path: journal rows committed and ``process_journal_task``
scheduled (``sync.journal.journal_events``, what the runner's session process does with each neonize
event), real MessageEv protobufs from ``--customers`` customers spread over ``--numbers`` numbers, at
``--rate`` messages/s in 50 ms ticks. Meanwhile a probe customer writes 5 messages/s to one conversation
that a websocket client (an agent's session) has open: the live inbox's latency is journal ``received_at``
-> the message's thread fragment on the socket (bench/live.py's measure).

1. ``without``: ``--seconds`` of the flood with no webhook endpoint.
2. ``with``: the same with an endpoint subscribed to ``message.received`` (batches of ``--batch``):
   events delivered per second while the flood runs, delivery lag (recorded -> received; ingest ->
   received), the probe's latency again. Checked: each request's signature, each conversation's order,
   every event delivered once, the delivery log (every row ``succeeded``).
3. ``capacity``: the webhook worker stopped, ``--backlog`` messages ingested, then the worker started
   (without ``nice``: nothing of the inbox runs meanwhile): events/s while it drains the backlog (what
   delivery alone reaches on this machine).

Beside events/s, which on a shared machine say as much about the neighbours as about the code, phases 2 and 3
report the webhook worker's CPU time (its main process and pool, ``/proc``) per event delivered:
``webhook_worker_cpu_ms_per_event``. Phase 2's includes the per-task costs of a live flood (many small tasks,
a new database connection each with ``CONN_MAX_AGE=0``); phase 3's is mostly per event.

Prints one JSON line and saves bench/results/webhooks.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import benchlib
from benchlib import PG, admin, group_cpu_seconds, port_open, summary

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


wait_for = partial(benchlib.wait_for, interval=0.1)
DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_webhooks")
QUEUE = "bench-webhooks"
HOOK_QUEUE = "bench-webhooks.hooks"
PROBE = "5511900000001@s.whatsapp.net"
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)
TICK = 0.05
PROBE_RATE = 5.0


class Receiver:
    """Keeps (arrival time, events) of each request whose signature verifies; counts the ones that do not."""

    def __init__(self):
        from api.webhooks import verify_signature

        self.secret = ""
        self.requests: list[tuple[float, list]] = []
        self.bad_signatures = 0
        self.connections: set = set()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                ok = verify_signature(receiver.secret, self.headers.get("X-Inbox-Signature", ""), raw)
                body = json.loads(raw) if ok else None
                with receiver.lock:
                    receiver.connections.add(self.client_address)
                    if ok:
                        receiver.requests.append((now, body if isinstance(body, list) else [body]))
                    else:
                        receiver.bad_signatures += 1
                self.send_response(204 if ok else 400)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[tuple[float, dict]]:
        with self.lock:
            return [(at, event) for at, body in self.requests for event in body]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def message_event(chat: str, external_id: str, text: str):
    from sync import events_builder as b

    return b.serialize(b.message_ev(chat, chat, external_id, text, int(time.time() * 1000)))


def feed(connections, rate: float, seconds: float, tag: str, customers: int, fed_at: dict, probe_ids: list,
         probe_conn) -> dict:
    """The flood (``rate``/s over ``connections``) and the probe (5/s to one conversation) for ``seconds``,
    through journal_events with processing scheduled; returns how far behind schedule the feeder fell."""
    from django.db import connection as db
    from django.utils import timezone

    from sync.journal import journal_many

    per_tick = rate * TICK
    start = time.monotonic()
    sent, probes, ticks, behind = 0, 0, 0, 0.0
    tenants: dict = {}
    try:
        while True:
            due = start + ticks * TICK
            if due - start >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            behind = max(behind, time.monotonic() - due)
            want = int(per_tick * (ticks + 1)) - int(per_tick * ticks)
            now = timezone.now()
            by_conn: dict[int, list] = {}
            for i in range(sent, sent + want):
                external_id = f"{tag}{i:08d}"
                chat = f"55119{i % customers:08d}@s.whatsapp.net"
                name, data = message_event(chat, external_id, f"order {i}")
                by_conn.setdefault(connections[i % len(connections)].pk, []).append((name, data, now))
                fed_at[external_id] = now.timestamp()
            sent += want
            elapsed = time.monotonic() - start
            if probe_conn is not None and probes < elapsed * PROBE_RATE:
                external_id = f"{tag}P{probes:05d}"
                name, data = message_event(PROBE, external_id, f"probe-{external_id}")
                by_conn.setdefault(probe_conn.pk, []).append((name, data, now))
                fed_at[external_id] = now.timestamp()
                probe_ids.append(external_id)
                probes += 1
            journal_many(by_conn, tenants=tenants)
            ticks += 1
    finally:
        db.close()
    return {"fed": sent, "probes": probes, "feeder_behind_max_ms": round(behind * 1000, 1),
            "feed_s": round(time.monotonic() - start, 2)}


async def watch(url: str, cookie: str, port: int, stop: threading.Event, arrivals: dict, ready: threading.Event):
    import websockets

    marker = re.compile(r"probe-(\w+P\d{5})")
    async with websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=15, max_size=2**22,
                                  additional_headers={"Cookie": f"sessionid={cookie}"}) as ws:
        ready.set()
        while not stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=0.5)
            except TimeoutError:
                continue
            now = time.time()
            for article in ARTICLE.findall(frame if isinstance(frame, str) else frame.decode()):
                if 'data-upsert="thread"' in article:
                    for m in marker.finditer(article):
                        arrivals.setdefault(m.group(1), now)


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0, help="messages/s offered to the ingest")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase's flood")
    parser.add_argument("--numbers", type=int, default=4)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100, help="the endpoint's events per request")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--drain", type=float, default=300.0)
    parser.add_argument("--hook-conn-max-age", type=int, default=0,
                        help="the webhook worker's CONN_MAX_AGE (0, the default: a connection per task)")
    parser.add_argument("--hook-nice", type=int, default=10, help="nice value of the webhook worker (0: none)")
    args = parser.parse_args()
    hard_limit = int(3 * args.seconds + 3 * args.drain + 600)

    def out_of_time(*_):
        raise TimeoutError(f"bench/webhooks.py exceeded its {hard_limit}s limit")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(hard_limit)

    admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB_NAME}", DJANGO_SETTINGS_MODULE="config.settings.test", LOG_LEVEL="WARNING",
        REDIS_URL=os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12"), CELERY_QUEUE=QUEUE,
        WEBHOOK_QUEUE=HOOK_QUEUE, WEBHOOK_PARTITIONS=str(args.partitions), WEBHOOK_BATCH_MAX=str(max(100, args.batch)),
        CHANNEL_LAYER_PREFIX="bench-webhooks", OUTBOUND_ALLOW_PRIVATE_ADDRESSES="true", ALLOWED_HOSTS="127.0.0.1",
    )
    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from tests import procs

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()
    call_command("migrate", verbosity=0)
    receiver = Receiver()
    started: list = []
    hook_worker = None
    try:
        env = procs.process_env(LOG_LEVEL="WARNING")
        port = procs.free_port()
        started.append(procs.celery_worker(env, concurrency=2))
        hook_env = {**env, "CELERY_QUEUE": HOOK_QUEUE, "CONN_MAX_AGE": str(args.hook_conn_max_age)}

        def start_hook_worker(nice=args.hook_nice):
            # The recommended deployment (docs/api.md): a worker of its own for WEBHOOK_QUEUE, at a lower CPU
            # priority than the processes of the live inbox.
            return procs.Proc("webhook-worker", [
                "nice", "-n", str(nice), sys.executable, "-m", "celery", "-A", "config", "worker", "-l",
                "WARNING", "-Q", HOOK_QUEUE, "--concurrency", "2", "--without-gossip", "--without-mingle",
                "-n", f"bench-hooks-{os.getpid()}@%h"], hook_env)

        hook_worker = start_hook_worker()
        started.append(procs.daphne(port, env))
        result = run(args, port, started, receiver, start_hook_worker, hook_worker)
        hook_worker = result.pop("_hook_worker")
    finally:
        signal.alarm(0)
        for proc in [*started, hook_worker]:
            if proc is not None:
                proc.stop(timeout=15)
        receiver.close()
        from django.db import connections

        connections.close_all()
        admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    print(json.dumps(result))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "webhooks.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def run(args, port, started, receiver, start_hook_worker, hook_worker) -> dict:  # noqa: C901, PLR0915 - a script
    from django.contrib.auth import get_user_model
    from django.test import Client

    from api import webhooks
    from api.models import WebhookDelivery
    from connections.models import Connection
    from inbox.models import Conversation, Membership, Message, Tenant
    from sync.journal import journal_events

    tenant = Tenant.objects.create(name="Hooked", slug="hooked")
    numbers = [Connection.objects.create(tenant=tenant, name=f"number {i}", status="connected")
               for i in range(args.numbers)]
    user = get_user_model().objects.create_user("bench-agent", password="x")
    Membership.objects.create(tenant=tenant, user=user, role="agent")
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value

    # The probe's conversation exists before the socket opens it (a first message through the same path).
    from django.utils import timezone

    journal_events(numbers[0].pk, [(*message_event(PROBE, "WARM0001", "warm-up"), timezone.now())])
    wait_for(lambda: Message.objects.unscoped().filter(external_id="WARM0001").exists(), 90,
             "the warm-up message to be processed", started)
    probe_conversation = Conversation.objects.unscoped().get(connection=numbers[0], chat_jid=PROBE)
    wait_for(lambda: port_open(port), 30, "daphne to listen", started)

    def phase(tag: str) -> dict:
        fed_at: dict = {}
        probe_ids: list = []
        arrivals: dict = {}
        stop, ready = threading.Event(), threading.Event()
        url = f"ws://127.0.0.1:{port}/ws/t/hooked/?conversation={probe_conversation.pk}"
        watcher = threading.Thread(target=lambda: asyncio.run(watch(url, cookie, port, stop, arrivals, ready)),
                                   daemon=True)
        watcher.start()
        ready.wait(20)
        time.sleep(0.5)
        before = Message.objects.unscoped().filter(tenant=tenant).count()
        t0 = time.time()
        fed = feed(numbers, args.rate, args.seconds, tag, args.customers, fed_at, probe_ids, numbers[0])
        total = fed["fed"] + fed["probes"]
        stored_at_end_of_feed = Message.objects.unscoped().filter(tenant=tenant).count() - before
        wait_for(lambda: Message.objects.unscoped().filter(tenant=tenant).count() - before >= total, args.drain,
                 f"{total} messages stored", started)
        ingest_s = time.time() - t0
        wait_for(lambda: len(arrivals) >= len(probe_ids), 15, "the probe's fragments", started)
        stop.set()
        watcher.join(5)
        latency = [(arrivals[i] - fed_at[i]) * 1000 for i in probe_ids if i in arrivals]
        return {"offered_msgs_per_s": args.rate, **fed, "stored_during_feed": stored_at_end_of_feed,
                "ingest_msgs_per_s": round(total / ingest_s), "ingest_s": round(ingest_s, 2),
                "live_inbox_latency_ms": summary(latency), "probe_missed": len(probe_ids) - len(latency),
                "_fed_at": fed_at, "_t0": t0}

    # 1. Without webhooks.
    without = phase("A")
    without.pop("_fed_at"), without.pop("_t0")

    # 2. With an endpoint: the flood again, delivered while it runs.
    endpoint = webhooks.check_create_endpoint(tenant, url=receiver.url, events=["message.received"],
                                              batch_size=args.batch)
    receiver.secret = endpoint.secret
    hook_cpu0 = group_cpu_seconds(hook_worker.popen.pid)
    with_hooks = phase("B")
    fed_at, t0 = with_hooks.pop("_fed_at"), with_hooks.pop("_t0")
    expected = len(fed_at)
    wait_for(lambda: len(receiver.events()) >= expected, args.drain, f"{expected} webhook events", started)
    # The webhook worker's CPU (its main process and pool) per event delivered: robust on a shared machine.
    hook_cpu_ms = (group_cpu_seconds(hook_worker.popen.pid) - hook_cpu0) * 1000 / expected
    events = receiver.events()
    feed_end = t0 + with_hooks["feed_s"]
    delivered_during_feed = sum(1 for at, _ in events if at <= feed_end)
    first, last = events[0][0], events[-1][0]
    lag_recorded, lag_ingest, order_ok, seen = [], [], True, set()
    last_id: dict = {}
    for at, event in events:
        message = event["data"]["message"]
        seen.add(event["id"])
        recorded = datetime.fromisoformat(event["created_at"].replace("Z", "+00:00")).timestamp()
        lag_recorded.append((at - recorded) * 1000)
        lag_ingest.append((at - fed_at[message["whatsapp_id"]]) * 1000)
        conv = message["conversation_id"]
        if last_id.get(conv, 0) >= message["id"]:
            order_ok = False
        last_id[conv] = message["id"]
    log = WebhookDelivery.objects.for_tenant(tenant)
    wait_for(lambda: not log.filter(status="pending").exists(), 30, "the delivery log to settle", started)
    with_hooks.update({
        "events_expected": expected, "events_received": len(events), "events_unique": len(seen),
        "requests": len(receiver.requests), "bad_signatures": receiver.bad_signatures,
        "receiver_connections": len(receiver.connections), "in_order_per_conversation": order_ok,
        "conversations": len(last_id),
        "delivered_per_s_during_feed": round(delivered_during_feed / with_hooks["feed_s"]),
        "delivered_per_s_first_to_last": round(len(events) / max(0.001, last - first)),
        "delivery_lag_recorded_to_received_ms": summary(lag_recorded),
        "delivery_lag_ingest_to_received_ms": summary(lag_ingest),
        "log_rows": log.count(), "log_succeeded": log.filter(status="succeeded").count(),
        "webhook_worker_cpu_ms_per_event": round(hook_cpu_ms, 3),
    })

    # 3. Capacity: a backlog recorded while the webhook worker is stopped, then drained.
    hook_worker.stop(timeout=15)
    receiver.requests.clear()
    before = Message.objects.unscoped().filter(tenant=tenant).count()
    for start in range(0, args.backlog, 500):
        now = timezone.now()
        batch = [(*message_event(f"55119{i % args.customers:08d}@s.whatsapp.net", f"C{i:08d}", f"backlog {i}"), now)
                 for i in range(start, min(args.backlog, start + 500))]
        journal_events(numbers[(start // 500) % len(numbers)].pk, batch)
    wait_for(lambda: Message.objects.unscoped().filter(tenant=tenant).count() - before >= args.backlog,
             args.drain * 3, "the backlog stored", started)
    pending = log.filter(status="pending").count()
    hook_worker = start_hook_worker(0)  # alone, and not yielding to the other tenants of a shared machine
    t_start = time.time()
    # CPU from the first event received (the worker's start-up is not delivery) to the last.
    first_n = wait_for(lambda: len(receiver.events()), args.drain, "the first backlog event", [*started, hook_worker])
    cpu0 = group_cpu_seconds(hook_worker.popen.pid)
    wait_for(lambda: len(receiver.events()) >= args.backlog, args.drain * 3, "the backlog delivered",
             [*started, hook_worker])
    drained_s = time.time() - t_start
    cpu1 = group_cpu_seconds(hook_worker.popen.pid)
    events = receiver.events()
    capacity = {"backlog": args.backlog, "pending_when_started": pending, "drain_s_from_worker_start": round(drained_s, 2),
                "delivered_per_s_from_worker_start": round(args.backlog / drained_s),
                "delivered_per_s_first_to_last": round(len(events) / max(0.001, events[-1][0] - events[0][0])),
                "requests": len(receiver.requests), "bad_signatures": receiver.bad_signatures,
                # Its database work is not counted here: with CONN_MAX_AGE=0 every task's backend exits with it
                # (bench/webhook_cpu.py measures a delivery's database CPU on one connection).
                "webhook_worker_cpu_ms_per_event": round((cpu1 - cpu0) * 1000 / max(1, args.backlog - first_n), 3)}
    wait_for(lambda: not log.filter(status="pending").exists(), 30, "the delivery log to settle", started)
    capacity["log_succeeded_total"] = log.filter(status="succeeded").count()

    return {
        "benchmark": "webhooks", "at": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "numbers": args.numbers, "customers": args.customers, "batch": args.batch, "partitions": args.partitions,
        "webhook_worker_nice": args.hook_nice, "webhook_worker_conn_max_age": args.hook_conn_max_age,
        "ingest_path": "journal_events (journal rows committed, process_journal_task scheduled) -> worker",
        "live_latency": "journal received_at -> the probe message's thread fragment on an agent's websocket",
        "without_webhooks": without, "with_webhooks": with_hooks, "capacity": capacity, "_hook_worker": hook_worker,
    }


if __name__ == "__main__":
    main()
