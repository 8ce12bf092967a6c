"""Webhook fan-out beside the live inbox: real processes, a real receiver, webhooks off and on in one run.

    .venv/bin/python bench/webhooks.py [--rate 1000] [--seconds 20] [--rounds 2]
        [--conditions off,on,on-receiver-nice] [--receiver-nice 19] [--probe-rate 10] [--numbers 4]
        [--customers 400] [--batch 100] [--partitions 4] [--backlog 10000] [--hook-nice N] [--hook-conn-max-age 300]

In a PostgreSQL database of its own (``BENCH_DB``, default ``inbox_bench_webhooks``, created and dropped here)
it starts the product's processes as the Procfile does: web (daphne, for the inbox's websocket), a worker for
the default queue (the journal processing that feeds the live inbox) and the webhooks worker for
``WEBHOOK_QUEUE``, which gives itself ``WEBHOOK_WORKER_NICE`` (19; ``--hook-nice`` sets another) and, as every
worker does, keeps its database connection between tasks (``WORKER_CONN_MAX_AGE``: ``--hook-conn-max-age``, 300
as the settings' default), each ``--concurrency 2``. The receiver is
a process of its own (the tenant's server, in reality on another machine): a threaded HTTP/1.1 server that
verifies every request's signature and answers 204.

Messages enter through the product's ingest path: journal rows committed and ``process_journal_task``
scheduled (``sync.journal.journal_many``, what the runner's session process does with each neonize event),
real MessageEv protobufs from ``--customers`` customers spread over ``--numbers`` numbers, at ``--rate``
messages/s in 50 ms ticks. Meanwhile a probe customer writes ``--probe-rate`` messages/s to one conversation
that a websocket client (an agent's session) has open: the live inbox's latency is journal ``received_at`` ->
the message's thread fragment on the socket (bench/live.py's measure).

Phases of ``--seconds`` each, the conditions alternating, ``--rounds`` times (the order rotated each round),
after a ``--warmup`` with webhooks on that is not counted:

- ``off``: the endpoint disabled (what a tenant without webhooks costs: one indexed query per ingested batch);
- ``on``: the endpoint subscribed to ``message.received`` (batches of ``--batch``), the receiver at nice 0;
- ``on-receiver-nice``: the same, the receiver at ``--receiver-nice`` (19), standing in for a receiver that
  is not on our cores.

Each phase waits until every message is stored and (webhooks on) every event delivered and logged, so the
next starts clean; its CPU meter (bench/benchlib.py ``CpuMeter``) covers that whole window: CPU ms per message
of daphne, the worker, the webhook worker, the receiver, the bench (feeder and socket client) and the
PostgreSQL backends of each (told apart by ``application_name``), and the whole Redis server (shared with
anything else on the machine). Per condition: the probe's latency pooled over its phases and per phase, the
median CPU per role. Checked over the run, as a receiver sees it (by event id): each request's signature, every
event delivered, each conversation's order over first arrivals, the delivery log (every row ``succeeded``);
events received again (a request that outlived our timeout at a starved receiver is sent again, same ids) are
counted as ``repeats_after_a_timeout``. Then ``capacity``: the webhook worker stopped,
``--backlog`` messages ingested, the worker started at nice 0 (nothing of the inbox runs meanwhile): events/s
while it drains the backlog (what delivery alone reaches on this machine).

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
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import benchlib
from benchlib import PG, CpuMeter, admin, group_cpu_seconds, port_open, summary

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


wait_for = partial(benchlib.wait_for, interval=0.1)
DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_webhooks")
QUEUE = "bench-webhooks"
HOOK_QUEUE = "bench-webhooks.hooks"
PROBE = "5511900000001@s.whatsapp.net"
ARTICLE = re.compile(r"<article\b.*?</article>", re.S)
TICK = 0.05


def serve_receiver(conn, secret_key: str) -> None:
    """The tenant's receiver, in a process (and process group) of its own so that its CPU is measured apart
    and its priority can be set (``Receiver.renice``): a threaded HTTP/1.1 server that verifies every
    request's signature (api.webhooks.verify_signature, the reference a receiver follows) and answers 204.
    Commands come over ``conn``."""
    os.setsid()
    import django

    django.setup()
    from api.webhooks import verify_signature

    state = {"secret": secret_key, "requests": [], "bad": 0, "connections": set(), "events": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server's name
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            now = time.time()
            ok = verify_signature(state["secret"], self.headers.get("X-Inbox-Signature", ""), raw)
            body = json.loads(raw) if ok else None
            with lock:
                state["connections"].add(self.client_address)
                if ok:
                    body = body if isinstance(body, list) else [body]
                    state["requests"].append((now, body))
                    state["events"] += len(body)
                else:
                    state["bad"] += 1
            self.send_response(204 if ok else 400)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn.send(server.server_port)
    while True:
        command, arg = conn.recv()
        with lock:
            if command == "secret":
                state["secret"] = arg
            elif command == "count":
                conn.send(state["events"])
                continue
            elif command == "take":  # every request so far, then forgotten
                conn.send({"requests": state["requests"], "bad_signatures": state["bad"],
                           "connections": len(state["connections"])})
                state.update(requests=[], bad=0, connections=set(), events=0)
                continue
            elif command == "stop":
                server.shutdown()
                conn.send(None)
                return
        conn.send(None)


def autogroup_nice(pid: int) -> int | None:
    """The nice value of a process's autogroup (its session's share of the CPU); None with autogroup scheduling off."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return None
        return int(Path(f"/proc/{pid}/autogroup").read_text().split("nice")[1])
    except (OSError, ValueError, IndexError):
        return None


class Receiver:
    """The receiver process, seen from the bench: its URL, its process group, what it received."""

    def __init__(self):
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=serve_receiver, args=(child, ""), daemon=True)
        self.process.start()
        self.url = f"http://127.0.0.1:{self.conn.recv()}/hook"
        self.lock = threading.Lock()
        self.nice = 0

    def _ask(self, command, arg=None):
        with self.lock:
            self.conn.send((command, arg))
            return self.conn.recv()

    def set_secret(self, secret: str) -> None:
        self._ask("secret", secret)

    def count(self) -> int:
        return self._ask("count")

    def take(self) -> dict:
        return self._ask("take")

    def renice(self, value: int) -> None:
        """Every thread of the receiver at this nice value (Linux: the nice value is per thread), and its session's
        autogroup too (it is alone in its session; with autogroup scheduling on, sessions share the CPU first)."""
        for tid in os.listdir(f"/proc/{self.process.pid}/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), value)
        if autogroup_nice(self.process.pid) is not None:
            Path(f"/proc/{self.process.pid}/autogroup").write_text(str(value))
        self.nice = value

    def close(self):
        try:
            self._ask("stop")
        except (EOFError, OSError):
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()


def message_event(chat: str, external_id: str, text: str):
    from sync import events_builder as b

    return b.serialize(b.message_ev(chat, chat, external_id, text, int(time.time() * 1000)))


def feed(connections, rate: float, seconds: float, tag: str, customers: int, fed_at: dict, probe_ids: list,
         probe_conn, probe_rate: float) -> dict:
    """The flood (``rate``/s over ``connections``) and the probe (``probe_rate``/s to one conversation) for ``seconds``,
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
            if probe_conn is not None and probes < elapsed * probe_rate:
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
    parser.add_argument("--rounds", type=int, default=2, help="how many times each condition runs, alternating")
    parser.add_argument("--conditions", default="off,on,on-receiver-nice",
                        help="off: no enabled endpoint; on: an endpoint, the receiver at nice 0; on-receiver-nice: "
                             "the same with the receiver at --receiver-nice (standing in for another machine)")
    parser.add_argument("--receiver-nice", type=int, default=19)
    parser.add_argument("--probe-rate", type=float, default=10.0, help="probe messages/s (beside --rate)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of flood with webhooks first, not reported")
    parser.add_argument("--numbers", type=int, default=4)
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--batch", type=int, default=100, help="the endpoint's events per request")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--backlog", type=int, default=10000, help="the capacity phase's backlog (0: skipped)")
    parser.add_argument("--drain", type=float, default=300.0)
    parser.add_argument("--hook-conn-max-age", type=int, default=300,
                        help="the webhook worker's WORKER_CONN_MAX_AGE (300, the settings' default; 0: a new "
                             "connection per task, whose backends' CPU the meter then partly misses)")
    parser.add_argument("--hook-nice", type=int, default=None,
                        help="the webhook worker's WEBHOOK_WORKER_NICE (default: the product's, 19)")
    args = parser.parse_args()
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    phases = len(conditions) * args.rounds + 1
    hard_limit = int(phases * (args.seconds + 60) + 3 * args.drain + 600)

    def out_of_time(*_):
        raise TimeoutError(f"bench/webhooks.py exceeded its {hard_limit}s limit")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(hard_limit)

    admin(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{DB_NAME}"')
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB_NAME}", DJANGO_SETTINGS_MODULE="config.settings.test", LOG_LEVEL="WARNING",
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"), CELERY_QUEUE=QUEUE,
        WEBHOOK_QUEUE=HOOK_QUEUE, WEBHOOK_PARTITIONS=str(args.partitions), WEBHOOK_BATCH_MAX=str(max(100, args.batch)),
        CHANNEL_LAYER_PREFIX="bench-webhooks", OUTBOUND_ALLOW_PRIVATE_ADDRESSES="true", ALLOWED_HOSTS="127.0.0.1",
        PGAPPNAME="bench-feeder",  # each process's backends are told apart by their application_name
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
        started.append(procs.celery_worker({**env, "PGAPPNAME": "worker"}, concurrency=2))
        hook_env = {**env, "PGAPPNAME": "webhook-worker"}
        hook_env["WORKER_CONN_MAX_AGE"] = str(args.hook_conn_max_age)

        def start_hook_worker(nice=args.hook_nice):
            # The recommended deployment (docs/api.md, the Procfile's webhooks process): a worker of its own for
            # WEBHOOK_QUEUE, which lowers its own CPU priority to WEBHOOK_WORKER_NICE (config/priority.py).
            return procs.Proc("webhook-worker", [
                sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "WARNING", "-Q", HOOK_QUEUE,
                "--concurrency", "2", "--without-gossip", "--without-mingle", "-n", f"bench-hooks-{os.getpid()}@%h"],
                {**hook_env, **({"WEBHOOK_WORKER_NICE": str(nice)} if nice is not None else {})})

        hook_worker = start_hook_worker()
        started.append(procs.daphne(port, {**env, "PGAPPNAME": "web"}))
        result = run(args, conditions, port, started, receiver, start_hook_worker, hook_worker)
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


def cpu_meter(started, hook_worker, receiver) -> CpuMeter:
    """CPU per role: daphne, the default queue's worker, the webhook worker, the receiver, the bench (the
    feeder, standing in for the runner, and the agent's socket), and the PostgreSQL backends of each."""
    import psycopg

    roles = {proc.name: proc.popen.pid for proc in [*started, hook_worker]}
    roles["receiver"] = receiver.process.pid  # its own session (serve_receiver)
    admin_conn = psycopg.connect(f"{PG}/postgres", autocommit=True)
    lock = threading.Lock()

    def pg_pids() -> dict[int, str]:
        with lock:
            return dict(admin_conn.execute(
                "SELECT pid, application_name FROM pg_stat_activity WHERE datname = %s", [DB_NAME]).fetchall())

    return CpuMeter(roles, pg_pids=pg_pids)


NOT_PRODUCT = ("bench", "receiver", "redis-server (whole server, shared)", "postgres backends (bench-feeder)",
               "postgres backends (bench-poll)")


def cpu_report(meter: CpuMeter, messages: int) -> dict:
    report = meter.report(messages)
    per = report["cpu_ms_per_message"]
    # The product's processes and their backends; the receiver (the tenant's machine in reality), the bench's
    # feeder (the runner's share) and the shared Redis server apart.
    report["product_cpu_ms_per_message"] = round(sum(v for k, v in per.items() if k not in NOT_PRODUCT), 3)
    return report


def run(args, conditions, port, started, receiver, start_hook_worker, hook_worker) -> dict:  # noqa: C901, PLR0915 - a script
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
    endpoint = webhooks.check_create_endpoint(tenant, url=receiver.url, events=["message.received"],
                                              batch_size=args.batch)
    receiver.set_secret(endpoint.secret)
    # The bench's own polling (counts while it waits) on a connection of its own, so that the feeder's backend
    # is only the journal's inserts (the runner's share of the ingest).
    from django.db import connections

    connections.settings["poll"] = {**connections.settings["default"], "OPTIONS": {
        **connections.settings["default"]["OPTIONS"], "application_name": "bench-poll"}}
    log = WebhookDelivery.objects.for_tenant(tenant).using("poll")
    stored = Message.objects.unscoped().filter(tenant=tenant).using("poll")
    meter_procs = [*started, hook_worker]
    all_events: list = []
    totals = {"requests": 0, "bad_signatures": 0, "expected": 0}

    def phase(tag: str, condition: str, seconds: float) -> dict:
        hooks = condition != "off"
        webhooks.do_set_endpoint_enabled(endpoint, hooks)
        if hooks:
            receiver.renice(args.receiver_nice if condition == "on-receiver-nice" else 0)
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
        from django.db.models import Max

        after_id = stored.aggregate(m=Max("id"))["m"] or 0
        phase_rows = stored.filter(pk__gt=after_id)  # counting only the phase's rows: the bench's polls stay cheap
        meter = cpu_meter(started, hook_worker, receiver)
        polling = threading.Event()

        def poll():
            while not polling.wait(0.2):
                meter.poll()

        poller = threading.Thread(target=poll, daemon=True)
        meter.start()
        poller.start()
        t0 = time.time()
        fed = feed(numbers, args.rate, seconds, tag, args.customers, fed_at, probe_ids, numbers[0], args.probe_rate)
        total = fed["fed"] + fed["probes"]
        stored_at_end_of_feed = phase_rows.count()
        wait_for(lambda: phase_rows.count() >= total, args.drain, f"{total} messages stored", meter_procs, interval=0.25)
        ingest_s = time.time() - t0
        wait_for(lambda: len(arrivals) >= len(probe_ids), 15, "the probe's fragments", meter_procs)
        stop.set()
        watcher.join(5)
        if hooks:  # the meter goes on until every event is delivered and logged: the phase's whole cost
            wait_for(lambda: receiver.count() >= len(fed_at), args.drain, f"{len(fed_at)} webhook events", meter_procs,
                     interval=0.25)
            wait_for(lambda: not log.filter(status="pending").exists(), 30, "the delivery log to settle", meter_procs,
                     interval=0.25)
        drain_s = time.time() - t0 - ingest_s
        polling.set()
        poller.join()
        meter.stop()
        latency = [(arrivals[i] - fed_at[i]) * 1000 for i in probe_ids if i in arrivals]
        out = {"condition": condition, "receiver_nice": receiver.nice if hooks else None, **fed,
               "delivery_drain_s_after_ingest": round(drain_s, 2) if hooks else None,
               "stored_during_feed": stored_at_end_of_feed, "ingest_msgs_per_s": round(total / ingest_s),
               "live_inbox_latency_ms": summary(latency), "probe_missed": len(probe_ids) - len(latency),
               "cpu": cpu_report(meter, total), "_latency": latency}
        if hooks:
            out.update(delivery(receiver.take(), fed_at, t0, fed["feed_s"]))
            totals["expected"] += len(fed_at)
        return out

    def delivery(taken, fed_at, t0, feed_s) -> dict:
        events = [(at, event) for at, body in taken["requests"] for event in body]
        all_events.extend(events)
        totals["requests"] += len(taken["requests"])
        totals["bad_signatures"] += taken["bad_signatures"]
        feed_end = t0 + feed_s
        lag_recorded = [(at - datetime.fromisoformat(e["created_at"].replace("Z", "+00:00")).timestamp()) * 1000
                        for at, e in events]
        lag_ingest = [(at - fed_at[e["data"]["message"]["whatsapp_id"]]) * 1000 for at, e in events]
        return {"events_expected": len(fed_at), "events_received": len(events), "requests": len(taken["requests"]),
                "bad_signatures": taken["bad_signatures"], "receiver_connections": taken["connections"],
                "delivered_per_s_during_feed": round(sum(1 for at, _ in events if at <= feed_end) / feed_s),
                "delivery_lag_recorded_to_received_ms": summary(lag_recorded),
                "delivery_lag_ingest_to_received_ms": summary(lag_ingest)}

    warmup = phase("W", conditions[-1] if conditions[-1] != "off" else "on", args.warmup) if args.warmup else None
    runs: list[dict] = []
    for r in range(args.rounds):
        order = conditions[r % len(conditions):] + conditions[:r % len(conditions)]  # rotated each round
        for i, condition in enumerate(order):
            runs.append(phase(f"R{r}{i}", condition, args.seconds))

    # Checks over every event received, as a receiver sees them: by event id, first arrivals in arrival order. A
    # request that timed out on our side (WEBHOOK_TIMEOUT_SECONDS) but reached the receiver is sent again, with
    # the same event ids (at least once): counted as repeats, and each conversation's order is checked over the
    # first arrivals (a repeat always comes before any later event of its conversations: they wait for it).
    first: dict = {}
    for _, event in all_events:
        first.setdefault(event["id"], event)
    last_id, order_ok = {}, True
    for event in first.values():
        message = event["data"]["message"]
        conv = message["conversation_id"]
        if last_id.get(conv, 0) >= message["id"]:
            order_ok = False
        last_id[conv] = message["id"]
    checks = {"events_expected": totals["expected"],
              "events_received": len(all_events), "events_unique": len(first),
              "repeats_after_a_timeout": len(all_events) - len(first), "requests": totals["requests"],
              "bad_signatures": totals["bad_signatures"], "in_order_per_conversation": order_ok,
              "conversations": len(last_id), "log_rows": log.count(),
              "log_succeeded": log.filter(status="succeeded").count(),
              "log_rows_sent_more_than_once": log.filter(attempts__gt=1).count()}

    by_condition = {}
    for condition in conditions:
        mine = [p for p in runs if p["condition"] == condition]
        pooled = [v for p in mine for v in p["_latency"]]
        roles = sorted({k for p in mine for k in p["cpu"]["cpu_ms_per_message"]})
        by_condition[condition] = {
            "live_inbox_latency_ms_pooled": summary(pooled),
            "p50_per_phase": [p["live_inbox_latency_ms"].get("p50") for p in mine],
            "p99_per_phase": [p["live_inbox_latency_ms"].get("p99") for p in mine],
            "ingest_msgs_per_s_per_phase": [p["ingest_msgs_per_s"] for p in mine],
            "machine_cores_busy_per_phase": [p["cpu"]["machine_cores_busy"] for p in mine],
            "cpu_ms_per_message_median": {k: round(statistics.median(
                p["cpu"]["cpu_ms_per_message"].get(k) or 0.0 for p in mine), 3) for k in roles},
            "product_cpu_ms_per_message_median": round(statistics.median(
                p["cpu"]["product_cpu_ms_per_message"] for p in mine), 3),
        }
        if condition != "off":
            by_condition[condition]["delivered_per_s_during_feed_per_phase"] = [
                p["delivered_per_s_during_feed"] for p in mine]
    for p in runs:
        p.pop("_latency")
    if warmup:
        warmup.pop("_latency")

    # What it gave itself (config/priority.py): its nice value and its session's autogroup's.
    hook_nice = {"nice": os.getpriority(os.PRIO_PROCESS, hook_worker.popen.pid),
                 "autogroup_nice": autogroup_nice(hook_worker.popen.pid)}
    capacity = None
    if args.backlog:
        webhooks.do_set_endpoint_enabled(endpoint, True)
        receiver.renice(0)
        hook_worker, capacity = drain_backlog(args, started, receiver, numbers, log, hook_worker, start_hook_worker)

    return {
        "benchmark": "webhooks", "at": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
        "cpus": os.cpu_count(), "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "numbers": args.numbers, "customers": args.customers, "batch": args.batch, "partitions": args.partitions,
        "rate": args.rate, "seconds_per_phase": args.seconds, "rounds": args.rounds,
        "webhook_worker_nice": hook_nice,
        "webhook_worker_conn_max_age": args.hook_conn_max_age,
        "receiver": ("a process of the bench's on this machine, verifying every signature; in condition "
                     f"on-receiver-nice at nice {args.receiver_nice}, standing in for the tenant's own server "
                     "(in reality not on our cores); in condition on at nice 0"),
        "ingest_path": "journal_events (journal rows committed, process_journal_task scheduled) -> worker",
        "live_latency": "journal received_at -> the probe message's thread fragment on an agent's websocket",
        "by_condition": by_condition, "checks": checks, "phases": runs, "warmup": warmup, "capacity": capacity,
        "_hook_worker": hook_worker,
    }


def drain_backlog(args, started, receiver, numbers, log, hook_worker, start_hook_worker):
    """A backlog recorded while the webhook worker is stopped, then drained by it alone."""
    from django.utils import timezone

    from inbox.models import Message
    from sync.journal import journal_events

    tenant_messages = Message.objects.unscoped().filter(tenant_id=numbers[0].tenant_id)
    hook_worker.stop(timeout=15)
    receiver.take()
    before = tenant_messages.count()
    for start in range(0, args.backlog, 500):
        now = timezone.now()
        batch = [(*message_event(f"55119{i % args.customers:08d}@s.whatsapp.net", f"C{i:08d}", f"backlog {i}"), now)
                 for i in range(start, min(args.backlog, start + 500))]
        journal_events(numbers[(start // 500) % len(numbers)].pk, batch)
    wait_for(lambda: tenant_messages.count() - before >= args.backlog, args.drain * 3, "the backlog stored", started)
    pending = log.filter(status="pending").count()
    hook_worker = start_hook_worker(0)  # at nice 0: alone, and not yielding to the other tenants of a shared machine
    t_start = time.time()
    # CPU from the first event received (the worker's start-up is not delivery) to the last.
    first_n = wait_for(receiver.count, args.drain, "the first backlog event", [*started, hook_worker])
    cpu0 = group_cpu_seconds(hook_worker.popen.pid)
    wait_for(lambda: receiver.count() >= args.backlog, args.drain * 3, "the backlog delivered",
             [*started, hook_worker])
    drained_s = time.time() - t_start
    cpu1 = group_cpu_seconds(hook_worker.popen.pid)
    taken = receiver.take()
    events = [at for at, body in taken["requests"] for _ in body]
    capacity = {"backlog": args.backlog, "pending_when_started": pending, "drain_s_from_worker_start": round(drained_s, 2),
                "delivered_per_s_from_worker_start": round(args.backlog / drained_s),
                "delivered_per_s_first_to_last": round(len(events) / max(0.001, events[-1] - events[0])),
                "requests": len(taken["requests"]), "bad_signatures": taken["bad_signatures"],
                # Its database work is not counted here (bench/webhook_cpu.py measures a delivery's database CPU).
                "webhook_worker_cpu_ms_per_event": round((cpu1 - cpu0) * 1000 / max(1, args.backlog - first_n), 3)}
    wait_for(lambda: not log.filter(status="pending").exists(), 30, "the delivery log to settle", started)
    capacity["log_succeeded_total"] = log.filter(status="succeeded").count()
    return hook_worker, capacity


if __name__ == "__main__":
    main()
