"""Tenant export/import benchmark: time and peak RSS of ``export_tenant`` and ``import_tenant`` by size.

    .venv/bin/python bench/snapshot.py [--sizes 20000,200000] [--conversations 2000] [--media-every 200]
                                       [--compare-max 200000] [--keep] [--database NAME]

For each size: a database of its own (``inbox_bench_snapshot``) gets one tenant with that many messages
(2,000 conversations, bodies of ~60 characters, written by SQL), then ``manage.py export_tenant`` runs in
a child process, and ``manage.py import_tenant`` of that file in another child process into a second,
empty database (``inbox_bench_snapshot_restore``, a media root of its own); a third child exports the restored
tenant again and the row counts of both files must be equal. One message in ``--media-every`` is a media message
whose file is stored (photos, PDFs, voice notes: a few hundred distinct files, content-addressed). Up to
``--compare-max`` messages the two files are also compared row for row (``inbox.snapshot.compare``: every
member's rows with ids replaced by what they name, media rows with their checksums; the archive's own
checksums verified). Each child's peak RSS comes from ``wait4`` (its own, not this
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


MEDIA_ROOTS: dict[str, str] = {}  # database -> its media root (a temporary directory per run)


def env_for(database: str) -> dict:
    media_root = {"MEDIA_ROOT": MEDIA_ROOTS[database]} if database in MEDIA_ROOTS else {}
    return {**os.environ, **media_root, "DATABASE_URL": f"{PG}/{database}", "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "LOG_LEVEL": "WARNING", "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
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


def populate(messages: int, conversations: int, media_every: int) -> None:
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
from connections.transport import samples
from inbox import media
from inbox.models import MediaFile, Message
kinds = [("image", lambda i: samples.jpeg(color=(i % 250, 60, 40))), ("document", lambda i: samples.pdf(f"Invoice {{i}}")),
         ("audio", lambda i: samples.ogg_opus())]
every = {media_every}
picked = list(Message.objects.for_tenant(t).order_by("pk").values_list("pk", flat=True)[::every]) if every else []
for n, pk in enumerate(picked):
    kind, make = kinds[n % 3]
    Message.objects.for_tenant(t).filter(pk=pk).update(type=kind, body="")
    item = MediaFile.objects.create(tenant=t, message_id=pk, connection=c, kind=kind, ref=b"ref-%d" % pk,
                                    filename=f"file-{{pk}}")
    assert media.do_store_media(item, make(n % 300), publish=False)
"""  # noqa: S608 - the bench's own integers
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", script], env=env_for(SOURCE), check=True,
                   cwd=ROOT)


def one_size(messages: int, conversations: int, workdir: Path, media_every: int, compare_max: int) -> dict:
    recreate(SOURCE)
    recreate(RESTORE)
    for name in (SOURCE, RESTORE):
        MEDIA_ROOTS[name] = str(workdir / f"media-{name}-{messages}")
    populate(messages, conversations, media_every)
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
    compared = messages <= compare_max
    if compared:  # in a child: the comparison needs Django (and bench/ has a module named inbox)
        script = (f"import json; from inbox.snapshot.compare import canonical; a, b = canonical({str(first)!r}), "
                  f"canonical({str(again)!r}); print(json.dumps(sorted(m for m in a.keys() | b.keys() "
                  f"if a.get(m) != b.get(m))))")
        differs = json.loads(run(RESTORE, "shell", "-c", script)["stdout"].strip().splitlines()[-1])
        assert not differs, f"members that differ after the round trip: {differs}"
    exported = json.loads(export["stdout"])
    again_out = json.loads(reexport["stdout"])
    for out in (exported, again_out):  # every stored file travelled, both ways
        assert not out.get("media_missing"), out
    assert exported.get("media_files") == again_out.get("media_files"), (exported, again_out)
    media_rows, media_files = rows_first.get("media.jsonl.gz", 0), exported.get("media_files", 0)
    size_mb = first.stat().st_size / 1e6
    return {"messages": messages, "file_mb": round(size_mb, 1),
            "export_s": export["seconds"], "export_peak_rss_mib": export["peak_rss_mib"],
            "export_msgs_per_s": round(messages / export["seconds"]),
            "import_s": imported["seconds"], "import_peak_rss_mib": imported["peak_rss_mib"],
            "import_msgs_per_s": round(messages / imported["seconds"]), "round_trip_rows_equal": True,
            "media_rows": media_rows, "media_files": media_files,
            "round_trip_compared_row_for_row": compared}


def main() -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,200000", help="message counts, comma-separated")
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--media-every", type=int, default=200, help="one media message in N (0: none)")
    parser.add_argument("--compare-max", type=int, default=200_000,
                        help="compare the files row for row up to this many messages (memory grows with size)")
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
                runs.append(one_size(n, args.conversations, Path(tmp), args.media_every, args.compare_max))
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
