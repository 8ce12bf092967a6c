"""The client's address, as far as it can be trusted.

Without a proxy (the default) it is the socket's peer, REMOTE_ADDR. With ``BEHIND_TLS_PROXY`` (a proxy
in front of daphne that appends the address it saw to X-Forwarded-For), it is the right-most entry:
the one our proxy wrote. Entries to its left are whatever the client sent, so trusting the left-most
would let a client pick its own address (and dodge the login lockout, which counts per address).
"""

from django.conf import settings


def client_ip(request) -> str | None:
    if settings.BEHIND_TLS_PROXY:
        hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
        if hops:
            return hops[-1]
    return request.META.get("REMOTE_ADDR")
