"""ffmpeg, when it is installed: a poster frame for videos, and OGG/Opus voice notes from other audio.

Both are optional. Without ffmpeg (``settings.FFMPEG_BINARY`` not found) a video shows without a poster
(the browser draws its first frame once it has loaded some) and an attachment's audio is sent as it is;
that is logged once per process (``media.ffmpeg_missing``), never raised. A file ffmpeg cannot read, or a
run over ``FFMPEG_TIMEOUT_SECONDS``, gives None the same way (logged each time: it is about that file).

ffmpeg reads from and writes to a private temporary directory, not pipes: an MP4 whose index is at its
end needs a seekable input. It runs with ``-nostdin`` and a time limit, so a hostile file costs at most
that much of the caller's time (the runner's child for received videos, the request for attachments).
scripts/ensure-ffmpeg.sh installs Debian's ffmpeg for ``make run`` and ``make test``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings

logger = logging.getLogger(__name__)
FFMPEG_MISSING = "media.ffmpeg_missing"
FFMPEG_FAILED = "media.ffmpeg_failed"
_missing_logged: set[str] = set()


def ffmpeg_binary() -> str | None:
    """The ffmpeg executable to run, or None (logged once per process and binary name) when there is none."""
    name = settings.FFMPEG_BINARY
    path = shutil.which(name) if name else None
    if path is None and name not in _missing_logged:
        _missing_logged.add(name)
        logger.warning(FFMPEG_MISSING, extra={"binary": name, "effect": "videos have no poster; attached audio "
                                              "is sent unconverted (scripts/ensure-ffmpeg.sh installs it)"})
    return path


def _run(data, in_name: str, out_name: str, args: list[str]) -> bytes | None:
    """ffmpeg on ``data`` (bytes, or a readable binary stream copied to the temporary file in blocks)."""
    binary = ffmpeg_binary()
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="inbox-ffmpeg-") as tmp:
        src, dst = Path(tmp) / in_name, Path(tmp) / out_name
        if isinstance(data, bytes | bytearray):
            src.write_bytes(data)
        else:
            with src.open("wb") as out:
                shutil.copyfileobj(data, out, 1 << 20)
        cmd = [binary, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(src), *args, "-y", str(dst)]
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=settings.FFMPEG_TIMEOUT_SECONDS, check=False)
        except (subprocess.TimeoutExpired, OSError) as exc:
            logger.warning(FFMPEG_FAILED, extra={"output": out_name, "error": repr(exc)[:300]})
            return None
        out = dst.read_bytes() if dst.exists() else b""
        if done.returncode != 0 or not out:
            logger.warning(FFMPEG_FAILED, extra={"output": out_name, "returncode": done.returncode,
                                                 "error": done.stderr.decode("utf-8", "replace")[-300:]})
            return None
        return out


def video_poster(data) -> bytes | None:
    """A JPEG poster of a video (bytes, or a stream: a stored file read from its storage), within
    MEDIA_THUMBNAIL_PIXELS: the most representative of its first frames (ffmpeg's ``thumbnail`` filter, so a
    fade-in's black first frame is not the poster)."""
    box = int(settings.MEDIA_THUMBNAIL_PIXELS)
    # Within the box, never enlarged (a video smaller than the box keeps its size).
    scale = f"thumbnail=25,scale=w='min({box},iw)':h='min({box},ih)':force_original_aspect_ratio=decrease"
    return _run(data, "video", "poster.jpg", ["-an", "-vf", scale, "-frames:v", "1", "-q:v", "4", "-f", "image2"])


def to_ogg_opus(data: bytes) -> bytes | None:
    """The audio of ``data`` as a mono 48 kHz OGG/Opus stream (WhatsApp's voice-note format)."""
    return _run(data, "audio", "voice.ogg", ["-vn", "-map_metadata", "-1", "-ac", "1", "-ar", "48000",
                                              "-c:a", "libopus", "-b:a", "32k", "-application", "voip", "-f", "ogg"])
