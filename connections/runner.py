"""The runner: a supervisor that keeps every leased connection's session alive (docs/runner.md).

The supervisor itself never touches WhatsApp. It holds leases (connections.actions), decides what
should run (desired state in the database, nudges over Redis, a periodic reconcile), and hosts the
sessions in child processes (connections/child.py) that it starts, restarts when they die and
recycles when they leak. It never renders and never publishes: actions do that.

Main loop: one thread waiting on the children's reply pipes and a wake-up pipe (nudges), with
timers for heartbeat, reconcile, reconnect retries and connect deadlines.

Liveness (docs/runner.md, "Faults"): a lease is renewed only for sessions whose child answered within
RUNNER_CHILD_ANSWER_SECONDS (or that no child runs yet); each child is told until when its sessions are leased and
exits before that if no renewal comes (a frozen supervisor); a child that stops answering, or whose
command loop or journal thread is stuck or dead, is killed and its sessions restarted elsewhere.
"""

import json
import logging
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError

from config import heartbeats
from config.db import drop_broken_connections
from connections import actions
from connections.models import Connection
from connections.nudge import nudge_channel, redis_client
from connections.protocol import LOGGED_OUT_HERE, Nudge, Op, Reply, SessionState
from connections.spool import pending_spool_files, replay_spool
from connections.transport import State

logger = logging.getLogger(__name__)
CHILD_START_SECONDS = 60.0  # a child that has not said "ready" by then is killed
STARTS_PER_TICK = 5
SLOW_STEP_SECONDS = 2.0
RETRY_WITHOUT_DATABASE_SECONDS = 5.0  # a lost session's restart when its loss could not be recorded
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class ChildProc:
    index: int
    popen: subprocess.Popen
    out_fd: int
    buffer: bytes = b""
    sessions: set = field(default_factory=set)
    attempts: int = 0
    retiring: bool = False  # made too many connect attempts: no new sessions, exits once empty
    started: float = field(default_factory=time.monotonic)
    ready: bool = False  # said "ready" (Django and the transports are loaded)
    last_answer: float = 0.0  # monotonic time of the last heartbeat answer (or of "ready")

    @property
    def leaked(self) -> int:
        """Connect attempts beyond one per session hosted: each left a store connection behind (NEONIZE.md)."""
        return max(0, self.attempts - len(self.sessions))

    def send(self, message: dict) -> bool:
        try:
            self.popen.stdin.write((json.dumps(message, default=str) + "\n").encode())
            self.popen.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False


@dataclass
class Held:
    """A connection this runner holds the lease on, and what its session is doing."""

    id: int
    transport: str
    jid: str
    phone_number: str
    child: ChildProc | None = None
    state: str = SessionState.WAITING  # connections.protocol.SessionState
    retry_at: float = 0.0
    pair: dict = field(default_factory=dict)
    connect_deadline: float = 0.0  # monotonic: CONNECTING past this is a failed attempt
    lease_until: float = 0.0  # wall clock (epoch seconds): the lease expiry last written


class Runner:
    def __init__(self, runner_id: str = "", record: str = "", max_connections: int = 1000):
        self.runner_id = runner_id or f"{socket.gethostname()}-{os.getpid()}"
        self.record = record
        self.max_connections = max_connections
        self.per_child = max(1, settings.RUNNER_SESSIONS_PER_CHILD)
        self.children: dict[int, ChildProc] = {}
        self.held: dict[int, Held] = {}
        self.pair_requests: dict[int, dict] = {}
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        self.selector.register(self.wake_r, selectors.EVENT_READ, None)
        self.nudges: list[dict] = []
        self.nudge_lock = threading.Lock()
        self.stopping = False
        self.next_index = 0
        self.heartbeat_seq = 0
        self.reconcile_due = 0.0
        self.heartbeat_due = 0.0
        self.more_due = False  # sessions due to start beyond this tick's share

    # --- lifecycle --------------------------------------------------------------------------------
    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        threading.Thread(target=self._listen_nudges, name="nudges", daemon=True).start()
        logger.info("runner.started", extra={"runner_id": self.runner_id, "per_child": self.per_child})
        try:
            while not self.stopping:
                self.tick()
        finally:
            self.shutdown()

    def _on_signal(self, signum, frame):
        self.stopping = True
        os.write(self.wake_w, b"x")

    def tick(self) -> None:
        now = time.monotonic()
        drop_broken_connections()
        if now >= self.reconcile_due:
            self.reconcile_due = now + settings.RUNNER_RECONCILE_SECONDS
            self.guard(self.reconcile)
        if now >= self.heartbeat_due:
            self.heartbeat_due = now + settings.RUNNER_HEARTBEAT_SECONDS
            self.guard(self.heartbeat)
            self.guard(self.mark_alive)
        self.guard(self.check_children)
        self.guard(self.check_connect_deadlines)
        self.guard(self.start_due_sessions)
        timeout = 0.0 if self.more_due else max(0.0, min([self.reconcile_due, self.heartbeat_due, now + 0.5,
                                *[h.retry_at for h in self.held.values() if h.state == SessionState.WAITING]]) - time.monotonic())
        for key, _ in self.selector.select(timeout):
            if key.data is None:
                try:
                    os.read(self.wake_r, 4096)
                except BlockingIOError:
                    pass
            else:
                self.guard(self.read_child, key.data)
        self.guard(self.handle_nudges)

    def guard(self, fn, *args):
        """The supervisor must survive a database outage or a bug in one step; it retries next tick. A
        step that holds the loop for seconds is logged: meanwhile no heartbeat answer is handled."""
        started = time.monotonic()
        try:
            return fn(*args)
        except Exception:  # noqa: BLE001
            logger.exception("runner.step_failed", extra={"runner_id": self.runner_id, "step": fn.__name__})
            drop_broken_connections()
            time.sleep(0.2)
        finally:
            took = time.monotonic() - started
            if took > SLOW_STEP_SECONDS:
                logger.warning("runner.slow_step", extra={"runner_id": self.runner_id, "step": fn.__name__,
                                                          "seconds": round(took, 2)})

    def shutdown(self) -> None:
        """SIGTERM: disconnect every session cleanly, then release the leases for another runner."""
        for child in list(self.children.values()):
            child.send({"op": Op.EXIT})
        deadline = time.monotonic() + 5
        for child in list(self.children.values()):
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.popen.kill()
        ids = list(self.held)
        try:
            for cid in ids:
                actions.do_mark_stopped(cid, self.runner_id, "runner stopped; released for another runner")
            actions.release_leases(self.runner_id, ids)
        except Exception:  # noqa: BLE001 - the leases then simply expire
            logger.exception("runner.release_failed", extra={"runner_id": self.runner_id})
        try:
            heartbeats.forget_runner(self.runner_id)
        except Exception:  # noqa: BLE001 - Redis down: the mark goes stale, the health check says so
            logger.warning("runner.forget_failed", extra={"runner_id": self.runner_id})
        logger.info("runner.stopped", extra={"runner_id": self.runner_id, "released": ids})

    # --- nudges -----------------------------------------------------------------------------------
    def _listen_nudges(self) -> None:
        while not self.stopping:
            try:
                pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(nudge_channel())
                for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        data = json.loads(message["data"])
                    except ValueError:
                        continue
                    with self.nudge_lock:
                        self.nudges.append(data)
                    os.write(self.wake_w, b"n")
            except Exception as exc:  # noqa: BLE001 - Redis down: the periodic reconcile still runs
                logger.warning("runner.nudge_listener_failed", extra={"error": str(exc)})
                time.sleep(1)

    def handle_nudges(self) -> None:
        with self.nudge_lock:
            nudges, self.nudges = self.nudges, []
        for n in nudges:
            cid, action, payload = int(n.get("connection_id", 0)), n.get("action"), n.get("payload") or {}
            held = self.held.get(cid)
            if action in (Nudge.RECONCILE, Nudge.RESUME, Nudge.PAUSE, Nudge.LOGOUT, Nudge.PAIR):
                if action == Nudge.PAIR:
                    self.pair_requests[cid] = payload
                self.reconcile_due = 0.0
                if action == Nudge.RESUME and held is not None and held.state == SessionState.WAITING:
                    held.retry_at = 0.0
            elif held is None or held.child is None:
                continue
            elif action == Nudge.SEND:
                held.child.send({"op": Op.SEND, "id": cid})
            elif action == Nudge.FETCH_MEDIA:
                held.child.send({"op": Op.FETCH_MEDIA, "id": cid})
            elif action == Nudge.MARK_READ:
                held.child.send({"op": Op.MARK_READ, "id": cid, **payload})
            elif action == Nudge.REQUEST_HISTORY:
                held.child.send({"op": Op.REQUEST_HISTORY, "id": cid, **payload})
            elif action == Nudge.SIMULATE:
                held.child.send({"op": Op.SIMULATE, "id": cid, "command": payload})

    # --- reconcile --------------------------------------------------------------------------------
    def reconcile(self) -> None:
        if pending_spool_files():
            replay_spool()  # files of children that are gone; a live child replays its own, in order
        due_checks: dict[int, tuple[ChildProc, list[int]]] = {}
        if self.held:
            rows = {c.pk: c for c in Connection.objects.unscoped().filter(pk__in=list(self.held))}
            for cid, held in list(self.held.items()):
                row = rows.get(cid)
                if row is None or row.runner_id != self.runner_id:
                    self.drop(cid, release=False)  # deleted, or taken over after our lease ran out
                elif row.desired_state == Connection.DesiredState.STOPPED:
                    self.stop_session(cid)
                    actions.do_mark_stopped(cid, self.runner_id, "paused")
                    self.drop(cid)
                elif row.desired_state == Connection.DesiredState.LOGGED_OUT or row.archived_at is not None:
                    if held.state == SessionState.CONNECTED and held.child is not None:
                        held.child.send({"op": Op.LOGOUT, "id": cid})
                        held.state = SessionState.STOPPING
                    elif held.state != SessionState.STOPPING:
                        self.stop_session(cid)
                        actions.do_mark_terminal(cid, self.runner_id, "logged_out",
                                                 "credentials forgotten here; unlink the device on the phone too")
                        self.drop(cid)
                elif held.state == SessionState.CONNECTED and held.child is not None:
                    due_checks.setdefault(held.child.index, (held.child, []))[1].append(cid)
        # Outbox retries and media downloads that came due: one command per child for all its sessions.
        for child, ids in due_checks.values():
            child.send({"op": Op.CHECK_DUE, "ids": ids})
        for conn in actions.claim_connections(self.runner_id, self.max_connections - len(self.held)):
            if conn.pk in self.held:  # our own lease had run out and nobody took it: we hold it again
                self.held[conn.pk].lease_until = conn.lease_expires_at.timestamp()
                continue
            self.held[conn.pk] = Held(conn.pk, conn.transport, conn.jid or "", conn.phone_number, state=SessionState.WAITING,
                                      retry_at=0.0, pair=self.pair_requests.pop(conn.pk, {}),
                                      lease_until=conn.lease_expires_at.timestamp())

    def start_due_sessions(self) -> None:
        """Start due sessions, a few per tick: a runner taking over a hundred numbers keeps answering
        its children (heartbeats, leases) between starts."""
        now = time.monotonic()
        due = [h for h in self.held.values() if h.state == SessionState.WAITING and h.retry_at <= now]
        for held in due[:STARTS_PER_TICK]:
            self.start_session(held)
        self.more_due = len(due) > STARTS_PER_TICK

    def start_session(self, held: Held) -> None:
        held.retry_at = time.monotonic() + RETRY_WITHOUT_DATABASE_SECONDS  # if the database fails us below
        old = held.child
        if old is not None and old.index in self.children and not old.retiring:
            child = old
        else:
            child = self.pick_child()
            if old is not None and old.index in self.children:
                self.move_off(old, held.id)
        row = Connection.objects.unscoped().get(pk=held.id)
        if actions.do_mark_connecting(held.id, self.runner_id, attempt=row.reconnect_attempts) is None:
            self.drop(held.id, release=False)  # no longer ours
            return
        held.child = child
        child.sessions.add(held.id)
        held.jid = row.jid or ""
        held.state = SessionState.CONNECTING
        timeout = settings.RUNNER_CONNECT_TIMEOUT_SECONDS if held.jid else settings.RUNNER_PAIRING_TIMEOUT_SECONDS
        held.connect_deadline = time.monotonic() + timeout
        spec = {"op": Op.START, "id": held.id, "transport": held.transport, "jid": held.jid,
                "phone_number": row.phone_number, "options": {}, "lease_until": self.child_lease_until(child, held)}
        if not held.jid:
            pair = held.pair or self.pair_requests.pop(held.id, {})
            spec.update(pair_method=pair.get("method", "qr"), phone=pair.get("phone", ""))
        child.send(spec)

    def stop_session(self, cid: int) -> None:
        held = self.held.get(cid)
        if held is not None and held.child is not None:
            child, held.child = held.child, None
            self.move_off(child, cid)

    def move_off(self, child: ChildProc, cid: int) -> None:
        """The session ``cid`` leaves ``child`` (stopped there); a retiring child exits once it hosts none."""
        child.send({"op": Op.STOP, "id": cid})
        child.sessions.discard(cid)
        self.retire_if_empty(child)

    def retire_if_empty(self, child: ChildProc) -> None:
        if child.retiring and not child.sessions and child.index in self.children:
            logger.info("runner.child_retired", extra={"runner_id": self.runner_id, "child": child.index})
            child.send({"op": Op.EXIT})
            self.remove_child(child)

    def drop(self, cid: int, release: bool = True) -> None:
        self.stop_session(cid)
        self.held.pop(cid, None)
        if release:
            actions.release_leases(self.runner_id, [cid])

    # --- heartbeat ---------------------------------------------------------------------------------
    def heartbeat(self) -> None:
        """Kill children that stopped answering; renew, in one statement, the leases of sessions whose
        child answered recently and of sessions no child runs yet; ask every child for an answer and tell
        it until when its sessions are leased."""
        now = time.monotonic()
        answered = []
        for child in list(self.children.values()):
            if not child.ready:
                if now - child.started > CHILD_START_SECONDS:
                    self.kill_child(child, f"session host not ready after {CHILD_START_SECONDS:.0f} s")
                continue
            silent = now - child.last_answer
            if silent > settings.RUNNER_CHILD_ANSWER_SECONDS:
                self.kill_child(child, f"session host did not answer heartbeats for {silent:.0f} s (frozen or hung)")
            else:
                answered.append(child)
        # Sessions no child runs yet (waiting, or in a child still starting up) cannot be hosted twice.
        ids = [cid for cid, h in self.held.items() if h.child is None or not h.child.ready]
        ids += [cid for child in answered for cid in child.sessions if cid in self.held]
        if ids:
            self.renew(ids)
        self.heartbeat_seq += 1
        for child in self.children.values():
            child.send({"op": Op.HEARTBEAT, "seq": self.heartbeat_seq,
                        "lease_until": self.child_lease_until(child)})

    def mark_alive(self) -> None:
        """The runner's mark in Redis for /health/detailed and the watchdog (config/heartbeats.py)."""
        try:
            hosts = {child.index: sorted(cid for cid in child.sessions if cid in self.held)
                     for child in self.children.values()}
            heartbeats.mark_runner(self.runner_id, children=len(self.children), sessions=len(self.held), hosts=hosts)
        except Exception as exc:  # noqa: BLE001 - Redis down: the mark goes stale and the health check says why
            logger.warning("runner.mark_failed", extra={"runner_id": self.runner_id, "error": exc.__class__.__name__})

    def renew(self, ids, heartbeat_ids=()) -> None:
        still, expires = actions.renew_leases(self.runner_id, ids, heartbeat_ids=heartbeat_ids)
        for cid in ids:
            held = self.held.get(cid)
            if held is None:
                continue
            if cid in still:
                held.lease_until = expires.timestamp()
            else:
                logger.warning("runner.lease_lost", extra={"runner_id": self.runner_id, "connection_id": cid})
                self.drop(cid, release=False)

    def child_lease_until(self, child: ChildProc, extra: Held | None = None) -> float:
        """Until when the child may keep its sessions: the earliest lease among them."""
        leases = [self.held[c].lease_until for c in child.sessions if c in self.held and self.held[c].lease_until]
        if extra is not None and extra.lease_until:
            leases.append(extra.lease_until)
        return min(leases) if leases else time.time() + settings.RUNNER_LEASE_SECONDS

    def on_heartbeat(self, child: ChildProc, message: dict) -> None:
        child.last_answer = time.monotonic()
        child.attempts = int(message.get("attempts") or 0)
        journal = message.get("journal") or {}
        stuck = settings.RUNNER_CHILD_STUCK_SECONDS
        if journal.get("alive") is False:
            self.kill_child(child, "its journal thread died")
            return
        if float(journal.get("busy") or 0) > stuck or float(message.get("busy") or 0) > stuck:
            self.kill_child(child, f"stuck: journal busy {journal.get('busy')} s, command "
                                   f"{message.get('busy_op') or '-'} busy {message.get('busy')} s")
            return
        alive = set(message.get("alive") or [])
        hosted = [cid for cid in child.sessions if cid in self.held]
        connected = [cid for cid in hosted if self.held[cid].state == SessionState.CONNECTED]
        self.renew(hosted, heartbeat_ids=[c for c in connected if c in alive])
        child.send({"op": Op.LEASE, "lease_until": self.child_lease_until(child)})
        for cid in connected:
            if cid not in alive and cid in self.held:
                self.on_lost(cid, "heartbeat: the session is not connected")
        if child.leaked >= settings.RUNNER_CHILD_MAX_CONNECT_ATTEMPTS:
            self.recycle(child)

    def check_connect_deadlines(self) -> None:
        """A session still connecting (or pairing) past its deadline is a failed attempt: stopped in its
        child and retried with the usual backoff, never left "connecting" forever."""
        now = time.monotonic()
        for cid, held in list(self.held.items()):
            if held.state == SessionState.CONNECTING and held.connect_deadline and now > held.connect_deadline:
                if held.child is not None:
                    held.child.send({"op": Op.HALT, "id": cid})
                timeout = settings.RUNNER_CONNECT_TIMEOUT_SECONDS if held.jid else settings.RUNNER_PAIRING_TIMEOUT_SECONDS
                self.on_lost(cid, f"connect timed out after {timeout:.0f} s")

    # --- children -----------------------------------------------------------------------------------
    def pick_child(self) -> ChildProc:
        candidates = [c for c in self.children.values() if len(c.sessions) < self.per_child and not c.retiring
                      and c.leaked < settings.RUNNER_CHILD_MAX_CONNECT_ATTEMPTS]
        if candidates:
            return min(candidates, key=lambda c: len(c.sessions))
        return self.spawn_child()

    def spawn_child(self) -> ChildProc:
        read_fd, write_fd = os.pipe()
        env = dict(os.environ, RUNNER_CHILD_FD=str(write_fd))
        args = [sys.executable, os.path.join(ROOT, "manage.py"), "run_connections", "--child",
                "--runner-id", self.runner_id]
        if self.record:
            args += ["--record", self.record]
        popen = subprocess.Popen(args, stdin=subprocess.PIPE, env=env, pass_fds=(write_fd,), cwd=ROOT)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        child = ChildProc(self.next_index, popen, read_fd)
        self.next_index += 1
        self.children[child.index] = child
        self.selector.register(read_fd, selectors.EVENT_READ, child)
        logger.info("runner.child_started", extra={"runner_id": self.runner_id, "child": child.index, "pid": popen.pid})
        return child

    def check_children(self) -> None:
        for child in list(self.children.values()):
            code = child.popen.poll()
            if code is not None:
                self.on_child_died(child, f"session host exited with code {code}")

    def kill_child(self, child: ChildProc, reason: str) -> None:
        """A child that is frozen, hung or half-dead is replaced: SIGKILL (works on a stopped process
        too), then its sessions restart elsewhere with the usual backoff."""
        logger.error("runner.child_killed", extra={"runner_id": self.runner_id, "child": child.index,
                                                   "pid": child.popen.pid, "reason": reason,
                                                   "connection_ids": sorted(child.sessions)})
        child.popen.kill()
        try:
            child.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.on_child_died(child, reason)

    def on_child_died(self, child: ChildProc, reason: str) -> None:
        self.remove_child(child)
        logger.error("runner.child_died", extra={"runner_id": self.runner_id, "child": child.index, "reason": reason,
                                                 "connection_ids": sorted(child.sessions)})
        for cid in sorted(child.sessions):
            held = self.held.get(cid)
            if held is not None:
                held.child = None
                self.on_lost(cid, reason, kind="disconnected")

    def remove_child(self, child: ChildProc) -> None:
        self.children.pop(child.index, None)
        try:
            self.selector.unregister(child.out_fd)
        except (KeyError, ValueError):
            pass
        os.close(child.out_fd)
        if child.popen.poll() is None:
            child.popen.kill()
            child.popen.wait(5)

    def recycle(self, child: ChildProc) -> None:
        """Each neonize connect attempt leaks a store connection: a child that made too many takes no
        new sessions. Its sessions that are not connected (the ones making the attempts) move to a fresh
        child now; connected ones stay, untouched, until they drop or stop, and the child exits once it
        hosts none. So a leaking child never costs a healthy number a reconnect."""
        if child.retiring:
            return
        child.retiring = True
        moving = [cid for cid in sorted(child.sessions)
                  if cid not in self.held or self.held[cid].state not in (SessionState.CONNECTED, SessionState.STOPPING)]
        logger.info("runner.child_recycled", extra={"runner_id": self.runner_id, "child": child.index,
                                                    "attempts": child.attempts, "moved": moving,
                                                    "staying": sorted(set(child.sessions) - set(moving))})
        for cid in moving:
            held = self.held.get(cid)
            if held is not None:
                held.child = None
                if held.state == SessionState.CONNECTING:
                    held.state, held.retry_at = SessionState.WAITING, 0.0
            self.move_off(child, cid)
        self.retire_if_empty(child)
        self.drain_oldest_retiring()

    def drain_oldest_retiring(self) -> None:
        """Retiring children keep their leaked store connections until they exit, and a connected
        number keeps a retiring child alive: past RUNNER_MAX_RETIRING_CHILDREN the oldest one's sessions
        move to a fresh child now (a brief reconnect), so store connections stay bounded."""
        retiring = sorted((c for c in self.children.values() if c.retiring), key=lambda c: c.index)
        while len(retiring) > settings.RUNNER_MAX_RETIRING_CHILDREN:
            oldest = retiring.pop(0)
            moving = sorted(oldest.sessions)
            logger.info("runner.child_drained", extra={"runner_id": self.runner_id, "child": oldest.index,
                                                       "moved": moving})
            for cid in moving:
                held = self.held.get(cid)
                if held is not None:
                    held.child = None
                    held.state, held.retry_at = SessionState.WAITING, 0.0
                self.move_off(oldest, cid)
            self.retire_if_empty(oldest)

    def read_child(self, child: ChildProc) -> None:
        if child.index not in self.children:
            return  # removed earlier in this tick (retired, recycled): its pipe is closed
        try:
            data = os.read(child.out_fd, 65536)
        except BlockingIOError:
            return
        if not data:
            if child.index in self.children:
                child.popen.wait(5)
                self.on_child_died(child, f"session host exited with code {child.popen.returncode}")
            return
        child.buffer += data
        *lines, child.buffer = child.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.guard(self.on_child_message, child, json.loads(line))

    def on_child_message(self, child: ChildProc, message: dict) -> None:
        kind = message.get("type")
        if kind == Reply.READY:
            child.ready, child.last_answer = True, time.monotonic()
            logger.info("runner.child_ready", extra={"runner_id": self.runner_id, "child": child.index,
                                                     "pid": message.get("pid"),
                                                     "frozen_objects": message.get("frozen_objects")})
        elif kind == Reply.HEARTBEAT:
            self.on_heartbeat(child, message)
        elif kind == Reply.STATE:
            if message["id"] not in child.sessions:
                return  # from a session this child no longer hosts (moved or stopped): stale
            self.on_state(message["id"], message["kind"], message.get("detail", ""), message.get("data") or {})
        elif kind == Reply.ERROR:
            logger.warning("runner.child_error", extra={"runner_id": self.runner_id, **message})

    # --- session state changes ----------------------------------------------------------------------
    def on_state(self, cid: int, kind: str, detail: str, data: dict) -> None:
        held = self.held.get(cid)
        if held is None or held.state == SessionState.STOPPING and kind != LOGGED_OUT_HERE:
            return
        written = True
        if kind == State.QR or kind == State.PAIR_CODE:
            written = actions.do_mark_pairing(cid, self.runner_id, code=data.get("code", ""),
                                              expires_in=data.get("expires_in", 60), detail=detail)
        elif kind == State.PAIRED:
            held.jid = data.get("jid", "")
            written = actions.do_mark_paired(cid, self.runner_id, jid=held.jid, push_name=data.get("push_name", ""))
            held.connect_deadline = time.monotonic() + settings.RUNNER_CONNECT_TIMEOUT_SECONDS
        elif kind == State.CONNECTED:
            held.state = SessionState.CONNECTED
            written = actions.do_mark_connected(cid, self.runner_id)
        elif kind in (State.DISCONNECTED, State.CONNECT_FAILED):
            if held.state in (SessionState.CONNECTED, SessionState.CONNECTING):
                self.on_lost(cid, detail, kind="disconnected" if kind == State.DISCONNECTED else "connect_failed")
        elif kind == LOGGED_OUT_HERE:
            actions.do_set_status(cid, Connection.Status.LOGGED_OUT, event_kind="logged_out", detail=detail,
                                  runner_id=self.runner_id, jid=None)
            self.drop(cid)
        elif kind in State.TERMINAL:
            retry = data.get("expire_seconds") if kind == State.BANNED else None
            actions.do_mark_terminal(cid, self.runner_id, kind, detail, retry_after=retry)
            self.drop(cid)
        if written is None:
            self.drop(cid, release=False)  # the lease is someone else's now: stop here, write nothing

    def on_lost(self, cid: int, detail: str, kind: str = "connect_failed") -> None:
        held = self.held.get(cid)
        if held is None:
            return
        # Locally first: whatever the database says, the session no longer runs here. Without a database
        # (the usual reason a child died) the failure is not recorded and the session is retried soon;
        # otherwise it would stay attached to nothing, its lease renewed and never restarted.
        held.state = SessionState.WAITING
        held.retry_at = time.monotonic() + RETRY_WITHOUT_DATABASE_SECONDS
        try:
            conn, delay = actions.do_record_connect_failure(cid, self.runner_id, detail, kind=kind)
        except DatabaseError as exc:
            logger.warning("runner.loss_not_recorded", extra={"runner_id": self.runner_id, "connection_id": cid,
                                                              "reason": detail, "error": str(exc)[:200]})
            drop_broken_connections()
            return
        if conn is None:
            self.drop(cid, release=False)  # no longer ours
            return
        if delay is None:
            self.drop(cid)  # gave up: failed + alert; beat's slow retry brings it back
            return
        held.state = SessionState.WAITING
        held.retry_at = time.monotonic() + delay
        logger.info("runner.reconnect_scheduled", extra={"runner_id": self.runner_id, "connection_id": cid,
                                                         "delay": round(delay, 2), "reason": detail})


