"""Malformed request parameters: a 400 (or 422 for a form) that says what is wrong, never a 500.

Each case was a 500 (an unhandled ValueError) or a silent fallback before: a cursor with an impossible
date, a non-ASCII digit ("²".isdigit() is true, int("²") fails), an id beyond bigint.
"""

import pytest
from django.test import Client

from tests.factories import ConversationFactory, MessageFactory

pytestmark = pytest.mark.django_db

BIG = "9" * 25
CURSOR_MESSAGE = "This link to more results is malformed or out of date; reload the page."


@pytest.fixture
def owner_client(acme_owner):
    client = Client(raise_request_exception=False)
    client.force_login(acme_owner)
    return client


@pytest.fixture
def conv(acme_connection):
    conv = ConversationFactory(connection=acme_connection)
    MessageFactory(conversation=conv)
    return conv


LIST_CASES = [
    ("cursor", "2024-13-45T00:00:00+00:00|5", CURSOR_MESSAGE),  # matches the pattern, impossible date
    ("cursor", "2024-01-01T25:00:00+00:00|5", CURSOR_MESSAGE),
    ("cursor", "2024-01-01T00:00:00+00:00|\u00b2", CURSOR_MESSAGE),
    ("cursor", f"2024-01-01T00:00:00+00:00|{BIG}", CURSOR_MESSAGE),
    ("cursor", "2024-01-01T00:00:00|5", CURSOR_MESSAGE),  # no offset: not a cursor we made
    ("cursor", "garbage", CURSOR_MESSAGE),
    ("connection", BIG, "Ensure this value is less than or equal to"),
    ("connection", "\u00b2", "Enter a whole number."),
    ("status", "bogus", "Select a valid choice."),
    ("scope", "everyone", "Select a valid choice."),
    ("q", "x" * 101, "Ensure this value has at most 100 characters"),
    ("q", "a\x00b", "Null characters are not allowed."),
]


@pytest.mark.smoke
@pytest.mark.parametrize("page", ["inbox", "conversation_list", "conversation"])
@pytest.mark.parametrize("param, value, message", LIST_CASES, ids=lambda v: repr(v)[:30])
def test_bad_list_parameters_are_a_400_that_says_which(owner_client, conv, page, param, value, message):
    url = {"inbox": "/t/acme/", "conversation_list": "/t/acme/list/", "conversation": f"/t/acme/c/{conv.pk}/"}[page]
    response = owner_client.get(url, {param: value})
    assert response.status_code == 400
    body = response.content.decode()
    assert f"<strong>{param}</strong>:" in body and message in body.replace("&#x27;", "'")
    assert 'href="/t/acme/"' in body  # the way back


@pytest.mark.parametrize("before", ["2024-13-45T00:00:00+00:00|5", f"2024-01-01T00:00:00+00:00|{BIG}", "x|\u00b2"])
def test_a_bad_older_messages_cursor_is_a_400(owner_client, conv, before):
    response = owner_client.get(f"/t/acme/c/{conv.pk}/messages/", {"before": before})
    assert response.status_code == 400 and CURSOR_MESSAGE in response.content.decode().replace("&#x27;", "'")


def test_good_cursors_still_page(owner_client, conv):
    from inbox.selectors import encode_cursor

    message = conv.messages.get()
    response = owner_client.get(f"/t/acme/c/{conv.pk}/messages/", {"before": encode_cursor(message.sent_at, message.pk)})
    assert response.status_code == 200


@pytest.mark.parametrize("assignee", ["\u00b2", BIG[:20], "-1", "1e3", "me\x00"])
def test_an_assignee_that_is_no_id_is_refused_with_the_form_message(owner_client, conv, assignee):
    response = owner_client.post(f"/t/acme/c/{conv.pk}/assign/", {"assignee": assignee}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and response.content == b"Choose an agent."


def test_a_reply_with_a_nul_character_says_so(owner_client, conv):
    htmx = owner_client.post(f"/t/acme/c/{conv.pk}/reply/", {"body": "a\x00b"}, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 422 and "Null characters are not allowed." in htmx.content.decode()
    plain = owner_client.post(f"/t/acme/c/{conv.pk}/reply/", {"body": "a\x00b"})  # no JavaScript: the page, with it
    assert plain.status_code == 422 and "Null characters are not allowed." in plain.content.decode()
    assert 'id="reply-error"' in plain.content.decode()
    empty = owner_client.post(f"/t/acme/c/{conv.pk}/reply/", {"body": "  "})
    assert empty.status_code == 422 and "Type a message before sending." in empty.content.decode()


def test_with_debug_on_a_bad_parameter_is_still_our_400_not_the_debug_page(owner_client, conv, settings):
    settings.DEBUG = True
    response = owner_client.get("/t/acme/list/", {"cursor": "2024-13-45T00:00:00+00:00|5"})
    assert response.status_code == 400 and "Traceback" not in response.content.decode()
    response = owner_client.post(f"/t/acme/c/{conv.pk}/assign/", {"assignee": "\u00b2"})
    assert response.status_code == 400


@pytest.mark.parametrize("path", [f"/t/acme/c/{BIG}/", f"/t/acme/c/{BIG}/messages/", f"/t/acme/alerts/{BIG}/acknowledge/"])
def test_ids_beyond_bigint_in_paths_are_not_found(owner_client, path):
    method = owner_client.post if "acknowledge" in path else owner_client.get
    assert method(path).status_code == 404
