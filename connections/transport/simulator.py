"""A fake WhatsApp peer for the demo and the tests: it emits the same neonize protobuf events.

What it does, all through ``emit`` (so the journal sees exactly what the real library would hand
over): a short fake QR step then PairStatusEv + ConnectedEv when not paired; ConnectedEv and an
initial HistorySyncEv of a few demo chats on every connect (byte-identical within a day, so the
journal's digest makes repeats no-ops); ReceiptEv DELIVERED then READ after a send; an ON_DEMAND
HistorySyncEv answering ``request_history``; inbound messages (text, or media from a fake media server
that serves real files to the session's ``download_media``), disconnects and failures on demand
(``simulate`` commands, sent by ``manage.py simulate`` over Redis through the runner).

The simulator keeps a fake server's state in Redis (``SIMULATOR_REDIS_URL``, the product's Redis by
default; fault tests give it one that stays up while they break the product's):

* what it sent, so a send that crashed between the send and the database commit is recovered
  without sending twice;
* the inbound messages waiting for delivery, per connection (``queue_inbound``): a connected session
  delivers them in order, each at its due time, and removes one only after our callback returned,
  i.e. after the event was committed to the journal or spooled (fsync) — the acknowledgement
  whatsmeow's ``SynchronousAck`` would give. A session that dies before that leaves the message for
  the next session to deliver again (same bytes, so the journal keeps it once). neonize 0.5.2 cannot
  do this for real WhatsApp (docs/runner.md, "Acknowledgements");
* which process hosts each connection, so a test can tell if a number was ever connected from two
  places at once (``overlaps``): WhatsApp would replace one stream with the other.
"""

from __future__ import annotations

import functools
import hashlib
import heapq
import json
import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from django.conf import settings

from config.processes import pid_alive
from config.redis import redis_client
from config.scope import database_scope
from connections.transport.base import LOGGED_OUT_REASON, MediaGone, SendResult, State, Transport, TransportError
from sync import events_builder as eb

logger = logging.getLogger(__name__)

DEMO_CHATS = [
    ("5511999990001", "Ana Souza", ["Oi! Meu pedido chegou?", "Obrigada!"]),
    ("5511999990002", "Bruno Lima", ["Hello, is the store open on Sunday?"]),
    ("5511999990003", "Carla Dias", ["Can I change my delivery address?", "It's Rua das Flores 12"]),
]


PUMP_READ_AHEAD = 50  # inbox entries read at once (removed only once acknowledged)
POLL_SECONDS = 0.5  # how soon a session whose inbox was empty sees a message queued from outside
# The acknowledgement: the entries delivered (durable on our side: emit returned) are removed from the
# inbox's head together, only if the head still is exactly those entries. If it is not, the list changed
# under this session (another host of the number: never meant to happen, the fault suite counts it) and
# the pump reads again. Acknowledgements are batched: delivered entries wait for theirs until ACK_BATCH
# of them are owed or the oldest has waited ACK_SECONDS (one round trip for several messages instead of
# one per message, ~15 % of the runner children's samples in a flood). Never before emit returned; a
# session that dies meanwhile leaves them to be delivered again, same bytes, which the journal keeps once.
ACK_BATCH = 25
ACK_SECONDS = 0.25
ACK_HEADS = """
local n = #ARGV
local head = redis.call('LRANGE', KEYS[1], 0, n - 1)
if #head ~= n then return 0 end
for i = 1, n do if head[i] ~= ARGV[i] then return 0 end end
redis.call('LTRIM', KEYS[1], n, -1)
return 1
"""


def _redis():
    return redis_client(settings.SIMULATOR_REDIS_URL)


def _sent_key(connection_id: int) -> str:
    return f"simulator:sent:{database_scope()}:{connection_id}"


def _inbox_key(connection_id: int) -> str:
    return f"simulator:inbox:{database_scope()}:{connection_id}"


def _hosts_key() -> str:
    return f"simulator:hosts:{database_scope()}"


def _overlaps_key(connection_id: int) -> str:
    return f"simulator:overlaps:{database_scope()}:{connection_id}"


def _staged_history_key(connection_id: int) -> str:
    return f"simulator:history:{database_scope()}:{connection_id}"


STAGED_HISTORY_TTL = 3600  # seconds a staged history sync waits for its ``simulate kind=history staged=1``


def inbound_specs(sender: str, text: str, count: int = 1, rate: float = 0.0, *, name: str = "", batch: str = "",
                  start: float | None = None) -> list[dict]:
    """Messages a customer sends: ids ``SIM<batch><i>``, one every 1/rate seconds from ``start``."""
    batch = batch or uuid.uuid4().hex[:8].upper()
    start = time.time() if start is None else start
    return [{"id": f"SIM{batch}{i:06d}", "from": sender, "name": name,
             "text": text if count == 1 else f"{text} #{i + 1}",
             "due": start + (i / rate if rate > 0 else 0.0)} for i in range(count)]


def queue_inbound(connection_id: int, specs: list[dict]) -> None:
    """The fake server accepts messages for a connection; a connected session delivers them."""
    if specs:
        _redis().rpush(_inbox_key(connection_id), *[json.dumps(spec) for spec in specs])


def stage_history(connection_id: int, chunks: list) -> int:
    """The fake server holds a history sync built ahead (``HistorySync`` chunks, e.g. ``eb.bulk_history``)
    until ``simulate kind=history staged=1`` delivers it to the connection's session, each chunk as the bytes
    stored here: as whatsmeow hands neonize an event it has decoded on its own threads, and our callback
    copies its bytes (``connections/transport/neonize.py``). Building 100,000 messages' protobufs takes ~1.2 s
    of CPU (timed alone), which ``simulate kind=history messages=N`` spends in one burst on the session's
    process: the fake edge's cost, not the product's (docs/measurements.md). Returns the chunks staged."""
    payloads = [chunk.SerializeToString() for chunk in chunks]
    key = _staged_history_key(connection_id)
    pipe = _redis().pipeline()
    pipe.delete(key)
    if payloads:
        pipe.rpush(key, *payloads)
        pipe.expire(key, STAGED_HISTORY_TTL)
    pipe.execute()
    return len(payloads)


def reset_server_state() -> int:
    """Forget everything the fake server knows about this database's connections (tests: ids are
    reused by every fresh test database of the same name)."""
    r = _redis()
    keys = [k for pattern in (f"simulator:*:{database_scope()}:*", _hosts_key())
            for k in r.scan_iter(match=pattern, count=1000)]
    return r.delete(*keys) if keys else 0


def pending_inbound(connection_id: int) -> int:
    return _redis().llen(_inbox_key(connection_id))


def overlaps(connection_id: int) -> int:
    """How many times a session of this connection connected while another live process hosted one."""
    return int(_redis().get(_overlaps_key(connection_id)) or 0)


def _sent_media_key(connection_id: int) -> str:
    return f"simulator:sentmedia:{database_scope()}:{connection_id}"


def sent_media(connection_id: int) -> list[dict]:
    """The media files the fake server received from a connection, in order."""
    return [json.loads(x) for x in _redis().lrange(_sent_media_key(connection_id), 0, -1)]


def _media_key(direct_path: str) -> str:
    return f"simulator:media:{database_scope()}:{direct_path}"


MEDIA_TTL_SECONDS = 86_400  # the fake server keeps a file a day; WhatsApp keeps one for weeks


def upload_inbound_media(data: bytes) -> str:
    """The fake media server stores a file; returns its ``directPath`` (what a media message carries)."""
    direct_path = f"/v/t62.7118-24/sim-{hashlib.sha256(data).hexdigest()[:24]}-{uuid.uuid4().hex[:8]}.enc"
    _redis().set(_media_key(direct_path), data, ex=MEDIA_TTL_SECONDS)
    return direct_path


def expire_media(direct_path: str) -> bool:
    """The fake server forgets a file, as WhatsApp does after a few weeks (a download then gets 404)."""
    return bool(_redis().delete(_media_key(direct_path)))


def media_spec(kind: str, data: bytes, mimetype: str, *, filename: str = "", caption: str = "",
               seconds: int = 0, ptt: bool = False) -> dict:
    """What ``inbound_specs(..., media=...)`` needs: the file uploaded, its announced metadata."""
    return {"kind": kind, "path": upload_inbound_media(data), "mimetype": mimetype, "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(), "filename": filename, "caption": caption,
            "seconds": seconds, "ptt": ptt}


def media_inbound_specs(sender: str, sample: str, *, caption: str = "", name: str = "", batch: str = "") -> list[dict]:
    """A customer sends one of ``connections.transport.samples.SAMPLES``: the file goes on the fake media
    server, the message waits in the inbox (``queue_inbound``)."""
    from connections.transport import samples

    kind, data, mimetype, filename = samples.sample(sample)
    specs = inbound_specs(sender, "", name=name, batch=batch)
    specs[0]["media"] = media_spec(kind, data, mimetype, filename=filename, caption=caption,
                                   seconds=1 if kind in ("audio", "video") else 0, ptt=kind == "audio")
    return specs


def media_content(media: dict):
    """The media message of a queued spec's ``media`` entry (``media_spec``). Its (fake) media key comes
    from the file's unique path, so a message delivered again carries the same bytes (the journal keeps it
    once)."""
    media_key = hashlib.sha256(b"simulator media key\0" + media["path"].encode()).digest()
    return eb.media_message(media["kind"], mimetype=media["mimetype"], size=media["size"], direct_path=media["path"],
                            file_sha256=bytes.fromhex(media["sha256"]), media_key=media_key,
                            caption=media.get("caption", ""), file_name=media.get("filename", ""),
                            seconds=int(media.get("seconds") or 0), ptt=bool(media.get("ptt")))


def _pn(number: str) -> str:
    return f"{number.lstrip('+')}@s.whatsapp.net"


def message_event(spec: dict) -> tuple[str, bytes]:
    """The MessageEv (name, bytes) a queued spec is delivered as: what ``eb.message_ev`` builds, byte for
    byte; a text message is a copy of a prebuilt one for its sender with its id, time and text set
    (~4 us instead of ~17 us: 2,000 a second in a flood)."""
    sender = _pn(spec["from"])
    if spec.get("media"):
        return eb.serialize(eb.message_ev(sender, sender, spec["id"], media_content(spec["media"]),
                                          int(spec["due"] * 1000), push_name=spec.get("name", "")))
    prototype = _text_prototype(sender, spec.get("name", ""))
    ev = type(prototype)()
    ev.CopyFrom(prototype)
    ev.Info.ID = spec["id"]
    ev.Info.Timestamp = int(spec["due"] * 1000)
    ev.Message.conversation = ev.Raw.conversation = spec["text"]
    return MESSAGE_EV, ev.SerializeToString()


MESSAGE_EV = eb.event_name(eb.message_ev("", "", ""))
HISTORY_EV = eb.event_name(eb.history_sync_ev([]))


@functools.lru_cache(maxsize=1024)
def _text_prototype(sender: str, push_name: str):
    return eb.message_ev(sender, sender, "", "", 0, push_name=push_name)


class _EmptyInboxes:
    """The sessions of this process whose inbox was empty, looked at every POLL_SECONDS in one round trip
    (a test or the bench queues messages from outside: ``queue_inbound``); a session whose inbox has
    something again is kicked. One look per process instead of one per session: a hundred idle numbers
    polling on their own made 200 Redis round trips a second (docs/measurements.md)."""

    def __init__(self):
        self._sessions: dict[int, SimulatorTransport] = {}
        self._lock = threading.Lock()
        self._pid = 0

    def add(self, transport: SimulatorTransport) -> None:
        with self._lock:
            self._sessions[id(transport)] = transport
            if self._pid != os.getpid():  # first use in this process (the thread does not survive a fork)
                self._pid = os.getpid()
                threading.Thread(target=self._run, name="sim-inboxes", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(POLL_SECONDS)
            with self._lock:
                sessions = [t for t in self._sessions.values() if t.is_alive()]
                self._sessions = {id(t): t for t in sessions}
            if not sessions:
                continue
            try:
                pipe = _redis().pipeline(transaction=False)
                for t in sessions:
                    pipe.exists(_inbox_key(t.config.connection_id))
                found = pipe.execute()
            except Exception:  # noqa: BLE001 - the fake server's Redis hiccuped: look again next time
                logger.exception("simulator.inbox_poll_failed")
                continue
            with self._lock:
                for t, present in zip(sessions, found, strict=True):
                    if present:
                        self._sessions.pop(id(t), None)
            for t, present in zip(sessions, found, strict=True):
                if present:
                    t._kick()


_empty_inboxes = _EmptyInboxes()
_ack_scripts: dict = {}


def _ack_heads(r, key: str, delivered: list[bytes]) -> bool:
    script = _ack_scripts.get(id(r))
    if script is None:
        script = _ack_scripts[id(r)] = r.register_script(ACK_HEADS)
    return bool(script(keys=[key], args=delivered, client=r))


class SimulatorTransport(Transport):
    name = "simulator"
    can_tell_sent = True

    def __init__(self, config, callbacks):
        super().__init__(config, callbacks)
        opts = config.options
        self.qr_seconds = float(opts.get("qr_seconds", settings.SIMULATOR_QR_SECONDS))
        self.delivered_after = float(opts.get("delivered_after", 0.3))
        self.read_after = float(opts.get("read_after", 1.0))
        self.fail_connects = 0
        self.hang_connects = 0  # connects that never reach an outcome (a dial that hangs)
        self.fail_sends = 0
        self.fail_downloads = 0
        self._alive = False
        self._generation = 0  # bumps on every connect/disconnect; stale timers check it
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._pump_due: float | None = None  # when the inbox pump is scheduled to run next (None: idle)
        # Inbox entries read ahead, kept between pumps (a flood's pump runs for each message); each is
        # decoded only once it is the next one to deliver (decoding the whole read-ahead every time was
        # most of the simulator's cost, docs/measurements.md). The first ``_delivered`` of them were
        # delivered and wait for their acknowledgement (since ``_unacked_since``, monotonic).
        self._heads: list[bytes] = []
        self._delivered = 0
        self._unacked_since = 0.0
        self._delayed: list = []  # heap of (monotonic due, seq, generation, step)
        self._seq = 0
        # One emitter thread per session keeps event order and uses one database connection.
        self._thread = threading.Thread(target=self._run, name=f"sim-{config.connection_id}", daemon=True)
        self._thread.start()

    # --- the emitter thread -----------------------------------------------------------------------
    def _run(self):
        """Run steps in order: due ones from the queue, delayed ones from a heap when their time comes
        (one thread per session, no timer thread per delayed step)."""
        while True:
            with self._lock:
                wait = self._delayed[0][0] - time.monotonic() if self._delayed else None
            try:
                item = self._queue.get(timeout=max(0.0, wait) if wait is not None else None)
            except queue.Empty:
                item = ()
            if item is None:
                self._ack_quietly()
                return
            steps = [item] if item else []
            now = time.monotonic()
            with self._lock:
                while self._delayed and self._delayed[0][0] <= now:
                    steps.append(heapq.heappop(self._delayed)[2:])
            for generation, fn in steps:
                if generation is not None and generation != self._generation:
                    continue
                try:
                    fn()
                except Exception:  # noqa: BLE001 - a simulator step must never kill the emitter
                    logger.exception("simulator.step_failed", extra={"connection_id": self.config.connection_id})

    def _later(self, delay: float, fn, *, bound=True):
        generation = self._generation if bound else None
        if delay <= 0:
            self._queue.put((generation, fn))
            return
        with self._lock:
            self._seq += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._seq, generation, fn))
        if threading.current_thread() is not self._thread:  # (the emitter itself looks at the heap next)
            self._queue.put(())  # wake the emitter: its wait may now be too long

    def _emit_ev(self, ev):
        name, data = eb.serialize(ev)
        self.emit(name, data)

    def close(self):
        self._unregister_host()
        self._queue.put(None)

    # --- interface --------------------------------------------------------------------------------
    def connect(self) -> None:
        with self._lock:
            self._generation += 1
        if self.hang_connects > 0:
            self.hang_connects -= 1
            return
        if self.fail_connects > 0:
            self.fail_connects -= 1
            self._later(0.05, lambda: self.callbacks.on_state(
                State.CONNECT_FAILED, "failed to dial whatsapp web websocket (simulated)"))
            return
        if not self.config.jid:
            for i in range(2):
                code = f"2@SIMULATED-QR-{self.config.connection_id}-{uuid.uuid4().hex[:12]},{i}"
                self._later(i * self.qr_seconds / 2, lambda code=code: self.callbacks.on_state(
                    State.QR, "scan the QR code", code=code, expires_in=self.qr_seconds))
            self._later(self.qr_seconds, self._pair_success)
            return
        self._later(0.05, self._connected)

    def _pair_success(self):
        number = self.config.phone_number.lstrip("+") or f"55119{self.config.connection_id:08d}"
        jid = f"{number}:1@s.whatsapp.net"
        from neonize.proto import Neonize_pb2 as N

        self._emit_ev(N.PairStatus(ID=eb.jid(jid), BusinessName="Simulated phone", Platform="android",
                                   Status=N.PairStatus.PStatus.Value("SUCCESS")))
        self._connected()

    def _connected(self):
        self._register_host()
        self._alive = True
        self._emit_ev(eb.connected_ev())
        self._emit_ev(self._initial_history())
        self._ack_quietly()  # what a previous session of this transport delivered
        self._pump_due = None
        self._heads, self._delivered = [], 0
        self._kick()

    # --- the fake server: who hosts the number, and the inbox of undelivered messages --------------
    def _host_token(self) -> str:
        return f"{os.getpid()}:{id(self)}"

    def _register_host(self):
        try:
            r = _redis()
            other = r.hget(_hosts_key(), self.config.connection_id)
            if other and other.decode() != self._host_token() and pid_alive(int(other.decode().split(":")[0])):
                r.incr(_overlaps_key(self.config.connection_id))
                logger.error("simulator.two_hosts", extra={"connection_id": self.config.connection_id,
                                                           "other": other.decode(), "this": self._host_token()})
            r.hset(_hosts_key(), self.config.connection_id, self._host_token())
        except Exception:  # noqa: BLE001 - bookkeeping for tests; never fail a connect on it
            logger.exception("simulator.host_register_failed", extra={"connection_id": self.config.connection_id})

    def _unregister_host(self):
        try:
            r = _redis()
            if (r.hget(_hosts_key(), self.config.connection_id) or b"").decode() == self._host_token():
                r.hdel(_hosts_key(), self.config.connection_id)
        except Exception:  # noqa: BLE001
            logger.exception("simulator.host_unregister_failed", extra={"connection_id": self.config.connection_id})

    def _kick(self, due: float = 0.0):
        """Run the inbox pump at ``due`` (epoch seconds; 0 = now) unless it is already due sooner."""
        if self._pump_due is not None and self._pump_due <= due:
            return
        self._pump_due = due
        self._later(max(0.0, due - time.time()), self._pump)

    def _pump(self):
        """Deliver the inbox's due messages in order, those due together handed over at once; they are
        removed (acknowledged) only after emit returned, i.e. once they are durable on our side."""
        self._pump_due = None
        r = _redis()
        key = _inbox_key(self.config.connection_id)
        try:
            while self._alive:
                if self._delivered == len(self._heads):
                    self._ack(r, key)  # the read-ahead is used up: acknowledge it before reading on
                    self._heads = r.lrange(key, 0, PUMP_READ_AHEAD - 1)
                    if not self._heads:
                        _empty_inboxes.add(self)  # polled with the process's other empty inboxes
                        return
                due, next_due = self._due_specs()
                if not due:
                    if time.monotonic() + (next_due - time.time()) - self._unacked_since >= ACK_SECONDS:
                        self._ack(r, key)  # the next delivery is too far off to wait for
                    self._kick(next_due)
                    return
                self.emit_many([self._message(spec) for spec in due])
                if not self._delivered:
                    self._unacked_since = time.monotonic()
                self._delivered += len(due)
                if self._delivered >= ACK_BATCH or time.monotonic() - self._unacked_since >= ACK_SECONDS:
                    self._ack(r, key)
        except Exception:  # noqa: BLE001 - the fake server's Redis hiccuped: try again soon
            logger.exception("simulator.inbox_failed", extra={"connection_id": self.config.connection_id})
            self._heads, self._delivered = [], 0  # what was delivered and not acknowledged comes again
            self._kick(time.time() + POLL_SECONDS)
            return
        self._ack(r, key)  # the session dropped: what it delivered is durable all the same

    def _due_specs(self) -> tuple[list[dict], float]:
        """The read-ahead's undelivered entries that are due, in order, and when the next one is due."""
        due, now = [], time.time() + 0.001
        for raw in self._heads[self._delivered:]:
            spec = json.loads(raw)
            if spec["due"] > now:
                return due, spec["due"]
            due.append(spec)
        return due, now

    @staticmethod
    def _message(spec: dict) -> tuple[str, bytes]:
        return message_event(spec)

    def _ack(self, r, key: str) -> None:
        """Remove the delivered entries from the inbox's head (if it still is them)."""
        if not self._delivered:
            return
        if _ack_heads(r, key, self._heads[:self._delivered]):
            del self._heads[:self._delivered]
        else:
            self._heads = []  # the list changed under us: read again
        self._delivered = 0

    def _ack_quietly(self) -> None:
        try:
            self._ack(_redis(), _inbox_key(self.config.connection_id))
        except Exception:  # noqa: BLE001 - not acknowledged: delivered again, and journaled once
            logger.exception("simulator.ack_failed", extra={"connection_id": self.config.connection_id})
            self._heads, self._delivered = [], 0

    def _initial_history(self):
        # Anchored to today's midnight: identical bytes within a day, same message ids forever.
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        base = int(today.timestamp())
        convs = []
        for n, (number, name, lines) in enumerate(DEMO_CHATS):
            msgs = [
                eb.web_message(_pn(number), f"SIMH{self.config.connection_id}x{n}x{i}", line, base - 3600 * (n + 1) + 60 * i,
                               push_name=name)
                for i, line in enumerate(lines)
            ]
            convs.append(eb.history_conversation(_pn(number), msgs, name=name, pn_jid=_pn(number)))
        return eb.history_sync_ev(convs, "INITIAL_BOOTSTRAP", chunk_order=1, progress=100,
                                  pushnames=[(_pn(number), name) for number, name, _ in DEMO_CHATS])

    def disconnect(self) -> None:
        with self._lock:
            self._generation += 1
            self._alive = False
            self._pump_due = None
        self._later(0, self._ack_quietly, bound=False)  # on the emitter thread, which owns the read-ahead
        self._unregister_host()

    def logout(self) -> None:
        self.disconnect()
        self.config.jid = ""

    def pair_phone(self, phone: str) -> str:
        self.config.phone_number = phone
        return "SIMU-" + hashlib.sha1(f"{self.config.connection_id}{phone}".encode()).hexdigest()[:3].upper()

    def is_alive(self) -> bool:
        return self._alive

    def _sent(self, chat_jid: str, local_id: str) -> SendResult:
        if not self._alive:
            raise TransportError("not connected")
        if self.fail_sends > 0:
            self.fail_sends -= 1
            raise TransportError("simulated send failure: server returned 500")
        result = SendResult("3EB0" + uuid.uuid4().hex[:16].upper(), datetime.now(UTC).replace(microsecond=0))
        if local_id:
            _redis().hset(_sent_key(self.config.connection_id), local_id,
                          json.dumps([result.external_id, result.timestamp.isoformat()]))
        ts = int(result.timestamp.timestamp())
        self._later(self.delivered_after, lambda: self._emit_ev(
            eb.receipt_ev(chat_jid, [result.external_id], "delivered", ts + 1)), bound=False)
        self._later(self.read_after, lambda: self._emit_ev(
            eb.receipt_ev(chat_jid, [result.external_id], "read", ts + 2)), bound=False)
        return result

    def send_text(self, chat_jid: str, text: str, *, local_id: str = "") -> SendResult:
        return self._sent(chat_jid, local_id)

    def send_media(self, chat_jid, data, mimetype, *, filename="", caption="", local_id="") -> SendResult:
        result = self._sent(chat_jid, local_id)
        # What the fake server received, for tests to check the bytes that went out (sent_media()).
        _redis().rpush(_sent_media_key(self.config.connection_id), json.dumps({
            "external_id": result.external_id, "chat": chat_jid, "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data), "mimetype": mimetype, "filename": filename, "caption": caption}))
        return result

    def download_media(self, ref: bytes) -> bytes:
        """The fake media server's bytes for the message's ``directPath``; a forgotten file is a 404."""
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

        if not self._alive:
            raise TransportError("not connected")
        if self.fail_downloads > 0:
            self.fail_downloads -= 1
            raise TransportError("simulated download failure: media server returned 503")
        message = Message.FromString(ref)
        parts = [value for _, value in message.ListFields()]
        direct_path = getattr(parts[0], "directPath", "") if parts else ""
        data = _redis().get(_media_key(direct_path)) if direct_path else None
        if data is None:
            raise MediaGone("download failed with status code 404 (simulated: the file expired)")
        return data

    def find_sent(self, local_id: str) -> SendResult | None:
        raw = _redis().hget(_sent_key(self.config.connection_id), local_id)
        if raw is None:
            return None
        external_id, ts = json.loads(raw)
        return SendResult(external_id, datetime.fromisoformat(ts))

    def mark_read(self, chat_jid: str, external_ids: Sequence[str], sender_jid: str = "") -> None:
        if not self._alive:
            raise TransportError("not connected")

    def request_history(self, chat_jid: str, before: datetime) -> None:
        if not self._alive:
            raise TransportError("not connected")
        end = int(before.timestamp())
        tag = hashlib.sha1(f"{chat_jid}{end}".encode()).hexdigest()[:10].upper()
        msgs = [eb.web_message(chat_jid, f"SIMOLD{tag}{i}", f"Older message {i + 1}", end - 3600 * (5 - i)) for i in range(5)]
        ev = eb.history_sync_ev([eb.history_conversation(chat_jid, msgs)], "ON_DEMAND", chunk_order=1, progress=100)
        self._later(0.05, lambda: self._emit_ev(ev))

    # --- simulate commands (manage.py simulate -> nudge -> runner -> child -> here) ---------------
    def simulate(self, command: dict) -> None:
        kind = command.get("kind")
        logger.info("simulator.command", extra={"connection_id": self.config.connection_id, "kind": kind})
        if kind == "text":
            self._simulate_text(command)
        elif kind == "kick":
            self._kick()
        elif kind == "history" and command.get("staged"):  # chunks built elsewhere (stage_history)
            self._later(0, self._deliver_staged_history, bound=False)
        elif kind == "history":
            # A large history sync (what a phone sends after pairing), built here, in chunks, on the emitter thread.
            chunks = eb.bulk_history(int(command.get("messages", 10_000)), int(command.get("conversations", 200)),
                                     int(command.get("chunk", 4_000)), id_prefix=command.get("prefix", "SIMHIST"))
            for ev in chunks:
                self._later(0, lambda ev=ev: self._emit_ev(ev), bound=False)
        elif kind == "disconnect":
            self._later(0, self._drop)
        elif kind == "fail_connects":
            self.fail_connects = int(command.get("count", 1))
        elif kind == "hang_connects":
            self.hang_connects = int(command.get("count", 1))
        elif kind == "fail_sends":
            self.fail_sends = int(command.get("count", 1))
        elif kind == "fail_downloads":
            self.fail_downloads = int(command.get("count", 1))
        elif kind == "media":
            self._simulate_media(command)
        elif kind == "logged_out":
            from neonize.proto import Neonize_pb2 as N

            self._later(0, lambda: (self._drop_quiet(), self._emit_ev(N.LoggedOut(OnConnect=False, Reason=LOGGED_OUT_REASON))))
        else:
            raise TransportError(f"unknown simulate command {kind!r}")

    def _deliver_staged_history(self):
        """The history sync ``stage_history`` left for this connection, chunk by chunk, in order (taken off
        the fake server as it is read: a session that drops meanwhile does not get it again)."""
        pipe = _redis().pipeline()
        key = _staged_history_key(self.config.connection_id)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        payloads, _ = pipe.execute()
        for payload in payloads:
            self.emit(HISTORY_EV, payload)

    def _drop_quiet(self):
        self._alive = False

    def _drop(self):
        from neonize.proto import Neonize_pb2 as N

        self._alive = False
        self._emit_ev(N.Disconnected(status=True))

    def _simulate_media(self, command: dict):
        """A customer sends a sample file: ``sample`` one of connections.transport.samples.SAMPLES."""
        queue_inbound(self.config.connection_id, media_inbound_specs(
            command.get("from") or "+5511999990001", command.get("sample") or "image",
            caption=command.get("caption", ""), name=command.get("name", ""), batch=command.get("batch", "")))

    def _simulate_text(self, command: dict):
        specs = inbound_specs(command.get("from") or "+5511999990001", command.get("text") or "hi",
                              max(1, int(command.get("count", 1))), float(command.get("rate") or 0),
                              name=command.get("name", ""), batch=command.get("batch", ""))
        queue_inbound(self.config.connection_id, specs)
        self._kick()
