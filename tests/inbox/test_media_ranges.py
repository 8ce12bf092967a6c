"""Range requests on the access-checked media view: what audio and video players send to seek (206 with
Content-Range, 416 for a range past the end), with the access check, nosniff, the sandboxing CSP and
Content-Disposition kept; X-Accel mode leaves ranges to nginx."""

import pytest
from django.urls import reverse

from connections.transport import samples
from inbox import media
from inbox.http_ranges import UNSATISFIABLE, byte_range
from inbox.models import MediaFile
from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.mark.parametrize(("header", "expected"), [
    ("bytes=0-99", (0, 99)),
    ("bytes=100-", (100, 999)),
    ("bytes=-50", (950, 999)),
    ("bytes=990-5000", (990, 999)),  # clipped to the end
    ("bytes=-5000", (0, 999)),  # a suffix longer than the file: all of it
    ("BYTES = 5 - 9", (5, 9)),
    ("bytes=1000-", UNSATISFIABLE),
    ("bytes=1000-1010", UNSATISFIABLE),
    ("bytes=-0", UNSATISFIABLE),
    ("bytes=9-5", None),  # invalid: ignored, the whole file
    ("bytes=0-1,5-9", None),  # several ranges: the whole file (allowed by RFC 9110)
    ("bytes=abc", None),
    ("bytes=-", None),
    ("items=0-9", None),
    ("", None),
])
def test_byte_range_parsing(header, expected):
    assert byte_range(header, 1000) == expected


@pytest.mark.smoke
def test_empty_file_ranges_are_unsatisfiable():
    assert byte_range("bytes=0-", 0) == UNSATISFIABLE and byte_range("bytes=-1", 0) == UNSATISFIABLE


@pytest.fixture
def video(acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    msg = MessageFactory(conversation=conv, type="video", body="", external_id="RANGE1")
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="video")
    assert media.do_store_media(item, samples.mp4())
    item.refresh_from_db()
    return item


def media_url(item, **kwargs):
    return reverse("media_file", args=[item.tenant.slug, item.message.conversation_id, item.pk])


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def assert_inert_headers(r, disposition="inline"):
    assert r["X-Content-Type-Options"] == "nosniff"
    assert r["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert r["Content-Disposition"].startswith(disposition)
    assert r["Accept-Ranges"] == "bytes"


@pytest.mark.smoke
def test_a_range_gets_206_with_exactly_those_bytes_and_the_same_headers(client, acme_agent, video):
    data = samples.mp4()
    size = len(data)
    client.force_login(acme_agent)
    whole = client.get(media_url(video))
    assert whole.status_code == 200 and body(whole) == data and whole["Content-Length"] == str(size)
    assert_inert_headers(whole)
    assert whole["ETag"] == f'"{video.sha256}"'

    for header, first, last in (("bytes=0-99", 0, 99), ("bytes=4000-", 4000, size - 1), ("bytes=-500", size - 500, size - 1),
                                ("bytes=6000-999999", 6000, size - 1)):
        r = client.get(media_url(video), HTTP_RANGE=header)
        assert r.status_code == 206, header
        assert r["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert r["Content-Length"] == str(last - first + 1)
        assert r["Content-Type"] == "video/mp4"
        assert body(r) == data[first:last + 1]
        assert_inert_headers(r)
    # A forced download keeps its attachment disposition on a range too.
    r = client.get(media_url(video) + "?download=1", HTTP_RANGE="bytes=0-9")
    assert r.status_code == 206 and r["Content-Type"] == "application/octet-stream" and body(r) == data[:10]
    assert_inert_headers(r, "attachment")


def test_a_range_past_the_end_is_416_and_odd_ranges_get_the_whole_file(client, acme_agent, video):
    data = samples.mp4()
    client.force_login(acme_agent)
    r = client.get(media_url(video), HTTP_RANGE=f"bytes={len(data)}-")
    assert r.status_code == 416 and r["Content-Range"] == f"bytes */{len(data)}" and body(r) == b""
    assert r["X-Content-Type-Options"] == "nosniff"
    for header in ("bytes=0-1,5-9", "bytes=9-5", "pages=1"):
        r = client.get(media_url(video), HTTP_RANGE=header)
        assert r.status_code == 200 and body(r) == data, header


def test_if_range_with_another_version_gets_the_whole_file(client, acme_agent, video):
    data = samples.mp4()
    client.force_login(acme_agent)
    r = client.get(media_url(video), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE='"not-this-file"')
    assert r.status_code == 200 and body(r) == data
    r = client.get(media_url(video), HTTP_RANGE="bytes=0-9", HTTP_IF_RANGE=f'"{video.sha256}"')
    assert r.status_code == 206 and body(r) == data[:10]


def test_ranges_are_still_access_checked(client, globex_owner, video):
    client.force_login(globex_owner)
    assert client.get(media_url(video), HTTP_RANGE="bytes=0-9").status_code == 404
    client.logout()
    r = client.get(media_url(video), HTTP_RANGE="bytes=0-9")
    assert r.status_code in (302, 404) and r.status_code != 206


def test_thumbnail_ranges_work_too(client, acme_agent, acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    msg = MessageFactory(conversation=conv, type="image", body="", external_id="THUMB1")
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=acme_connection, kind="image")
    assert media.do_store_media(item, samples.jpeg(640, 480))
    item.refresh_from_db()
    client.force_login(acme_agent)
    path = reverse("media_thumbnail", args=[conv.tenant.slug, conv.pk, item.pk])
    thumb = body(client.get(path))
    r = client.get(path, HTTP_RANGE="bytes=2-11")
    assert r.status_code == 206 and body(r) == thumb[2:12] and r["Content-Range"] == f"bytes 2-11/{len(thumb)}"
    assert r["Content-Type"] == "image/jpeg"


def test_x_accel_mode_hands_the_range_to_nginx_after_the_access_check(client, acme_agent, video, settings):
    settings.MEDIA_X_ACCEL_PREFIX = "/protected-media/"
    client.force_login(acme_agent)
    r = client.get(media_url(video), HTTP_RANGE="bytes=0-9")
    assert r.status_code == 200 and r.content == b""  # nginx answers the range from the file
    assert r["X-Accel-Redirect"] == f"/protected-media/{video.storage_name}"
    assert r["Content-Type"] == "video/mp4" and r["Content-Disposition"].startswith("inline")
    assert r["X-Content-Type-Options"] == "nosniff"
