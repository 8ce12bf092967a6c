"""Media files: registering received media, storing fetched bytes, queueing attachments, accounting.

Writes follow the house rules (``do_*`` change state, ``check_*`` validate then call ``do_*``); the
runner's child calls ``claim_due_media`` / ``do_store_media`` / ``do_record_fetch_failure`` around its
transport's download, the sync engine registers the media messages a batch inserted in one statement
(``sync.statements.insert_media_of_messages``), the reply view calls ``check_queue_media_reply``. See docs/media.md.

Storage is Django's ``default`` storage (``STORAGES``): ``media/<tenant id>/<sha[:2]>/<sha256>``, one
file per distinct content per tenant. Nothing here builds a public URL: files are read back through
the access-checked view only.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from config.backoff import backoff
from connections.protocol import Nudge
from inbox import mediatypes, transcode
from inbox.models import Conversation, MediaFile, Message

logger = logging.getLogger(__name__)
State = MediaFile.State
MEDIA_TYPES = frozenset({"image", "video", "audio", "document", "sticker"})
# The kinds' names inside sentences ("The image is 20 MB; ...").


class MediaRefused(ValueError):
    """An attachment the inbox will not send (too large, empty); the message is meant for the form."""


def storage():
    return storages["default"]


def storage_name(tenant_id: int, sha256: str) -> str:
    return f"media/{int(tenant_id)}/{sha256[:2]}/{sha256}"


def open_stored(name: str, first: int = 0, last: int | None = None):
    """A readable binary stream of a stored file from byte ``first`` (to ``last`` inclusive, or the end);
    ``FileNotFoundError`` when there is no such file. The caller closes it.

    On S3 this is one GetObject (ranged when a range is asked) whose body streams from the store: nothing
    is downloaded whole first (the storage API's ``open`` would copy the object before the first read). On
    any other storage, the storage API's ``open`` and a ``seek``: read at most ``last - first + 1`` bytes."""
    from config.storage import is_s3

    store = storage()
    if not is_s3(store):
        f = store.open(name, "rb")
        if first:
            f.seek(first)
        return f
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    params = {"Bucket": store.bucket_name, "Key": store._normalize_name(clean_name(name))}
    if first or last is not None:
        params["Range"] = f"bytes={first}-{'' if last is None else last}"
    try:
        return store.connection.meta.client.get_object(**params)["Body"]
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(f"no stored file {name}") from err
        raise


def nudge_fetch_on_commit(connection_ids) -> None:
    """Tell the runners holding these numbers, on commit, that media waits to be fetched."""
    from connections.nudge import nudge_on_commit

    for cid in sorted(set(connection_ids)):
        nudge_on_commit(cid, Nudge.FETCH_MEDIA)


# --- received media (rows registered by the sync's batch statement: sync.statements.insert_media_of_messages) ---


def fetch_retry_delay(attempt: int) -> timedelta:
    return timedelta(seconds=backoff(attempt, base=settings.MEDIA_FETCH_BACKOFF_BASE_SECONDS,
                                     cap=settings.MEDIA_FETCH_BACKOFF_CAP_SECONDS, jitter=True))


def due_media(connection) -> QuerySet:
    """Pending media of ``connection`` (an id or an ``OuterRef``) due for a download attempt now."""
    return (MediaFile.objects.unscoped().filter(connection_id=connection, state=State.PENDING)
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())))


def claim_due_media(connection_id: int, limit: int) -> list[MediaFile]:
    """The next pending media of a connection to download (live before history, oldest first).

    Claiming counts the attempt and moves ``next_attempt_at`` to the retry time, committed before the
    download: a child that dies mid-download leaves the row to be retried then, never lost. Call only
    while holding the connection's lease (one child fetches a connection's media)."""
    now = timezone.now()
    with transaction.atomic():
        rows = list(due_media(connection_id).order_by("history", "id").select_for_update(skip_locked=True)[:limit])
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


def store_bytes(tenant_id: int, data: bytes) -> tuple[str, str, str, str]:
    """Store a file's bytes as received media are stored (content-addressed, sniffed, thumbnail for images);
    returns (sha256, sniffed mimetype, storage name, thumbnail name). For other writers (chat exports)."""
    return _save(tenant_id, data)


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
    if mimetype in mediatypes.THUMBNAIL_TYPES or mimetype.startswith("video/"):
        # An image's thumbnail, or a video's poster frame (ffmpeg; none without it: the video shows bare).
        thumb_name = f"{name}.thumb"
        if not store.exists(thumb_name):
            thumb = _thumbnail(data) if mimetype in mediatypes.THUMBNAIL_TYPES else transcode.video_poster(data)
            if thumb is None:
                thumb_name = ""
            else:
                saved = store.save(thumb_name, ContentFile(thumb[0] if isinstance(thumb, tuple) else thumb))
                if saved != thumb_name:
                    store.delete(saved)
    return sha, mimetype, name, thumb_name


class _HashingReader(io.IOBase):
    """Reads through to ``source`` and hashes what passes (a stream stored without holding it in memory).

    A file object for every storage: readable, not seekable (read once, front to back; S3's upload rewinds
    only seekable files), with ``closed`` (django-storages asks)."""

    def __init__(self, source):
        super().__init__()
        self.source, self.sha256, self.size = source, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def read(self, n=-1):
        data = self.source.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


class ChecksumMismatch(ValueError):
    """A stream's bytes are not those its sha256 names."""


def store_verified_stream(tenant_id: int, sha256: str, source, mimetype: str) -> tuple[str, str, bool]:
    """Store a file known by its sha256 (an import's), streamed from ``source`` in blocks and checked against
    the checksum as it goes: a mismatch deletes what was written and raises ``ChecksumMismatch``. A file the
    tenant already has is not written again. Returns (storage name, thumbnail name, whether it was written)."""
    from django.core.files import File

    name = storage_name(tenant_id, sha256)
    store = storage()
    written = False
    if not store.exists(name):
        reader = _HashingReader(source)
        saved = store.save(name, File(reader, name=sha256))
        if reader.sha256.hexdigest() != sha256:
            store.delete(saved)
            raise ChecksumMismatch(f"the file named {sha256} holds other bytes ({reader.sha256.hexdigest()})")
        if saved != name:  # a concurrent save of the same bytes won the name
            store.delete(saved)
        written = saved == name
    thumb_name = ""
    if mimetype in mediatypes.THUMBNAIL_TYPES:
        thumb_name = f"{name}.thumb"
        if not store.exists(thumb_name):
            with store.open(name, "rb") as f:  # an image: bounded by its kind's size limit
                thumb = _thumbnail(f.read())
            if thumb is None:
                thumb_name = ""
            else:
                store.save(thumb_name, ContentFile(thumb[0]))
    return name, thumb_name, written


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
        raise MediaRefused(_("Only media that could not be downloaded can be tried again."))
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


def publish_fetch_progress_on_commit(tenant_ids) -> None:
    """The numbers pages' media counts moved (a batch downloaded or given up): open pages refresh them."""
    from inbox.events import publish_numbers_stats_on_commit

    publish_numbers_stats_on_commit(tenant_ids)


def download_name(media: MediaFile) -> str:
    """The file name a download gets: the sender's for documents, else ``<kind>-<id>.<ext>`` by sniffed type."""
    if media.filename:
        return media.filename
    ext = mediatypes.EXTENSIONS.get(media.mimetype, "bin")
    return f"{media.kind}-{media.pk}.{ext}"


def read_bytes(media: MediaFile) -> bytes:
    """The whole stored file (an attachment the runner sends: bounded by its kind's size limit)."""
    with open_stored(media.storage_name) as f:
        return f.read()


# --- attachments from the reply box -------------------------------------------------------------------
def check_queue_media_reply(conversation: Conversation, user, upload, caption: str = "") -> Message:
    """Validate an attachment (size for the kind its bytes say it is; not empty), then queue it."""
    caption = (caption or "").replace("\r\n", "\n").strip()
    from inbox.actions import MAX_REPLY_LENGTH, ReplyRefused, check_writable

    try:
        check_writable(conversation)
    except ReplyRefused as refused:
        raise MediaRefused(str(refused)) from None

    if len(caption) > MAX_REPLY_LENGTH:
        raise MediaRefused(_("The caption is %(length)d characters long; WhatsApp accepts at most %(max)d.")
                           % {"length": len(caption), "max": MAX_REPLY_LENGTH})
    size = upload.size or 0
    if size <= 0:
        raise MediaRefused(_("The file is empty."))
    if size > mediatypes.max_bytes("document"):
        raise MediaRefused(_("The file is %(size)s; WhatsApp accepts documents up to %(max)s.")
                           % {"size": _mb(size), "max": _mb(mediatypes.max_bytes("document"))})
    upload.seek(0)
    mimetype = mediatypes.sniff(upload.read(512))
    kind = mediatypes.SEND_KIND.get(mimetype, "document")
    upload.seek(0)
    data = upload.read()
    filename = (getattr(upload, "name", "") or "file").replace("/", "_").replace("\\", "_")[:255]
    if kind == "audio" and mimetype != "audio/ogg":
        data, filename = voice_note_of(data, filename)
    if len(data) > mediatypes.max_bytes(kind):
        raise MediaRefused(_("The %(kind)s is %(size)s; WhatsApp accepts a %(kind)s up to %(limit)s.") % {
            "kind": kind_label(kind), "size": _mb(len(data)), "limit": _mb(mediatypes.max_bytes(kind))})
    return do_queue_media_reply(conversation, user, data, kind=kind, filename=filename, caption=caption)


def voice_note_of(data: bytes, filename: str) -> tuple[bytes, str]:
    """Audio that is not OGG/Opus (an MP3, an M4A recording) as an OGG/Opus voice note, when ffmpeg can
    convert it; else the audio as it came (sent as an audio file, not a voice note)."""
    converted = transcode.to_ogg_opus(data)
    if converted is None or mediatypes.sniff(converted) != "audio/ogg":
        return data, filename
    stem = filename.rsplit(".", 1)[0] if "." in filename else filename
    logger.info("inbox.voice_note_converted", extra={"bytes_in": len(data), "bytes_out": len(converted)})
    return converted, f"{stem}.ogg"


KIND_LABELS = {"image": gettext_lazy("photo"), "video": gettext_lazy("video"), "audio": gettext_lazy("audio file"),
               "document": gettext_lazy("document"), "sticker": gettext_lazy("sticker")}


def kind_label(kind: str) -> str:
    return str(KIND_LABELS.get(kind, kind))


def _mb(size: int) -> str:
    from django.template.defaultfilters import filesizeformat

    return str(filesizeformat(size)).replace("\xa0", " ")


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


# --- posters missing from videos stored without ffmpeg ---------------------------------------------------
POSTERS_BACKFILLED = "media.posters_backfilled"


class FfmpegMissing(RuntimeError):
    """Posters cannot be made: ffmpeg is not installed (scripts/ensure-ffmpeg.sh)."""


@dataclass
class PosterBackfill:
    """What ``backfill_video_posters`` did: videos without a poster seen (rows), distinct files among them,
    posters made, rows given a poster that was already stored, files ffmpeg could not read."""
    videos: int = 0
    files: int = 0
    made: int = 0
    linked: int = 0
    failed: int = 0
    dry_run: bool = False


def backfill_video_posters(tenant_id: int | None = None, *, dry_run: bool = False, batch: int = 200) -> PosterBackfill:
    """Make the posters of stored videos that have none: received or attached while ffmpeg was missing, or
    imported from an export (imports store no posters). Idempotent: a video that got its poster is not seen
    again, a poster already stored (the same bytes in another row of the tenant) is linked, not made twice;
    a file ffmpeg cannot read is counted ``failed`` and left as it is (tried again by the next run).

    Operator path: reads rows across tenants (or one tenant) by id, in batches by primary key; each file is
    streamed from the storage to ffmpeg's temporary file (on S3 too). Raises ``FfmpegMissing``
    before touching anything when ffmpeg is not installed. Open threads re-render the videos that got one."""
    if not dry_run and transcode.ffmpeg_binary() is None:
        raise FfmpegMissing("ffmpeg is not installed: posters cannot be made (scripts/ensure-ffmpeg.sh installs it)")
    report = PosterBackfill(dry_run=dry_run)
    rows = (MediaFile.objects.unscoped() if tenant_id is None else MediaFile.objects.for_tenant(tenant_id))
    rows = rows.filter(state=State.FETCHED, mimetype__startswith="video/", thumbnail_name="").exclude(storage_name="")
    store, after, tried = storage(), 0, set()
    while True:
        chunk = list(rows.filter(pk__gt=after).order_by("pk").values_list("pk", "tenant_id", "storage_name",
                                                                          "message_id")[:batch])
        if not chunk:
            break
        after = chunk[-1][0]
        files: dict[tuple[int, str], list[int]] = {}
        for _pk, tenant, name, message_id in chunk:
            files.setdefault((tenant, name), []).append(message_id)
        report.videos += len(chunk)
        for key, message_ids in files.items():
            if key in tried:  # a file ffmpeg could not read, met again in a later batch: tried once per run
                continue
            tried.add(key)
            report.files += 1
            _backfill_one_poster(store, *key, message_ids, report)
    logger.info(POSTERS_BACKFILLED, extra={**report.__dict__, "tenant_id": tenant_id})
    return report


def _backfill_one_poster(store, tenant_id: int, name: str, message_ids: list[int], report: PosterBackfill) -> None:
    thumb_name = f"{name}.thumb"
    if not store.exists(thumb_name):
        if report.dry_run:
            report.made += 1
            return
        try:
            with open_stored(name) as f:  # streamed to ffmpeg's temporary file, never whole in memory
                poster = transcode.video_poster(f)
        except FileNotFoundError:
            poster = None
        if poster is None:
            report.failed += 1
            return
        saved = store.save(thumb_name, ContentFile(poster))
        if saved != thumb_name:  # a concurrent run stored it first
            store.delete(saved)
        report.made += 1
    else:
        report.linked += len(message_ids)
        if report.dry_run:
            return
    with transaction.atomic():
        MediaFile.objects.for_tenant(tenant_id).filter(storage_name=name, thumbnail_name="").update(
            thumbnail_name=thumb_name, updated_at=timezone.now())
        publish_media_messages_on_commit(tenant_id, message_ids)


# --- orphan files ---------------------------------------------------------------------------------------
ORPHANS_SWEPT = "media.orphans_swept"
_STORED_NAME = re.compile(r"^[0-9a-f]{64}(\.thumb)?$")


@dataclass
class OrphanSweep:
    """What ``sweep_orphan_files`` found: files seen, orphans removed, orphans kept for their grace period,
    and bytes removed (on a dry run, what would have been removed)."""
    scanned: int = 0
    removed: int = 0
    in_grace: int = 0
    removed_bytes: int = 0
    tenants_gone: int = 0
    dry_run: bool = False


def sweep_orphan_files(grace_seconds: int | None = None, *, dry_run: bool = False) -> OrphanSweep:
    """Remove stored files that no media row names, once older than the grace period.

    Orphans come from deleting rows without their files: a whole tenant deleted by Django's cascade (its
    rows go, its files stay), or a process that stored a file and died before committing its row. Purges
    remove their files themselves (``delete_unreferenced_files``); this catches the rest. The grace period
    (``MEDIA_ORPHAN_GRACE_SECONDS``) covers files stored moments before their row commits. Walks
    ``media/<tenant>/<xx>/`` through the storage API (any backend with ``listdir``); names that are not
    ours are left alone. Operator path: reads rows across tenants by tenant id. Logged as one JSON line."""
    grace = settings.MEDIA_ORPHAN_GRACE_SECONDS if grace_seconds is None else grace_seconds
    cutoff = timezone.now() - timedelta(seconds=grace)
    store = storage()
    report = OrphanSweep(dry_run=dry_run)
    try:  # (not ``exists``: on S3 a folder is a key prefix, not an object)
        tenant_dirs = [d for d in store.listdir("media")[0] if d.isdigit()]
    except FileNotFoundError:  # nothing stored yet
        return report
    from inbox.models import Tenant

    live_tenants = set(Tenant.objects.filter(pk__in=[int(d) for d in tenant_dirs]).values_list("pk", flat=True))
    for tenant_dir in sorted(tenant_dirs, key=int):
        tenant_id = int(tenant_dir)
        names = _tenant_file_names(store, tenant_dir)
        report.scanned += len(names)
        referenced = _referenced_names(tenant_id) if tenant_id in live_tenants else set()
        if tenant_id not in live_tenants and names:
            report.tenants_gone += 1
        for name in names:
            if name in referenced:
                continue
            if store.get_modified_time(name) > cutoff:
                report.in_grace += 1
                continue
            # Checked again just before deleting: a row may have been committed since the tenant was read.
            if tenant_id in live_tenants and MediaFile.objects.for_tenant(tenant_id).filter(
                    Q(storage_name=name) | Q(thumbnail_name=name)).exists():
                continue
            report.removed_bytes += store.size(name)
            report.removed += 1
            if not dry_run:
                store.delete(name)
    logger.info(ORPHANS_SWEPT, extra={**report.__dict__, "grace_seconds": grace})
    return report


def _tenant_file_names(store, tenant_dir: str) -> list[str]:
    names = []
    for prefix in store.listdir(f"media/{tenant_dir}")[0]:
        for filename in store.listdir(f"media/{tenant_dir}/{prefix}")[1]:
            if _STORED_NAME.match(filename) and filename.startswith(prefix):
                names.append(f"media/{tenant_dir}/{prefix}/{filename}")
    return names


def _referenced_names(tenant_id: int) -> set[str]:
    rows = MediaFile.objects.for_tenant(tenant_id).exclude(storage_name="").values_list("storage_name",
                                                                                        "thumbnail_name")
    return {n for pair in rows.iterator(chunk_size=5000) for n in pair if n}
