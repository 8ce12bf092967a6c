"""URLs a tenant typed (the alert webhook) are never called inside our own network."""

import threading
import urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from inbox.outbound import RefusedURL, check_public_url, post_json


@pytest.mark.smoke
@pytest.mark.parametrize("url", [
    "http://127.0.0.1:6379/",  # our Redis
    "http://localhost:5432/",  # our database
    "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata endpoint
    "http://10.0.0.7/admin",
    "http://[::1]:8000/",
    "http://0.0.0.0/",
    "ftp://example.com/file",
    "file:///etc/passwd",
    "https:///no-host",
])
def test_private_addresses_and_other_schemes_are_refused(url, settings):
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    with pytest.raises(RefusedURL):
        check_public_url(url)
    with pytest.raises(RefusedURL):
        post_json(url, b"{}", timeout=1)


def test_a_public_address_passes_the_check(settings):
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = False
    check_public_url("https://93.184.215.14/hook")  # a literal public address: no DNS needed


def test_redirects_are_not_followed(settings):
    """A receiver allowed for the test answers 302 towards another URL: the request stops there."""
    settings.OUTBOUND_ALLOW_PRIVATE_ADDRESSES = True
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            hits.append(self.path)
            self.send_response(302)
            self.send_header("Location", "/inside")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(urllib.error.HTTPError, match="not followed"):
            post_json(f"http://127.0.0.1:{server.server_port}/hook", b"{}", timeout=5)
        assert hits == ["/hook"]
    finally:
        server.shutdown()
        server.server_close()
