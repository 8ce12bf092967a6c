"""HTML fragments of live updates, rendered from the same partial templates the pages use.

The pages (inbox.views) and the publisher (inbox.events) call these, so a page and a live update show
the same markup. Rendering only: nothing here talks to Redis or the channel layer. Functions that take
ids re-read the latest rows (the publisher renders at send time, so out-of-order commits cannot show
stale data).
"""

from django.template.loader import render_to_string


def render_message(message, *, live: bool = False) -> str:
    """Needs ``message.conversation`` loaded (select_related) for the group sender names."""
    return render_to_string("inbox/partials/message.html",
                            {"m": message, "live": live, "is_group": message.conversation.is_group})


def render_conversation_row(conversation, slug: str, *, live: bool = False) -> str:
    return render_to_string("inbox/partials/conversation_row.html", {"c": conversation, "slug": slug, "live": live})


def render_conversation_header(conversation, slug: str, members) -> str:
    return render_to_string("inbox/partials/conversation_header.html",
                            {"conversation": conversation, "slug": slug, "members": members, "oob": True})


def render_thread_stale(conversation_id: int) -> str:
    """An open thread that got too many messages at once reloads itself on this."""
    return render_to_string("inbox/partials/thread_stale.html", {"conversation_id": conversation_id})


def render_list_stale() -> str:
    """Open conversation lists reload themselves on this (a flush of more rows than a list shows)."""
    return render_to_string("inbox/partials/list_stale.html")


def render_heartbeats(connection_ids, at) -> str:
    return "".join(render_to_string("inbox/partials/heartbeat.html", {"conn_id": cid, "at": at, "oob": True})
                   for cid in connection_ids)


def render_alerts(tenant_id: int) -> str:
    from inbox.selectors import open_alerts

    return render_to_string("inbox/partials/alerts.html", {"alerts": open_alerts(tenant_id), "oob": True,
                                                           "slug": tenant_slug(tenant_id)})


def render_connection(tenant_id: int, connection_id: int) -> tuple[str, str] | None:
    """(the inbox's banner, the numbers page's summary and latest state changes) of a connection, or
    None if it is gone. Both halves swap out of band."""
    from connections.models import Connection
    from inbox.selectors import active_sync_runs, connection_history

    connection = Connection.objects.for_tenant(tenant_id).filter(pk=connection_id).first()
    if connection is None:
        return None
    runs = active_sync_runs(tenant_id, [connection_id])
    events = connection_history(tenant_id, [connection_id]).get(connection_id, [])
    ctx = {"conn": connection, "run": runs.get(connection_id), "oob": True, "slug": tenant_slug(tenant_id),
           "events": events}
    banner = render_to_string("inbox/partials/connection_banner.html", ctx)
    numbers = (render_to_string("inbox/partials/connection_summary.html", ctx)
               + render_to_string("inbox/partials/connection_events.html", ctx))
    return banner, numbers


def tenant_slug(tenant_id: int) -> str:
    from inbox.models import Tenant

    return Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
