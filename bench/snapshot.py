"""Tenant export/import benchmark: time and peak RSS of ``export_tenant`` and ``import_tenant`` by size.

    .venv/bin/python bench/snapshot.py [--sizes 20000,200000] [--conversations 2000] [--keep] [--database NAME]

For each size: a database of its own (``inbox_bench_snapshot``) gets one tenant with that many messages
(2,000 conversations, bodies of ~60 characters, written by SQL), then ``manage.py export_tenant`` runs in
a child process, and ``manage.py import_tenant`` of that file in another child process into a second,
empty database (``inbox_bench_snapshot_restore``); a third child exports the restored tenant again and the
row counts of both files must be equal. Each child's peak RSS comes from ``wait4`` (its own, not this
process's). Prints one JSON line and saves it to bench/results/snapshot.json. Target (issue 14): peak RSS
of the export independent of size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
SOURCE, RESTORE = "inbox_bench_snapshot", "inbox_bench_snapshot_restore"


def recreate(name: str, drop_only=False):
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            admin.execute(f'CREATE DATABASE "{name}"')


def env_for(database: str) -> dict:
    return {**os.environ, "DATABASE_URL": f"{PG}/{database}", "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "LOG_LEVEL": "WARNING", "REDIS_URL": os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/12"),
            "CELERY_QUEUE": "bench-snapshot", "CHANNEL_LAYER_PREFIX": "bench-snapshot"}


def run(database: str, *args) -> dict:
    """``manage.py *args`` in a child; its wall time, peak RSS (MiB) and stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], env=env_for(database),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    out, err = b"", b""
    # wait4 reports the child's own rusage; read its pipes first so it never blocks on a full one.
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{err.decode()[-3000:]}")
    return {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
            "stdout": out.decode()}


def populate(messages: int, conversations: int) -> None:
    """One tenant, one number, ``conversations`` contacts and chats, ``messages`` messages (SQL, fast)."""
    run(SOURCE, "migrate", "--verbosity", "0")
    script = f"""
from django.db import connection
from connections.models import Connection
from inbox.models import Contact, ContactIdentity, Conversation, Tenant
t = Tenant.objects.create(name="Bench", slug="bench")
c = Connection.objects.create(tenant=t, name="bench number", jid="5511900000000:1@s.whatsapp.net")
contacts = Contact.objects.bulk_create([Contact(tenant=t, display_name=f"Customer {{i}}") for i in range({conversations})])
ContactIdentity.objects.bulk_create([ContactIdentity(tenant=t, contact=k, jid=f"55119{{i:08d}}@s.whatsapp.net", kind="pn")
                                     for i, k in enumerate(contacts)])
Conversation.objects.bulk_create([Conversation(tenant=t, connection=c, contact=k,
                                          chat_jid=f"55119{{i:08d}}@s.whatsapp.net") for i, k in enumerate(contacts)])
with connection.cursor() as cur:
    cur.execute('''INSERT INTO inbox_message (tenant_id, conversation_id, connection_id, external_id, direction,
        status, type, raw_type, body, media_mimetype, media_filename, extra, sender_jid, sender_name,
        quoted_external_id, quoted_body, reactions, sent_at, send_attempts, error, created_at, updated_at)
      SELECT %s, ids[1 + mod(i, {conversations})], %s, 'BENCH' || lpad(i::text, 12, '0'), 'in', 'received', 'text', '',
             'message number ' || i || ' with a little text to look like a real one', '', '', '{{}}', '', '', '', '',
             '{{}}', now() - (i || ' seconds')::interval, 0, '', now(), now()
        FROM generate_series(1, {messages}) AS i,
             (SELECT array_agg(id ORDER BY id) AS ids FROM inbox_conversation WHERE tenant_id = %s) AS convs''',
        [t.pk, c.pk, t.pk])
"""  # noqa: S608 - the bench's own integers
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", script], env=env_for(SOURCE), check=True,
                   cwd=ROOT)


def one_size(messages: int, conversations: int, workdir: Path) -> dict:
    recreate(SOURCE)
    recreate(RESTORE)
    populate(messages, conversations)
    first, again = workdir / f"export-{messages}.zip", workdir / f"again-{messages}.zip"
    export = run(SOURCE, "export_tenant", "--tenant", "bench", "--out", str(first))
    run(RESTORE, "migrate", "--verbosity", "0")
    imported = run(RESTORE, "import_tenant", str(first))
    counts = json.loads(imported["stdout"])["counts"]
    reexport = run(RESTORE, "export_tenant", "--tenant", "bench", "--out", str(again))
    rows_first = json.loads(export["stdout"])["rows"]
    rows_again = json.loads(reexport["stdout"])["rows"]
    assert rows_first == rows_again, (rows_first, rows_again)
    assert counts["messages"]["created"] == messages, counts
    size_mb = first.stat().st_size / 1e6
    return {"messages": messages, "file_mb": round(size_mb, 1),
            "export_s": export["seconds"], "export_peak_rss_mib": export["peak_rss_mib"],
            "export_msgs_per_s": round(messages / export["seconds"]),
            "import_s": imported["seconds"], "import_peak_rss_mib": imported["peak_rss_mib"],
            "import_msgs_per_s": round(messages / imported["seconds"]), "round_trip_rows_equal": True}


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,200000", help="message counts, comma-separated")
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="keep the two databases of the last size")
    parser.add_argument("--database", default="inbox_bench_snapshot",
                        help="name of the source database (the restore one is <name>_restore); both are dropped")
    args = parser.parse_args()
    global SOURCE, RESTORE
    SOURCE, RESTORE = args.database, f"{args.database}_restore"
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
            for n in sizes:
                runs.append(one_size(n, args.conversations, Path(tmp)))
                print(json.dumps(runs[-1]), file=sys.stderr)
    finally:
        if not args.keep:
            recreate(SOURCE, drop_only=True)
            recreate(RESTORE, drop_only=True)
    result = {"benchmark": "snapshot", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()} {os.cpu_count()} cpus", "conversations": args.conversations,
              "runs": runs}
    print(json.dumps(result))
    out = ROOT / "bench" / "results" / "snapshot.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
