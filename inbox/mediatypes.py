"""What a file is, from its bytes: a small magic-number sniffer, and what the inbox may do with each type.

The sender's MIME type (WhatsApp's ``mimetype`` field, a browser's upload header) is never trusted:
it decides nothing about how a file is stored or served. ``sniff`` looks at the first bytes only; what
it does not recognise is ``application/octet-stream`` and is served as a download. Pure Python, no
libmagic, so it behaves the same on every machine.
"""

from __future__ import annotations

from django.conf import settings

OCTET_STREAM = "application/octet-stream"

# Served inline (shown or played in the page); everything else is an attachment. Not SVG: it can run
# script. Not HTML, XML or PDF: a browser renders them as documents in the app's origin.
INLINE_TYPES = frozenset({
    "image/jpeg", "image/png", "image/gif", "image/webp",
    "audio/ogg", "audio/mpeg", "audio/mp4", "audio/aac", "audio/wav",
    "video/mp4", "video/webm", "video/3gpp",
})
THUMBNAIL_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

# What an agent's attachment is sent as, by its sniffed type (WhatsApp's own rules: JPEG/PNG photos,
# MP4/3GPP videos, OGG/MPEG/AAC/MP4 audio, WebP stickers; anything else goes as a document).
SEND_KIND = {
    "image/jpeg": "image", "image/png": "image",
    "video/mp4": "video", "video/3gpp": "video",
    "audio/ogg": "audio", "audio/mpeg": "audio", "audio/aac": "audio", "audio/mp4": "audio",
}


def _ftyp(data: bytes) -> str:
    brand = data[8:12]
    if brand in (b"M4A ", b"M4B "):
        return "audio/mp4"
    if brand.startswith(b"3g"):
        return "video/3gpp"
    if brand in (b"qt  ",):
        return "video/quicktime"
    return "video/mp4"


def _riff(data: bytes) -> str:
    kind = data[8:12]
    if kind == b"WEBP":
        return "image/webp"
    if kind == b"WAVE":
        return "audio/wav"
    if kind == b"AVI ":
        return "video/x-msvideo"
    return OCTET_STREAM


def _ogg(data: bytes) -> str:
    return "audio/ogg" if b"OpusHead" in data[:64] or b"\x01vorbis" in data[:64] else "application/ogg"


_MAGIC = [
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"ID3", "audio/mpeg"),
    (b"\xff\xfb", "audio/mpeg"),
    (b"\xff\xf3", "audio/mpeg"),
    (b"\xff\xf1", "audio/aac"),
    (b"\xff\xf9", "audio/aac"),
    (b"#!AMR", "audio/amr"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
]


def sniff(data: bytes) -> str:
    """The MIME type of ``data`` from its magic bytes; markup (HTML, SVG, XML) is named so it can be refused
    inline; unknown bytes are ``application/octet-stream``."""
    head = data[:512]
    if head[4:8] == b"ftyp":
        return _ftyp(head)
    if head.startswith(b"RIFF"):
        return _riff(head)
    if head.startswith(b"OggS"):
        return _ogg(head)
    for magic, mime in _MAGIC:
        if head.startswith(magic):
            return mime
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html", b"<script", b"<head", b"<body", b"<iframe")):
        return "text/html"
    if text.startswith(b"<svg") or (text.startswith(b"<?xml") and b"<svg" in head.lower()):
        return "image/svg+xml"
    if text.startswith(b"<?xml"):
        return "application/xml"
    return OCTET_STREAM


def is_inline(mimetype: str) -> bool:
    return mimetype in INLINE_TYPES


def max_bytes(kind: str) -> int:
    """The size limit of a media kind (settings.MEDIA_MAX_BYTES; WhatsApp's own limits by default)."""
    limits = settings.MEDIA_MAX_BYTES
    return int(limits.get(kind, limits["document"]))


EXTENSIONS = {
    "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp", "audio/ogg": "ogg",
    "audio/mpeg": "mp3", "audio/mp4": "m4a", "audio/aac": "aac", "audio/amr": "amr", "audio/wav": "wav",
    "video/mp4": "mp4", "video/3gpp": "3gp", "video/webm": "webm", "application/pdf": "pdf",
    "application/zip": "zip",
}
