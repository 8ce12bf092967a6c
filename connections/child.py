"""A session host: a child process of the runner holding a few dozen live sessions.

Why a child: neonize's Go core aborts the whole process on concurrent calls and on some misuse; a
crash here costs only this child's sessions a reconnect. Commands arrive as JSON lines on stdin and
are executed one at a time on the main thread (so calls into neonize are serialised and sessions
start one at a time); replies and state changes go back as JSON lines on the pipe ``RUNNER_CHILD_FD``.
The child exits when the supervisor dies: PR_SET_PDEATHSIG (SIGKILL) plus EOF on stdin; and when its
sessions' lease is about to run out without a renewal from the supervisor (a frozen supervisor, or one
cut off from the database): a number is never hosted in two places.

Heartbeats are answered at once by the stdin thread, whatever the command loop is doing, with what the
supervisor needs to judge this child: the sessions last seen alive, connect attempts, how long the
current command has been running and the journal thread's health. A child that does not answer is
frozen or dead; one whose command loop or journal is stuck is replaced.

Received events are made durable from the transport's callback by ``connections.journal_writer``
(the journal, or the spool when the database does not commit within a few seconds).

LID <-> phone-number pairs that whatsmeow learned in its session store are read (a plain SQL read,
``Transport.stored_jid_mappings``) when a session connects and every ``STORE_MAPPINGS_SECONDS`` while it
stays up, and recorded for the connection's tenant through ``sync.actions.do_record_jid_mappings``.
"""

import ctypes
import gc
import json
import logging
import os
import queue
import signal
import sys
import threading
import time
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q

from config.db import drop_broken_connections
from config.heap import freeze_startup_heap
from connections import outbox
from connections.journal_writer import SPOOL_REPLAY_FAILED, JournalWriter
from connections.models import Connection
from connections.protocol import LOGGED_OUT_HERE, OPS_WITHOUT_SESSION_IGNORED, Op, Reply
from connections.transport import (
    MediaGone,
    NotSupported,
    SessionCallbacks,
    SessionConfig,
    State,
    TransportError,
    get_transport_class,
)
from inbox import media
from inbox.models import ContactIdentity, MediaFile
from sync.actions import do_record_jid_mappings
from sync.decode import media_ref_sha256
from sync.identity import is_lid, is_pn, normalize_jid

logger = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1
# whatsmeow keeps learning mappings while a session runs (most also arrive in events): re-read this often.
STORE_MAPPINGS_SECONDS = 600.0


def die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except OSError:
        pass  # not Linux: the stdin EOF watch still ends us


class Session:
    def __init__(self, child, spec: dict):
        self.child = child
        self.connection_id = spec["id"]
        config = SessionConfig(connection_id=spec["id"], jid=spec.get("jid") or "",
                               phone_number=spec.get("phone_number") or "", options=spec.get("options") or {})
        callbacks = SessionCallbacks(on_event=self.on_event, on_state=self.on_state, on_events=self.on_events)
        self.transport = get_transport_class(spec["transport"])(config, callbacks)
        self.recorded_mappings: set[tuple[str, str]] = set()  # store pairs already recorded from here
        self.mappings_read_at = 0.0
        self.media_timer_pending = False  # the next media batch is scheduled (fetch_media's rate bound)

    def on_event(self, event_name: str, payload: bytes) -> None:
        self.child.journal.submit(self.connection_id, event_name, payload)

    def on_events(self, events: list[tuple[str, bytes]]) -> None:
        self.child.journal.submit_many(self.connection_id, events)

    def on_state(self, kind: str, detail: str = "", **data) -> None:
        if kind == State.CONNECTED:
            self.child.alive.add(self.connection_id)
        elif kind != State.QR and kind != State.PAIR_CODE and kind != State.PAIRED:
            self.child.alive.discard(self.connection_id)
        self.child.reply({"type": Reply.STATE, "id": self.connection_id, "kind": kind, "detail": detail, "data": data})
        if kind == State.CONNECTED:
            self.child.commands.put({"op": Op.RECOVER, "id": self.connection_id})
            self.child.commands.put({"op": Op.STORE_MAPPINGS, "id": self.connection_id})
            self.child.commands.put({"op": Op.FETCH_MEDIA, "id": self.connection_id})
        elif kind in State.TERMINAL or kind in (State.DISCONNECTED, State.CONNECT_FAILED):
            # After these whatsmeow's connect() stays blocked or reconnects on its own; the runner decides.
            self.child.commands.put({"op": Op.HALT, "id": self.connection_id})


class Child:
    def __init__(self, out_fd: int, record_path: str = ""):
        self.out = os.fdopen(out_fd, "w", buffering=1)
        self.out_lock = threading.Lock()
        self.commands: queue.Queue = queue.Queue()
        self.sessions: dict[int, Session] = {}
        self.alive: set[int] = set()  # sessions seen alive by the last probe or state change
        self.connect_attempts = 0
        self.busy_since = 0.0  # monotonic start of the command being run, 0 when idle
        self.busy_op = ""
        # Wall-clock end of this child's sessions' lease, from the supervisor (0: not told yet).
        self.lease_until = 0.0
        self.last_line_at = 0.0  # monotonic time the supervisor's last line was read
        self.journal = JournalWriter(record_path)

    def reply(self, message: dict) -> None:
        line = json.dumps(message, default=str)
        with self.out_lock:
            try:
                self.out.write(line + "\n")
            except (BrokenPipeError, ValueError):
                os._exit(0)  # the supervisor is gone

    def _read_stdin(self):
        for line in sys.stdin:
            self.last_line_at = time.monotonic()
            if not line.strip():
                continue
            cmd = json.loads(line)
            if cmd.get("lease_until"):
                self.lease_until = float(cmd["lease_until"])
            if cmd.get("op") == Op.HEARTBEAT:
                self.answer_heartbeat(cmd)
                self.commands.put({"op": Op.PROBE})
            elif cmd.get("op") != Op.LEASE:  # a lease renewal only moves lease_until (above)
                self.commands.put(cmd)
        os._exit(0)  # EOF: the supervisor died or closed us; never keep a number connected alone

    def answer_heartbeat(self, cmd: dict) -> None:
        """Answered from the stdin thread: a child whose command loop is busy still answers, and says so."""
        busy = time.monotonic() - self.busy_since if self.busy_since else 0.0
        self.reply({"type": Reply.HEARTBEAT, "seq": cmd.get("seq"), "alive": sorted(self.alive & set(self.sessions)),
                    "attempts": self.connect_attempts, "busy": round(busy, 3), "busy_op": self.busy_op,
                    "journal": self.journal.health()})

    def _watch_lease(self):
        """Exit before the lease runs out unrenewed: another runner may claim these numbers once it has.
        Events handed over and not yet durable are spooled first (whatsmeow may have acknowledged them)."""
        margin = max(0.5, settings.RUNNER_LEASE_SECONDS * 0.2)
        while True:
            time.sleep(0.1)
            # A child that started slowly reads a backlog of messages at once, the fresher leases last:
            # judge only once it has caught up (no line for a moment).
            caught_up = time.monotonic() - self.last_line_at > 1.0
            if self.lease_until and caught_up and time.time() > self.lease_until - margin:
                logger.error("child.lease_expiring", extra={"pid": os.getpid(), "lease_until": self.lease_until,
                                                            "connection_ids": sorted(self.sessions)})
                self.journal.spool_pending("lease expiring")
                os._exit(3)

    def run(self) -> None:
        die_with_parent()
        signal.signal(signal.SIGTERM, lambda *_: self.commands.put({"op": Op.EXIT}))
        threading.Thread(target=self._read_stdin, name="stdin", daemon=True).start()
        threading.Thread(target=self._watch_lease, name="lease", daemon=True).start()
        self.reply({"type": Reply.READY, "pid": os.getpid(), "frozen_objects": gc.get_freeze_count()})
        while True:
            cmd = self.commands.get()
            if cmd.get("op") == Op.EXIT:
                for session in list(self.sessions.values()):
                    self._quiet(session.transport.disconnect)
                self.journal.stop()
                os._exit(0)
            self.busy_since, self.busy_op = time.monotonic(), str(cmd.get("op"))
            try:
                drop_broken_connections()
                self.handle(cmd)
            except Exception as exc:  # noqa: BLE001 - one bad command must not end the other sessions
                logger.exception("child.command_failed", extra={"op": cmd.get("op"), "connection_id": cmd.get("id")})
                self.reply({"type": Reply.ERROR, "id": cmd.get("id"), "op": cmd.get("op"), "error": str(exc)[:500]})
            finally:
                self.busy_since, self.busy_op = 0.0, ""

    @staticmethod
    def _quiet(fn, *args):
        try:
            fn(*args)
        except Exception:  # noqa: BLE001
            logger.exception("child.quiet_call_failed")

    def handle(self, cmd: dict) -> None:
        op, cid = cmd["op"], cmd.get("id")
        if op == Op.PROBE:
            return self.probe()
        if op == Op.START:
            return self.start(cmd)
        if op == Op.CHECK_DUE:
            return self.check_due(cmd.get("ids") or [])
        session = self.sessions.get(cid)
        if session is None:
            if op not in OPS_WITHOUT_SESSION_IGNORED:
                self.reply({"type": Reply.ERROR, "id": cid, "op": op, "error": "no live session for this connection here"})
            return None
        handler = getattr(self, f"op_{op}", None)
        if handler is None:
            raise ValueError(f"unknown op {op!r}")
        return handler(session, cmd)

    def probe(self) -> None:
        self.alive = {i for i, s in list(self.sessions.items()) if s.transport.is_alive()}
        due = time.monotonic() - STORE_MAPPINGS_SECONDS
        for i in self.alive:
            if self.sessions[i].mappings_read_at < due:
                self.sessions[i].mappings_read_at = time.monotonic()  # one queued read per period
                self.commands.put({"op": Op.STORE_MAPPINGS, "id": i})

    def check_due(self, ids) -> None:
        """The reconcile's periodic look for outbox retries and media downloads that came due: one query for
        all the sessions named (an empty outbox costs no claim), then the usual commands for the sessions
        that have something due, each run on its own as a nudge's would be."""
        hosted = [i for i in ids if i in self.sessions]
        if not hosted:
            return
        due = (Connection.objects.unscoped().filter(pk__in=hosted)
               .annotate(sends=Exists(outbox.due_sends(OuterRef("pk"))), downloads=Exists(media.due_media(OuterRef("pk"))))
               .filter(Q(sends=True) | Q(downloads=True)).values_list("pk", "sends", "downloads"))
        for cid, sends, downloads in due:
            if sends:
                self.commands.put({"op": Op.SEND, "id": cid})
            if downloads:
                self.commands.put({"op": Op.FETCH_MEDIA, "id": cid})

    def start(self, cmd: dict) -> None:
        cid = cmd["id"]
        self.replay_orphaned_spool(cid)
        session = self.sessions.get(cid)
        if session is None:
            session = self.sessions[cid] = Session(self, cmd)
        elif cmd.get("jid"):
            session.transport.config.jid = cmd["jid"]
        self.connect_attempts += 1
        session.transport.connect()
        if cmd.get("pair_method") == "phone" and cmd.get("phone"):
            code = session.transport.pair_phone(cmd["phone"])
            session.on_state(State.PAIR_CODE, "enter the code on the phone", code=code, expires_in=160)

    # --- commands for a session hosted here (op_<name>) ----------------------------------------------
    def op_halt(self, session: Session, cmd: dict) -> None:
        self.alive.discard(session.connection_id)
        session.transport.disconnect()

    def op_stop(self, session: Session, cmd: dict) -> None:
        self.alive.discard(session.connection_id)
        session.transport.disconnect()
        self.sessions.pop(session.connection_id, None)
        if hasattr(session.transport, "close"):
            session.transport.close()

    def op_logout(self, session: Session, cmd: dict) -> None:
        cid = session.connection_id
        self.alive.discard(cid)
        try:
            session.transport.logout()
            self.reply({"type": Reply.STATE, "id": cid, "kind": LOGGED_OUT_HERE, "detail": "logged out from the inbox"})
        except TransportError as exc:
            self.reply({"type": Reply.ERROR, "id": cid, "op": Op.LOGOUT, "error": str(exc)})
        self.sessions.pop(cid, None)

    def op_recover(self, session: Session, cmd: dict) -> None:
        self.recover_sends(session)
        self.drain_outbox(session)

    def op_send(self, session: Session, cmd: dict) -> None:
        self.drain_outbox(session)

    def op_fetch_media(self, session: Session, cmd: dict) -> None:
        self.fetch_media(session)

    def op_store_mappings(self, session: Session, cmd: dict) -> None:
        self.record_store_mappings(session)

    def op_mark_read(self, session: Session, cmd: dict) -> None:
        session.transport.mark_read(cmd["chat_jid"], cmd.get("external_ids") or cmd.get("message_ids") or [],
                                    cmd.get("sender_jid") or "")

    def op_request_history(self, session: Session, cmd: dict) -> None:
        try:
            session.transport.request_history(cmd["chat_jid"], datetime.fromisoformat(cmd["before"]))
        except NotSupported as exc:
            self.reply({"type": Reply.ERROR, "id": session.connection_id, "op": Op.REQUEST_HISTORY, "error": str(exc)})

    def op_simulate(self, session: Session, cmd: dict) -> None:
        session.transport.simulate(cmd.get("command") or {})

    def replay_orphaned_spool(self, connection_id: int) -> None:
        """Before a session starts here, what a dead process spooled for it goes into the journal, so its
        old events come before its new ones. If the database is down they stay for a later replay."""
        try:
            self.journal.replay(connection_id)
        except Exception as exc:  # noqa: BLE001 - the journal thread and the supervisor replay later
            logger.warning(SPOOL_REPLAY_FAILED, extra={"connection_id": connection_id, "error": repr(exc)[:300]})

    def recover_sends(self, session: Session) -> None:
        """Rows left in ``sending`` by a crash: complete them if the transport can tell, else fail them."""
        transport = session.transport
        for message in outbox.interrupted_sends(session.connection_id):
            found = transport.find_sent(message.external_id) if transport.can_tell_sent else None
            if found is not None:
                outbox.do_mark_sent(message, found.external_id, found.timestamp)
            elif transport.can_tell_sent:
                outbox.do_record_send_failure(message, "interrupted before it was sent; retrying")
            else:
                outbox.do_record_send_failure(message, outbox.INTERRUPTED, retryable=False)

    def record_store_mappings(self, session: Session) -> dict:
        """Record the store's LID <-> phone pairs that concern this connection's tenant (merging the
        contacts they join). Pairs recorded once are not sent again by this session."""
        session.mappings_read_at = time.monotonic()
        fresh = [p for p in session.transport.stored_jid_mappings() if p not in session.recorded_mappings]
        if not fresh:
            return {"mappings": 0, "merges": 0}
        conn = Connection.objects.unscoped().get(pk=session.connection_id)
        pairs = store_mappings_for_tenant(conn.tenant_id, fresh)
        result = do_record_jid_mappings(conn, pairs) if pairs else {"mappings": 0, "merges": 0}
        session.recorded_mappings.update(pairs)
        logger.info("child.store_mappings", extra={"connection_id": conn.pk, "read": len(fresh), **result})
        return result

    def fetch_media(self, session: Session) -> None:
        """Download a batch of the connection's due media, off the journal's path (docs/media.md). At most
        MEDIA_FETCH_PER_SECOND on average: when a full batch was taken, the next one is queued after the
        time this one was allowed, so other commands (sends) run in between."""
        transport = session.transport
        if not transport.is_alive() or session.media_timer_pending:
            return
        started = time.monotonic()
        batch = media.claim_due_media(session.connection_id, settings.MEDIA_FETCH_BATCH)
        changed: dict[int, list[int]] = {}
        for item in batch:
            if fetch_one_media(transport, item):
                changed.setdefault(item.tenant_id, []).append(item.message_id)
        with transaction.atomic():  # one re-render of the batch's messages for open threads
            for tenant_id, message_ids in changed.items():
                media.publish_media_messages_on_commit(tenant_id, message_ids)
            # and of the numbers pages' download progress (stored / downloading / failed), live
            media.publish_fetch_progress_on_commit({item.tenant_id for item in batch})
        if len(batch) == settings.MEDIA_FETCH_BATCH:
            wait = len(batch) / max(settings.MEDIA_FETCH_PER_SECOND, 0.01) - (time.monotonic() - started)
            session.media_timer_pending = True

            def again(cid=session.connection_id):
                session.media_timer_pending = False
                self.commands.put({"op": Op.FETCH_MEDIA, "id": cid})

            timer = threading.Timer(max(0.0, wait), again)
            timer.daemon = True
            timer.start()

    def drain_outbox(self, session: Session) -> None:
        transport = session.transport
        if not transport.is_alive():
            return
        while True:
            batch = outbox.claim_outbound(session.connection_id)
            if not batch:
                return
            for message in batch:
                try:
                    result = send_outbound(transport, message)
                except NotSupported as exc:
                    outbox.do_record_send_failure(message, str(exc), retryable=False)
                    continue
                except TransportError as exc:
                    outbox.do_record_send_failure(message, str(exc))
                    continue
                outbox.do_mark_sent(message, result.external_id, result.timestamp)
            if not transport.is_alive():
                return


def send_outbound(transport, message):
    """One claimed outbox row through the transport: text, or the stored file of a media message."""
    if message.type == message.Type.TEXT:
        return transport.send_text(message.conversation.chat_jid, message.body, local_id=message.external_id)
    item = MediaFile.objects.unscoped().filter(message_id=message.pk, state=MediaFile.State.FETCHED).first()
    if item is None:
        raise NotSupported(f"this {message.type} has no stored file to send")
    return transport.send_media(message.conversation.chat_jid, media.read_bytes(item), item.mimetype,
                                filename=item.filename, caption=message.body, local_id=message.external_id)


def fetch_one_media(transport, item) -> bool:
    """Download one claimed media row and store it, or record why not (expired, or retried later).
    Returns whether the message's media changed in a way open pages should see (the caller publishes)."""
    try:
        data = transport.download_media(bytes(item.ref))
    except MediaGone as exc:
        return media.do_record_fetch_failure(item, str(exc), expired=True, publish=False) != media.State.PENDING
    except NotSupported as exc:
        return media.do_record_fetch_failure(item, str(exc), final=True, publish=False) != media.State.PENDING
    except TransportError as exc:
        return media.do_record_fetch_failure(item, str(exc), publish=False) != media.State.PENDING
    # A refused file (over the size limit, wrong checksum) is recorded, and published, by do_store_media.
    return media.do_store_media(item, data, expected_sha256=media_ref_sha256(bytes(item.ref)), publish=False)


def store_mappings_for_tenant(tenant_id: int, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (phone JID, LID) pairs of ``pairs`` whose two JIDs this tenant already knows, both of them.

    whatsmeow's ``whatsmeow_lid_map`` is shared by every number in the store, so it holds what any
    tenant's traffic taught it. A tenant must learn a phone number only from its own WhatsApp traffic:
    a pair recorded because the tenant knew the LID alone (a LID-addressed message) would hand it the
    phone number another tenant's traffic revealed; one recorded for the phone number alone would hand
    it the LID. So a store pair only joins two identities the tenant already has (the same person seen
    under both JIDs in its own traffic): it merges them and teaches nothing new. When the tenant's own
    events carry the mapping, the sync engine records it from them, not from here. Malformed pairs are
    skipped.
    """
    normalized = {}
    for pn, lid in pairs:
        npn, nlid = normalize_jid(pn), normalize_jid(lid)
        if is_pn(npn) and is_lid(nlid):
            normalized[(pn, lid)] = (npn, nlid)
    jids = sorted({j for pair in normalized.values() for j in pair})
    known: set[str] = set()
    for start in range(0, len(jids), 1000):
        known.update(ContactIdentity.objects.for_tenant(tenant_id).filter(jid__in=jids[start:start + 1000])
                     .values_list("jid", flat=True))
    return [raw for raw, (npn, nlid) in normalized.items() if npn in known and nlid in known]


def run_child(record_path: str = "") -> None:
    out_fd = int(os.environ["RUNNER_CHILD_FD"])
    child = Child(out_fd, record_path)
    freeze_startup_heap()  # Django, the apps, neonize's protobuf classes: a full collection paused it >100 ms
    child.run()
