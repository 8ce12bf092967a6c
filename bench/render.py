"""CPU time of the inbox pages' Python side (middleware, tenant gate, ORM, templates) and of the row and
message templates alone, on bench/inbox.py's 100-conversation tenant: where a page's time goes without
PostgreSQL's share or the machine's load in it (medians of process CPU time, not wall time).

    .venv/bin/python bench/inbox.py --conversations 2000 --messages 20000 --runs 5 --db inbox_bench_ui --out /tmp/x.json
    .venv/bin/python bench/render.py [--db inbox_bench_ui] [--runs 60] [--language en]

Needs the database bench/inbox.py builds (any size: only its "small" tenant is read). Run it on two checkouts
against the same database, alternately, to compare code. Prints one JSON line and saves it to
bench/results/render.json.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchlib import save_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cpu_ms(fn, runs: int) -> float:
    """Median CPU time of ``fn()`` in ms, after one warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return round(statistics.median(times), 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="inbox_bench_ui", help="a database built by bench/inbox.py")
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--language", default="en")
    args = parser.parse_args()

    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{args.db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    os.environ.setdefault("ALLOWED_HOSTS", "testserver")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.template.loader import get_template
    from django.test import Client, RequestFactory
    from django.utils import translation

    from inbox.labels import tenant_labels
    from inbox.models import Conversation, Label, Membership, Message, Tenant
    from inbox.rendering import render_message
    from inbox.views import _list_context, _thread_context

    slug = "small"
    tenant = Tenant.objects.get(slug=slug)
    user = get_user_model().objects.get(username="bench-agent")
    conv = Conversation.objects.for_tenant(tenant).order_by("-last_message_at")[5]
    label = Label.objects.for_tenant(tenant).order_by("pk").values_list("pk", flat=True)[3]
    client = Client(HTTP_ACCEPT_LANGUAGE=args.language)
    client.force_login(user)
    pages = {
        "inbox_list": f"/t/{slug}/",
        "filtered_list": f"/t/{slug}/list/?status=pending&scope=unassigned",
        "search_contact_common": f"/t/{slug}/list/?status=all&q=customer",
        "label_filtered_list": f"/t/{slug}/list/?status=all&label={label}",
        "mentions": f"/t/{slug}/mentions/",
        "conversation": f"/t/{slug}/c/{conv.pk}/",
        "thread": f"/t/{slug}/c/{conv.pk}/messages/",
    }
    result = {"benchmark": "render", "language": args.language, "runs": args.runs, "unit": "ms of CPU, median",
              "pages": {name: cpu_ms(lambda url=url: client.get(url), args.runs) for name, url in pages.items()}}

    # The templates alone, their queries done once beforehand (a page's rows, a conversation's thread).
    request = RequestFactory().get("/")
    request.tenant, request.user = tenant, user
    request.membership = Membership.objects.get(tenant=tenant, user=user)
    with translation.override(args.language):
        request.GET = {"status": "all"}
        list_ctx = {"slug": slug, "conversation": None, **_list_context(request, slug)}
        rows_template = get_template("inbox/partials/conversation_rows.html")
        if "rows" in list_ctx:  # rows built in Python (inbox.rows): that is part of rendering them
            from inbox.rows import conversation_rows

            def render_rows():
                list_ctx["rows"] = conversation_rows(list_ctx["page"].items, slug)
                return rows_template.render(list_ctx)
        else:
            def render_rows():
                return rows_template.render(list_ctx)
        thread_ctx = {**_thread_context(request, slug, conv), "labels": tenant_labels(tenant, conv)}
        thread_template = get_template("inbox/partials/thread_body.html")
        messages = list(Message.objects.for_tenant(tenant).filter(conversation=conv)
                        .select_related("conversation", "media", "sender_user")[:10])

        def render_messages():
            for m in messages:
                render_message(m, live=True)

        result["templates"] = {
            f"list_rows_{len(list_ctx['page'].items)}": cpu_ms(render_rows, args.runs * 3),
            f"thread_body_{len(thread_ctx['messages'])}_items": cpu_ms(lambda: thread_template.render(thread_ctx, request),
                                                                      args.runs * 3),
            "render_message_per_message": round(cpu_ms(render_messages, args.runs * 3) / len(messages), 3),
        }
    result["load_avg_1m"] = round(os.getloadavg()[0], 2)
    save_result(result, "render.json")


if __name__ == "__main__":
    main()
