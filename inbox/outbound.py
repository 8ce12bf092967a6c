"""Requests the app makes to URLs a tenant typed (the alert webhook): never into our own network.

A tenant admin could otherwise point a webhook at Redis, the database, a cloud metadata endpoint or an
admin page on the private network and have our workers call it (server-side request forgery). Before
each request the host is resolved and every address must be public; redirects are not followed (a
public URL could redirect inward). ``OUTBOUND_ALLOW_PRIVATE_ADDRESSES`` lifts the address check for
development and the test suite's local receivers.

What remains: DNS rebinding between our check and urllib's own resolution (a host that answers public
first and private a moment later). Closing that needs connecting to the checked address itself; a
deployment that must be sure puts the workers behind an egress proxy that refuses private ranges.
"""

import ipaddress
import socket
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from django.conf import settings


class RefusedURL(ValueError):
    """A URL the app will not call: not http(s), no host, or a host on a private network."""


def check_public_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedURL(f"only http(s) URLs with a host are called, not {url[:80]!r}")
    if settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80),
                                   type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RefusedURL(f"{parts.hostname} does not resolve: {exc}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if not address.is_global:
            raise RefusedURL(f"{parts.hostname} resolves to {address}, an address on a private or reserved network")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise urllib.error.HTTPError(req.full_url, code, f"redirect to {newurl[:200]} not followed", headers, fp)


_opener = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, data: bytes, *, timeout: float, headers: dict | None = None) -> int:
    """POST ``data`` (JSON) to a public ``url``; the HTTP status. Raises RefusedURL, or urllib's errors
    for a network failure, a redirect or a non-2xx answer."""
    check_public_url(url)
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with _opener.open(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked above
        return response.status
