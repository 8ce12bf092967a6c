"""Transports: how a session talks to WhatsApp (see base.py for the interface)."""

from connections.transport.base import (
    MediaGone,
    NotSupported,
    SendResult,
    SessionCallbacks,
    SessionConfig,
    State,
    Transport,
    TransportError,
)

__all__ = [
    "MediaGone", "NotSupported", "SendResult", "SessionCallbacks", "SessionConfig", "State", "Transport", "TransportError",
    "get_transport_class", "supports_history_requests",
]

# Whether the transport can fetch older history on demand (the UI shows "load older" accordingly). Here,
# not on the classes: the web process must not load neonize's Go library to ask.
_HISTORY_REQUESTS = {"simulator": True, "neonize": False}


def supports_history_requests(transport_name: str) -> bool:
    return _HISTORY_REQUESTS.get(transport_name, False)


def get_transport_class(transport_name: str) -> type[Transport]:
    """Imported lazily: loading neonize's Go library costs memory (docs/measurements.md); only sessions
    that need it pay."""
    if transport_name == "simulator":
        from connections.transport.simulator import SimulatorTransport

        return SimulatorTransport
    if transport_name == "neonize":
        from connections.transport.neonize import NeonizeTransport

        return NeonizeTransport
    raise ValueError(f"unknown transport {transport_name!r}")
