"""Pages of the inbox. Each view parses input, resolves access (tenant_view + inbox.access) and
calls one action or selector; the markup is in templates/, shared with the live updates."""

import hmac
import logging
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import (
    Http404,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from connections import actions as connection_actions
from connections.models import ConnectionEvent
from inbox import actions, media, mediatypes, selectors
from inbox.access import access_alert, access_connection, access_conversation, access_media, access_message
from inbox.forms import (
    AddMemberForm,
    AddNumberForm,
    AlertEmailsForm,
    AlertWebhookForm,
    AssignForm,
    ChatExportForm,
    ConnectionActionForm,
    DeleteNumberForm,
    DeleteWorkspaceForm,
    FilterForm,
    MemberRoleForm,
    NumberFiltersForm,
    PairForm,
    RenameNumberForm,
    ReplyForm,
    StatusForm,
    ThreadPageForm,
    cleaned,
)
from inbox.labels import tenant_labels
from inbox.models import Membership
from inbox.rendering import render_message
from inbox.resolver import tenant_view
from inbox.rows import conversation_rows
from inbox.snooze import snooze_of

logger = logging.getLogger(__name__)


# --- entry, tenant picker, health --------------------------------------------------------------------


def home(request):
    return redirect("tenant_picker" if request.user.is_authenticated else "login")


def lockout_message() -> str:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return _("Too many failed logins for this username from your network: logging in is locked for %(minutes)s "
             "minutes. Try again later, or ask a platform administrator to unlock it.") % {"minutes": minutes}


@never_cache
def login_locked_out(request, *args, **kwargs):
    """django-axes' lockout response (settings.AXES_LOCKOUT_CALLABLE) for /login/ and /admin/login/: the
    login page again, with the reason, status 429. (Axes passes credentials and the original response,
    in an order that depends on sync or async; neither is needed.)"""
    from django.contrib import admin
    from django.contrib.auth.forms import AuthenticationForm

    form = AuthenticationForm(request, initial={"username": request.POST.get("username", "")})  # unbound: no re-check
    ctx = {"form": form, "lockout_message": lockout_message(), "next": request.POST.get("next", "")}
    if request.path.startswith(reverse("admin:login")):
        ctx.update(admin.site.each_context(request), title=_("Log in"), app_path=request.get_full_path(),
                   username=request.user.get_username())
        return render(request, "admin/login.html", ctx, status=429)
    return render(request, "registration/login.html", ctx, status=429)


@never_cache
@login_required
def tenant_picker(request):
    memberships = list(Membership.objects.filter(user=request.user, tenant__archived_at__isnull=True)
                       .select_related("tenant").order_by("tenant__name"))
    if len(memberships) == 1 and request.GET.get("pick") is None:
        return redirect("inbox", slug=memberships[0].tenant.slug)
    return render(request, "inbox/tenant_picker.html", {"memberships": memberships})


@never_cache
@require_GET
def health(request):
    """Liveness for load balancers; details (which check failed) only with the bearer token when set."""
    from inbox import health as health_checks

    checks = {}
    for name, check in (("database", health_checks.check_database), ("redis", health_checks.check_redis)):
        result = check()  # the same checks as /health/detailed; here only their verdict and exception class
        checks[name] = "ok" if result["status"] == health_checks.OK else f"error: {result['error'].split(':')[0]}"
    healthy = all(v == "ok" for v in checks.values())
    body = {"status": "ok" if healthy else "error"}
    if _health_token_ok(request.headers.get("Authorization", ""), settings.HEALTH_TOKEN):
        body["checks"] = checks
    return JsonResponse(body, status=200 if healthy else 503)


@never_cache
@require_GET
def health_detailed(request):
    """Every part of the platform (inbox/health.py), 503 when a required one is down or stale. Staff
    sessions and the HEALTH_TOKEN bearer see everything; a tenant owner/admin sees the platform's parts
    with only their own tenants' numbers; anybody else is refused."""
    from inbox import health as health_checks

    header = request.headers.get("Authorization", "")
    if settings.HEALTH_TOKEN and header and _health_token_ok(header, settings.HEALTH_TOKEN):
        tenant_ids = None
    elif request.user.is_authenticated and request.user.is_staff:
        tenant_ids = None
    elif request.user.is_authenticated:
        tenant_ids = list(Membership.objects.filter(user=request.user, role__in=Membership.MANAGER_ROLES)
                          .values_list("tenant_id", flat=True))
        if not tenant_ids:
            return JsonResponse({"error": "Only platform staff and tenant owners/admins may see this."}, status=403)
    else:
        response = JsonResponse({"error": "Log in as staff or send the HEALTH_TOKEN as a bearer token."}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="health"'
        return response
    healthy, body = health_checks.detailed_health(tenant_ids)
    if tenant_ids is not None:  # a tenant learns how many workers answer, not the platform's host names
        body["scope"] = {"tenant_ids": tenant_ids}
        workers = body["checks"]["workers"]
        workers["workers"] = len(workers.get("workers") or [])
    if not healthy:
        logger.warning("health.unhealthy", extra={"failing": [k for k, v in body["checks"].items() if v["status"] != "ok"]})
    return JsonResponse(body, status=200 if healthy else 503)


def _health_token_ok(header: str, token: str) -> bool:
    """No token configured: details for everyone. Else the bearer token, compared in constant time (as
    bytes: compare_digest refuses non-ASCII strings, and a header is whatever the client sent)."""
    if not token:
        return True
    given = header.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(given, f"Bearer {token}".encode("utf-8", "surrogateescape"))


# --- inbox ------------------------------------------------------------------------------------------


def _list_context(request, slug):
    form = FilterForm(request.GET)
    cursor = cleaned(form)["cursor"]  # BadParameters -> 400 (tenant_view)
    filters = form.filters()
    page = selectors.conversation_list_for_agent(request.tenant, request.user, filters, cursor=cursor)
    query = urlencode({k: v for k, v in {"status": filters.status, "scope": filters.scope,
                                         "connection": filters.connection_id or "", "q": filters.q,
                                         "label": filters.label_id or ""}.items() if v})
    return {"filters": filters, "page": page, "rows": conversation_rows(page.items, slug), "filter_query": query}


def _page_context(request, slug, conversation=None):
    # Deleted (archived) numbers stay reachable by owners and admins, in the number filter (inbox.deletion).
    connections = selectors.tenant_connections(request.tenant, include_archived=request.membership.is_manager)
    ctx = {
        "slug": slug,
        "tenant": request.tenant,
        "membership": request.membership,
        "connections": connections,
        "sync_runs": selectors.active_sync_runs(request.tenant, [c.pk for c in connections]),
        "conversation": conversation,
        # The list's label filter and (each saying if it is on the conversation) the thread's label bar.
        "labels": tenant_labels(request.tenant, conversation),
    }
    ctx.update(_list_context(request, slug))
    return ctx


@tenant_view
@require_GET
def inbox(request, slug):
    """The tenant home: the conversation list (and an empty thread pane)."""
    return render(request, "inbox/inbox.html", _page_context(request, slug))


@tenant_view
@require_GET
def conversation_list(request, slug):
    """The list as a fragment: filters, search, 'load more' and refresh after a reconnect."""
    ctx = {"slug": slug, **_list_context(request, slug)}
    template = "inbox/partials/conversation_rows.html" if request.GET.get("cursor") else "inbox/partials/conversation_list.html"
    return render(request, template, ctx)


@tenant_view
@require_GET
def conversation(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    ctx = _page_context(request, slug, conv)
    ctx.update(_thread_context(request, slug, conv))
    return render(request, "inbox/inbox.html", ctx)


def _thread_context(request, slug, conv, before=None):
    from connections.transport import supports_history_requests
    from inbox.notes import thread_with_notes

    page = selectors.thread_page(conv, before=before)
    return {
        "slug": slug,
        "conversation": conv,
        "messages": thread_with_notes(conv, page, selectors.before_at(before)),  # private notes among them
        "older_cursor": page.next_cursor,
        "exhausted": page.extra["exhausted"],
        "can_request_history": supports_history_requests(conv.connection.transport),
        "members": selectors.tenant_members(request.tenant),
        "panel": selectors.contact_panel(conv),
        "snooze": snooze_of(conv),  # no query unless the conversation is snoozed
        "reply_form": ReplyForm(),
    }


@tenant_view
@require_GET
def thread_messages(request, slug, pk):
    """Older messages (``?before=<cursor>``) prepended above the thread, or the whole thread refreshed."""
    conv = access_conversation(request.tenant, pk)
    before = cleaned(ThreadPageForm(request.GET))["before"]
    ctx = _thread_context(request, slug, conv, before=before)
    if not before:
        ctx["labels"] = tenant_labels(request.tenant, conv)  # the label bar
    template = "inbox/partials/older_messages.html" if before else "inbox/partials/thread_body.html"
    return render(request, template, ctx)


@tenant_view
@require_POST
def reply(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    form = ReplyForm(request.POST, request.FILES)
    error, message = None, None
    if not form.is_valid():  # e.g. a NUL character: say so, not "type a message"
        error = " ".join(form.errors.get("body", []) + form.errors.get("attachment", [])) or _("The reply could not be read.")
    else:
        try:
            if form.cleaned_data.get("attachment"):
                message = media.check_queue_media_reply(conv, request.user, form.cleaned_data["attachment"],
                                                        form.cleaned_data["body"])
            else:
                message = actions.check_queue_reply(conv, request.user, form.cleaned_data["body"])
        except (actions.ReplyRefused, media.MediaRefused) as refused:
            error = str(refused)
    if not request.htmx:  # a plain form post (no JavaScript): the page again, with the refusal shown
        if error is None:
            return redirect("conversation", slug=slug, pk=conv.pk)
        ctx = _page_context(request, slug, conv)
        ctx.update(_thread_context(request, slug, conv))
        ctx.update(reply_form=form, reply_error=error)
        return render(request, "inbox/inbox.html", ctx, status=422)
    ctx = {"slug": slug, "conversation": conv, "reply_form": ReplyForm() if message else form, "reply_error": error,
           "new_message": message}
    return render(request, "inbox/partials/reply_form.html", ctx, status=422 if error else 200)


@tenant_view
@require_POST
def resend_message(request, slug, pk, message_id):
    conv = access_conversation(request.tenant, pk)
    message = access_message(request.tenant, message_id)
    if message.conversation_id != conv.pk:
        raise Http404
    try:
        message = actions.check_resend_message(message, request.user)
    except actions.ResendRefused as refused:
        return HttpResponseBadRequest(str(refused))
    if not request.htmx:
        return redirect("conversation", slug=slug, pk=conv.pk)
    return HttpResponse(render_message(selectors.messages_by_ids(request.tenant.pk, [message.pk])[0]))


@tenant_view
@require_GET
def media_file(request, slug, pk, media_id, variant="file"):
    """A stored media file, only to members of its tenant (404 otherwise, and for one not stored yet).

    Served inert: images, audio and video of a type a browser plays safely are inline; anything else (SVG,
    HTML, PDF, unknown bytes) is an attachment of type application/octet-stream. Always ``nosniff`` and a
    sandboxing CSP, so a file that is really HTML never runs in the app's origin."""
    item = access_media(request.tenant, pk, media_id)
    name = item.thumbnail_name if variant == "thumb" else item.storage_name
    if item.state != item.State.FETCHED or not name:
        raise Http404
    try:
        if variant == "thumb":  # an image's thumbnail or a video's poster: JPEG or PNG, whatever the original is
            with media.open_stored(name, 0, 63) as f:
                content_type = mediatypes.sniff(f.read(64))
        else:
            content_type = item.mimetype
        inline = mediatypes.is_inline(content_type) and request.GET.get("download") != "1"
        content_type = content_type if inline else "application/octet-stream"
        etag = f'"{item.sha256}{"-thumb" if variant == "thumb" else ""}"'
        accel = settings.MEDIA_X_ACCEL_PREFIX
        if accel:  # nginx serves the bytes (internal location; it answers Range itself), this view decided who may
            response = HttpResponse(content_type=content_type)
            response["X-Accel-Redirect"] = accel.rstrip("/") + "/" + name
        else:
            response = _media_bytes(request, media.storage(), name, content_type, etag)
    except FileNotFoundError:  # the row says stored, the storage has lost it (a bucket emptied by hand)
        logger.warning("media.file_missing", extra={"media_id": item.pk, "storage_name": name})
        raise Http404 from None
    filename = media.download_name(item)
    response["Content-Disposition"] = content_disposition_header(not inline, filename)
    response["ETag"] = etag
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def _media_bytes(request, store, name: str, content_type: str, etag: str) -> HttpResponse:
    """The stored file, whole (200) or the one byte range asked for (206; 416 when none of it exists), so
    players can seek. ``If-Range`` naming another version (ETag) gets the whole file.

    Streamed from the storage in chunks by this view on every backend (on S3 a ranged GetObject reads only
    the range): never a redirect to the store, whose responses could not carry the nosniff, CSP and
    same-origin headers below (docs/decisions.md)."""
    from inbox.http_ranges import UNSATISFIABLE, byte_range, read_chunks

    size = store.size(name)
    wanted = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range")
    span = byte_range(wanted, size) if wanted and (not if_range or if_range == etag) else None
    if span == UNSATISFIABLE:
        response = HttpResponse(status=416, content_type="text/plain")
        response["Content-Range"] = f"bytes */{size}"
    elif span is not None:
        first, last = span
        response = StreamingHttpResponse(read_chunks(media.open_stored(name, first, last), last - first + 1),
                                         status=206, content_type=content_type)
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
        response["Content-Length"] = str(last - first + 1)
    else:
        response = StreamingHttpResponse(read_chunks(media.open_stored(name), size), content_type=content_type)
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    return response


@tenant_view
@require_POST
def media_retry(request, slug, pk, media_id):
    """Try again to download media that failed or expired; answers the message re-rendered."""
    item = access_media(request.tenant, pk, media_id)
    try:
        media.check_retry_media(item)
    except media.MediaRefused as refused:
        return HttpResponseBadRequest(str(refused))
    if not request.htmx:
        return redirect("conversation", slug=slug, pk=pk)
    return HttpResponse(render_message(selectors.messages_by_ids(request.tenant.pk, [item.message_id])[0]))


def _header_response(request, slug, conv):
    if not request.htmx:
        return redirect("conversation", slug=slug, pk=conv.pk)
    ctx = {"slug": slug, "conversation": conv, "members": selectors.tenant_members(request.tenant)}
    return render(request, "inbox/partials/conversation_header.html", ctx)


@tenant_view
@require_POST
def assign(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    form = AssignForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Choose an agent."))
    value = "me" if request.POST.get("assign_to_me") else form.cleaned_data["assignee"]
    try:
        actions.check_assign_conversation(conv, value, acting_user=request.user)
    except actions.AssignRefused as refused:
        return HttpResponseBadRequest(str(refused))
    return _header_response(request, slug, conv)


@tenant_view
@require_POST
def set_status(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    form = StatusForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Unknown status."))
    actions.do_set_conversation_status(conv, form.cleaned_data["status"], acting_user=request.user)
    return _header_response(request, slug, conv)


@tenant_view
@require_POST
def mark_read(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    actions.do_mark_conversation_read(conv)
    return HttpResponse(status=204)


@tenant_view
@require_POST
def request_history(request, slug, pk):
    from connections.transport import supports_history_requests

    conv = access_conversation(request.tenant, pk)
    if not supports_history_requests(conv.connection.transport):
        html_status = "unsupported"
    else:
        oldest = selectors.thread_page(conv, limit=1)  # cheap: we only need the stored window's start
        oldest_at = conv.oldest_synced_at or (oldest.items[0].sent_at if oldest.items else None)
        actions.do_request_older_history(conv, oldest_at)
        html_status = "requested"
    return render(request, "inbox/partials/history_notice.html", {"state": html_status, "conversation": conv})


@tenant_view(manager_only=True)
@require_POST
def import_chat_export(request, slug, pk):
    """The phone's "Export chat" file into this conversation (owners and admins); the page again with what
    was imported, or why not."""
    from sync.chat_export import AmbiguousDates, ChatExportError
    from sync.chat_import import check_import_chat_export

    conv = access_conversation(request.tenant, pk)
    form = ChatExportForm(request.POST, request.FILES)
    result, error = None, None
    if not form.is_valid():
        error = " ".join(str(e) for errors in form.errors.values() for e in errors)
    else:
        data = form.cleaned_data
        try:
            result = check_import_chat_export(conv, data["file"], me=data["me"], tz=data["timezone"],
                                              date_order=data["date_order"])
        except AmbiguousDates:
            error = _("Every date in this file reads both day-first and month-first: choose the date order and upload "
                      "it again.")
        except ChatExportError as exc:
            error = str(exc)
    ctx = _page_context(request, slug, conv)
    ctx.update(_thread_context(request, slug, conv))
    ctx.update(chat_import_form=form, chat_import_error=error, chat_import_result=result)
    return render(request, "inbox/inbox.html", ctx, status=422 if error else 200)


# --- connections (owners and admins) ---------------------------------------------------------------


@tenant_view(manager_only=True)
@require_GET
def connections_page(request, slug):
    return render(request, "inbox/connections.html", _connections_context(request, slug, PairForm()))


@tenant_view(manager_only=True)
@require_GET
def connection_stats(request, slug):
    """Every number's figures (reconnects, journal backlog, runs, charts), swapped into an open numbers
    page whenever the server says they may have moved (a heartbeat, a status change, an alert)."""
    from inbox import dashboard

    conns = selectors.tenant_connections(request.tenant, include_archived=False)
    stats = dashboard.number_stats([request.tenant.pk], [c.pk for c in conns], dashboard.runner_children())
    return render(request, "inbox/partials/connection_stats_all.html",
                  {"cards": [{"conn": c, "stats": stats[c.pk]} for c in conns]})


def _connections_context(request, slug, pair_form, **extra) -> dict:
    """The numbers page: each number with its recent history and running sync, plus open alerts and the
    purges of deleted numbers still running."""
    from inbox import deletion as deletion_selectors

    conns = selectors.tenant_connections(request.tenant, include_archived=False)
    ids = [c.pk for c in conns]
    history = selectors.connection_history(request.tenant, ids)
    runs = selectors.active_sync_runs(request.tenant, ids)
    from inbox import dashboard
    from inbox.models import AlertEmailOptOut

    stats = dashboard.number_stats([request.tenant.pk], ids, dashboard.runner_children())
    cards = [{"conn": c, "events": history.get(c.pk, []), "run": runs.get(c.pk), "stats": stats[c.pk]} for c in conns]

    extra.setdefault("webhook_form", AlertWebhookForm(initial={"url": request.tenant.alert_webhook_url}))
    extra.setdefault("add_form", AddNumberForm())
    extra.setdefault("card_error", {})
    return {"slug": slug, "tenant": request.tenant, "membership": request.membership, "cards": cards,
            "nav": "connections", "number_limit": settings.TENANT_MAX_NUMBERS,
            "at_limit": len(conns) >= settings.TENANT_MAX_NUMBERS, "media_bytes": media.tenant_media_bytes(request.tenant.pk),
            "pair_form": pair_form, "alerts": selectors.open_alerts(request.tenant),
            "alert_emails_on": not AlertEmailOptOut.objects.filter(user=request.user).exists(),
            "purges": deletion_selectors.purges_in_progress(request.tenant), **extra}


@tenant_view(manager_only=True)
@require_POST
def acknowledge_alert(request, slug, alert_id):
    actions.do_acknowledge_alert(access_alert(request.tenant, alert_id), request.user)
    return redirect("connections", slug=slug)


def _numbers_page_error(request, slug, *, status=422, **extra):
    """The numbers page again with a form's errors shown where the form is."""
    return render(request, "inbox/connections.html", _connections_context(request, slug, PairForm(), **extra), status=status)


def _form_errors(form) -> list[str]:
    return [str(e) for errors in form.errors.values() for e in errors]


def _card_form_error(request, slug, conn, which: str, form):
    """The numbers page again, with ``form``'s errors shown on the number's card under ``which`` form."""
    return _numbers_page_error(request, slug, card_error={"conn": conn.pk, "form": which, "errors": _form_errors(form)})


@tenant_view(manager_only=True)
@require_POST
def connection_add(request, slug):
    form = AddNumberForm(request.POST)
    if not form.is_valid():
        return _numbers_page_error(request, slug, add_form=form)
    try:
        conn = connection_actions.check_create_connection(request.tenant, name=form.cleaned_data["name"],
                                                          transport=form.cleaned_data["transport"], user=request.user)
    except connection_actions.NumberLimitReached as exc:
        form.add_error(None, str(exc))
        return _numbers_page_error(request, slug, add_form=form)
    return redirect(reverse("connections", kwargs={"slug": slug}) + f"#connection-{conn.pk}")


@tenant_view(manager_only=True)
@require_POST
def connection_rename(request, slug, pk):
    conn = access_connection(request.tenant, pk)
    form = RenameNumberForm(request.POST)
    if not form.is_valid():
        return _card_form_error(request, slug, conn, "rename", form)
    connection_actions.do_rename_connection(conn, form.cleaned_data["name"], request.user)
    return redirect(reverse("connections", kwargs={"slug": slug}) + f"#connection-{conn.pk}")


@tenant_view(manager_only=True)
@require_POST
def connection_filters(request, slug, pk):
    conn = access_connection(request.tenant, pk)
    form = NumberFiltersForm(request.POST)
    if not form.is_valid():
        return _card_form_error(request, slug, conn, "filters", form)
    data = form.cleaned_data
    connection_actions.do_set_filters(conn, request.user, **{f: data[f] for f in connection_actions.FILTER_FIELDS})
    if data["replay"]:
        connection_actions.do_request_replay(conn, request.user)
    return redirect(reverse("connections", kwargs={"slug": slug}) + f"#connection-{conn.pk}")


@tenant_view(manager_only=True)
@require_POST
def connection_delete(request, slug, pk):
    conn = access_connection(request.tenant, pk)
    form = DeleteNumberForm(request.POST, connection=conn)
    if not form.is_valid():
        return _card_form_error(request, slug, conn, "delete", form)
    if form.cleaned_data["purge"]:
        from inbox.deletion import check_purge_connection

        check_purge_connection(conn, form.cleaned_data["confirm"], request.user)  # batched, by purge_task
    else:
        connection_actions.do_archive_connection(conn, request.user)
    return redirect("connections", slug=slug)


@tenant_view(manager_only=True)
@require_GET
def connection_history_page(request, slug, pk):
    """A number's whole state history, newest first, 50 a page, by kind; lease hand-overs folded away
    unless asked for."""
    from inbox import dashboard

    conn = access_connection(request.tenant, pk)
    kind = request.GET.get("kind", "")
    if kind and kind not in ConnectionEvent.Kind.values:
        return HttpResponseBadRequest(_("Unknown kind of state change."))
    before = request.GET.get("before", "")
    before_id = selectors.parse_id(before) if before else None
    if before and before_id is None:
        return HttpResponseBadRequest(_("This link to older history is malformed; reload the page."))
    leases = request.GET.get("leases") == "1"
    events, next_before = dashboard.history_page(request.tenant, conn.pk, kind=kind, include_leases=leases,
                                                 before_id=before_id)
    query = {k: v for k, v in {"kind": kind, "leases": "1" if leases else ""}.items() if v}
    return render(request, "inbox/connection_history.html", {
        "slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "connections", "conn": conn,
        "events": events, "kinds": ConnectionEvent.Kind.choices, "kind": kind, "leases": leases,
        "next_url": f"?{urlencode({**query, 'before': next_before})}" if next_before else "",
    })


# --- staff: /ops/ across tenants ---------------------------------------------------------------------


@never_cache
@require_GET
def ops_page(request):
    """Every tenant's numbers, the runners, workers, beat and backlogs, for platform staff (others: 404,
    as for any page that is not theirs; anonymous users go to the login)."""
    from django.contrib.auth.views import redirect_to_login

    from inbox import dashboard
    from inbox import health as health_checks

    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        raise Http404
    healthy, body = health_checks.detailed_health(None)
    conns = dashboard.ops_numbers()
    stats = dashboard.number_stats(sorted({c.tenant_id for c in conns}), [c.pk for c in conns],
                                   dashboard.runner_children())
    numbers = {n["id"]: n for n in body.get("numbers", [])}
    rows = [{"conn": c, "stats": stats[c.pk], "health": numbers.get(c.pk, {})} for c in conns]
    template = "inbox/partials/ops_body.html" if request.headers.get("HX-Request") else "inbox/ops.html"
    return render(request, template, {"healthy": healthy, "health": body, "rows": rows, "nav": "ops"},
                  status=200)


# --- members (owners and admins) --------------------------------------------------------------------


def _members_context(request, slug, **extra) -> dict:
    members = list(Membership.objects.filter(tenant=request.tenant).select_related("user")
                   .order_by("role", "user__username"))
    extra.setdefault("add_form", AddMemberForm())
    extra.setdefault("member_error", {})
    return {"slug": slug, "tenant": request.tenant, "membership": request.membership, "members": members,
            "nav": "members", "roles": Membership.Role.choices, **extra}


@tenant_view(manager_only=True)
@require_http_methods(["GET", "POST"])
def workspace_delete(request, slug):
    """The owner's delete of the whole workspace: archived (its pages gone for every member, its numbers
    logged out, every row kept: platform admins restore it), or purged for good with its slug typed."""
    from inbox import deletion

    if request.membership.role != Membership.Role.OWNER:
        raise PermissionDenied("Only owners may delete the workspace.")
    tenant = request.tenant
    form = DeleteWorkspaceForm(request.POST or None, tenant=tenant)
    if request.method == "POST" and form.is_valid():
        if form.cleaned_data["purge"]:
            deletion.check_purge_tenant(tenant, form.cleaned_data["confirm"], request.user)  # batched, by purge_task
            messages.success(request, _("The workspace %(name)s is being deleted with all its data.")
                             % {"name": tenant.name})
        else:
            deletion.do_archive_tenant(tenant, request.user)
            messages.success(request, _("The workspace %(name)s was deleted. Its data is kept: ask the platform's "
                                        "administrators if it has to come back.") % {"name": tenant.name})
        return redirect(reverse("tenant_picker") + "?pick=1")
    return render(request, "inbox/workspace_delete.html", {
        "slug": slug, "tenant": tenant, "membership": request.membership, "nav": "members", "form": form,
        "counts": deletion.tenant_counts(tenant)}, status=422 if request.method == "POST" else 200)


@tenant_view(manager_only=True)
@require_GET
def members_page(request, slug):
    return render(request, "inbox/members.html", _members_context(request, slug))


@tenant_view(manager_only=True)
@require_POST
def member_add(request, slug):
    from inbox.members import MemberRuleError, check_add_member

    form = AddMemberForm(request.POST)
    if form.is_valid():
        try:
            check_add_member(request.membership, **form.cleaned_data)
            return redirect("members", slug=slug)
        except MemberRuleError as exc:
            form.add_error(None, str(exc))
    return render(request, "inbox/members.html", _members_context(request, slug, add_form=form), status=422)


@tenant_view(manager_only=True)
@require_POST
def member_role(request, slug, membership_id):
    from inbox.access import access_membership
    from inbox.members import MemberRuleError, check_change_role

    member = access_membership(request.tenant, membership_id)
    form = MemberRoleForm(request.POST)
    errors = _form_errors(form) if not form.is_valid() else []
    if not errors:
        try:
            check_change_role(request.membership, member, form.cleaned_data["role"])
            return redirect("members", slug=slug)
        except MemberRuleError as exc:
            errors = [str(exc)]
    return render(request, "inbox/members.html",
                  _members_context(request, slug, member_error={"id": member.pk, "errors": errors}), status=422)


@tenant_view(manager_only=True)
@require_POST
def member_remove(request, slug, membership_id):
    from inbox.access import access_membership
    from inbox.members import MemberRuleError, check_remove_member

    member = access_membership(request.tenant, membership_id)
    try:
        check_remove_member(request.membership, member)
    except MemberRuleError as exc:
        return render(request, "inbox/members.html",
                      _members_context(request, slug, member_error={"id": member.pk, "errors": [str(exc)]}), status=422)
    if member.user_id == request.user.pk:
        return redirect("tenant_picker")
    return redirect("members", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def alert_emails(request, slug):
    """The user's own opt-out of alert e-mails (all tenants and platform alerts alike)."""
    from inbox.alerts import do_set_alert_emails

    enabled = cleaned(AlertEmailsForm(request.POST))["enabled"] == "on"  # BadParameters -> 400 with the error
    do_set_alert_emails(request.user, enabled)
    return redirect("connections", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def alert_webhook(request, slug):
    """The tenant's alert webhook URL (empty: none)."""
    from inbox.alerts import do_set_alert_webhook

    form = AlertWebhookForm(request.POST)
    if not form.is_valid():
        return render(request, "inbox/connections.html",
                      _connections_context(request, slug, PairForm(), webhook_form=form), status=422)
    do_set_alert_webhook(request.tenant, form.cleaned_data["url"], request.user)
    return redirect("connections", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def connection_action(request, slug, pk):
    conn = access_connection(request.tenant, pk)
    form = ConnectionActionForm(request.POST)
    if not form.is_valid():
        return HttpResponseBadRequest(_("Unknown action."))
    connection_actions.do_set_desired_state(conn, ConnectionActionForm.ACTIONS[form.cleaned_data["action"]])
    logger.info("connections.desired_state_set", extra={"connection_id": conn.pk, "user_id": request.user.pk,
                                                          "action": form.cleaned_data["action"]})
    return redirect("connections", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def connection_pair(request, slug, pk):
    conn = access_connection(request.tenant, pk)
    form = PairForm(request.POST)
    if not form.is_valid():
        return render(request, "inbox/connections.html", _connections_context(request, slug, form, pair_error_for=conn.pk),
                      status=422)
    phone = form.cleaned_data["phone_number"]
    connection_actions.do_request_pairing(conn, method="phone" if phone else "qr", phone=phone)
    return redirect(reverse("connections", kwargs={"slug": slug}) + f"#connection-{conn.pk}")


@tenant_view(manager_only=True)
@require_GET
def connection_pairing(request, slug, pk):
    """The current QR (as inline SVG rendered here) or phone pair code; polled while pairing."""
    conn = access_connection(request.tenant, pk)
    code = conn.pairing_code.strip()
    qr_svg = None
    is_phone_code = bool(code) and len(code) <= 9 and "," not in code
    if code and not is_phone_code:
        import segno

        qr_svg = segno.make(code, error="l").svg_inline(scale=5, border=2, dark="#111827")
    ctx = {"slug": slug, "conn": conn, "code": code, "qr_svg": qr_svg, "is_phone_code": is_phone_code}
    return render(request, "inbox/partials/pairing.html", ctx)

