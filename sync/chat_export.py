"""Parsing the phone's "Export chat" files (Android and iOS), .txt or .zip: plain dataclasses, no ORM here.

Line shapes (one message starts with a date and a time; every other line continues the message above):

- Android: ``12/31/20, 9:41 PM - Ana: hi`` / ``31/12/2020, 21:41 - Ana: hi`` / ``31.12.20, 21:41 - Ana: hi``
  / ``2020-12-31 21:41 - Ana: hi``; a line without ``Name:`` is a system message (``... - Messages and
  calls are end-to-end encrypted...``, ``... - Ana added Bruno``).
- iOS: ``[31/12/2020, 21:41:05] Ana: hi`` / ``[12/31/20, 9:41:05 PM] Ana: hi``, often with a left-to-right
  mark (U+200E) before the line and before attachment and system texts.
- Times: 24 h or 12 h (``PM``, ``pm``, ``p.m.``, with a space, no-break space or narrow no-break space
  before it), with or without seconds. Dates: day-first, month-first or year-first, with ``/``, ``.`` or
  ``-``, two- or four-digit years.
- Media: ``<Media omitted>``, ``image omitted``/``video omitted``/..., ``<attached: 0001-PHOTO-....jpg>``,
  ``IMG-20201231-WA0001.jpg (file attached)``.

Day-first or month-first is decided from the whole file: a first number above 12 anywhere means
day-first, a second number above 12 month-first; a file where every date fits both is ambiguous, and the
caller must say (``date_order``), or the parse fails asking for it (``AmbiguousDates``).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from datetime import datetime, tzinfo
from pathlib import Path

from django.utils.translation import gettext as _

LRM_CHARS = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\ufeff"
_SPACES = "[ \u00a0\u202f]"
_DATE = r"(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})"
_TIME = (r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?)"
         rf"(?:{_SPACES}?(?P<ampm>[AaPp]\.?{_SPACES}?[Mm]\.?))?")
IOS_LINE = re.compile(rf"^\[{_DATE},?{_SPACES}{_TIME}\]{_SPACES}(?P<rest>.*)$")
ANDROID_LINE = re.compile(rf"^{_DATE},?{_SPACES}{_TIME}{_SPACES}[-\u2013]{_SPACES}(?P<rest>.*)$")

MEDIA_OMITTED = {
    "<media omitted>": "image",  # Android does not say which kind
    "image omitted": "image", "video omitted": "video", "audio omitted": "audio", "sticker omitted": "sticker",
    "gif omitted": "video", "document omitted": "document", "contact card omitted": "contact",
}
ATTACHED_IOS = re.compile(r"^<attached: (?P<name>[^>]+)>$")
ATTACHED_ANDROID = re.compile(r"^(?P<name>\S+\.\w{2,5}) \(file attached\)$")
KIND_BY_EXTENSION = {"jpg": "image", "jpeg": "image", "png": "image", "webp": "sticker", "mp4": "video",
                     "opus": "audio", "m4a": "audio", "mp3": "audio", "pdf": "document", "vcf": "contact"}


class ChatExportError(ValueError):
    """Not a chat export this parser understands (the message says why)."""


class AmbiguousDates(ChatExportError):
    """Every date in the file reads both day-first and month-first: the caller must choose."""


@dataclass
class ExportedMessage:
    sent_at: datetime  # aware, in the given time zone
    precision_seconds: int  # 60 when the file has no seconds, 1 when it does
    sender: str  # "" for a system message
    text: str
    type: str = "text"  # text, image, video, audio, sticker, document, contact, system
    media_filename: str = ""
    line: int = 0  # where it starts in the file (1-based)


def _clean(line: str) -> str:
    return line.strip("\r\n").lstrip(LRM_CHARS)


def read_export(path) -> str:
    """The text of a .txt export, or of the chat inside a .zip (``_chat.txt`` on iOS, ``WhatsApp Chat ...txt``
    on Android: the one .txt in it). ``path``: a file name or an open binary file (an upload)."""
    fileobj = path if hasattr(path, "read") else None  # an uploaded file
    name = getattr(path, "name", None) or "export"
    source = fileobj if fileobj is not None else Path(path)
    if zipfile.is_zipfile(source):
        if fileobj is not None:
            fileobj.seek(0)
        try:
            with zipfile.ZipFile(source) as zf:
                texts = [n for n in zf.namelist() if n.lower().endswith(".txt") and not n.startswith("__MACOSX")]
                if len(texts) != 1:
                    raise ChatExportError(_("%(file)s: expected one .txt chat in the zip, found %(count)d")
                                          % {"file": Path(name).name, "count": len(texts)})
                data = zf.read(texts[0])
        except zipfile.BadZipFile as exc:
            raise ChatExportError(_("%(file)s: a damaged zip (%(error)s)") % {"file": Path(name).name, "error": exc}) from exc
    elif fileobj is not None:
        fileobj.seek(0)
        data = fileobj.read()
    else:
        data = source.read_bytes()
    return data.decode("utf-8-sig", errors="replace")


def _split_date(date: str) -> tuple[int, int, int]:
    parts = [int(p) for p in re.split(r"[./-]", date)]
    if len(parts) != 3:
        raise ChatExportError(_("not a date: %(date)r") % {"date": date})
    return parts[0], parts[1], parts[2]


def detect_date_order(dates) -> str:
    """"ymd", "dmy" or "mdy" from every date of the file; AmbiguousDates if both dmy and mdy fit all."""
    day_first = month_first = False
    year_first = None
    for a, b, _c in dates:
        if year_first is None:
            year_first = a > 31
        if year_first:
            continue
        day_first |= a > 12
        month_first |= b > 12
    if year_first:
        return "ymd"
    if day_first and month_first:
        raise ChatExportError(_("dates are neither all day-first nor all month-first"))
    if day_first:
        return "dmy"
    if month_first:
        return "mdy"
    raise AmbiguousDates("every date in this file reads both day-first and month-first: say which "
                         "(--date-order dmy or mdy)")


def _datetime(parts, order: str, time: str, ampm: str | None, tz: tzinfo) -> tuple[datetime, int]:
    a, b, c = parts
    year, month, day = {"ymd": (a, b, c), "dmy": (c, b, a), "mdy": (c, a, b)}[order]
    if year < 100:
        year += 2000
    pieces = [int(p) for p in re.split(r"[:.]", time)]
    hour, minute, second = pieces[0], pieces[1], pieces[2] if len(pieces) > 2 else 0
    if ampm:
        pm = ampm.lower().startswith("p")
        if not 1 <= hour <= 12:
            raise ChatExportError(_("12-hour time out of range: %(time)s %(ampm)s") % {"time": time, "ampm": ampm})
        hour = hour % 12 + (12 if pm else 0)
    try:
        value = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise ChatExportError(_("not a date and time: %(date)s %(time)s (%(error)s)")
                              % {"date": parts, "time": time, "error": exc}) from exc
    return value.replace(tzinfo=tz), 1 if len(pieces) > 2 else 60


def _classify(text: str) -> tuple[str, str, str]:
    """(type, text, media filename) of a message's text."""
    bare = text.strip().lstrip(LRM_CHARS)
    kind = MEDIA_OMITTED.get(bare.lower())
    if kind:
        return kind, "", ""
    for pattern in (ATTACHED_IOS, ATTACHED_ANDROID):
        if m := pattern.match(bare):
            name = m["name"]
            return KIND_BY_EXTENSION.get(name.rsplit(".", 1)[-1].lower(), "document"), "", name
    return "text", text, ""


def parse_chat_export(text: str, *, tz: tzinfo, date_order: str | None = None) -> list[ExportedMessage]:
    """Every message of an export's text, in file order. ``date_order``: "dmy", "mdy" or "ymd" to override
    (or settle) the detection."""
    heads = []  # (line number, match)
    pattern = None
    lines = text.splitlines()
    for number, raw in enumerate(lines, start=1):
        line = _clean(raw)
        if pattern is None:
            for candidate in (IOS_LINE, ANDROID_LINE):
                if candidate.match(line):
                    pattern = candidate
                    break
        m = pattern.match(line) if pattern else None
        heads.append((number, m))
    if pattern is None:
        raise ChatExportError(_("no line starts with a date and a time: not a WhatsApp chat export"))
    order = date_order or detect_date_order(_split_date(m["date"]) for _, m in heads if m)
    if order not in ("dmy", "mdy", "ymd"):
        raise ChatExportError(_("date order must be dmy, mdy or ymd, not %(order)r") % {"order": order})
    messages: list[ExportedMessage] = []
    current: list[str] | None = None

    def close():
        if current is not None and messages:
            last = messages[-1]
            body = "\n".join(current)
            if last.type == "system":
                last.text = body
            else:
                last.type, last.text, last.media_filename = _classify(body)

    for (number, m), raw in zip(heads, lines, strict=True):
        if m is None:
            if current is not None:
                current.append(raw.rstrip("\r"))
            continue  # text before the first message (never seen in real files): ignored
        close()
        sent_at, precision = _datetime(_split_date(m["date"]), order, m["time"], m["ampm"], tz)
        rest = m["rest"]
        sender, sep, body = rest.partition(": ")
        if not sep and rest.endswith(":"):  # "Ana:" with an empty message
            sender, sep, body = rest[:-1], ":", ""
        sender = sender.strip(LRM_CHARS + " ")
        # A system line: no "Name: " (Android), or iOS's form, the chat's name and a left-to-right mark
        # before a text that is not an attachment ("‎Messages and calls are end-to-end encrypted.").
        system = not sep or not sender or (body[:1] in LRM_CHARS and body and _classify(body)[0] == "text")
        if system:
            messages.append(ExportedMessage(sent_at, precision, "", "", type="system", line=number))
            current = [(body if sep else rest).lstrip(LRM_CHARS)]
        else:
            messages.append(ExportedMessage(sent_at, precision, sender, "", line=number))
            current = [body]
    close()
    return messages


class Attachments:
    """The media files inside a .zip export, by file name (the name its attachment line gives), opened one at
    a time; an export that is a .txt has none. ``with Attachments.of(path) as files: files.open(name)``."""

    def __init__(self, zf: zipfile.ZipFile | None = None):
        self._zf = zf
        self._infos = {}
        if zf is not None:
            for info in zf.infolist():
                base = info.filename.rsplit("/", 1)[-1]
                if base and not info.is_dir() and not info.filename.startswith("__MACOSX") \
                        and not base.lower().endswith(".txt"):
                    self._infos.setdefault(base, info)

    @classmethod
    def of(cls, path) -> Attachments:
        fileobj = path if hasattr(path, "read") else None
        source = fileobj if fileobj is not None else Path(path)
        if not zipfile.is_zipfile(source):
            return cls()
        if fileobj is not None:
            fileobj.seek(0)
        try:
            return cls(zipfile.ZipFile(source))
        except zipfile.BadZipFile as exc:
            raise ChatExportError(f"{Path(getattr(path, 'name', None) or 'export').name}: a damaged zip ({exc})") from exc

    def __contains__(self, name: str) -> bool:
        return name in self._infos

    def __len__(self) -> int:
        return len(self._infos)

    def size(self, name: str) -> int:
        return self._infos[name].file_size

    def read(self, name: str, limit: int) -> bytes | None:
        """The file's bytes, or None when it is larger than ``limit`` (said by the zip; read no further)."""
        info = self._infos[name]
        if info.file_size > limit:
            return None
        with self._zf.open(info) as f:
            data = f.read(limit + 1)
        return data if len(data) <= limit else None

    def close(self) -> None:
        if self._zf is not None:
            self._zf.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def read_and_parse(path, *, tz: tzinfo, date_order: str | None = None) -> list[ExportedMessage]:
    return parse_chat_export(read_export(path), tz=tz, date_order=date_order)
