"""Safe deletes: deleting a number or a tenant archives it; only a typed confirmation purges (issue 14, item 4).

Archiving keeps everything and loses nothing:

* a number (``connections.actions.do_archive_connection``): its desired state becomes ``logged_out``, so
  the runner holding it unlinks the session and stops hosting it (docs/runner.md); its conversations,
  messages and journal stay, read-only (no replies, no new chats), out of the agents' default inbox and
  reachable by choosing the number in the inbox's number filter (``inbox.selectors``);
* a tenant (``do_archive_tenant``): its active numbers archived the same way, its pages closed to its
  members (404), its rows kept. Platform admins see it in Django admin and restore it.

Restoring (``do_restore_connection``, ``do_restore_tenant``) clears the mark; a restored number stays
logged out until its owner pairs it again (its session was unlinked).

Purging (``check_purge_connection``, ``check_purge_tenant``) needs the number's name or the tenant's slug
typed exactly; it archives first (the session stops, agents stop writing), records a ``PurgeJob`` and
queues ``purge_task``, which deletes in bounded batches, each its own short transaction
(``PURGE_BATCH`` rows a statement), the job's ``counts`` updated after each, within a time budget after
which the task queues itself again: a tenant with a million messages never holds one long transaction or
table lock. Message rows go through ``_purge_messages_batch`` and then ``inbox.purge.do_purge_conversations``
(the conversation purge: raw DELETEs, since the message FKs are not database constraints, ADR-6); the
journal, sync runs, state history and the rest in id batches; the number or tenant row last, when only
small rows are left for the ORM's cascade. Media files no remaining row names are deleted from storage after
each batch's commit; a tenant's purge ends by sweeping its whole media folder.

Logged as JSON lines: ``purge.requested`` (who, what) and ``purge.done`` / ``purge.failed`` (counts).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from connections.models import Connection, ConnectionEvent
from inbox.media import delete_media_rows, delete_unreferenced_files_on_commit, storage
from inbox.models import (
    Alert,
    CannedResponse,
    Contact,
    ContactIdentity,
    Conversation,
    GroupParticipant,
    Label,
    MediaFile,
    Membership,
    Message,
    MessageRevision,
    MessageSearchEntry,
    PurgeJob,
    Tenant,
)
from inbox.purge import do_purge_conversations

logger = logging.getLogger(__name__)
Kind = ConnectionEvent.Kind


class DeletionRefused(ValueError):
    """A purge or restore that may not go ahead; the message says why and what to type."""


def _username(user) -> str:
    return user.get_username() if user is not None else ""


# --- archive and restore ------------------------------------------------------------------------------
def do_archive_tenant(tenant: Tenant, user=None) -> int:
    """Archive a tenant and its active numbers (their sessions are logged out); returns numbers archived."""
    from connections.actions import do_archive_connection

    now = timezone.now()
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(archived_at=now)
        tenant.archived_at = now
        active = list(Connection.objects.for_tenant(tenant).filter(archived_at__isnull=True))
        for conn in active:
            do_archive_connection(conn, user, at=now)
    logger.info("tenant.archived", extra={"tenant": tenant.slug, "tenant_id": tenant.pk, "numbers": len(active),
                                          "user": _username(user)})
    return len(active)


def _purge_pending(kind: str, target_id: int) -> bool:
    return PurgeJob.objects.filter(kind=kind, target_id=target_id,
                                   status__in=[PurgeJob.Status.QUEUED, PurgeJob.Status.RUNNING]).exists()


def check_restore_tenant(tenant: Tenant, user=None) -> int:
    """Bring an archived tenant back with the numbers archived together with it (still logged out)."""
    if tenant.archived_at is None:
        raise DeletionRefused(_("The workspace %(slug)s is not archived.") % {"slug": tenant.slug})
    if _purge_pending(PurgeJob.Kind.TENANT, tenant.pk):
        raise DeletionRefused(_("The workspace %(slug)s is being purged; it cannot be restored.") % {"slug": tenant.slug})
    with transaction.atomic():
        numbers = [c for c in Connection.objects.for_tenant(tenant).filter(archived_at=tenant.archived_at)]
        for conn in numbers:
            _restore_connection(conn, user)
        Tenant.objects.filter(pk=tenant.pk).update(archived_at=None)
        tenant.archived_at = None
    logger.info("tenant.restored", extra={"tenant": tenant.slug, "tenant_id": tenant.pk, "numbers": len(numbers),
                                          "user": _username(user)})
    return len(numbers)


def check_restore_connection(connection: Connection, user=None) -> None:
    """Bring an archived number back (logged out: its owner pairs it again), within the tenant's limit."""
    if connection.archived_at is None:
        raise DeletionRefused(_("The number %(name)s is not archived.") % {"name": connection.name})
    if _purge_pending(PurgeJob.Kind.CONNECTION, connection.pk):
        raise DeletionRefused(_("The number %(name)s is being purged; it cannot be restored.") % {"name": connection.name})
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(pk=connection.tenant_id)
        if tenant.archived_at is not None:
            raise DeletionRefused(_("Restore the workspace %(slug)s first.") % {"slug": tenant.slug})
        active = Connection.objects.for_tenant(tenant).filter(archived_at__isnull=True).count()
        if active >= settings.TENANT_MAX_NUMBERS:
            raise DeletionRefused(_("The workspace %(slug)s already has %(count)s numbers, the most allowed.")
                                  % {"slug": tenant.slug, "count": active})
        _restore_connection(connection, user)


def _restore_connection(connection: Connection, user) -> None:
    from connections.actions import do_record_event
    from inbox.events import publish_connection_on_commit

    Connection.objects.unscoped().filter(pk=connection.pk).update(archived_at=None, updated_at=timezone.now())
    connection.archived_at = None
    do_record_event(connection, Kind.RESTORED, "restored" + (f" by {_username(user)}" if user else ""))
    publish_connection_on_commit(connection.tenant_id, connection.pk)
    logger.info("connections.restored", extra={"connection_id": connection.pk, "user": _username(user)})


def connection_counts(connection: Connection) -> list[tuple[str, int]]:
    """What a purge of this number deletes (the admin's confirmation page)."""
    from sync.models import RawEvent

    cid = connection.pk
    return [(_("conversations"), Conversation.objects.for_tenant(connection.tenant_id).filter(connection_id=cid).count()),
            (_("messages"), Message.objects.for_tenant(connection.tenant_id).filter(connection_id=cid).count()),
            (_("media files"), MediaFile.objects.for_tenant(connection.tenant_id).filter(connection_id=cid).count()),
            (_("journal events"), RawEvent.objects.for_tenant(connection.tenant_id).filter(connection_id=cid).count())]


def tenant_counts(tenant: Tenant) -> list[tuple[str, int]]:
    """What a purge of this tenant deletes (the admin's confirmation page)."""
    return [(_("numbers"), Connection.objects.for_tenant(tenant).count()),
            (_("contacts"), Contact.objects.for_tenant(tenant).count()),
            (_("conversations"), Conversation.objects.for_tenant(tenant).count()),
            (_("messages"), Message.objects.for_tenant(tenant).count()),
            (_("media files"), MediaFile.objects.for_tenant(tenant).count()),
            (_("members"), Membership.objects.filter(tenant=tenant).count())]


def purges_in_progress(tenant: Tenant) -> list[PurgeJob]:
    """The tenant's number purges queued or running (the numbers page shows their progress)."""
    return list(PurgeJob.objects.filter(kind=PurgeJob.Kind.CONNECTION, tenant_id_value=tenant.pk,
                                        status__in=[PurgeJob.Status.QUEUED, PurgeJob.Status.RUNNING])
                .order_by("created_at"))


# --- purge: the typed confirmation, then the batched task ---------------------------------------------
def check_purge_connection(connection: Connection, confirm: str, user=None) -> PurgeJob:
    """Purge a number with everything it holds, if ``confirm`` is its name exactly. Archives it now (the
    runner stops its session) and queues the batched purge; returns the job."""
    if (confirm or "").strip() != connection.name:
        raise DeletionRefused(_("Nothing was deleted: to purge this number and its history, type its name "
                                "exactly: %(name)s") % {"name": connection.name})
    from connections.actions import do_archive_connection

    with transaction.atomic():
        if connection.archived_at is None:
            do_archive_connection(connection, user)
        job = _queue_purge(PurgeJob.Kind.CONNECTION, connection.pk, connection.name, connection.tenant_id, user)
    return job


def check_purge_tenant(tenant: Tenant, confirm: str, user=None) -> PurgeJob:
    """Purge a tenant with everything it holds, if ``confirm`` is its slug exactly (archived first)."""
    if (confirm or "").strip() != tenant.slug:
        raise DeletionRefused(_("Nothing was deleted: to purge this workspace and all its data, type its slug "
                                "exactly: %(slug)s") % {"slug": tenant.slug})
    with transaction.atomic():
        if tenant.archived_at is None:
            do_archive_tenant(tenant, user)
        job = _queue_purge(PurgeJob.Kind.TENANT, tenant.pk, tenant.slug, tenant.pk, user)
    return job


def _queue_purge(kind: str, target_id: int, label: str, tenant_id: int, user) -> PurgeJob:
    """A job for the target and its task on commit; a purge already queued or running is returned as it is
    (its task is on its way: a second one would only race it)."""
    from inbox.tasks import purge_task

    running = PurgeJob.objects.filter(kind=kind, target_id=target_id,
                                      status__in=[PurgeJob.Status.QUEUED, PurgeJob.Status.RUNNING]).first()
    if running is not None:
        return running
    job = PurgeJob.objects.create(kind=kind, target_id=target_id, target_label=label, tenant_id_value=tenant_id,
                                  requested_by=_username(user))
    transaction.on_commit(lambda: purge_task.delay(job.pk))
    logger.warning("purge.requested", extra={"job_id": job.pk, "kind": kind, "target_id": target_id, "target": label,
                                             "tenant_id": tenant_id, "user": _username(user)})
    return job


class _Keyset:
    """Where a step's batches have got to (the last primary key taken): each batch starts after it, so the
    next batch's index scan does not wade through the dead rows of the batches before it (a purge from the
    front of an index otherwise slows down quadratically until vacuum runs)."""

    def __init__(self):
        self.after = 0

    def next_ids(self, queryset, batch: int) -> list[int]:
        ids = list(queryset.filter(pk__gt=self.after).order_by("pk").values_list("pk", flat=True)[:batch])
        if ids:
            self.after = ids[-1]
        return ids


def _purge_messages_batch(connection_id: int, batch: int, keyset: _Keyset | None = None) -> int:
    """Delete up to ``batch`` messages of a number with their revisions, search entries and media rows
    (files after the commit), in one short transaction. Conversations are left for ``do_purge_conversations``."""
    keyset = keyset or _Keyset()
    with transaction.atomic():
        ids = keyset.next_ids(Message.objects.unscoped().filter(connection_id=connection_id), batch)
        if not ids:
            return 0
        MessageSearchEntry.objects.unscoped().filter(message_id__in=ids)._raw_delete(MessageSearchEntry.objects.db)
        MessageRevision.objects.unscoped().filter(message_id__in=ids)._raw_delete(MessageRevision.objects.db)
        delete_unreferenced_files_on_commit(delete_media_rows(MediaFile.objects.unscoped().filter(message_id__in=ids)))
        return Message.objects.unscoped().filter(pk__in=ids)._raw_delete(Message.objects.db)


def _delete_batch(queryset, batch: int, keyset: _Keyset) -> int:
    """Up to ``batch`` rows of ``queryset`` through the ORM (its small cascades and SET_NULLs kept)."""
    with transaction.atomic():
        ids = keyset.next_ids(queryset, batch)
        if ids:
            queryset.filter(pk__in=ids).delete()
        return len(ids)


def _batches(queryset):
    """One step's batch function over ``queryset``, with its own keyset."""
    keyset = _Keyset()
    return lambda b: _delete_batch(queryset, b, keyset)


def _connection_steps(connection_id: int):
    """(name, one batch) for a number, in the order that keeps every foreign key satisfied."""
    from sync.models import PendingOperation, RawEvent, SearchBacklog, SyncRun

    conversations = Conversation.objects.unscoped().filter(connection_id=connection_id)
    messages, chats = _Keyset(), _Keyset()
    yield "messages", lambda b: _purge_messages_batch(connection_id, b, messages)
    yield "conversations", lambda b: do_purge_conversations(chats.next_ids(conversations, b)).conversations
    for name, model in (("pending_operations", PendingOperation), ("raw_events", RawEvent), ("sync_runs", SyncRun),
                        ("search_backlog", SearchBacklog), ("connection_events", ConnectionEvent), ("alerts", Alert)):
        yield name, _batches(model.objects.unscoped().filter(connection_id=connection_id))
    yield "numbers", lambda b: _delete_connection_row(connection_id)


def _delete_connection_row(connection_id: int) -> int:
    from connections.nudge import nudge_on_commit
    from connections.protocol import Nudge

    with transaction.atomic():
        deleted = Connection.objects.unscoped().filter(pk=connection_id).delete()[1].get("connections.Connection", 0)
        nudge_on_commit(connection_id, Nudge.LOGOUT)  # a runner still holding it lets it go at once
    return deleted


def _integration_models() -> list:
    """The tenant-owned models of the apps outside the core (the api app's tokens, idempotency keys, webhook
    endpoints and deliveries), found in the app registry (the core never imports those apps), children
    before the parents they point at, so each table goes in its own batches instead of one cascade."""
    from django.apps import apps

    from inbox.tenancy import TenantOwned

    models = [m for m in apps.get_models()
              if issubclass(m, TenantOwned) and m._meta.app_label not in ("inbox", "sync", "connections")]

    def parents_in_list(model):
        return sum(1 for f in model._meta.get_fields()
                   if f.many_to_one and f.concrete and f.related_model in models and f.related_model is not model)

    return sorted(models, key=lambda m: (-parents_in_list(m), m._meta.label))


def _tenant_steps(tenant_id: int):
    from sync.models import JidMapping

    for cid in Connection.objects.unscoped().filter(tenant_id=tenant_id).order_by("pk").values_list("pk", flat=True):
        yield from _connection_steps(cid)
    scoped = {m._meta.db_table: m for m in _integration_models()}
    scoped |= {"group_participants": GroupParticipant, "identities": ContactIdentity, "contacts": Contact,
              "jid_mappings": JidMapping, "alerts": Alert, "labels": Label, "canned_responses": CannedResponse}
    for name, model in scoped.items():
        yield name, _batches(model.objects.unscoped().filter(tenant_id=tenant_id))
    yield "memberships", _batches(Membership.objects.filter(tenant_id=tenant_id))
    yield "media_files", lambda b: _sweep_tenant_media(tenant_id)
    yield "tenants", lambda b: _delete_tenant_row(tenant_id)


def _delete_tenant_row(tenant_id: int) -> int:
    with transaction.atomic():
        return Tenant.objects.filter(pk=tenant_id).delete()[1].get("inbox.Tenant", 0)


def _sweep_tenant_media(tenant_id: int) -> int:
    """Every file left under the tenant's media folder (its rows are all gone by now): 0 once empty."""
    store = storage()
    removed = 0

    def walk(path):
        nonlocal removed
        try:
            dirs, files = store.listdir(path)
        except (FileNotFoundError, NotImplementedError):
            return
        for name in files:
            store.delete(f"{path}/{name}")
            removed += 1
        for d in dirs:
            walk(f"{path}/{d}")

    walk(f"media/{int(tenant_id)}")
    return removed


def do_run_purge(job_id: int, *, batch: int | None = None, time_budget: float | None = None) -> bool:
    """Carry a purge job forward in batches; returns True when it is finished (done or failed), False when
    the time budget ran out first (the caller queues it again). Safe to run again after a crash: every
    step deletes what is still there."""
    batch = batch or settings.PURGE_BATCH
    budget = settings.PURGE_TIME_BUDGET_SECONDS if time_budget is None else time_budget
    job = PurgeJob.objects.get(pk=job_id)
    if job.status in (PurgeJob.Status.DONE, PurgeJob.Status.FAILED):
        return True
    if job.status == PurgeJob.Status.QUEUED:
        job.status, job.started_at = PurgeJob.Status.RUNNING, timezone.now()
        job.save(update_fields=["status", "started_at"])
    started = time.monotonic()
    steps = _connection_steps(job.target_id) if job.kind == PurgeJob.Kind.CONNECTION else _tenant_steps(job.target_id)
    try:
        for name, step in steps:
            while True:
                if time.monotonic() - started > budget:
                    return False
                deleted = step(batch)
                if deleted:
                    job.counts[name] = job.counts.get(name, 0) + deleted
                    PurgeJob.objects.filter(pk=job.pk).update(counts=job.counts)
                if deleted < batch or name in ("numbers", "tenants", "media_files"):
                    break
    except Exception as exc:
        PurgeJob.objects.filter(pk=job.pk).update(status=PurgeJob.Status.FAILED, error=repr(exc)[:2000],
                                                  finished_at=timezone.now())
        logger.exception("purge.failed", extra={"job_id": job.pk, "kind": job.kind, "target_id": job.target_id,
                                                "target": job.target_label, "counts": job.counts})
        return True
    PurgeJob.objects.filter(pk=job.pk).update(status=PurgeJob.Status.DONE, finished_at=timezone.now())
    logger.warning("purge.done", extra={"job_id": job.pk, "kind": job.kind, "target_id": job.target_id,
                                        "target": job.target_label, "tenant_id": job.tenant_id_value,
                                        "user": job.requested_by, "counts": job.counts})
    return True
