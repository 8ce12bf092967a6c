"""Server time of the inbox pages with 100,000 conversations and 1,000,000 messages in PostgreSQL, with the
agent tools' rows present (labels on most conversations, private notes with @mentions on one in ten).

    .venv/bin/python bench/inbox.py [--conversations 100000] [--messages 1000000] [--runs 40] [--db inbox_bench_ui]
                                    [--reuse] [--out bench/results/inbox.json]

Builds a dedicated database (--db, default inbox_bench_ui; dropped and re-created) with generate_series, then times
the views through Django's test client (whole request: middleware, tenant gate, queries, templates):
the inbox list, a filtered list, searches (a contact name, a common name, a number typed with
punctuation, a 2-character prefix, a message text matching ~10% of messages, a rare one, and a search
matching nothing), the list filtered by a label (on ~1 in 12 conversations), the mentions page and a
conversation page (its thread carries labels and notes). The same pages on a second tenant with 100 conversations
give the query counts (and times) to compare. Per page: wall p50/p95 and the median CPU time of this process
(Django, templates, psycopg's client side). Prints one JSON line and saves it to bench/results/inbox.json.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--reuse", action="store_true", help="keep an existing bench database")
    parser.add_argument("--db", default="inbox_bench_ui", help="the bench database's name (dropped and re-created)")
    parser.add_argument("--out", help="where to save the JSON line (default: bench/results/inbox.json)")
    args = parser.parse_args()
    db = args.db

    import psycopg

    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone()
    fresh = not (args.reuse and exists)
    if fresh:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{db}"')
    admin.close()

    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)  # also on --reuse: picks up new indexes
    if fresh:
        t0 = time.monotonic()
        load(connection, args.conversations, args.messages)
        load_seconds = round(time.monotonic() - t0, 1)
    else:
        load_seconds = None

    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from inbox.models import Conversation

    client = Client()
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.get(username="bench-agent"))
    big_conv = Conversation.objects.unscoped().filter(
        tenant__slug="big").order_by("-last_message_at").values_list("pk", flat=True)[5]
    small_conv = Conversation.objects.unscoped().filter(
        tenant__slug="small").order_by("-last_message_at").values_list("pk", flat=True)[5]

    from inbox.models import Label

    label_ids = {slug: Label.objects.unscoped().filter(tenant__slug=slug).order_by("pk").values_list("pk", flat=True)[3]
                 for slug in ("big", "small")}

    def pages(slug, conv):
        return {
            "inbox_list": f"/t/{slug}/",
            "filtered_list": f"/t/{slug}/list/?status=pending&scope=unassigned",
            "search_contact": f"/t/{slug}/list/?status=all&q=Customer%2012345",
            "search_contact_common": f"/t/{slug}/list/?status=all&q=customer",
            "search_number": f"/t/{slug}/list/?status=all&q=%2B55%2011%20900-0123",
            "search_short": f"/t/{slug}/list/?status=all&q=cu",
            "search_message_text": f"/t/{slug}/list/?status=all&q=parcel-7",
            "search_message_text_rare": f"/t/{slug}/list/?status=all&q=parcel-77777",
            "search_no_match": f"/t/{slug}/list/?status=all&q=zebra%20crossing",
            "label_filtered_list": f"/t/{slug}/list/?status=all&label={label_ids[slug]}",
            "mentions": f"/t/{slug}/mentions/",
            "conversation": f"/t/{slug}/c/{conv}/",
        }

    def measure(url):
        with CaptureQueriesContext(connection) as ctx:
            resp = client.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
        queries = len(ctx.captured_queries)
        times, cpu = [], []
        for _ in range(args.runs):
            t, c = time.perf_counter(), time.process_time()
            client.get(url)
            times.append((time.perf_counter() - t) * 1000)
            cpu.append((time.process_time() - c) * 1000)
        times.sort()
        # cpu: this process's CPU (Django, the templates, psycopg's client side; not PostgreSQL's): steadier
        # than the wall time on a shared machine.
        return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(times[int(len(times) * 0.95) - 1], 1),
                "cpu_p50_ms": round(statistics.median(cpu), 1), "queries": queries}

    result = {"benchmark": "inbox", "conversations": args.conversations, "messages": args.messages, "runs": args.runs,
              "load_seconds": load_seconds, "pages": {}}
    small_pages = pages("small", small_conv)
    for name, url in pages("big", big_conv).items():
        big = measure(url)
        small = measure(small_pages[name])
        big["queries_with_100_conversations"] = small["queries"]
        big["p50_ms_with_100_conversations"] = small["p50_ms"]
        big["cpu_p50_ms_with_100_conversations"] = small["cpu_p50_ms"]
        result["pages"][name] = big
    result["target_p95_ms"] = 100
    result["all_under_target"] = all(p["p95_ms"] < 100 for p in result["pages"].values())
    result["same_query_counts"] = all(p["queries"] == p["queries_with_100_conversations"] for p in result["pages"].values())
    line = json.dumps(result)
    print(line)
    out = Path(args.out) if args.out else ROOT / "bench" / "results" / "inbox.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n")


def load(connection, n_conv, n_msg):
    """Rows straight from generate_series: ~1 min for 1M messages on a small machine."""
    from django.contrib.auth import get_user_model

    from connections.models import Connection
    from inbox.models import Membership, Tenant

    user = get_user_model().objects.create_user("bench-agent", password="x")
    for slug, n in (("big", n_conv), ("small", 100)):
        tenant = Tenant.objects.create(name=slug.title(), slug=slug)
        Membership.objects.create(user=user, tenant=tenant, role="owner")
        conn = Connection.objects.create(tenant=tenant, name=f"{slug} line", transport="simulator", status="connected")
        per_conv = max(1, n_msg // n_conv) if slug == "big" else 10
        with connection.cursor() as cur:
            cur.execute("""
                INSERT INTO inbox_contact (tenant_id, kind, display_name, push_name, phone_number, created_at, updated_at)
                SELECT %(t)s, 'person', 'Customer ' || g, '', '+55119' || lpad(g::text, 8, '0'), now(), now()
                FROM generate_series(1, %(n)s) g""", {"t": tenant.pk, "n": n})
            cur.execute("""
                INSERT INTO inbox_contactidentity (tenant_id, contact_id, jid, kind, created_at)
                SELECT tenant_id, id, substr(phone_number, 2) || '@s.whatsapp.net', 'pn', now()
                FROM inbox_contact WHERE tenant_id = %(t)s""", {"t": tenant.pk})
            cur.execute("""
                INSERT INTO inbox_conversation (tenant_id, connection_id, contact_id, chat_jid, is_group, status, assignee_id,
                    last_message_at, last_message_preview, unread_count, created_at, updated_at)
                SELECT c.tenant_id, %(conn)s, c.id, substr(c.phone_number, 2) || '@s.whatsapp.net', false,
                    (ARRAY['open','open','pending','resolved'])[1 + (c.id %% 4)],
                    CASE WHEN c.id %% 3 = 0 THEN %(u)s ELSE NULL END,
                    now() - (c.id || ' minutes')::interval, 'last message of ' || c.display_name, c.id %% 5, now(), now()
                FROM inbox_contact c WHERE c.tenant_id = %(t)s""", {"t": tenant.pk, "conn": conn.pk, "u": user.pk})
            cur.execute("""
                INSERT INTO inbox_message (tenant_id, conversation_id, connection_id, external_id, direction, status, type,
                    raw_type, body, media_mimetype, media_filename, extra, sender_jid, sender_name, quoted_external_id,
                    quoted_body, reactions, sent_at, send_attempts, error, created_at, updated_at)
                SELECT v.tenant_id, v.id, v.connection_id, 'B' || v.id || 'x' || g,
                    CASE WHEN g %% 2 = 0 THEN 'in' ELSE 'out' END, CASE WHEN g %% 2 = 0 THEN 'received' ELSE 'read' END, 'text',
                    '', 'message ' || g || ' about parcel-' || (v.id * 7 + g) %% 100000, '', '', '{}', v.chat_jid,
                    '', '', '', '{}',
                    v.last_message_at - ((%(per)s - g) || ' minutes')::interval, 0, '', now(), now()
                FROM inbox_conversation v, generate_series(1, %(per)s) g WHERE v.tenant_id = %(t)s""",
                        {"t": tenant.pk, "per": per_conv})
            # What inbox.search writes for every message with a body (ADR-10): message-text search reads it.
            cur.execute("""
                INSERT INTO inbox_messagesearchentry (message_id, tenant_id, conversation_id, body)
                SELECT id, tenant_id, conversation_id, body FROM inbox_message
                WHERE tenant_id = %(t)s AND body <> '' AND deleted_at IS NULL""", {"t": tenant.pk})
            # The agent tools (issue 15): 12 labels; one on 2 of 3 conversations and a second on 1 in 5; three
            # private notes on 1 in 10 conversations and on the 20 latest (the measured thread is the 6th),
            # one in 5 of them mentioning the agent (unread).
            cur.execute("""
                INSERT INTO inbox_label (tenant_id, name, color, created_at)
                SELECT %(t)s, 'label ' || g, (ARRAY['gray','red','green','blue','yellow','purple'])[1 + g %% 6], now()
                FROM generate_series(1, 12) g""", {"t": tenant.pk})
            cur.execute("""
                INSERT INTO inbox_conversationlabel (tenant_id, conversation_id, label_id, added_by_id, created_at)
                SELECT v.tenant_id, v.id, l.id, %(u)s, now()
                FROM inbox_conversation v
                JOIN LATERAL (SELECT array_agg(id ORDER BY id) ids FROM inbox_label WHERE tenant_id = %(t)s) a ON true
                CROSS JOIN LATERAL unnest(ARRAY[a.ids[1 + v.id %% 12],
                                                CASE WHEN v.id %% 5 = 0 THEN a.ids[1 + (v.id + 5) %% 12] END]) l(id)
                WHERE v.tenant_id = %(t)s AND (v.id %% 3 <> 2 OR v.id %% 5 = 0) AND l.id IS NOT NULL
                ON CONFLICT DO NOTHING""", {"t": tenant.pk, "u": user.pk})
            cur.execute("""
                WITH latest AS (SELECT id FROM inbox_conversation WHERE tenant_id = %(t)s
                                ORDER BY last_message_at DESC LIMIT 20)
                INSERT INTO inbox_note (tenant_id, conversation_id, author_id, body, created_at)
                SELECT v.tenant_id, v.id, %(u)s, 'note ' || g || ' on ' || v.id || ' for @bench-agent',
                       v.last_message_at - (g || ' minutes')::interval
                FROM inbox_conversation v, generate_series(1, 3) g
                WHERE v.tenant_id = %(t)s AND (v.id %% 10 = 0 OR v.id IN (SELECT id FROM latest))""",
                        {"t": tenant.pk, "u": user.pk})
            cur.execute("""
                INSERT INTO inbox_notemention (tenant_id, note_id, user_id, created_at)
                SELECT tenant_id, id, %(u)s, created_at FROM inbox_note WHERE tenant_id = %(t)s AND id %% 5 = 0""",
                        {"t": tenant.pk, "u": user.pk})
            cur.execute("ANALYZE")


if __name__ == "__main__":
    main()
