"""Purge benchmark: a typed tenant purge of N messages, in batches, beside a writer of another tenant.

    .venv/bin/python bench/purge.py [--messages 1000000] [--conversations 2000] [--batch 2000]

A database of its own (``inbox_bench_purge``) gets the tenant to purge (one number, ``--conversations``
chats, ``--messages`` messages with search entries, written by SQL as bench/snapshot.py does) and a second
tenant with one conversation. A child process then runs the purge the way ``purge_task`` does
(``check_purge_tenant`` then ``do_run_purge`` until done), timing every message batch's transaction; this
process meanwhile inserts a message into the other tenant every 50 ms and times each insert (a purge that
locked the message table would show here). Prints one JSON line and saves it to bench/results/purge.json.
Target (issue 14): no long transaction or table lock: the longest batch and the slowest concurrent insert
stay well under a second whatever the size.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import snapshot  # noqa: E402 - the same database helpers and message generator

ROOT = snapshot.ROOT
DATABASE = "inbox_bench_purge"
snapshot.SOURCE = DATABASE  # populate() writes into SOURCE

PURGE = """
import json, time
from django.conf import settings
from inbox import deletion
from inbox.models import PurgeJob, Tenant
timings = []
batch_of = deletion._purge_messages_batch
def timed(connection_id, batch, keyset=None):
    started = time.perf_counter()
    try:
        return batch_of(connection_id, batch, keyset)
    finally:
        timings.append(time.perf_counter() - started)
deletion._purge_messages_batch = timed
started = time.perf_counter()
job = deletion.check_purge_tenant(Tenant.objects.get(slug="bench"), "bench")
runs = 1
while not deletion.do_run_purge(job.pk, batch=BATCH):
    runs += 1
job.refresh_from_db()
print(json.dumps({"seconds": round(time.perf_counter() - started, 2), "status": job.status, "counts": job.counts,
                  "runs": runs, "batches": len(timings), "batch_max_s": round(max(timings), 3),
                  "batch_median_s": round(sorted(timings)[len(timings) // 2], 3)}))
"""


def other_tenant() -> tuple[int, int, int]:
    script = """
from connections.models import Connection
from inbox.models import Contact, Conversation, Tenant
t = Tenant.objects.create(name="Other", slug="other")
c = Connection.objects.create(tenant=t, name="other number")
k = Contact.objects.create(tenant=t, display_name="Someone")
conv = Conversation.objects.create(tenant=t, connection=c, contact=k, chat_jid="5511988887777@s.whatsapp.net")
print("IDS", t.pk, c.pk, conv.pk)
"""
    out = subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", script],
                         env=snapshot.env_for(DATABASE), check=True, cwd=ROOT, capture_output=True, text=True)
    line = next(row for row in out.stdout.splitlines() if row.startswith("IDS "))  # the shell may print more
    tenant, conn, conv = (int(x) for x in line.split()[1:])
    return tenant, conn, conv


def main() -> dict:
    import psycopg

    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2000)
    args = parser.parse_args()
    snapshot.recreate(DATABASE)
    try:
        snapshot.populate(args.messages, args.conversations)
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c",
                        "from inbox.search import index_message_range\n"
                        "from connections.models import Connection\n"
                        "c = Connection.objects.unscoped().get(name='bench number')\n"
                        "index_message_range(c.pk, 0, 2**62)"],
                       env=snapshot.env_for(DATABASE), check=True, cwd=ROOT)
        tenant, conn, conv = other_tenant()
        child = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "shell", "-c",
                                  PURGE.replace("BATCH", str(args.batch))],
                                 env=snapshot.env_for(DATABASE), cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        inserts = []
        with psycopg.connect(f"{snapshot.PG}/{DATABASE}", autocommit=True) as db:
            n = 0
            while child.poll() is None:
                n += 1
                started = time.perf_counter()
                db.execute(
                    """INSERT INTO inbox_message (tenant_id, conversation_id, connection_id, external_id, direction,
                       status, type, raw_type, body, media_mimetype, media_filename, extra, sender_jid, sender_name,
                       quoted_external_id, quoted_body, reactions, sent_at, send_attempts, error, created_at, updated_at)
                       VALUES (%s, %s, %s, %s, 'in', 'received', 'text', '', 'still here', '', '', '{}', '', '', '',
                               '', '{}', now(), 0, '', now(), now())""", [tenant, conv, conn, f"OTHER{n}"])
                inserts.append(time.perf_counter() - started)
                time.sleep(0.05)
            left = db.execute("SELECT count(*) FROM inbox_message WHERE tenant_id <> %s", [tenant]).fetchone()[0]
            kept = db.execute("SELECT count(*) FROM inbox_message WHERE tenant_id = %s", [tenant]).fetchone()[0]
        purge = json.loads(child.stdout.read().strip().splitlines()[-1])
        assert purge["status"] == "done" and purge["counts"]["messages"] == args.messages, purge
        assert left == 0 and kept == len(inserts), (left, kept, len(inserts))
    finally:
        snapshot.recreate(DATABASE, drop_only=True)
    inserts_ms = sorted(x * 1000 for x in inserts)
    result = {"benchmark": "purge", "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()} {os.cpu_count()} cpus", "messages": args.messages,
              "conversations": args.conversations, "batch": args.batch, "purge_s": purge["seconds"],
              "messages_per_s": round(args.messages / purge["seconds"]), "task_runs": purge["runs"],
              "message_batches": purge["batches"], "batch_max_s": purge["batch_max_s"],
              "batch_median_s": purge["batch_median_s"],
              "concurrent_inserts": len(inserts), "insert_median_ms": round(statistics.median(inserts_ms), 1),
              "insert_max_ms": round(inserts_ms[-1], 1), "other_tenant_rows_kept": kept, "counts": purge["counts"]}
    print(json.dumps(result))
    (ROOT / "bench" / "results" / "purge.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
