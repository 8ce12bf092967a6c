"""Tenant export and import (inbox/snapshot): round trip, idempotence, refusals, constant memory."""

import json
import re
import tracemalloc
import zipfile
from collections import defaultdict
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from connections.models import Connection
from inbox.models import (
    Alert,
    Contact,
    ContactIdentity,
    Conversation,
    GroupParticipant,
    Membership,
    Message,
    MessageRevision,
    MessageSearchEntry,
    Tenant,
)
from inbox.snapshot import archive
from inbox.snapshot.archive import ArchiveError, ArchiveReader
from inbox.snapshot.export import export_tenant
from inbox.snapshot.load import import_tenant
from sync.models import JidMapping
from tests.factories import (
    ConnectionFactory,
    ContactFactory,
    ConversationFactory,
    MembershipFactory,
    MessageFactory,
    TenantFactory,
    UserFactory,
)


def build_tenant(slug="acme", messages=30):
    """A tenant with a bit of everything the export carries, and another tenant that must stay out."""
    tenant = TenantFactory(name=slug.title(), slug=slug, alert_webhook_url="https://hooks.example/alerts")
    owner = MembershipFactory(user=UserFactory(username=f"{slug}-owner"), tenant=tenant, role="owner").user
    agent = MembershipFactory(user=UserFactory(username=f"{slug}-agent"), tenant=tenant, role="agent").user
    paired = ConnectionFactory(tenant=tenant, name="Support", jid=f"5511900000{len(slug)}:3@s.whatsapp.net",
                               status=Connection.Status.CONNECTED, runner_id="runner-1")
    unpaired = ConnectionFactory(tenant=tenant, name="Sales")
    ana = ContactFactory(tenant=tenant, display_name="Ana", phone_number="+5511987650001")
    ContactIdentity.objects.create(tenant=tenant, contact=ana, jid="123456789@lid", kind=ContactIdentity.Kind.LID)
    bruno = ContactFactory(tenant=tenant, display_name="Bruno", phone_number="+5511987650002")
    loose = Contact.objects.create(tenant=tenant, display_name="No identity yet")
    group = ContactFactory(tenant=tenant, kind=Contact.Kind.GROUP, display_name="Team", phone_number="")
    ContactIdentity.objects.create(tenant=tenant, contact=group, jid="1203630@g.us", kind=ContactIdentity.Kind.GROUP)
    GroupParticipant.objects.create(tenant=tenant, group=group, member=ana, is_admin=True)
    GroupParticipant.objects.create(tenant=tenant, group=group, member=bruno)
    JidMapping.objects.create(tenant=tenant, lid_jid="123456789@lid", pn_jid="5511987650001@s.whatsapp.net")
    assert loose.pk
    c1 = ConversationFactory(connection=paired, contact=ana, assignee=agent, status="pending")
    c2 = ConversationFactory(connection=unpaired, contact=bruno)
    c3 = ConversationFactory(connection=paired, contact=group, chat_jid="1203630@g.us", is_group=True)
    now = timezone.now()
    for i in range(messages):
        MessageFactory(conversation=(c1, c2, c3)[i % 3], sent_at=now - timedelta(minutes=messages - i),
                       body=f"hello {i} \u00e9\u2713 \"quoted\"\nline two",
                       reactions={"x@s.whatsapp.net": "\U0001f44d"} if i == 2 else {},
                       extra={"lat": 1.5} if i == 3 else {})
    edited = MessageFactory(conversation=c1, body="new text", edited_at=now, sent_at=now)
    MessageRevision.objects.create(tenant=tenant, message=edited, body="old text", replaced_at=now - timedelta(seconds=5))
    MessageFactory(conversation=c1, body="gone", deleted_at=now, sent_at=now, searchable=False)
    MessageFactory(conversation=c1, direction="out", status="read", sender_user=owner, external_id="local-abc", sent_at=now)
    Alert.objects.create(tenant=tenant, connection=paired, cause=f"connection:{paired.pk}:down", kind="number_down",
                         message="down for 6 min")
    Alert.objects.create(tenant=tenant, kind="sync_discrepancy", message="old", resolved_at=now, acknowledged_by=owner,
                         acknowledged_at=now)
    return tenant


def canonical(path) -> dict:
    """The export's content with this database's ids replaced by natural keys: equal across databases."""
    with ArchiveReader(path) as reader:
        reader.verify()
        data = {name: list(reader.rows(name)) for name in reader.files if not name.startswith("media/")}
    conns = {c["id"]: c["jid"] or c["name"] for c in data["connections.jsonl.gz"]}
    idents = defaultdict(list)
    for i in data["identities.jsonl.gz"]:
        idents[i["contact_id"]].append(i["jid"])
    contacts = {c["id"]: (sorted(idents[c["id"]]), c["display_name"]) for c in data["contacts.jsonl.gz"]}
    convs = {c["id"]: (conns[c["connection_id"]], c["chat_jid"]) for c in data["conversations.jsonl.gz"]}
    refs = {"connection_id": conns, "message_connection_id": conns, "contact_id": contacts, "group_id": contacts,
            "member_id": contacts, "conversation_id": convs}
    out = {}
    for name, rows in data.items():
        rewritten = []
        for row in rows:
            row = {k: (refs[k].get(v) if k in refs else v) for k, v in row.items() if k != "id"}
            if row.get("cause"):
                row["cause"] = re.sub(r"connection:(\d+):", lambda m: f"connection:{conns[int(m.group(1))]}:", row["cause"])
            rewritten.append(json.dumps(row, sort_keys=True))
        out[name] = sorted(rewritten)
    return out


def table_counts(tenant) -> dict:
    return {"connections": Connection.objects.for_tenant(tenant).count(),
            "contacts": Contact.objects.for_tenant(tenant).count(),
            "identities": ContactIdentity.objects.for_tenant(tenant).count(),
            "conversations": Conversation.objects.for_tenant(tenant).count(),
            "messages": Message.objects.for_tenant(tenant).count(),
            "revisions": MessageRevision.objects.for_tenant(tenant).count(),
            "search": MessageSearchEntry.objects.for_tenant(tenant).count(),
            "alerts": Alert.objects.for_tenant(tenant).count(),
            "participants": GroupParticipant.objects.for_tenant(tenant).count(),
            "members": Membership.objects.filter(tenant=tenant).count()}


def delete_tenant(tenant):
    for conn in Connection.objects.for_tenant(tenant):
        conn.delete()  # Django's cascade: messages before their conversations (the 0008 guard allows it)
    Contact.objects.for_tenant(tenant).delete()
    tenant.delete()


@pytest.mark.django_db
@pytest.mark.smoke
def test_round_trip_into_an_emptied_database_gives_the_same_content(tmp_path):
    acme = build_tenant("acme")
    build_tenant("globex", messages=5)  # another tenant: nothing of it in acme's file
    first = tmp_path / "acme.zip"
    manifest = export_tenant(acme, first)
    assert manifest["version"] == archive.FORMAT_VERSION and manifest["tenant"] == "acme"
    assert manifest["files"]["messages.jsonl.gz"]["rows"] == 33
    assert manifest["files"]["users.jsonl.gz"]["rows"] == 2
    before = table_counts(acme)
    content = canonical(first)
    assert not any("globex" in line for rows in content.values() for line in rows)

    delete_tenant(acme)
    assert Message.objects.unscoped().filter(tenant_id=acme.pk).count() == 0
    result = import_tenant(first)
    restored = Tenant.objects.get(slug="acme")
    assert restored.pk != acme.pk
    assert result["counts"]["messages"] == {"read": 33, "created": 33, "existing": 0}
    assert result["counts"]["users"]["created"] == 0  # the users outlived the tenant: matched by username
    assert table_counts(restored) == before
    # The restored messages are searchable, the outbound reply keeps its agent, the open alert its number.
    conn = Connection.objects.for_tenant(restored).get(name="Support")
    assert Alert.objects.for_tenant(restored).get(resolved_at__isnull=True).cause == f"connection:{conn.pk}:down"
    assert Message.objects.for_tenant(restored).get(external_id="local-abc").sender_user.username == "acme-owner"

    second = tmp_path / "again.zip"
    export_tenant(restored, second)
    assert canonical(second) == content


@pytest.mark.django_db
@pytest.mark.smoke
def test_a_second_import_and_an_import_into_the_same_install_change_nothing(tmp_path):
    acme = build_tenant("acme")
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    before = table_counts(acme)
    first = import_tenant(path)  # the install it came from: everything is there already
    assert all(c["created"] == 0 for c in first["counts"].values()), first["counts"]
    assert table_counts(acme) == before

    # Delete one conversation (with its messages) and the tenant's contacts without identities; the
    # import brings back exactly those.
    conv = Conversation.objects.for_tenant(acme).get(is_group=True)
    n = conv.messages.count()
    from inbox.purge import do_purge_conversations

    do_purge_conversations([conv.pk])
    second = import_tenant(path)
    assert second["counts"]["conversations"]["created"] == 1
    assert second["counts"]["messages"]["created"] == n
    assert table_counts(acme) == before
    assert all(c["created"] == 0 for c in import_tenant(path)["counts"].values())


@pytest.mark.django_db
def test_a_corrupted_file_is_refused_before_anything_is_written(tmp_path):
    acme = build_tenant("acme", messages=10)
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    delete_tenant(acme)
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "messages.jsonl.gz":
                data = data[:-40] + bytes(b ^ 0xFF for b in data[-40:])  # a flipped tail
            dst.writestr(info, data)
    with pytest.raises(CommandError, match="does not match its checksum.*nothing was imported"):
        call_command("import_tenant", str(bad))
    assert not Tenant.objects.filter(slug="acme").exists()

    cut = tmp_path / "cut.zip"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CommandError, match="not a readable export"):
        call_command("import_tenant", str(cut))


@pytest.mark.django_db
def test_an_error_half_way_rolls_everything_back(tmp_path, monkeypatch):
    acme = build_tenant("acme", messages=10)
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    delete_tenant(acme)
    from inbox.snapshot.load import Loader

    def boom(self):
        raise ValueError("disk on fire")

    monkeypatch.setattr(Loader, "load_revisions", boom)  # after tenant, users, numbers, contacts, messages
    with pytest.raises(ArchiveError, match="disk on fire"):
        import_tenant(path)
    assert not Tenant.objects.filter(slug="acme").exists()
    assert not Message.objects.unscoped().exists()


@pytest.mark.django_db
def test_a_newer_format_is_refused_with_a_clear_message(tmp_path, monkeypatch):
    acme = build_tenant("acme", messages=3)
    path = tmp_path / "acme.zip"
    monkeypatch.setattr(archive, "FORMAT_VERSION", archive.FORMAT_VERSION + 1)
    export_tenant(acme, path)
    monkeypatch.undo()
    with pytest.raises(CommandError, match=r"format version 3 is newer than this installation reads \(versions 1 to 2\)"):
        call_command("import_tenant", str(path))


@pytest.mark.django_db
def test_a_number_linked_to_another_tenant_here_refuses_the_import(tmp_path):
    acme = build_tenant("acme", messages=3)
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    jid = Connection.objects.for_tenant(acme).get(name="Support").jid
    delete_tenant(acme)
    ConnectionFactory(tenant=TenantFactory(slug="other"), jid=jid)
    with pytest.raises(CommandError, match="linked to another tenant here"):
        call_command("import_tenant", str(path))
    assert not Tenant.objects.filter(slug="acme").exists()


@pytest.mark.django_db
def test_a_username_of_someone_else_here_refuses_the_import(tmp_path):
    acme = build_tenant("acme", messages=3)
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    delete_tenant(acme)
    UserFactory._meta.model.objects.filter(username="acme-agent").update(email="somebody.else@example.org")
    with pytest.raises(CommandError, match="acme-agent exist here with another e-mail address"):
        call_command("import_tenant", str(path))
    assert not Tenant.objects.filter(slug="acme").exists()


@pytest.mark.django_db
def test_commands_print_json(tmp_path, capsys):
    build_tenant("acme", messages=3)
    path = tmp_path / "out" / "acme.zip"
    call_command("export_tenant", "--tenant", "acme", "--out", str(path))
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"]["messages.jsonl.gz"] == 6 and path.exists()
    assert not list(path.parent.glob("*.partial"))
    call_command("import_tenant", str(path), "--dry-run")
    assert json.loads(capsys.readouterr().out)["counts"]["messages"]["existing"] == 6
    with pytest.raises(CommandError, match="no tenant"):
        call_command("export_tenant", "--tenant", "nope", "--out", str(path))


def _bulk_messages(conv, n, start=0):
    now = timezone.now()
    Message.objects.bulk_create(
        [Message(tenant=conv.tenant, conversation=conv, connection=conv.connection, external_id=f"M{start + i:09d}",
                 direction="in", body=f"message number {start + i} " + "x" * 80, sent_at=now) for i in range(n)],
        batch_size=2000)


@pytest.mark.django_db
def test_export_memory_does_not_grow_with_the_messages(tmp_path):
    conv = ConversationFactory()

    def peak(label) -> int:
        tracemalloc.start()
        try:
            export_tenant(conv.tenant, tmp_path / f"{label}.zip", chunk_size=250)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    _bulk_messages(conv, 1500)
    small = peak("small")  # already several chunks: the peak holds two of them (one read, one being fetched)
    _bulk_messages(conv, 6000, start=1500)
    large = peak("large")
    # Five times the messages: the peak is the same two chunks of rows plus noise, not five times anything.
    assert large < small * 1.3 + 256 * 1024, (small, large)


@pytest.mark.django_db(transaction=True)
def test_rows_committed_during_the_export_are_in_no_member(tmp_path, monkeypatch):
    """The export's transaction is the outermost one here, so it is the REPEATABLE READ snapshot: a
    conversation and its message committed between the conversations and the messages members are in
    neither (READ COMMITTED would write the message without its conversation)."""
    import threading

    from django.db import connection as db_connection

    from inbox.snapshot import export as export_module

    acme = build_tenant("acme", messages=6)
    original = export_module.tenant_members

    def write_meanwhile():
        try:
            conv = ConversationFactory(connection=Connection.objects.for_tenant(acme).get(name="Sales"),
                                       contact=ContactFactory(tenant=acme))
            MessageFactory(conversation=conv, body="committed during the export")
        finally:
            db_connection.close()

    def members(tenant, chunk_size):
        for name, rows in original(tenant, chunk_size):
            if name == "messages.jsonl.gz":
                writer = threading.Thread(target=write_meanwhile)
                writer.start()
                writer.join()
            yield name, rows

    monkeypatch.setattr(export_module, "tenant_members", members)
    path = tmp_path / "acme.zip"
    manifest = export_tenant(acme, path)
    assert manifest["snapshot"] == "repeatable_read"
    assert manifest["files"]["messages.jsonl.gz"]["rows"] == 9
    assert Message.objects.for_tenant(acme).count() == 10  # it was committed
    with ArchiveReader(path) as reader:
        conversations = {r["id"] for r in reader.rows("conversations.jsonl.gz")}
        assert {r["conversation_id"] for r in reader.rows("messages.jsonl.gz")} <= conversations
    content = canonical(path)
    assert not any("committed during the export" in line for line in content["messages.jsonl.gz"])


class StoreKit:
    """whatsmeow stores of this test's own, SQLite files or PostgreSQL databases beside the test database, with
    two of whatsmeow's device tables (their real key columns) and the shared LID map."""

    def __init__(self, kind, tmp_path):
        self.kind, self.tmp_path, self.databases = kind, tmp_path, []

    def url(self, name):
        if self.kind == "sqlite":
            return str(self.tmp_path / f"{name}.sqlite3")
        import psycopg
        from django.db import connection

        db = connection.settings_dict
        server = f"postgres://postgres@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        database = f"{db['NAME']}_{name}"
        with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{database}"')
        self.databases.append((server, database))
        return f"{server}/{database}?sslmode=disable"

    def execute(self, url, statements):
        if self.kind == "sqlite":
            import sqlite3

            with sqlite3.connect(url) as c:
                return [c.execute(sql, params).fetchall() for sql, params in statements]
        import psycopg

        with psycopg.connect(url.split("?")[0], autocommit=True) as c:
            out = []
            for sql, params in statements:
                cur = c.execute(sql.replace("?", "%s"), params)
                out.append(cur.fetchall() if cur.description else [])
            return out

    def make(self, url, device_jid=None):
        blob = "BLOB" if self.kind == "sqlite" else "BYTEA"
        statements = [
            (f"CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY, registration_id BIGINT, noise_key {blob})", []),
            (f"CREATE TABLE whatsmeow_sessions (our_jid TEXT, their_id TEXT, session {blob}, PRIMARY KEY (our_jid, their_id))",
             []),
            ("CREATE TABLE whatsmeow_lid_map (lid TEXT PRIMARY KEY, pn TEXT)", []),
        ]
        if device_jid:
            statements += [("INSERT INTO whatsmeow_device VALUES (?, 42, ?)", [device_jid, b"\x00secret-noise\xff"])]
            statements += [("INSERT INTO whatsmeow_sessions VALUES (?, ?, ?)", row) for row in
                           [(device_jid, "5511987650001.0", b"\x01session-a"), (device_jid, "5511987650002.0", b"\x02b"),
                            ("5599000000000:1@s.whatsapp.net", "x", b"another number's")]]
            statements += [("INSERT INTO whatsmeow_lid_map VALUES ('1', '2')", [])]
        self.execute(url, statements)

    def rows(self, url):
        devices, sessions = self.execute(url, [("SELECT jid, registration_id, noise_key FROM whatsmeow_device", []),
                                               ("SELECT our_jid, their_id, session FROM whatsmeow_sessions", [])])
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in devices], sorted(
            tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in sessions)

    def drop(self):
        import psycopg

        for server, database in self.databases:
            with psycopg.connect(f"{server}/postgres", autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def stores(request, tmp_path):
    kit = StoreKit(request.param, tmp_path)
    yield kit
    kit.drop()


@pytest.mark.django_db
def test_session_keys_travel_encrypted_only_when_asked(tmp_path, settings, stores):
    acme = build_tenant("acme", messages=3)
    jid = Connection.objects.for_tenant(acme).get(name="Support").jid
    settings.WHATSMEOW_STORE = stores.url("source")
    stores.make(settings.WHATSMEOW_STORE, jid)
    plain, secret = tmp_path / "plain.zip", tmp_path / "secret.zip"
    export_tenant(acme, plain)
    manifest = export_tenant(acme, secret, with_sessions=True, passphrase="correct horse battery")
    assert manifest["sessions"] and manifest["files"]["sessions.bin"]["rows"] == 3  # the device and its 2 sessions
    assert b"secret-noise" not in secret.read_bytes() and jid.encode() not in secret.read_bytes()
    with pytest.raises(ArchiveError, match="passphrase is required"):
        export_tenant(acme, tmp_path / "x.zip", with_sessions=True)

    delete_tenant(acme)
    settings.WHATSMEOW_STORE = stores.url("fresh")
    with pytest.raises(ArchiveError, match="made without --with-sessions"):
        import_tenant(plain, with_sessions=True, passphrase="correct horse battery")
    with pytest.raises(ArchiveError, match="do not open with this passphrase"):
        import_tenant(secret, with_sessions=True, passphrase="wrong horse")
    assert not Tenant.objects.filter(slug="acme").exists()  # refused before anything was written
    with pytest.raises(ArchiveError, match="has no whatsmeow_device, whatsmeow_sessions table"):
        import_tenant(secret, with_sessions=True, passphrase="correct horse battery")
    stores.make(settings.WHATSMEOW_STORE)
    result = import_tenant(secret, with_sessions=True, passphrase="correct horse battery")
    assert result["sessions"] == {"whatsmeow_device": 1, "whatsmeow_sessions": 2}
    devices, sessions = stores.rows(settings.WHATSMEOW_STORE)
    assert devices == [(jid, 42, b"\x00secret-noise\xff")]
    assert sessions == [(jid, "5511987650001.0", b"\x01session-a"), (jid, "5511987650002.0", b"\x02b")]
    again = import_tenant(secret, with_sessions=True, passphrase="correct horse battery")
    assert again["sessions"] == {"whatsmeow_device": 0, "whatsmeow_sessions": 0}
    assert import_tenant(secret)["sessions"] == "in the file, not asked for"
