"""A TCP proxy whose network can be cut at the test's will: pass, refuse, blackhole.

One thread runs a selector loop over every socket (no thread per connection), so `close()` leaves
nothing behind. Mode changes are executed on that thread and `set_mode()` returns only once they
took effect: after `proxy.refuse()` returns, new connects are refused and old connections were reset.

* ``pass``: bytes flow both ways (with back-pressure: at most ``buffer_limit`` bytes held per direction).
* ``refuse``: what a server that went down looks like. The listening socket is closed (connects get
  ECONNREFUSED) and every open connection is reset on both sides (RST, ``SO_LINGER`` 0).
* ``blackhole``: a silent partition. New connects still complete (the kernel accepts them) and are held;
  nothing is read, forwarded or sent back on any connection, old or new, so peers hang until their own
  timeouts fire. No FIN, no RST.
* back to ``pass``: new connects work again. Frozen connections resume by default, like a healed
  network that TCP rides through (held bytes are delivered, connects accepted during the partition
  reach the target now); ``pass_through(reset_frozen=True)`` resets them instead, like a partition that
  outlasted the kernel's retransmissions.

Protocol-agnostic (it forwards bytes): used in front of PostgreSQL and Redis.
"""

from __future__ import annotations

import errno
import queue
import selectors
import socket
import struct
import threading
import time
from contextlib import contextmanager

PASS, REFUSE, BLACKHOLE = "pass", "refuse", "blackhole"
MODES = (PASS, REFUSE, BLACKHOLE)
_LINGER_RST = struct.pack("ii", 1, 0)


def _reset(sock: socket.socket | None) -> None:
    """Close with RST (SO_LINGER 0) instead of FIN: the peer sees ECONNRESET, as when a host goes away."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    except OSError:
        pass
    sock.close()


class _Pipe:
    """One proxied connection: the accepted client socket and its upstream socket (once connecting)."""

    def __init__(self, client: socket.socket, frozen: bool):
        self.client = client
        self.upstream: socket.socket | None = None
        self.connecting_since: float | None = None
        self.frozen = frozen
        self.to_client = bytearray()
        self.to_upstream = bytearray()
        self.eof_from: set[socket.socket] = set()  # sides that sent FIN
        self.shut: set[socket.socket] = set()  # sides we sent FIN to

    def peer(self, sock):
        return self.upstream if sock is self.client else self.client

    def outgoing(self, sock) -> bytearray:
        return self.to_client if sock is self.client else self.to_upstream

    def sockets(self):
        return [s for s in (self.client, self.upstream) if s is not None]

    def finished(self) -> bool:
        return self.upstream is not None and self.shut >= {self.client, self.upstream} \
            and self.eof_from >= {self.client, self.upstream}


class TcpProxy:
    """A TCP proxy on 127.0.0.1:<free port> in front of ``target_host:target_port``.

    Counters for assertions: ``connections_opened`` (accepted, in any mode), ``active_connections``
    (open right now, frozen ones included), ``bytes_to_target`` / ``bytes_from_target`` (forwarded).
    """

    def __init__(self, target_host: str, target_port: int, *, port: int = 0, buffer_limit: int = 1 << 20,
                 connect_timeout: float = 5.0, name: str | None = None):
        self.target = (target_host, int(target_port))
        self.host = "127.0.0.1"
        self.port = port
        self.buffer_limit = buffer_limit
        self.connect_timeout = connect_timeout
        self.mode = PASS
        self.connections_opened = 0
        self.active_connections = 0
        self.bytes_to_target = 0
        self.bytes_from_target = 0
        self.errors: list[Exception] = []  # unexpected errors of the loop (never the peers' resets)
        self._pipes: set[_Pipe] = set()
        self._events: dict[socket.socket, int] = {}
        self._selector = selectors.DefaultSelector()
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._listener: socket.socket | None = None
        try:
            self._listen()  # in the caller's thread, so a port clash raises here and .port is known at once
        except OSError:
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()
            raise
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=name or f"TcpProxy-{self.port}->{target_host}:{target_port}")
        self._thread.start()

    # --- public API (any thread) -----------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def set_mode(self, mode: str, *, reset_frozen: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        self._call(lambda: self._apply_mode(mode, reset_frozen))

    def pass_through(self, *, reset_frozen: bool = False) -> None:
        self.set_mode(PASS, reset_frozen=reset_frozen)

    def refuse(self) -> None:
        self.set_mode(REFUSE)

    def blackhole(self) -> None:
        self.set_mode(BLACKHOLE)

    def reset_connections(self) -> int:
        """Reset every open connection (RST both ways) but keep listening: a blip, not an outage."""
        return self._call(self._reset_all)

    @contextmanager
    def refused(self):
        """``with proxy.refused(): ...`` the target is down for the block, back up after it."""
        self.refuse()
        try:
            yield self
        finally:
            self.pass_through()

    @contextmanager
    def partitioned(self, *, reset_on_heal: bool = False):
        """``with proxy.partitioned(): ...`` a silent partition for the block, healed after it."""
        self.blackhole()
        try:
            yield self
        finally:
            self.pass_through(reset_frozen=reset_on_heal)

    def close(self) -> None:
        """Reset every connection, stop listening and join the thread. Idempotent."""
        if self._closed:
            return
        if self._thread.is_alive():
            self._call(self._stop)
            self._thread.join(10)
            if self._thread.is_alive():
                raise RuntimeError(f"{self._thread.name} did not stop")
        self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        self._closed = True
        if self.errors:
            raise RuntimeError(f"{self!r} hit unexpected errors: {self.errors!r}")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"<TcpProxy {self.host}:{self.port} -> {self.target[0]}:{self.target[1]} mode={self.mode} "
                f"opened={self.connections_opened} active={self.active_connections}>")

    # --- the loop thread -------------------------------------------------------------------------

    def _call(self, fn, timeout: float = 10.0):
        """Run fn on the loop thread and wait for it: mode changes are in effect when this returns."""
        if threading.current_thread() is self._thread:
            return fn()
        if self._closed or not self._thread.is_alive():
            raise RuntimeError("the proxy is closed")
        done, box = threading.Event(), {}
        self._commands.put((fn, done, box))
        self._wake_w.send(b"x")
        if not done.wait(timeout):
            raise RuntimeError(f"{self._thread.name} did not answer within {timeout}s")
        if "error" in box:
            raise box["error"]
        return box.get("result")

    def _run(self):
        while not self._stopping:
            for key, mask in self._selector.select(timeout=0.5):
                if key.data == "wake":
                    self._drain_commands()
                elif key.data == "listen":
                    self._accept()
                else:
                    pipe = key.data
                    if pipe in self._pipes:  # an earlier event of this round may have closed it
                        try:
                            self._on_ready(pipe, key.fileobj, mask)
                        except Exception as exc:  # a bug of the proxy: keep serving, report it at close()
                            self.errors.append(exc)
                            self._close_pipe(pipe, reset=True)
            self._expire_slow_connects()
        self._drain_commands()

    def _drain_commands(self):
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        while True:
            try:
                fn, done, box = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                box["result"] = fn()
            except BaseException as exc:  # handed to the caller
                box["error"] = exc
            done.set()

    def _stop(self):
        self._reset_all()
        self._unlisten()
        self._stopping = True

    def _listen(self):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._selector.register(sock, selectors.EVENT_READ, "listen")
        self._listener = sock

    def _unlisten(self):
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _apply_mode(self, mode, reset_frozen):
        if mode == REFUSE:
            self._unlisten()
            self._reset_all()
        else:
            if self._listener is None:
                self._listen()
            for pipe in list(self._pipes):
                if mode == BLACKHOLE:
                    pipe.frozen = True
                elif pipe.frozen and reset_frozen:
                    self._close_pipe(pipe, reset=True)
                    continue
                else:
                    pipe.frozen = False
                    if pipe.connecting_since is not None:
                        pipe.connecting_since = time.monotonic()  # the partition does not eat the connect timeout
                    if pipe.upstream is None:
                        self._connect_upstream(pipe)
                        if pipe not in self._pipes:
                            continue
                self._update(pipe)
        self.mode = mode

    def _reset_all(self) -> int:
        pipes = list(self._pipes)
        for pipe in pipes:
            self._close_pipe(pipe, reset=True)
        return len(pipes)

    def _accept(self):
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ECONNABORTED: the client gave up before we accepted
                continue
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            pipe = _Pipe(client, frozen=self.mode == BLACKHOLE)
            self._pipes.add(pipe)
            self.connections_opened += 1
            self.active_connections = len(self._pipes)
            if not pipe.frozen:
                self._connect_upstream(pipe)

    def _connect_upstream(self, pipe: _Pipe):
        upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.setblocking(False)
        upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = upstream.connect_ex(self.target)
        pipe.upstream = upstream
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._close_pipe(pipe, reset=True)  # the target refused: so does the proxy
            return
        pipe.connecting_since = time.monotonic()
        self._update(pipe)

    def _expire_slow_connects(self):
        now = time.monotonic()
        for pipe in list(self._pipes):
            if pipe.connecting_since is not None and not pipe.frozen and now - pipe.connecting_since > self.connect_timeout:
                self._close_pipe(pipe, reset=True)

    def _on_ready(self, pipe: _Pipe, sock: socket.socket, mask: int):
        try:
            if sock is pipe.upstream and pipe.connecting_since is not None:
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    raise ConnectionRefusedError(err, "upstream connect failed")
                pipe.connecting_since = None
            else:
                if mask & selectors.EVENT_READ:
                    self._read(pipe, sock)
                if mask & selectors.EVENT_WRITE:
                    self._write(pipe, sock)
        except OSError:  # reset, broken pipe, refused: pass the failure on as a reset of the other side
            self._close_pipe(pipe, reset=True)
            return
        if pipe.finished():
            self._close_pipe(pipe, reset=False)
        else:
            self._update(pipe)

    def _read(self, pipe: _Pipe, sock: socket.socket):
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        peer = pipe.peer(sock)
        if not data:
            pipe.eof_from.add(sock)
            if not pipe.outgoing(peer):
                self._shutdown(pipe, peer)
            return
        pipe.outgoing(peer).extend(data)
        if sock is pipe.client:
            self.bytes_to_target += len(data)
        else:
            self.bytes_from_target += len(data)

    def _write(self, pipe: _Pipe, sock: socket.socket):
        buf = pipe.outgoing(sock)
        if buf:
            try:
                sent = sock.send(buf)
            except (BlockingIOError, InterruptedError):
                return
            del buf[:sent]
        if not buf and pipe.peer(sock) in pipe.eof_from:
            self._shutdown(pipe, sock)

    def _shutdown(self, pipe: _Pipe, sock: socket.socket):
        if sock not in pipe.shut:
            pipe.shut.add(sock)
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _wanted(self, pipe: _Pipe, sock: socket.socket) -> int:
        if pipe.frozen:
            return 0
        if sock is pipe.upstream and pipe.connecting_since is not None:
            return selectors.EVENT_WRITE
        upstream_ready = pipe.upstream is not None and pipe.connecting_since is None
        if not upstream_ready:
            return 0  # the client's bytes wait in its socket until the upstream is connected
        events = 0
        peer = pipe.peer(sock)
        if sock not in pipe.eof_from and len(pipe.outgoing(peer)) < self.buffer_limit:
            events |= selectors.EVENT_READ
        if pipe.outgoing(sock):
            events |= selectors.EVENT_WRITE
        return events

    def _update(self, pipe: _Pipe):
        for sock in pipe.sockets():
            wanted, current = self._wanted(pipe, sock), self._events.get(sock, 0)
            if wanted == current:
                continue
            if current and wanted:
                self._selector.modify(sock, wanted, pipe)
            elif wanted:
                self._selector.register(sock, wanted, pipe)
            else:
                self._selector.unregister(sock)
            if wanted:
                self._events[sock] = wanted
            else:
                self._events.pop(sock, None)

    def _close_pipe(self, pipe: _Pipe, *, reset: bool):
        for sock in pipe.sockets():
            if self._events.pop(sock, 0):
                try:
                    self._selector.unregister(sock)
                except (KeyError, ValueError):
                    pass
            if reset:
                _reset(sock)
            else:
                sock.close()
        self._pipes.discard(pipe)
        self.active_connections = len(self._pipes)
