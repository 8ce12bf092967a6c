"""A pushed or printed message bubble: every value from WhatsApp or an agent is escaped, quotes too."""

from datetime import UTC, datetime

import pytest
from django.utils import translation
from django.utils.html import escape as django_escape

from inbox.bubbles import BubbleMessage, message_bubble

pytestmark = pytest.mark.smoke
HOSTILE = """<img src=x onerror="alert('x')">&amp;"""


def bubble(**values) -> str:
    fields = {"pk": 7, "conversation_id": 3, "is_group": True, "direction": "in", "status": "received", "type": "text",
              "body": "", "sender_jid": "5511@s.whatsapp.net", "sender_name": "", "agent": None, "quoted_body": "",
              "quoted_external_id": "", "reactions": {}, "sent_at": datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
              "edited_at": None, "deleted_at": None, "error": "", "media_filename": "", "media_size": None,
              "media": None}
    with translation.override("en"):
        return str(message_bubble(BubbleMessage(**{**fields, **values}), live=True))


def test_a_group_senders_name_a_quote_a_body_and_reactions_are_escaped_as_djangos_escape_would():
    html = bubble(sender_name=HOSTILE, quoted_body=HOSTILE, body=HOSTILE, reactions={"a": HOSTILE, "b": HOSTILE})
    assert "<img" not in html and "alert('x')" not in html
    escaped = str(django_escape(HOSTILE))
    assert f'<div class="msg-sender">{escaped}</div>' in html
    assert f'<blockquote class="msg-quote">{escaped}</blockquote>' in html
    assert f'<p class="msg-body">{escaped}</p>' in html
    assert f'<span class="reaction">{escaped} 2</span>' in html


def test_a_failed_replys_agent_and_error_are_escaped_in_text_and_in_attributes():
    html = bubble(is_group=False, direction="out", status="failed", agent=HOSTILE, error=HOSTILE, body="*hi* there")
    escaped = str(django_escape(HOSTILE))
    assert "<img" not in html and "alert('x')" not in html
    assert f'<div class="msg-sender msg-sender-out">{escaped}</div>' in html
    assert f'title="Failed: {escaped}"' in html and f"Not sent: {escaped}" in html
    assert '<p class="msg-body"><strong>hi</strong> there</p>' in html
