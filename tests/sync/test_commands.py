"""import_events / replay_events / sync_report, run as an operator would: same file many times, many processes."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inbox.models import Contact, ContactIdentity, Conversation, GroupParticipant, Message, MessageRevision
from sync.models import RawEvent, SyncRun
from tests import procs
from tests.factories import ConnectionFactory

CAPTURE = Path(__file__).resolve().parent.parent / "fixtures" / "capture_day.jsonl"


def _report(conn) -> dict:
    out = StringIO()
    call_command("sync_report", "--connection", str(conn.pk), "--json", stdout=out)
    return json.loads(out.getvalue())


def _snapshot(conn):
    """Everything ingestion writes, in a comparable form (ids excluded)."""
    return {
        "contacts": sorted(Contact.objects.unscoped().filter(tenant=conn.tenant).values_list("kind", "display_name", "push_name",
                                                                                  "phone_number")),
        "identities": sorted(ContactIdentity.objects.unscoped().filter(tenant=conn.tenant).values_list("jid", "kind",
                                                                                            "contact__phone_number")),
        "conversations": sorted(Conversation.objects.unscoped().filter(connection=conn).values_list(
            "chat_jid", "is_group", "unread_count", "last_message_at", "last_message_preview", "oldest_synced_at",
            "newest_synced_at")),
        "messages": sorted(Message.objects.unscoped().filter(connection=conn).values_list(
            "external_id", "conversation__chat_jid", "direction", "status", "type", "body", "sender_jid", "sender_name",
            "quoted_external_id", "reactions", "sent_at", "edited_at", "deleted_at", "media_size", "media_filename")),
        "revisions": sorted(MessageRevision.objects.unscoped().filter(tenant=conn.tenant)
                            .values_list("message__external_id", "body")),
        "participants": sorted(GroupParticipant.objects.unscoped().filter(tenant=conn.tenant).values_list(
            "group__display_name", "member__phone_number", "is_admin")),
    }


@pytest.mark.django_db
@pytest.mark.smoke
def test_same_capture_imported_three_times_gives_identical_rows(acme_connection):
    out = StringIO()
    call_command("import_events", "--connection", str(acme_connection.pk), str(CAPTURE), "--json", stdout=out)
    first = json.loads(out.getvalue())
    assert first["lines"] == 21 and first["journaled"] == 21 and first["failed"] == 0
    snap = _snapshot(acme_connection)
    report = _report(acme_connection)
    for _ in range(2):
        out = StringIO()
        call_command("import_events", "--connection", str(acme_connection.pk), str(CAPTURE), "--json", stdout=out)
        again = json.loads(out.getvalue())
        assert again["journaled"] == 0 and again["already_journaled"] == 21 and again["saved"] == 0
        assert _snapshot(acme_connection) == snap
    assert _report(acme_connection)["messages"] == report["messages"]

    # What the scenario holds: Ana (LID + phone) is one contact with one conversation; Carla's number
    # without the ninth digit and her LID are one contact; status and newsletter are skipped.
    assert report["conversations"] == 4  # Ana, Carla, Bruno, the group
    assert report["messages"] == 12
    assert (report["deleted_messages"], report["edited_messages"]) == (1, 1)
    assert report["journal"] == {"pending": 0, "processed": 21, "failed": 0, "quarantined": 0}
    assert report["skipped"]["status_broadcast"] == 1 and report["skipped"]["newsletter"] == 1
    assert report["skipped"]["undecryptable"] == 1
    assert report["contacts"] == 4  # Ana, Carla, Bruno, the group
    ana = Conversation.objects.unscoped().get(chat_jid="5511987654321@s.whatsapp.net")
    assert set(ana.messages.values_list("external_id", flat=True)) == {"H-ANA-1", "H-ANA-2", "LIVE-ANA-1", "LIVE-ME-1"}
    live_me = Message.objects.unscoped().get(external_id="LIVE-ME-1")
    assert (live_me.status, live_me.body, live_me.reactions) == (
        "read", "Saiu para entrega hoje de manhã", {"5511987654321@s.whatsapp.net": "🙏"})
    carla = Conversation.objects.unscoped().get(chat_jid="5531988887777@s.whatsapp.net")
    assert carla.messages.count() == 3 and carla.contact.identities.count() == 2
    run = SyncRun.objects.unscoped().get(pk=first["run"])
    assert run.kind == "import" and run.finished_at and not run.discrepancy
    assert run.received == run.saved + run.duplicates + run.skipped_total + run.failed
    assert run.progress == 100 and run.chunks == 2


@pytest.mark.django_db(transaction=True)
@pytest.mark.processes
def test_four_processes_import_one_capture_at_once(acme):
    conn = ConnectionFactory(tenant=acme)
    env = procs.process_env()
    workers = [procs.manage(f"import-{i}", "import_events", "--connection", str(conn.pk), str(CAPTURE), "--json", env=env)
               for i in range(4)]
    try:
        for w in workers:
            w.popen.wait(120)
    finally:
        for w in workers:
            w.stop()
    outputs = [w.output() for w in workers]
    for w, text in zip(workers, outputs, strict=True):
        assert w.popen.returncode == 0, text
        assert "IntegrityError" not in text and "Traceback" not in text, text
    summaries = [json.loads(next(line for line in t.splitlines() if line.startswith("{\"connection\""))) for t in outputs]
    assert sum(s["journaled"] for s in summaries) == 21
    assert sum(s["saved"] for s in summaries) == 12
    assert Message.objects.unscoped().filter(connection=conn).count() == 12
    assert Conversation.objects.unscoped().filter(connection=conn).count() == 4
    assert Contact.objects.unscoped().filter(tenant=acme).count() == 4
    assert RawEvent.objects.unscoped().filter(connection=conn, state="processed").count() == 21


@pytest.mark.django_db
def test_replay_changes_nothing_and_failed_only(acme_connection):
    call_command("import_events", "--connection", str(acme_connection.pk), str(CAPTURE), stdout=StringIO())
    snap = _snapshot(acme_connection)
    out = StringIO()
    call_command("replay_events", "--connection", str(acme_connection.pk), "--json", stdout=out)
    replay = json.loads(out.getvalue())
    assert replay["requeued"] == 21 and replay["processed"] == 21 and replay["saved"] == 0
    assert replay["duplicates"] == 12 and not replay["discrepancy"]
    assert _snapshot(acme_connection) == snap
    out = StringIO()
    call_command("replay_events", "--connection", str(acme_connection.pk), "--failed-only", "--since",
                 "2020-01-01T00:00:00", "--json", stdout=out)
    assert json.loads(out.getvalue())["requeued"] == 0


@pytest.mark.django_db
def test_commands_reject_bad_arguments(acme_connection, tmp_path):
    with pytest.raises(CommandError, match="no connection"):
        call_command("sync_report", "--connection", "999999", "--json", stdout=StringIO())
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_events", "--connection", str(acme_connection.pk), str(tmp_path / "nope.jsonl"))
    with pytest.raises(CommandError, match="ISO 8601"):
        call_command("replay_events", "--connection", str(acme_connection.pk), "--since", "yesterday")


@pytest.mark.django_db
def test_import_reports_bad_lines_and_keeps_the_good_ones(acme_connection, tmp_path):
    lines = CAPTURE.read_text().splitlines()
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([lines[4], "{not json", '{"event": "MessageEv", "payload": "***"}', lines[5]]) + "\n")
    err = StringIO()
    with pytest.raises(CommandError, match="2 bad lines"):
        call_command("import_events", "--connection", str(acme_connection.pk), str(bad), stdout=StringIO(), stderr=err)
    assert "line 2" in err.getvalue() and "line 3" in err.getvalue()
    assert set(Message.objects.unscoped().values_list("external_id", flat=True)) == {"LIVE-ANA-1", "LIVE-ME-1"}
