"""Servers of the test's own that it may stop, freeze or crash: never the machine's shared ones.

`RedisServer` runs a `redis-server` on a free port; `PgCluster` runs a PostgreSQL cluster (initdb into a
temporary directory, about 1.5 s to create and start here). Each signals only the process it started.
Both start their server with `setpriv --pdeathsig`, so the server dies with the thread that created it
even if pytest itself is SIGKILLed (create them from the main thread, as fixtures are).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.procs import free_port


def _launcher(pdeathsig: str, run_as: str | None = None) -> list[str]:
    """setpriv prefix: die with our thread (signal `pdeathsig`), optionally as another user."""
    if not shutil.which("setpriv"):
        if run_as:
            raise RuntimeError("setpriv (util-linux) is needed to run PostgreSQL as root")
        return []
    prefix = ["setpriv", f"--pdeathsig={pdeathsig}"]
    if run_as:
        prefix += [f"--reuid={run_as}", f"--regid={run_as}", "--init-groups"]
    return prefix


def quick_redis_client(url: str, **kwargs):
    """A redis-py client with short timeouts and no retries: a fault shows at once as the error it is."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    options = {"socket_timeout": 2, "socket_connect_timeout": 2, "retry": Retry(NoBackoff(), 0)} | kwargs
    return redis.Redis.from_url(url, **options)


def _wait_exit(process: subprocess.Popen, timeout: float) -> None:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


class RedisServer:
    """A `redis-server` of the test's own on 127.0.0.1:<free port>, no persistence.

    ``stop()`` ends the process (connects are refused), ``start()`` brings it back on the same port,
    empty; ``freeze()``/``thaw()`` SIGSTOP/SIGCONT it (connects complete, commands hang until a client
    timeout fires). ``outage(seconds)`` and ``frozen()`` are context managers for both.
    """

    def __init__(self, port: int | None = None, *, start: bool = True, executable: str = "redis-server"):
        self.executable = shutil.which(executable)
        if not self.executable:
            raise RuntimeError(f"{executable} not found: apt-get install redis-server (make test-faults does)")
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-redis-"))
        self.log_path = self.dir / "redis.log"
        self.process: subprocess.Popen | None = None
        self.is_frozen = False
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running():
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        args = [*_launcher("KILL"), self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.dir), "--logfile", "", "--daemonize", "no"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.dir)
        self.is_frozen = False
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if not self.running() or time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(f"redis-server did not come up on port {self.port}:\n{self.log()[-2000:]}")
            time.sleep(0.02)

    def _answers_ping(self) -> bool:
        """True once *our* process answers: another server on the port (say, the shared one) must not pass."""
        import redis

        client = quick_redis_client(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            return self.running() and client.info("server")["process_id"] == self.process.pid
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """End the server (SIGTERM, or SIGKILL with kill=True or when frozen); returns once it is gone."""
        if not self.running():
            return
        self.process.send_signal(signal.SIGKILL if kill or self.is_frozen else signal.SIGTERM)
        _wait_exit(self.process, timeout)
        self.is_frozen = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections into the backlog, nothing answers."""
        if not self.running():
            raise RuntimeError("redis-server is not running")
        self.process.send_signal(signal.SIGSTOP)
        self.is_frozen = True

    def thaw(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGCONT)
        self.is_frozen = False

    @contextmanager
    def outage(self, seconds: float = 0.0, *, kill: bool = False):
        """Redis is down (connects refused) for the block, plus `seconds`; up again, empty, after it."""
        self.stop(kill=kill)
        try:
            yield self
            if seconds:
                time.sleep(seconds)
        finally:
            self.start()

    @contextmanager
    def frozen(self, seconds: float = 0.0):
        """Redis hangs for the block, plus `seconds`; it answers again (same data) after it."""
        self.freeze()
        try:
            yield self
            if seconds:
                time.sleep(seconds)
        finally:
            self.thaw()

    def client(self, **kwargs):
        """A redis-py client of this server with short timeouts and no retries (see `quick_redis_client`)."""
        return quick_redis_client(self.url, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        self.stop(kill=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "frozen" if self.is_frozen else "running" if self.running() else "stopped"
        return f"<RedisServer 127.0.0.1:{self.port} {state}>"


def postgres_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb (PG_BINDIR overrides), or None."""
    if os.environ.get("PG_BINDIR"):
        return Path(os.environ["PG_BINDIR"])
    candidates = [p / "bin" for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "initdb").exists()]
    return max(candidates, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0) if candidates else None


class PgCluster:
    """A PostgreSQL cluster of the test's own: initdb into a temporary directory, fsync off, a free port.

    ``stop(mode)`` shuts the postmaster down ("fast": sessions are terminated; "immediate": a crash, no
    checkpoint, recovery at the next start), ``start()`` brings it back on the same port with its data.
    Runs as the `postgres` user when we are root (initdb refuses root). Superuser `postgres`, trust auth.
    """

    SIGNALS = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}

    def __init__(self, port: int | None = None, *, start: bool = True, bindir: Path | None = None,
                 settings: dict | None = None):
        self.bindir = Path(bindir) if bindir else postgres_bindir()
        if not self.bindir or not (self.bindir / "postgres").exists():
            raise RuntimeError("PostgreSQL server binaries not found (set PG_BINDIR)")
        self.port = port or free_port()
        self.run_as = "postgres" if os.geteuid() == 0 else None
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.settings = {"fsync": "off", "full_page_writes": "off",
                         "max_connections": "100", "shared_buffers": "32MB", "listen_addresses": "127.0.0.1",
                         "unix_socket_directories": str(self.dir)} | (settings or {})
        self.process: subprocess.Popen | None = None
        if start:
            try:
                self.start()
            except BaseException:
                self.close()
                raise

    def url(self, dbname: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _run(self, *args: str) -> None:
        result = subprocess.run([*_launcher("KILL", self.run_as), *args], cwd=self.dir, capture_output=True, text=True)
        if result.returncode:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self, timeout: float = 30.0) -> None:
        if self.running():
            raise RuntimeError(f"PostgreSQL on port {self.port} is already running")
        if not (self.data / "PG_VERSION").exists():
            self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--locale=C.UTF-8", "--no-sync", "--no-instructions")
        options = [f"-c{k}={v}" for k, v in self.settings.items()]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [*_launcher("QUIT", self.run_as), str(self.bindir / "postgres"), "-D", str(self.data),
                 "-p", str(self.port), *options],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if not self.running() or time.monotonic() > deadline:
                self.stop("immediate")
                raise RuntimeError(f"PostgreSQL did not come up on port {self.port}:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def _accepts(self) -> bool:
        """True once *our* postmaster answers: another server on the port (the shared one) must not pass."""
        import psycopg

        try:
            with psycopg.connect(self.url(), connect_timeout=2) as conn:
                data_directory = conn.execute("SHOW data_directory").fetchone()[0]
        except psycopg.OperationalError:
            return False
        return self.running() and Path(data_directory) == self.data

    def stop(self, mode: str = "fast", timeout: float = 30.0) -> None:
        """Shut down ("smart", "fast", "immediate"); returns once the postmaster is gone."""
        if not self.running():
            return
        self.process.send_signal(self.SIGNALS[mode])
        _wait_exit(self.process, timeout)

    def crash(self) -> None:
        """An immediate shutdown: every session is cut, nothing is checkpointed (crash recovery at start)."""
        self.stop("immediate")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @contextmanager
    def outage(self, seconds: float = 0.0, *, mode: str = "fast"):
        """The server is down (connects refused) for the block, plus `seconds`; up again, data kept."""
        self.stop(mode)
        try:
            yield self
            if seconds:
                time.sleep(seconds)
        finally:
            self.start()

    def execute(self, sql: str, params=None, dbname: str = "postgres") -> list:
        """Run one statement in autocommit; returns its rows ([] when it has none)."""
        import psycopg

        with psycopg.connect(self.url(dbname), autocommit=True) as conn:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description else []

    def create_database(self, name: str, template: str | None = None) -> str:
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def copy_database(self, source_url: str, name: str) -> str:
        """A copy (schema and rows) of any database, e.g. the Django test database, as `name` here."""
        self.create_database(name)
        dump = subprocess.Popen([str(self.bindir / "pg_dump"), "--no-owner", "--no-privileges", "-d", source_url],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        load = subprocess.run([str(self.bindir / "psql"), "-q", "-X", "-v", "ON_ERROR_STOP=1", "-d", self.url(name)],
                              stdin=dump.stdout, capture_output=True, text=True)
        dump.stdout.close()
        dump_err = dump.stderr.read().decode(errors="replace")
        dump.stderr.close()
        if dump.wait() or load.returncode:
            raise RuntimeError(f"copying {source_url} failed:\n{dump_err}\n{load.stderr}")
        return self.url(name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<PgCluster 127.0.0.1:{self.port} {'running' if self.running() else 'stopped'}>"
