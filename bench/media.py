"""History media benchmark: how fast the runner fetches a history sync's media files, and its memory.

    .venv/bin/python bench/media.py [--files 400] [--rate 0]

In a database of its own (``inbox_bench_media``, created and dropped here) and a temporary MEDIA_ROOT:
starts one runner (simulator transport), puts ``--files`` distinct JPEGs on the simulator's media server,
journals one HistorySyncEv naming them all and processes it (metadata in the inbox at once, one pending
media row per message), then measures until every file is fetched, stored and thumbnailed: files/s, and
the resident memory of the runner's child (the session host that downloads) before and at its peak.
``--rate 0`` lifts the rate bound (MEDIA_FETCH_PER_SECOND) to measure the fetch path itself; with a
rate, the run shows the bound holding. Prints one JSON line and saves bench/results/media[-rate<N>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from benchlib import drop_product_database, product_database  # noqa: E402

DB_NAME = os.environ.get("BENCH_DB", "inbox_bench_media")


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main():  # noqa: C901 - a linear script
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--rate", type=float, default=0.0, help="MEDIA_FETCH_PER_SECOND; 0 = unbounded")
    args = parser.parse_args()

    media_root = tempfile.mkdtemp(prefix="bench-media-")
    product_database(DB_NAME, "redis://127.0.0.1:6379/7", settings="config.settings.local",
                     CELERY_QUEUE="bench-media", EVENT_SPOOL_DIR=f"/tmp/bench-media-spool-{os.getpid()}",
                     MEDIA_ROOT=media_root, MEDIA_FETCH_PER_SECOND=str(args.rate or 100_000), MEDIA_FETCH_BATCH="20")
    from django.db import close_old_connections
    from django.db.models import Count

    from connections.models import Connection
    from connections.transport import samples
    from connections.transport.simulator import media_content, media_spec, reset_server_state
    from inbox.models import MediaFile, Tenant
    from sync import events_builder as eb
    from sync.journal import journal_events
    from sync.processor import process_pending

    reset_server_state()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    conn = Connection.objects.create(tenant=tenant, name="n", transport="simulator", jid="5511922200001:1@s.whatsapp.net")
    runner = subprocess.Popen([sys.executable, "manage.py", "run_connections", "--runner-id", "bench-media"], cwd=ROOT,
                              env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = {"kib": 0}
    stop = threading.Event()

    def sample_memory():
        while not stop.is_set():
            peak["kib"] = max([peak["kib"], *[rss_kib(c) for c in children(runner.pid)]])
            time.sleep(0.05)

    try:
        t0 = time.monotonic()
        while not Connection.objects.unscoped().filter(pk=conn.pk, status="connected").exists():
            if time.monotonic() - t0 > 60:
                raise SystemExit("not connected after 60 s")
            time.sleep(0.05)
        time.sleep(1.0)  # the initial history sync and first reconcile settle
        baseline_kib = max([0, *[rss_kib(c) for c in children(runner.pid)]])

        chat = "5511999990001@s.whatsapp.net"
        total_bytes = 0
        messages = []
        base = int(time.time()) - 86_400
        for i in range(args.files):
            data = samples.jpeg(160, 120, color=(i % 256, (i // 256) % 256, 90))
            total_bytes += len(data)
            content = media_content(media_spec("image", data, "image/jpeg"))
            messages.append(eb.web_message(chat, f"BENCHMEDIA{i:06d}", content, base + i))
        name, payload = eb.serialize(eb.history_sync_ev([eb.history_conversation(chat, messages)], "INITIAL_BOOTSTRAP",
                                                        chunk_order=1, progress=100))
        threading.Thread(target=sample_memory, daemon=True).start()
        t_ingest = time.monotonic()
        journal_events(conn.pk, [(name, payload, None)], schedule=False)
        process_pending(conn.pk, wait=True)
        ingest_s = time.monotonic() - t_ingest
        t_fetch = time.monotonic()
        while True:
            close_old_connections()
            done = MediaFile.objects.unscoped().filter(connection_id=conn.pk).exclude(state="pending").count()
            if done >= args.files:
                break
            if time.monotonic() - t_fetch > 600:
                raise SystemExit(f"only {done} of {args.files} fetched after 600 s")
            time.sleep(0.05)
        fetch_s = time.monotonic() - t_fetch
        stop.set()
        states = dict(MediaFile.objects.unscoped().filter(connection_id=conn.pk).values_list("state").annotate(
            n=Count("id")))
    finally:
        stop.set()
        runner.terminate()
        runner.wait(20)
        close_old_connections()
        from django.db import connections

        connections.close_all()
        drop_product_database(DB_NAME)
        reset_server_state()

    result = {
        "bench": "media", "files": args.files, "bytes": total_bytes, "rate_bound_per_s": args.rate or None,
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "history_ingest_s": round(ingest_s, 3), "fetch_all_s": round(fetch_s, 3),
        "files_per_s": round(args.files / fetch_s, 1), "states": states,
        "child_rss_mib": {"before": round(baseline_kib / 1024, 1), "peak": round(peak["kib"] / 1024, 1)},
    }
    line = json.dumps(result)
    print(line)
    (ROOT / "bench" / "results").mkdir(parents=True, exist_ok=True)
    suffix = f"-rate{int(args.rate)}" if args.rate else ""
    (ROOT / "bench" / "results" / f"media{suffix}.json").write_text(line + "\n")


if __name__ == "__main__":
    main()
