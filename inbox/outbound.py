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
import threading
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


# --- pooled requests (signed webhooks: many requests to the same few receivers) ----------------------

_pool = threading.local()
RESPONSE_READ_LIMIT = 64 * 1024  # an answer's body is not ours to keep; read this much so the connection is reused


def _session():
    """This thread's requests.Session: keep-alive connections per host, no retries of its own (the caller
    retries with backoff), environment proxies honoured as urllib does."""
    session = getattr(_pool, "session", None)
    if session is None:
        import requests
        from requests.adapters import HTTPAdapter

        session = requests.Session()
        adapter = HTTPAdapter(pool_connections=16, pool_maxsize=16, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        _pool.session = session
    return session


class HTTPFailure(Exception):
    """A non-2xx answer (3xx included: redirects are not followed)."""

    def __init__(self, status: int, reason: str = ""):
        super().__init__(f"HTTP {status}" + (f": {reason}" if reason else ""))
        self.status = status


def post_json_pooled(url: str, data: bytes, *, timeout: float, headers: dict | None = None) -> int:
    """``post_json`` over a kept-alive connection: the same guard before every request (a public address;
    redirects not followed), the status if 2xx. Raises RefusedURL, HTTPFailure, or requests' errors."""
    check_public_url(url)
    response = _session().post(url, data=data, timeout=timeout, allow_redirects=False, stream=True,
                               headers={"Content-Type": "application/json", **(headers or {})})
    try:
        read = 0
        for chunk in response.iter_content(16 * 1024):  # read to the end (the connection goes back to the pool)
            read += len(chunk)
            if read > RESPONSE_READ_LIMIT:
                break  # a long answer: this connection is closed instead
    finally:
        response.close()
    if not 200 <= response.status_code < 300:
        raise HTTPFailure(response.status_code, response.reason or "")
    return response.status_code
