"""Capture files: JSON Lines, one event a line (see DESIGN.md, "Capture files").

    {"event": "MessageEv", "payload": "<base64 protobuf>", "received_at": "<ISO 8601, optional>"}
"""

import base64
import json
from dataclasses import dataclass
from datetime import datetime


class CaptureError(ValueError):
    pass


@dataclass(frozen=True)
class CapturedEvent:
    event_name: str
    payload: bytes
    received_at: datetime | None
    line_no: int


def encode_line(event_name: str, payload: bytes, received_at: datetime | None = None) -> str:
    obj = {"event": event_name, "payload": base64.b64encode(payload).decode("ascii")}
    if received_at is not None:
        obj["received_at"] = received_at.isoformat()
    return json.dumps(obj, separators=(",", ":")) + "\n"


def decode_line(line: str, line_no: int = 0) -> CapturedEvent:
    try:
        obj = json.loads(line)
        event_name = obj["event"]
        payload = base64.b64decode(obj["payload"], validate=True)
        received_at = datetime.fromisoformat(obj["received_at"]) if obj.get("received_at") else None
    except (ValueError, KeyError, TypeError) as exc:
        raise CaptureError(f"line {line_no}: not a capture line ({exc})") from exc
    if not isinstance(event_name, str) or not event_name:
        raise CaptureError(f"line {line_no}: 'event' must be a non-empty string")
    return CapturedEvent(event_name, payload, received_at, line_no)


class CaptureWriter:
    """Appends events to a capture file, flushing each line (a crash loses at most the last line)."""

    def __init__(self, path):
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, event_name: str, payload: bytes, received_at: datetime | None = None) -> None:
        self._fh.write(encode_line(event_name, payload, received_at))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
