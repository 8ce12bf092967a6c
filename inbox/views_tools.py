"""Pages of the agent's tools (issue 15): private notes and mentions, labels, snooze, canned responses.

Kept apart from inbox/views.py (shared with other work); the same shape: parse input, resolve access
(``tenant_view`` + ``inbox.access``), call one action or selector, render the shared partials.
"""

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from inbox import canned, labels, notes, snooze
from inbox.access import access_conversation
from inbox.forms import NoteForm
from inbox.models import Contact
from inbox.resolver import tenant_view


@tenant_view
@require_POST
def add_note(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    form = NoteForm(request.POST)
    error, note = None, None
    if not form.is_valid():
        error = " ".join(form.errors.get("body", []))
    else:
        try:
            note = notes.check_add_note(conv, request.user, form.cleaned_data["body"])
        except notes.NoteRefused as refused:
            error = str(refused)
    if not request.htmx:
        return redirect("conversation", slug=slug, pk=conv.pk) if error is None else HttpResponse(error, status=422)
    ctx = {"slug": slug, "conversation": conv, "new_note": note, "note_error": error,
           "note_body": request.POST.get("body", "")}
    return render(request, "inbox/partials/note_form.html", ctx, status=422 if error else 200)


@tenant_view
@require_GET
def mentions_page(request, slug):
    mentions = notes.recent_mentions(request.tenant, request.user)
    return render(request, "inbox/mentions.html", {
        "slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "mentions",
        "mentions": mentions, "unread": any(m.read_at is None for m in mentions)})


@tenant_view
@require_GET
def mentions_badge(request, slug):
    return HttpResponse(notes.render_mentions_badge(slug, notes.unread_mention_count(request.tenant, request.user)))


@tenant_view
@require_POST
def mentions_read(request, slug):
    """Mark one mention (``mention``: then open its conversation) or all of the user's mentions read."""
    from inbox.selectors import parse_id

    mention_id = parse_id(request.POST.get("mention"))
    if mention_id is None:
        notes.do_mark_mentions_read(request.tenant, request.user)
        return redirect("mentions", slug=slug)
    mention = notes.access_mention(request.tenant, request.user, mention_id)
    notes.do_mark_mentions_read(request.tenant, request.user, [mention.pk])
    return redirect("conversation", slug=slug, pk=mention.note.conversation_id)


# --- labels ------------------------------------------------------------------------------------------


def _labels_bar_response(request, slug, conv):
    if not request.htmx:
        return redirect("conversation", slug=slug, pk=conv.pk)
    return HttpResponse(labels.render_labels_bar(conv, slug, labels.tenant_labels(request.tenant, conv)))


@tenant_view
@require_POST
def conversation_label_add(request, slug, pk):
    from inbox.selectors import parse_id

    conv = access_conversation(request.tenant, pk)
    label_id = parse_id(request.POST.get("label"))
    if label_id is None:
        return _labels_bar_response(request, slug, conv)  # the empty choice: nothing to add
    labels.do_add_label(conv, labels.access_label(request.tenant, label_id), acting_user=request.user)
    return _labels_bar_response(request, slug, conv)


@tenant_view
@require_POST
def conversation_label_remove(request, slug, pk, label_id):
    conv = access_conversation(request.tenant, pk)
    labels.do_remove_label(conv, labels.access_label(request.tenant, label_id), acting_user=request.user)
    return _labels_bar_response(request, slug, conv)


def _labels_page(request, slug, status=200, **extra):
    from inbox.models import Label

    return render(request, "inbox/labels.html", {
        "slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "labels",
        "labels": labels.tenant_labels(request.tenant), "colors": Label.Color.choices, **extra}, status=status)


@tenant_view
@require_GET
def labels_page(request, slug):
    return _labels_page(request, slug)


@tenant_view(manager_only=True)
@require_POST
def label_create(request, slug):
    try:
        labels.check_create_label(request.tenant, request.POST.get("name", "")[:200], request.POST.get("color", ""))
    except labels.LabelRefused as refused:
        return _labels_page(request, slug, status=422, label_error=str(refused), label_name=request.POST.get("name", ""))
    return redirect("labels", slug=slug)


@tenant_view(manager_only=True)
@require_POST
def label_delete(request, slug, label_id):
    labels.do_delete_label(labels.access_label(request.tenant, label_id))
    return redirect("labels", slug=slug)


# --- snooze ------------------------------------------------------------------------------------------


def _snooze_bar_response(request, slug, conv, error=None):
    if not request.htmx:
        return redirect("conversation", slug=slug, pk=conv.pk) if error is None else HttpResponse(error, status=422)
    html = snooze.render_snooze_bar(conv, slug, snooze.snooze_of(conv))
    if error:
        from django.template.loader import render_to_string

        html = render_to_string("inbox/partials/snooze_bar.html", {"conversation": conv, "slug": slug, "snooze": None,
                                                                   "snooze_error": error}, request=request)
    return HttpResponse(html, status=422 if error else 200)


@tenant_view
@require_POST
def snooze_conversation(request, slug, pk):
    """Snooze until a preset or a typed local time (read in the viewer's zone, active in this request)."""
    from inbox.forms import SnoozeForm

    conv = access_conversation(request.tenant, pk)
    form = SnoozeForm(request.POST)
    if not form.is_valid():
        return _snooze_bar_response(request, slug, conv, " ".join(e for errs in form.errors.values() for e in errs))
    try:
        data = form.cleaned_data
        until = snooze.until_for_preset(data["preset"]) if data.get("preset") else data["until"]
        snooze.check_snooze(conv, until, request.user)
    except snooze.SnoozeRefused as refused:
        return _snooze_bar_response(request, slug, conv, str(refused))
    return _snooze_bar_response(request, slug, conv)


@tenant_view
@require_POST
def unsnooze_conversation(request, slug, pk):
    conv = access_conversation(request.tenant, pk)
    snooze.do_unsnooze(conv, request.user)
    conv.refresh_from_db(fields=["status"])
    return _snooze_bar_response(request, slug, conv)


# --- preferences: time zones -------------------------------------------------------------------------


@tenant_view
def preferences(request, slug):
    """The user's own language and time zone and, for owners/admins, the team's time zone
    (inbox.languages, inbox.timezones)."""
    from inbox import languages, timezones

    ctx = {"slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "preferences",
           "zones": timezones.time_zone_choices(), "default_zone": timezones.default_tenant_time_zone(),
           "languages": settings.LANGUAGES}
    if request.method == "POST":
        user_zone = request.POST.get("user_time_zone", "").strip()
        tenant_zone = request.POST.get("tenant_time_zone", "").strip() if request.membership.is_manager else None
        language = request.POST.get("language", "").strip()
        bad = [z for z in (user_zone, tenant_zone) if z and not timezones.is_time_zone(z)]
        error = _("Unknown time zone: %(name)s.") % {"name": bad[0]} if bad else ""
        if language and not languages.supported_language(language):
            error = _("Unknown language: %(code)s.") % {"code": language}
        if error:
            ctx.update(error=error, user_zone=timezones.user_time_zone(request.user),
                       tenant_zone=timezones.tenant_time_zone(request.tenant),
                       user_language=languages.user_language(request.user))
            return render(request, "inbox/preferences.html", ctx, status=422)
        timezones.do_set_user_time_zone(request.user, user_zone)
        languages.do_set_user_language(request.user, languages.supported_language(language))
        if tenant_zone is not None:
            timezones.do_set_tenant_time_zone(request.tenant, tenant_zone)
        return redirect(f"{request.path}?saved=1")
    ctx.update(user_zone=timezones.user_time_zone(request.user),
               tenant_zone=timezones.tenant_time_zone(request.tenant),
               user_language=languages.user_language(request.user), saved=request.GET.get("saved") == "1")
    return render(request, "inbox/preferences.html", ctx)


# --- canned responses --------------------------------------------------------------------------------


def _canned_page(request, slug, status=200, **extra):
    return render(request, "inbox/canned.html", {
        "slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "canned",
        "items": canned.tenant_canned_responses(request.tenant), **extra}, status=status)


@tenant_view
@require_GET
def canned_page(request, slug):
    return _canned_page(request, slug)


@tenant_view
@require_POST
def canned_create(request, slug):
    try:
        canned.check_create_canned(request.tenant, request.POST.get("shortcut", "")[:100],
                                   request.POST.get("body", ""), request.user)
    except canned.CannedRefused as refused:
        return _canned_page(request, slug, status=422, canned_error=str(refused),
                            form_shortcut=request.POST.get("shortcut", ""), form_body=request.POST.get("body", ""))
    return redirect("canned", slug=slug)


@tenant_view
@require_POST
def canned_delete(request, slug, canned_id):
    canned.do_delete_canned(canned.access_canned(request.tenant, canned_id))
    return redirect("canned", slug=slug)


@tenant_view
@require_GET
def canned_search(request, slug, pk):
    """The reply box's ``/`` menu: matching responses with this conversation's variables filled in."""
    conv = access_conversation(request.tenant, pk)
    conv.tenant = request.tenant
    variables = canned.variables_for(conv, request.user)
    items = [{"canned": c, "text": canned.fill(c.body, variables)}
             for c in canned.search(request.tenant, request.GET.get("q", "")[:100])]
    return render(request, "inbox/partials/canned_menu.html", {"items": items})


# --- new conversation by phone number ----------------------------------------------------------------


@tenant_view
def new_conversation(request, slug):
    from inbox import new_conversation as starting
    from inbox.access import access_connection
    from inbox.selectors import parse_id, tenant_connections

    connections = tenant_connections(request.tenant, include_archived=False)
    ctx = {"slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "inbox",
           "connections": connections}
    if request.method != "POST":
        return render(request, "inbox/new_conversation.html", ctx)
    phone = request.POST.get("phone", "")[:60]
    connection_id = parse_id(request.POST.get("connection"))
    try:
        if connection_id is None:
            raise starting.NewConversationRefused(_("Choose the number to write from."))
        connection = access_connection(request.tenant, connection_id)
        conversation, _created = starting.check_start_conversation(request.tenant, connection, phone, request.user)
    except starting.NewConversationRefused as refused:
        ctx.update(error=str(refused), phone=phone, chosen_connection=connection_id)
        return render(request, "inbox/new_conversation.html", ctx, status=422)
    return redirect("conversation", slug=slug, pk=conversation.pk)


# --- contacts: editing and merging -----------------------------------------------------------------


@tenant_view
@require_POST
def contact_edit(request, slug, pk):
    """Our name, notes and attributes of the conversation's contact (inbox.contacts)."""
    from inbox import contacts

    conv = access_conversation(request.tenant, pk)
    name, notes = request.POST.get("name", "")[:1000], request.POST.get("notes", "")[:20000]
    pairs = list(zip(request.POST.getlist("attr_key")[:100], request.POST.getlist("attr_value")[:100], strict=False))
    errors, contact = None, conv.contact
    try:
        contact = contacts.check_edit_contact(conv.contact, name=name, notes=notes, pairs=pairs, user=request.user)
        form = contacts.edit_form_values(contact)
    except contacts.ContactRefused as refused:
        errors = refused.errors
        form = contacts.edit_form_values(contact, name=name, notes=notes, pairs=pairs)
    if not request.htmx:
        if errors is None:
            return redirect("conversation", slug=slug, pk=conv.pk)
        return HttpResponse(" ".join(errors.values()), status=422)
    html = render(request, "inbox/partials/contact_edit_form.html", {
        "slug": slug, "conversation": conv, "contact": contact, "contact_form": form, "contact_errors": errors,
        "contact_saved": errors is None}).content.decode()
    if errors is None:  # this tab's details block at once (the others' come over the socket)
        html += contacts.render_contact_details(contact, slug, oob=True)
    return HttpResponse(html, status=422 if errors else 200)


@tenant_view(manager_only=True)
@require_GET
def contact_merge_search(request, slug, pk):
    from inbox import contacts

    conv = access_conversation(request.tenant, pk)
    query = request.GET.get("q", "")[:100]
    return render(request, "inbox/partials/merge_candidates.html", {
        "slug": slug, "conversation": conv, "merge_query": query.strip(),
        "candidates": contacts.merge_candidates(request.tenant, conv.contact, query)})


@tenant_view(manager_only=True)
def contact_merge(request, slug, pk, contact_id):
    """GET: what a merge of contact ``contact_id`` into this conversation's contact moves; POST: merge."""
    from inbox import contacts
    from inbox.access import access_contact

    conv = access_conversation(request.tenant, pk)
    other = access_contact(request.tenant, contact_id)
    ctx = {"slug": slug, "tenant": request.tenant, "membership": request.membership, "nav": "inbox",
           "conversation": conv}
    if request.method == "POST":
        try:
            _survivor, gone = contacts.check_merge_contacts(conv.contact, other, request.user)
        except contacts.ContactRefused as refused:
            ctx.update(preview=contacts.merge_preview(conv.contact, other), error=str(refused))
            return render(request, "inbox/contact_merge.html", ctx, status=422)
        return redirect("conversation", slug=slug, pk=gone.get(conv.pk) or conv.pk)
    if request.method != "GET":
        return HttpResponse(status=405)
    if other.pk == conv.contact_id or Contact.Kind.GROUP in (other.kind, conv.contact.kind):
        ctx.update(error=_("Choose another contact to merge."))
    ctx.update(preview=contacts.merge_preview(conv.contact, other))
    return render(request, "inbox/contact_merge.html", ctx, status=422 if ctx.get("error") else 200)
