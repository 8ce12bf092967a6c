"""Two requests with one Idempotency-Key at the same moment, on two database connections: one message, and
both get the same answer (the second waits on the key's unique index for the first's commit)."""

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from api.tokens import do_create_token
from inbox.models import Message
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_sends_with_one_key_make_one_message(acme, acme_connection):
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers anyway")
    conversation = ConversationFactory(connection=acme_connection)
    _, token = do_create_token(acme, name="erp", scope="read_write")
    path = f"/api/v1/conversations/{conversation.pk}/messages/"
    barrier = threading.Barrier(4)
    answers = []

    def send():
        from django.db import connections

        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        try:
            barrier.wait(5)
            response = client.post(path, {"text": "invoice 7 paid"}, format="json", HTTP_IDEMPOTENCY_KEY="race-7")
            answers.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(answers) == 4
    assert {code for code, _ in answers} == {201}
    assert len({body["id"] for _, body in answers}) == 1
    assert Message.objects.for_tenant(acme).filter(conversation=conversation).count() == 1
