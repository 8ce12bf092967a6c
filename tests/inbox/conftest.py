import json
from datetime import timedelta

import pytest
from django.utils import timezone

from connections.nudge import nudge_channel, redis_client
from tests.factories import ContactFactory, ConversationFactory, MessageFactory


@pytest.fixture
def make_conversations(acme_connection):
    """n conversations of acme with one message each, newest last_message_at first by index."""

    def make(n, connection=None, **kwargs):
        connection = connection or acme_connection
        now = timezone.now()
        convs = []
        for i in range(n):
            contact = ContactFactory(tenant=connection.tenant)
            conv = ConversationFactory(connection=connection, contact=contact, **kwargs)
            MessageFactory(conversation=conv, body=f"preview {i}", sent_at=now - timedelta(minutes=i))
            convs.append(conv)
        return convs

    return make


@pytest.fixture
def make_messages():
    def make(conversation, n, **kwargs):
        start = timezone.now() - timedelta(hours=n)
        return [MessageFactory(conversation=conversation, sent_at=start + timedelta(minutes=i), **kwargs) for i in range(n)]

    return make


@pytest.fixture
def nudges():
    """Listen on the real Redis nudge channel; returns a function that collects what arrived."""
    pubsub = redis_client().pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(nudge_channel())
    pubsub.get_message(timeout=1)

    def collect(timeout=1.0):
        got = []
        while True:
            msg = pubsub.get_message(timeout=timeout)
            if msg is None:
                return got
            if msg["type"] == "message":
                got.append(json.loads(msg["data"]))
                timeout = 0.2

    yield collect
    pubsub.close()
