"""Reads of the sync engine."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Q, Sum

from connections.models import Connection
from inbox.models import Contact, Conversation, GroupParticipant, Message
from sync.models import PendingOperation, RawEvent, SearchBacklog, SyncRun


def sync_report(conn: Connection, runs: int = 20) -> dict:
    """What the database holds for one connection (``manage.py sync_report``)."""
    tenant = conn.tenant_id
    conversations = Conversation.objects.for_tenant(tenant).filter(connection=conn)
    conv_contacts = conversations.values("contact_id")
    group_members = GroupParticipant.objects.for_tenant(tenant).filter(
        group_id__in=conversations.filter(is_group=True).values("contact_id"))
    contacts = (Contact.objects.for_tenant(tenant)
                .filter(Q(pk__in=conv_contacts) | Q(pk__in=group_members.values("member_id"))).count())
    msgs = Message.objects.for_tenant(tenant).filter(connection=conn).aggregate(
        total=Count("id"),
        deleted=Count("id", filter=Q(deleted_at__isnull=False)),
        edited=Count("id", filter=Q(edited_at__isnull=False)),
        inbound=Count("id", filter=Q(direction=Message.Direction.INBOUND)),
        outbound=Count("id", filter=Q(direction=Message.Direction.OUTBOUND)),
    )
    journal = dict(RawEvent.objects.for_tenant(tenant).filter(connection=conn)
                   .values_list("state").annotate(n=Count("id")).order_by())
    run_rows = list(SyncRun.objects.for_tenant(tenant).filter(connection=conn).order_by("-started_at", "-id")[:runs])
    skipped: dict[str, int] = {}
    refused: dict[str, int] = {}
    for run in SyncRun.objects.for_tenant(tenant).filter(connection=conn).only("skipped", "refused"):
        for reason, n in run.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + n
        for reason, n in run.refused.items():
            refused[reason] = refused.get(reason, 0) + n
    return {
        "connection": conn.pk,
        "tenant": conn.tenant_id,
        "contacts": contacts,
        "conversations": conversations.count(),
        "group_conversations": conversations.filter(is_group=True).count(),
        "messages": msgs["total"],
        "inbound_messages": msgs["inbound"],
        "outbound_messages": msgs["outbound"],
        "deleted_messages": msgs["deleted"],
        "edited_messages": msgs["edited"],
        "journal": {
            "pending": journal.get(RawEvent.State.PENDING, 0),
            "processed": journal.get(RawEvent.State.PROCESSED, 0),
            "failed": journal.get(RawEvent.State.FAILED, 0),
            "quarantined": journal.get(RawEvent.State.QUARANTINED, 0),
        },
        "quarantined_events": list(
            RawEvent.objects.for_tenant(tenant).filter(connection=conn, state=RawEvent.State.QUARANTINED).order_by("id")
            .values("id", "event_name", "attempts", "error")[:50]
        ),
        "pending_operations": PendingOperation.objects.for_tenant(tenant).filter(connection=conn).count(),
        # Messages of large history batches not in the message-text search yet (sync.search_index).
        "search_backlog": (SearchBacklog.objects.for_tenant(tenant).filter(connection=conn)
                           .aggregate(n=Sum("messages"))["n"] or 0),
        # Messages whose conversation, connection and tenant do not match a conversation row: must be 0.
        # On PostgreSQL the database refuses them (ADR-11); on SQLite the application keeps them (ADR-6).
        "orphaned_messages": Message.objects.unscoped().filter(connection=conn).exclude(
            Exists(Conversation.objects.unscoped().filter(pk=OuterRef("conversation_id"), connection_id=OuterRef("connection_id"),
                                                          tenant_id=OuterRef("tenant_id")))).count(),
        "skipped": skipped,
        # Edits, revokes, reactions and receipts not applied: their sender may not make them.
        "refused_operations": refused,
        "runs": [
            {
                "id": r.pk, "kind": r.kind, "sync_type": r.sync_type,
                "started_at": r.started_at.isoformat(), "finished_at": r.finished_at.isoformat() if r.finished_at else None,
                "chunks": r.chunks, "progress": r.progress, "received": r.received, "saved": r.saved,
                "duplicates": r.duplicates, "skipped": r.skipped, "failed": r.failed, "refused": r.refused,
                "discrepancy": r.discrepancy,
            }
            for r in run_rows
        ],
    }
