"""What the process benchmarks (flood, live, webhooks) share: the PostgreSQL admin connection, percentile
summaries, waiting on started processes, and whether a port listens. Imported as ``benchlib`` (a script's
own directory is on sys.path when it runs as ``python bench/<name>.py``)."""

from __future__ import annotations

import os
import socket
import statistics
import time

PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")


def admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(sql)


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


_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:  # gone meanwhile
        return None


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 once it is gone."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else 0.0


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds used so far by the live processes of a process group (a Celery worker and its pool)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields and int(fields[2]) == pgid:
                total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total

