"""Real files for the simulator's media messages: what a customer's phone would send.

Generated, not checked in: a JPEG and a PNG photo and a WebP sticker (Pillow), a one-second OGG/Opus
voice note (Ogg pages written here around Opus silence frames: a valid stream a browser plays, with a
duration), a one-page PDF. Checked in, because making them needs an encoder: a three-second H.264 MP4
(``sample-video.mp4``, 160x120, a test pattern, moov first so it streams) and a 1.5 s MP3 tone
(``sample-voice.mp3``: audio a phone records that is not Opus). Both were made with ffmpeg::

    ffmpeg -f lavfi -i testsrc=size=160x120:rate=10:duration=3 -c:v libx264 -profile:v baseline \
        -pix_fmt yuv420p -crf 35 -movflags +faststart sample-video.mp4
    ffmpeg -f lavfi -i sine=frequency=440:duration=1.5 -ac 1 -ar 22050 -c:a libmp3lame -b:a 24k sample-voice.mp3
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent


def jpeg(width: int = 160, height: int = 120, color=(200, 60, 40)) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), color)
    ImageDraw.Draw(img).rectangle((width // 4, height // 4, width * 3 // 4, height * 3 // 4), fill=(250, 250, 250))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def png(width: int = 120, height: int = 90) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (width, height), (30, 120, 200))
    ImageDraw.Draw(img).ellipse((10, 10, width - 10, height - 10), fill=(255, 220, 0))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def webp_sticker(size: int = 128) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    ImageDraw.Draw(img).ellipse((8, 8, size - 8, size - 8), fill=(40, 180, 90, 255))
    out = io.BytesIO()
    img.save(out, "WEBP")
    return out.getvalue()


def pdf(text: str = "Invoice 42") -> bytes:
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def mp4() -> bytes:
    """A playable three-second H.264 MP4 (160x120) with its index first: seekable over Range requests."""
    return (HERE / "sample-video.mp4").read_bytes()


def mp3() -> bytes:
    """A 1.5 s MP3 tone: audio that is not a WhatsApp voice note until converted to OGG/Opus."""
    return (HERE / "sample-voice.mp3").read_bytes()


def mp4_header() -> bytes:
    ftyp = b"ftypisom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    return struct.pack(">I", 8 + len(ftyp)) + ftyp + struct.pack(">I", 16) + b"mdat" + bytes(8)


# --- Ogg/Opus ---------------------------------------------------------------------------------------
def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _CRC[((crc >> 24) & 0xFF) ^ byte]) & 0xFFFFFFFF
    return crc


def _ogg_page(packets: list[bytes], *, granule: int, serial: int, seq: int, flags: int) -> bytes:
    lacing = bytearray()
    for p in packets:
        lacing += bytes([255] * (len(p) // 255) + [len(p) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing)) + bytes(lacing)
    page = header + b"".join(packets)
    crc = _ogg_crc(page)
    return page[:22] + struct.pack("<I", crc) + page[26:]


def ogg_opus(seconds: float = 1.0) -> bytes:
    """A mono 48 kHz Opus stream of silence, ``seconds`` long (20 ms frames)."""
    serial, pre_skip = 0x5EED, 312
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, pre_skip, 48000, 0, 0)
    vendor = b"inbox-simulator"
    tags = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", 0)
    frames = max(1, int(seconds * 50))
    silence = b"\xf8\xff\xfe"  # TOC: CELT fullband 20 ms mono, one frame; a silent frame
    pages = [_ogg_page([head], granule=0, serial=serial, seq=0, flags=0x02),
             _ogg_page([tags], granule=0, serial=serial, seq=1, flags=0)]
    seq, done = 2, 0
    while done < frames:
        n = min(50, frames - done)
        done += n
        last = done == frames
        pages.append(_ogg_page([silence] * n, granule=pre_skip + done * 960, serial=serial, seq=seq,
                               flags=0x04 if last else 0))
        seq += 1
    return b"".join(pages)


SAMPLES = {
    # kind -> (bytes factory, mimetype WhatsApp would announce, file name)
    "image": (jpeg, "image/jpeg", ""),
    "png": (png, "image/png", ""),
    "sticker": (webp_sticker, "image/webp", ""),
    "audio": (ogg_opus, "audio/ogg; codecs=opus", ""),
    "video": (mp4, "video/mp4", ""),
    "document": (pdf, "application/pdf", "invoice-42.pdf"),
}


def sample(name: str) -> tuple[str, bytes, str, str]:
    """(message kind, bytes, announced mimetype, file name) of a sample ("png" is an image)."""
    factory, mimetype, filename = SAMPLES[name]
    return ("image" if name == "png" else name), factory(), mimetype, filename
