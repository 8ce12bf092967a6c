"""Media files: registering received media, storing fetched bytes, queueing attachments, accounting.

Writes follow the house rules (``do_*`` change state, ``check_*`` validate then call ``do_*``); the
runner's child calls ``claim_due_media`` / ``do_store_media`` / ``do_record_fetch_failure`` around its
transport's download, the sync engine calls ``do_register_received_media`` for the media messages a
batch inserted, the reply view calls ``check_queue_media_reply``. See docs/media.md.

Storage is Django's ``default`` storage (``STORAGES``): ``media/<tenant id>/<sha[:2]>/<sha256>``, one
file per distinct content per tenant. Nothing here builds a public URL: files are read back through
the access-checked view only.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from config.backoff import backoff
from connections.protocol import Nudge
from inbox import mediatypes
from inbox.models import Conversation, MediaFile, Message

logger = logging.getLogger(__name__)
State = MediaFile.State
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})


class MediaRefused(ValueError):
    """An attachment the inbox will not send (too large, empty); the message is meant for the form."""


def storage():
    return storages["default"]


def storage_name(tenant_id: int, sha256: str) -> str:
    return f"media/{int(tenant_id)}/{sha256[:2]}/{sha256}"


def nudge_fetch_on_commit(connection_ids) -> None:
    """Tell the runners holding these numbers, on commit, that media waits to be fetched."""
    from connections.nudge import nudge_on_commit

    for cid in sorted(set(connection_ids)):
        nudge_on_commit(cid, Nudge.FETCH_MEDIA)


# --- received media ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceivedMedia:
    message_id: int
    connection_id: int
    kind: str
    ref: bytes
    mimetype: str = ""
    size: int | None = None
    filename: str = ""
    history: bool = False


def do_register_received_media(tenant_id: int, items: list[ReceivedMedia]) -> int:
    """Pending rows for media messages just stored (call inside the batch's transaction); the runners
    holding their connections are nudged on commit to fetch them. A message already registered is left."""
    if not items:
        return 0
    rows = [MediaFile(tenant_id=tenant_id, message_id=i.message_id, connection_id=i.connection_id, kind=i.kind,
                      ref=i.ref, declared_mimetype=i.mimetype, declared_size=i.size, filename=i.filename,
                      history=i.history) for i in items]
    MediaFile.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
    nudge_fetch_on_commit(i.connection_id for i in items)
    return len(rows)


def fetch_retry_delay(attempt: int) -> timedelta:
    return timedelta(seconds=backoff(attempt, base=settings.MEDIA_FETCH_BACKOFF_BASE_SECONDS,
                                     cap=settings.MEDIA_FETCH_BACKOFF_CAP_SECONDS, jitter=True))


def claim_due_media(connection_id: int, limit: int) -> list[MediaFile]:
    """The next pending media of a connection to download (live before history, oldest first).

    Claiming counts the attempt and moves ``next_attempt_at`` to the retry time, committed before the
    download: a child that dies mid-download leaves the row to be retried then, never lost. Call only
    while holding the connection's lease (one child fetches a connection's media)."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(MediaFile.objects.unscoped()
                    .filter(connection_id=connection_id, state=State.PENDING)
                    .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
                    .order_by("history", "id").select_for_update(skip_locked=True)[:limit])
        for media in rows:
            media.attempts += 1
            media.next_attempt_at = now + fetch_retry_delay(media.attempts)
        MediaFile.objects.bulk_update(rows, ["attempts", "next_attempt_at"])
    return rows


def _thumbnail(data: bytes) -> tuple[bytes, str] | None:
    """A small JPEG (PNG when transparent) of an image, or None when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.thumbnail((settings.MEDIA_THUMBNAIL_PIXELS, settings.MEDIA_THUMBNAIL_PIXELS))
            out = io.BytesIO()
            if img.mode in ("RGBA", "LA", "P"):
                img.convert("RGBA").save(out, "PNG", optimize=True)
                return out.getvalue(), "png"
            img.convert("RGB").save(out, "JPEG", quality=80)
            return out.getvalue(), "jpg"
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _save(tenant_id: int, data: bytes) -> tuple[str, str, str, str]:
    """Store ``data`` content-addressed; returns (sha256, sniffed mimetype, storage name, thumbnail name)."""
    sha = hashlib.sha256(data).hexdigest()
    mimetype = mediatypes.sniff(data)
    name = storage_name(tenant_id, sha)
    store = storage()
    if not store.exists(name):
        saved = store.save(name, ContentFile(data))
        if saved != name:  # a concurrent save of the same bytes won the name: ours is a duplicate
            store.delete(saved)
    thumb_name = ""
    if mimetype in mediatypes.THUMBNAIL_TYPES:
        thumb_name = f"{name}.thumb"
        if not store.exists(thumb_name):
            thumb = _thumbnail(data)
            if thumb is None:
                thumb_name = ""
            else:
                saved = store.save(thumb_name, ContentFile(thumb[0]))
                if saved != thumb_name:
                    store.delete(saved)
    return sha, mimetype, name, thumb_name


def do_store_media(media: MediaFile, data: bytes, *, expected_sha256: str = "", publish: bool = True) -> bool:
    """Store downloaded bytes and mark the media ``fetched`` (the message re-renders in open pages;
    ``publish=False``: the caller publishes a batch at once with ``publish_media_messages_on_commit``).

    A file over its kind's size limit, or whose checksum is not the one WhatsApp's message announced,
    is not stored: the row fails with the reason. Returns True if stored."""
    limit = mediatypes.max_bytes(media.kind)
    if len(data) > limit:
        do_record_fetch_failure(media, f"the file is {len(data)} bytes; the limit for a {media.kind} is {limit}",
                                final=True)
        return False
    if expected_sha256 and hashlib.sha256(data).hexdigest() != expected_sha256:
        do_record_fetch_failure(media, "the downloaded file does not match the checksum WhatsApp announced")
        return False
    sha, mimetype, name, thumb = _save(media.tenant_id, data)
    now = timezone.now()
    with transaction.atomic():
        updated = MediaFile.objects.unscoped().filter(pk=media.pk).exclude(state=State.FETCHED).update(
            state=State.FETCHED, sha256=sha, size=len(data), mimetype=mimetype, storage_name=name,
            thumbnail_name=thumb, error="", next_attempt_at=None, fetched_at=now, updated_at=now)
        if updated and publish:
            publish_media_messages_on_commit(media.tenant_id, [media.message_id])
    logger.info("media.stored", extra={"media_id": media.pk, "message_id": media.message_id, "bytes": len(data),
                                       "mimetype": mimetype, "connection_id": media.connection_id})
    return bool(updated)


def do_record_fetch_failure(media: MediaFile, error: str, *, expired: bool = False, final: bool = False,
                            publish: bool = True) -> str:
    """After a failed download: ``expired`` (WhatsApp no longer has it), ``failed`` after the last attempt
    (or ``final``), else pending again at the retry time the claim set. Returns the new state."""
    if expired:
        state = State.EXPIRED
    elif final or media.attempts >= settings.MEDIA_FETCH_MAX_ATTEMPTS:
        state = State.FAILED
    else:
        state = State.PENDING
    with transaction.atomic():
        MediaFile.objects.unscoped().filter(pk=media.pk).exclude(state=State.FETCHED).update(
            state=state, error=error[:2000], updated_at=timezone.now(),
            **({} if state == State.PENDING else {"next_attempt_at": None}))
        if state != State.PENDING and publish:
            publish_media_messages_on_commit(media.tenant_id, [media.message_id])
    logger.warning("media.fetch_failed", extra={"media_id": media.pk, "connection_id": media.connection_id,
                                                "attempt": media.attempts, "state": state, "error": error[:300]})
    return state


def check_retry_media(media: MediaFile) -> MediaFile:
    if media.state not in (State.FAILED, State.EXPIRED):
        raise MediaRefused("Only media that could not be downloaded can be tried again.")
    return do_retry_media(media)


def do_retry_media(media: MediaFile) -> MediaFile:
    """Another round of attempts for failed or expired media; the runner is nudged on commit."""
    with transaction.atomic():
        MediaFile.objects.unscoped().filter(pk=media.pk).update(
            state=State.PENDING, attempts=0, next_attempt_at=None, error="", updated_at=timezone.now())
        publish_media_messages_on_commit(media.tenant_id, [media.message_id])
        nudge_fetch_on_commit([media.connection_id])
    media.refresh_from_db()
    return media


def publish_media_messages_on_commit(tenant_id: int, message_ids) -> None:
    """Re-render these messages in open threads (their media changed). No conversation list update: a
    file arriving does not change a conversation's row or its place in the list."""
    from inbox.events import publish_messages_on_commit

    if message_ids:
        publish_messages_on_commit(tenant_id, [], message_ids)


def download_name(media: MediaFile) -> str:
    """The file name a download gets: the sender's for documents, else ``<kind>-<id>.<ext>`` by sniffed type."""
    if media.filename:
        return media.filename
    ext = mediatypes.EXTENSIONS.get(media.mimetype, "bin")
    return f"{media.kind}-{media.pk}.{ext}"


def read_bytes(media: MediaFile) -> bytes:
    with storage().open(media.storage_name, "rb") as f:
        return f.read()


# --- attachments from the reply box -------------------------------------------------------------------
def check_queue_media_reply(conversation: Conversation, user, upload, caption: str = "") -> Message:
    """Validate an attachment (size for the kind its bytes say it is; not empty), then queue it."""
    caption = (caption or "").replace("\r\n", "\n").strip()
    from inbox.actions import MAX_REPLY_LENGTH

    if len(caption) > MAX_REPLY_LENGTH:
        raise MediaRefused(f"The caption is {len(caption)} characters long; WhatsApp accepts at most {MAX_REPLY_LENGTH}.")
    size = upload.size or 0
    if size <= 0:
        raise MediaRefused("The file is empty.")
    if size > mediatypes.max_bytes("document"):
        raise MediaRefused(f"The file is {_mb(size)}; WhatsApp accepts documents up to {_mb(mediatypes.max_bytes('document'))}.")
    upload.seek(0)
    mimetype = mediatypes.sniff(upload.read(512))
    kind = mediatypes.SEND_KIND.get(mimetype, "document")
    if size > mediatypes.max_bytes(kind):
        raise MediaRefused(f"The {kind} is {_mb(size)}; WhatsApp accepts a {kind} up to {_mb(mediatypes.max_bytes(kind))}.")
    upload.seek(0)
    data = upload.read()
    filename = (getattr(upload, "name", "") or "file").replace("/", "_").replace("\\", "_")[:255]
    return do_queue_media_reply(conversation, user, data, kind=kind, filename=filename, caption=caption)


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def do_queue_media_reply(conversation: Conversation, user, data: bytes, *, kind: str, filename: str,
                         caption: str = "") -> Message:
    """An outbound media message in the outbox (status queued) with its stored file; sent like text."""
    from uuid import uuid4

    from inbox import events
    from inbox.actions import _nudge_on_commit
    from inbox.formatting import message_preview
    from inbox.search import index_messages

    sha, mimetype, name, thumb = _save(conversation.tenant_id, data)
    now = timezone.now()
    with transaction.atomic():
        message = Message.objects.create(
            tenant_id=conversation.tenant_id, conversation=conversation, connection_id=conversation.connection_id,
            external_id=f"local-{uuid4().hex}", direction=Message.Direction.OUTBOUND, status=Message.Status.QUEUED,
            type=kind, body=caption, media_mimetype=mimetype, media_size=len(data),
            media_filename=filename if kind == "document" else "", sender_user=user, sent_at=now)
        MediaFile.objects.create(
            tenant_id=conversation.tenant_id, message=message, connection_id=conversation.connection_id, kind=kind,
            declared_mimetype=mimetype, declared_size=len(data), filename=filename, state=State.FETCHED,
            sha256=sha, size=len(data), mimetype=mimetype, storage_name=name, thumbnail_name=thumb, fetched_at=now)
        if caption:
            index_messages([message.pk])
        preview = message_preview(caption) if caption else f"[{kind}] {filename if kind == 'document' else ''}".strip()
        Conversation.objects.for_tenant(conversation.tenant_id).filter(pk=conversation.pk).update(
            last_message_at=now, last_message_preview=preview[:200], updated_at=now)
        events.publish_messages_on_commit(conversation.tenant_id, [conversation.pk], [message.pk])
        _nudge_on_commit(conversation.connection_id, Nudge.SEND, message_id=message.pk)
    logger.info("inbox.media_reply_queued", extra={"conversation_id": conversation.pk, "message_id": message.pk,
                                                   "kind": kind, "bytes": len(data)})
    return message


# --- accounting and removal -------------------------------------------------------------------------
def tenant_media_bytes(tenant_id: int) -> int:
    """Bytes the tenant's stored files take (each distinct file once, thumbnails not counted)."""
    sizes = dict(MediaFile.objects.for_tenant(tenant_id).filter(state=State.FETCHED).exclude(sha256="")
                 .values_list("sha256", "size").distinct())
    return sum(size or 0 for size in sizes.values())


def media_progress(connection_id: int) -> dict:
    """Counts by state of a connection's media (the numbers page's background download progress)."""
    from django.db.models import Count

    rows = (MediaFile.objects.unscoped().filter(connection_id=connection_id).values("state")
            .annotate(n=Count("id")).values_list("state", "n"))
    counts = {s.value: 0 for s in State}
    counts.update(dict(rows))
    return counts


def delete_media_rows(queryset, using=None) -> list[tuple[int, str, str]]:
    """Delete these MediaFile rows (inside the caller's transaction); returns what their files were, for
    ``delete_unreferenced_files_on_commit``."""
    files = list(queryset.exclude(storage_name="").values_list("tenant_id", "storage_name", "thumbnail_name"))
    queryset._raw_delete(using or queryset.db)
    return files


def delete_unreferenced_files_on_commit(files: list[tuple[int, str, str]]) -> None:
    """After commit, delete the files no remaining row of their tenant names."""
    if files:
        transaction.on_commit(lambda: delete_unreferenced_files(files))


def delete_unreferenced_files(files: list[tuple[int, str, str]]) -> int:
    store = storage()
    deleted = 0
    for tenant_id, name, thumb in sorted(set(files)):
        if MediaFile.objects.for_tenant(tenant_id).filter(storage_name=name).exists():
            continue
        for n in (name, thumb):
            if n and store.exists(n):
                store.delete(n)
                deleted += 1
    return deleted
