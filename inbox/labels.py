"""Labels on conversations (issue 15): a tenant's colored labels, added to and removed from
conversations by any member, created and deleted by owners/admins, and a filter of the inbox list.

Writes follow inbox.actions (``check_*`` validates, ``do_*`` writes and publishes on commit); the list's
rows and the thread's label bar reach the other agents live (the rows through the list's coalescing), and
integrations hear ``conversation.labels`` (``inbox.integrations``) for every conversation that gained or lost
one, from the pages and the API alike (deleting a label: each conversation that carried it). A rename or
recolor changes no conversation's labels and records nothing.
"""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Prefetch
from django.http import Http404
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from inbox import integrations
from inbox.models import ConversationLabel, Label

logger = logging.getLogger(__name__)

MAX_LABELS_PER_TENANT = 200


class LabelRefused(ValueError):
    """A label that cannot be created or added; the message is shown to the agent."""


# --- reads -------------------------------------------------------------------------------------------


def tenant_labels(tenant, conversation=None) -> list[Label]:
    """The tenant's labels by name (one query); with a conversation, each says whether it is on it
    (``on_conversation``): the thread's label bar needs no query of its own."""
    qs = Label.objects.for_tenant(tenant).order_by("name")
    if conversation is not None:
        qs = qs.annotate(on_conversation=Exists(ConversationLabel.objects.for_tenant(tenant).filter(
            conversation_id=conversation.pk, label_id=OuterRef("pk"))))
    return list(qs)


def labels_prefetch(tenant, to_attr: str | None = None) -> Prefetch:
    """For conversation rows: each conversation's labels in one query for the whole page
    (``conversation.label_links.all``, each with its ``label``). ``to_attr``: a plain list in that attribute
    instead (Django then makes no queryset per conversation: 1,500 clones were ~20 % of a live list flush's
    CPU in a profile)."""
    return Prefetch("label_links", queryset=ConversationLabel.objects.for_tenant(tenant).select_related("label")
                    .order_by("label__name"), to_attr=to_attr)


def access_label(tenant, label_id) -> Label:
    """A label of this tenant, else 404 (another tenant's is the same 404 as none)."""
    try:
        return Label.objects.for_tenant(tenant).get(pk=int(label_id))
    except (ValueError, TypeError, OverflowError, Label.DoesNotExist):
        raise Http404 from None


# --- writes ------------------------------------------------------------------------------------------


def check_create_label(tenant, name: str, color: str) -> Label:
    name = " ".join((name or "").split())
    if not name:
        raise LabelRefused(_("Give the label a name."))
    if color not in Label.Color.values:
        raise LabelRefused(_("Choose one of the colors."))
    labels = Label.objects.for_tenant(tenant)
    if labels.filter(name__iexact=name).exists():
        raise LabelRefused(_("There is already a label named %(name)s.") % {"name": name})
    if labels.count() >= MAX_LABELS_PER_TENANT:
        raise LabelRefused(_("A team has at most %(max)d labels.") % {"max": MAX_LABELS_PER_TENANT})
    try:
        with transaction.atomic():
            return do_create_label(tenant, name, color)
    except IntegrityError:  # the same name created concurrently
        raise LabelRefused(_("There is already a label named %(name)s.") % {"name": name}) from None


def check_update_label(label: Label, *, name: str | None = None, color: str | None = None) -> Label:
    """Rename or recolor a label (either may be left out); the conversations carrying it show it live."""
    name = label.name if name is None else " ".join(name.split())
    color = label.color if color is None else color
    if not name:
        raise LabelRefused(_("Give the label a name."))
    if color not in Label.Color.values:
        raise LabelRefused(_("Choose one of the colors."))
    if Label.objects.for_tenant(label.tenant_id).filter(name__iexact=name).exclude(pk=label.pk).exists():
        raise LabelRefused(_("There is already a label named %(name)s.") % {"name": name})
    try:
        with transaction.atomic():
            return do_update_label(label, name, color)
    except IntegrityError:  # the same name given to another label concurrently
        raise LabelRefused(_("There is already a label named %(name)s.") % {"name": name}) from None


def do_update_label(label: Label, name: str, color: str) -> Label:
    from inbox import events

    with transaction.atomic():
        Label.objects.for_tenant(label.tenant_id).filter(pk=label.pk).update(name=name, color=color)
        label.name, label.color = name, color
        conversation_ids = list(ConversationLabel.objects.for_tenant(label.tenant_id).filter(label=label)
                                .values_list("conversation_id", flat=True))
        if conversation_ids:
            events.publish_conversations_on_commit(label.tenant_id, conversation_ids)
            _publish_bars(label.tenant_id, conversation_ids)
    logger.info("inbox.label_updated", extra={"label_id": label.pk, "conversations": len(conversation_ids)})
    return label


def do_create_label(tenant, name: str, color: str) -> Label:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    label = Label.objects.create(tenant_id=tenant_id, name=name, color=color)
    logger.info("inbox.label_created", extra={"label_id": label.pk, "tenant_id": tenant_id})
    return label


def do_delete_label(label) -> None:
    """Delete a label; the conversations that carried it lose it, live."""
    from inbox import events

    with transaction.atomic():
        conversation_ids = list(ConversationLabel.objects.for_tenant(label.tenant_id).filter(label=label)
                                .values_list("conversation_id", flat=True))
        label_id = label.pk  # None once deleted
        label.delete()
        if conversation_ids:
            events.publish_conversations_on_commit(label.tenant_id, conversation_ids)
            _publish_bars(label.tenant_id, conversation_ids)
            integrations.record_events(label.tenant_id, [integrations.labels_event(c, removed=[label_id])
                                                         for c in sorted(conversation_ids)])
    logger.info("inbox.label_deleted", extra={"label_id": label_id, "conversations": len(conversation_ids)})


def do_add_label(conversation, label, *, acting_user=None) -> bool:
    """Put the label on the conversation (once: adding it again changes nothing). True if it was added."""
    from inbox import events

    with transaction.atomic():
        _, created = ConversationLabel.objects.for_tenant(conversation.tenant_id).get_or_create(
            conversation_id=conversation.pk, label=label,
            defaults={"tenant_id": conversation.tenant_id, "added_by": acting_user})
        if created:
            events.publish_conversations_on_commit(conversation.tenant_id, [conversation.pk])
            _publish_bars(conversation.tenant_id, [conversation.pk])
            integrations.record_events(conversation.tenant_id, [integrations.labels_event(conversation.pk,
                                                                                           added=[label.pk])])
    logger.info("inbox.label_added", extra={"conversation_id": conversation.pk, "label_id": label.pk,
                                            "user_id": getattr(acting_user, "pk", None), "added": created})
    return created


def do_remove_label(conversation, label, *, acting_user=None) -> bool:
    from inbox import events

    with transaction.atomic():
        deleted, _ = (ConversationLabel.objects.for_tenant(conversation.tenant_id)
                      .filter(conversation_id=conversation.pk, label=label).delete())
        if deleted:
            events.publish_conversations_on_commit(conversation.tenant_id, [conversation.pk])
            _publish_bars(conversation.tenant_id, [conversation.pk])
            integrations.record_events(conversation.tenant_id, [integrations.labels_event(conversation.pk,
                                                                                           removed=[label.pk])])
    logger.info("inbox.label_removed", extra={"conversation_id": conversation.pk, "label_id": label.pk,
                                              "user_id": getattr(acting_user, "pk", None)})
    return bool(deleted)


# --- rendering and live pushes -----------------------------------------------------------------------


def render_labels_bar(conversation, slug: str, all_labels, *, oob: bool = False) -> str:
    """``all_labels``: the tenant's, each with ``on_conversation`` (``tenant_labels(tenant, conversation)``)."""
    return render_to_string("inbox/partials/labels_bar.html", {
        "conversation": conversation, "slug": slug, "all_labels": all_labels, "oob": oob})


def _publish_bars(tenant_id: int, conversation_ids) -> None:
    from inbox import events

    conversation_ids = sorted(set(conversation_ids))[:events.MAX_CONVERSATIONS_NOTIFIED]

    def build():
        from copy import copy

        from inbox.models import Conversation, Tenant

        slug = Tenant.objects.values_list("slug", flat=True).get(pk=tenant_id)
        all_labels = tenant_labels(tenant_id)
        conversations = list(Conversation.objects.for_tenant(tenant_id).filter(pk__in=conversation_ids)
                             .prefetch_related(labels_prefetch(tenant_id)))
        sends = []
        for c in conversations:
            on = {link.label_id for link in c.label_links.all()}
            marked = [copy(label) for label in all_labels]
            for label in marked:
                label.on_conversation = label.pk in on
            sends.append((events.conversation_group(c.pk), render_labels_bar(c, slug, marked, oob=True)))
        return sends

    events.publish_on_commit("labels", build)
