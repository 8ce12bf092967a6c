"""HTML fragments of live updates, rendered from the same partial templates the pages use.

The pages (inbox.views) and the publisher (inbox.events) call these, so a page and a live update show
the same markup. Rendering only: nothing here talks to Redis or the channel layer. Functions that take
ids re-read the latest rows (the publisher renders at send time, so out-of-order commits cannot show
stale data).

Pushed fragments are rendered without a request, for viewers who may read different languages: the
publisher renders each one in the languages open sockets read (``render_localized``,
``inbox.live_languages``: the default one always, the others while a socket reads them), and each socket
delivers its page's (inbox.consumers). Renders passed to it only render: their queries ran before.
"""

from django.template.loader import render_to_string
from django.utils import translation

from inbox.bubbles import BubbleMessage, message_bubble
from inbox.live_languages import languages_in_use
from inbox.rows import conversation_rows, rows_html


class Localized(dict):
    """One fragment in each language it was rendered in (``render_localized``): {language code: html}.
    ``+ "<html>"`` appends to each."""

    def __add__(self, other: str) -> "Localized":
        return Localized({code: html + other for code, html in self.items()})

    def strip(self) -> str:
        return "".join(self.values()).strip()


def render_localized(render) -> Localized:
    """``render()`` once under each language some open socket reads (the default one always)."""
    out = Localized()
    for code in languages_in_use():
        with translation.override(code):
            out[code] = render()
    return out


def render_message(message, *, live: bool = False, clock=None) -> str:
    """One message's bubble (inbox.bubbles), in the active language and time zone (``clock``: those read
    once for a batch, ``inbox_tags.Clock``): of a Message (its conversation read from ``message.conversation``)
    or a BubbleMessage."""
    if not isinstance(message, BubbleMessage):
        message = BubbleMessage.of(message, message.conversation.is_group)
    return message_bubble(message, live=live, clock=clock)


def render_conversation_rows(conversations, slug: str, *, live: bool = False) -> str:
    """The list rows of these conversations (inbox.rows), in the active language and time zone."""
    return rows_html(conversation_rows(conversations, slug), live=live)


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


def render_alerts(tenant_id: int) -> Localized:
    """The tenant's open alerts (out of band), in the languages read (``render_localized``)."""
    from inbox.selectors import open_alerts

    ctx = {"alerts": open_alerts(tenant_id), "oob": True, "slug": tenant_slug(tenant_id)}
    return render_localized(lambda: render_to_string("inbox/partials/alerts.html", ctx))


def render_connection(tenant_id: int, connection_id: int) -> tuple[Localized, Localized] | None:
    """(the inbox's banner, the numbers page's summary and latest state changes) of a connection, each in
    the languages read (``render_localized``), or None if it is gone. Both halves swap out of band."""
    from connections.models import Connection
    from inbox.selectors import active_sync_runs, connection_history

    connection = Connection.objects.for_tenant(tenant_id).filter(pk=connection_id).first()
    if connection is None:
        return None
    runs = active_sync_runs(tenant_id, [connection_id])
    events = connection_history(tenant_id, [connection_id]).get(connection_id, [])
    ctx = {"conn": connection, "run": runs.get(connection_id), "oob": True, "slug": tenant_slug(tenant_id),
           "events": events}
    ctx["events"] = list(events)
    banner = render_localized(lambda: render_to_string("inbox/partials/connection_banner.html", ctx))
    numbers = render_localized(lambda: render_to_string("inbox/partials/connection_summary.html", ctx)
                               + render_to_string("inbox/partials/connection_events.html", ctx))
    return banner, numbers


def tenant_slug(tenant_id: int) -> str:
    from inbox.models import Tenant

    return Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
