"""What the benchmarks share: the PostgreSQL admin connection, the JSON line saved in bench/results, a hard time
limit, the product's processes on a fresh database of their own (flood, live), percentile summaries, waiting
on started processes, and whether a port listens. Imported as ``benchlib`` (a script's own directory is on
sys.path when it runs as ``python bench/<name>.py``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


def time_limit(script: str, seconds: int) -> None:
    """End the run with a TimeoutError after ``seconds`` (SIGALRM), so a stuck bench still stops;
    ``stop_product`` (or ``signal.alarm(0)``) lifts it."""

    def out_of_time(*_):
        raise TimeoutError(f"{script} exceeded its {seconds}s limit")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(seconds)


def product_database(db_name: str, redis_default: str, settings: str = "bench.live_settings", **env: str) -> None:
    """A fresh database ``db_name``, migrated, and this process set up as the product's processes will be:
    settings ``settings``, Redis from ``BENCH_REDIS_URL`` (else ``redis_default``), the bench's own ``env``
    (its Celery queue, event spool, ...) on top."""
    admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    admin(f'CREATE DATABASE "{db_name}"')
    os.environ.update(
        DATABASE_URL=f"{PG}/{db_name}", DJANGO_SETTINGS_MODULE=settings,
        REDIS_URL=os.environ.get("BENCH_REDIS_URL", redis_default), LOG_LEVEL="WARNING", ALLOWED_HOSTS="127.0.0.1",
        **env,
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def start_product(started: list, runner_id: str, worker_concurrency: int) -> int:
    """Start the product's processes as `make run` would, appending each to ``started`` as it starts (so a
    failure part way still stops those already up): runner (simulator transport), Celery worker, daphne.
    Returns daphne's port. With ``JOURNAL_QUEUE`` set to a queue of its own, also the Procfile's journal worker
    (history syncs, catch-ups; below the live inbox's CPU priority, config/priority.py)."""
    from tests import procs

    env = procs.process_env(DJANGO_SETTINGS_MODULE="bench.live_settings", LOG_LEVEL="WARNING")
    port = procs.free_port()
    started.append(procs.manage("runner", "run_connections", "--runner-id", runner_id, env=env))
    started.append(procs.celery_worker(env, concurrency=worker_concurrency))
    if env.get("JOURNAL_QUEUE", env["CELERY_QUEUE"]) != env["CELERY_QUEUE"]:
        started.append(procs.celery_worker(env, concurrency=2, queue=env["JOURNAL_QUEUE"], name="journal"))
    started.append(procs.daphne(port, env))
    return port


def stop_product(started: list, db_name: str, keep_db: bool) -> None:
    """Lift the time limit, stop the ``started`` processes, close this process's connections and, unless
    ``keep_db``, drop the bench's database and the runner's session store beside it."""
    signal.alarm(0)
    for proc in started:
        proc.stop(timeout=15)
    from django.db import connections

    connections.close_all()
    if not keep_db:
        drop_product_database(db_name)


def drop_product_database(db_name: str) -> None:
    """The bench's database and the runner's session store beside it (``<name>_whatsmeow``)."""
    admin(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    admin(f'DROP DATABASE IF EXISTS "{db_name}_whatsmeow" WITH (FORCE)')


def save_result(result: dict, name: str) -> None:
    """Print the bench's one JSON line and save it as bench/results/``name``."""
    line = json.dumps(result)
    print(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(line + "\n")


def host_loop_ms(runs: int = 3) -> float:
    """How fast this host runs Python right now: the median CPU time, in ms, of a fixed loop (2,000,000
    additions). The machine is a shared virtual one whose speed moved by 2x between sessions on the same
    code (docs/measurements.md, 2026-12-07 night): a figure's host_loop_ms says which host it was measured on."""
    times = []
    for _ in range(runs):
        started, total = time.process_time(), 0
        for i in range(2_000_000):
            total += i
        times.append((time.process_time() - started) * 1000)
    return round(statistics.median(times), 1)


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))], 1) if values else None


def summary(values):
    if not values:
        return {"n": 0}
    return {"p50": round(statistics.median(values), 1), "p90": pct(values, 0.90), "p99": pct(values, 0.99),
            "max": round(max(values), 1), "n": len(values)}


def wait_for(predicate, timeout, what, procs=(), interval: float = 0.2):
    """``predicate()``'s first truthy value; fails when one of ``procs`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited while waiting for {what}:\n{proc.output()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --- CPU time per process role, read from /proc (Linux) ---------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int) -> tuple[int, float, float] | None:
    """(process group, own CPU seconds, CPU seconds of its reaped children) of a process; None once gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:  # gone meanwhile
        return None
    # after "pid (comm)": state ppid pgrp ... utime(12th) stime cutime cstime
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return int(fields[2]), (utime + stime) / CLOCK_TICKS, (cutime + cstime) / CLOCK_TICKS


def _pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def machine_busy_seconds() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the whole machine since boot (/proc/stat), every core."""
    with open("/proc/stat") as fh:
        values = [int(x) for x in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLOCK_TICKS, sum(values[:8]) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds spent by each role of a benchmark between ``start()`` and ``stop()``.

    ``groups``: role -> process group id (a process started with ``start_new_session``: its forks and
    children stay in its group); the group leader's own time can be split off as ``<role>_leader``
    (``split_leader``). A group's time counts every live member's own time plus what its reaped children
    used (cutime), so a child that exited in the window is not lost. ``pg_pids``: a callable returning
    the PostgreSQL backends serving the benchmark's databases (a list, or a dict pid -> role: each role's
    backends are then reported apart as ``postgres backends (<role>)``); it is polled (``poll()``, about once a
    second) because backends come and go: one first seen after ``start()`` counts from zero, one that
    ended counts up to its last poll (what it used after that poll is lost: an undercount). The bench's
    own process is ``bench``. ``redis-server`` is the machine's whole server (shared with anything else
    using it)."""

    def __init__(self, groups: dict[str, int], split_leader: tuple[str, ...] = (), pg_pids=None):
        self.groups = groups
        self.split_leader = split_leader
        self.pg_pids = pg_pids
        self.pg_first: dict[int, float] = {}
        self.pg_last: dict[int, float] = {}
        self.pg_role: dict[int, str] = {}
        self.started = self.stopped = None
        self.redis = [p for p in _pids() if _comm(p) == "redis-server"]

    def _sample(self) -> dict[str, float]:
        out: dict[str, float] = {role: 0.0 for role in self.groups}
        out.update({f"{role}_leader": 0.0 for role in self.split_leader})
        by_group = {pgid: role for role, pgid in self.groups.items()}
        for pid in _pids():
            stat = _proc_stat(pid)
            if stat is None or stat[0] not in by_group:
                continue
            role = by_group[stat[0]]
            if pid == stat[0] and role in self.split_leader:
                out[f"{role}_leader"] += stat[1]
                out[role] += stat[2]  # its reaped children belong to the rest of the role
            else:
                out[role] += stat[1] + stat[2]
        me = _proc_stat(os.getpid())
        out["bench"] = me[1] if me else 0.0
        out["redis-server (whole server, shared)"] = sum((_proc_stat(p) or (0, 0.0, 0.0))[1] for p in self.redis)
        return out

    def poll(self) -> None:
        if self.pg_pids is None:
            return
        pids = self.pg_pids()
        for pid in pids:
            if isinstance(pids, dict):  # pid -> the role it serves (its application_name)
                self.pg_role[pid] = f"postgres backends ({pids[pid]})"
            stat = _proc_stat(pid)
            if stat is None:
                continue
            if pid not in self.pg_first:
                self.pg_first[pid] = stat[1] if self.started is None else 0.0
            self.pg_last[pid] = stat[1]

    def start_idle(self) -> None:
        """Begin an idle window (everything up, nothing flowing) that ends at ``start()``: what each role
        costs per second whatever the traffic (heartbeats, polls, re-checks)."""
        self.poll()
        self.idle = (time.monotonic(), self._sample(), dict(self.pg_last))

    def start(self) -> None:
        self.poll()
        self.started = (time.monotonic(), self._sample(), machine_busy_seconds())
        if getattr(self, "idle", None) is not None:
            t0, a, pg0 = self.idle
            rates = {role: (self.started[1][role] - a[role]) / (self.started[0] - t0) for role in a}
            if self.pg_pids is not None:
                rates["postgres backends"] = sum(v - pg0.get(p, 0.0) for p, v in self.pg_last.items()) / (
                    self.started[0] - t0)
            self.idle_rates = rates
        self.pg_first = dict(self.pg_last)  # backends alive now count from here

    def stop(self) -> None:
        self.poll()
        self.stopped = (time.monotonic(), self._sample(), machine_busy_seconds())

    def seconds(self) -> dict[str, float]:
        (_t0, a, _), (_t1, b, _) = self.started, self.stopped
        out = {role: b[role] - a[role] for role in b}
        if self.pg_pids is not None:
            out["postgres backends"] = 0.0
            for p in self.pg_last:
                role = self.pg_role.get(p, "postgres backends")
                out[role] = out.get(role, 0.0) + self.pg_last[p] - self.pg_first.get(p, 0.0)
            if self.pg_role and not out["postgres backends"]:
                del out["postgres backends"]
        return out

    def report(self, messages: int) -> dict:
        """CPU ms per message per role (and the seconds behind them), the product's total, and what the
        machine as a whole was doing meanwhile (cores busy, from /proc/stat: other work on a shared box shows
        up here, not in the roles)."""
        (t0, _, (busy0, all0)), (t1, _, (busy1, all1)) = self.started, self.stopped
        secs = self.seconds()
        shared = "redis-server (whole server, shared)"
        per = {role: round(s * 1000 / messages, 3) if messages else None for role, s in secs.items()}
        product = sum(s for role, s in secs.items() if role not in ("bench", shared))
        wall = t1 - t0
        out = {
            "window_s": round(wall, 1), "messages": messages,
            "cpu_s": {role: round(s, 2) for role, s in secs.items()},
            "cpu_ms_per_message": per,
            "product_cpu_ms_per_message": round(product * 1000 / messages, 3) if messages else None,
            "machine_cores_busy": round((busy1 - busy0) / wall, 2) if wall else None,
            "machine_cores": round((all1 - all0) / wall) if wall else None,
        }
        rates = getattr(self, "idle_rates", None)
        if rates and messages:
            # The window's CPU less what the role costs idle for as long: what the messages themselves cost.
            marginal = {role: (s - rates.get(role, 0.0) * wall) * 1000 / messages for role, s in secs.items()}
            out["idle_window_s"] = round(self.started[0] - self.idle[0], 1)
            out["idle_cpu_ms_per_s"] = {role: round(r * 1000, 1) for role, r in rates.items()}
            out["marginal_cpu_ms_per_message"] = {role: round(m, 3) for role, m in marginal.items()}
            out["product_idle_cpu_ms_per_s"] = round(
                sum(r for role, r in rates.items() if role not in ("bench", shared)) * 1000, 1)
            out["product_marginal_cpu_ms_per_message"] = round(
                sum(m for role, m in marginal.items() if role not in ("bench", shared)), 3)
        return out


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    stat = _proc_stat(pid)
    return stat[1] if stat else 0.0


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group (a Celery worker and its pool)."""
    return sum(stat[1] for pid in _pids() if (stat := _proc_stat(pid)) and stat[0] == pgid)
