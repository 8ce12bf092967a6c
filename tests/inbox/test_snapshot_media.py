"""Media in tenant exports (inbox/snapshot): the MediaFile rows and the stored bytes, content-addressed and
checksummed in the manifest, restored verified and idempotently; ``--without-media`` carries references only."""

import hashlib
import json
import shutil
import zipfile

import pytest
from django.core.management import CommandError, call_command

from connections.transport import samples
from inbox import media
from inbox.models import MediaFile, Message, Tenant
from inbox.snapshot.archive import ArchiveReader
from inbox.snapshot.export import export_tenant
from inbox.snapshot.load import import_tenant
from tests.factories import ConnectionFactory, ConversationFactory, MessageFactory, TenantFactory
from tests.inbox.test_snapshot import delete_tenant

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def received(conv, kind, data, external_id) -> MediaFile:
    """A received media message whose file the runner fetched and stored (the same action it calls)."""
    msg = MessageFactory(conversation=conv, type=kind, body="", external_id=external_id)
    item = MediaFile.objects.create(tenant=conv.tenant, message=msg, connection=conv.connection, kind=kind,
                                    ref=b"\x0a\x05media-ref-" + external_id.encode(), filename=f"{external_id}.bin")
    assert media.do_store_media(item, data)
    item.refresh_from_db()
    return item


def tenant_with_media(slug="acme"):
    tenant = TenantFactory(slug=slug)
    conv = ConversationFactory(connection=ConnectionFactory(tenant=tenant, name="Support"))
    received(conv, "image", samples.jpeg(), "IMG1")
    received(conv, "image", samples.jpeg(), "IMG2")  # the same bytes again: one stored file, one member
    received(conv, "document", samples.pdf(), "DOC1")
    received(conv, "audio", samples.ogg_opus(), "VOICE1")
    pending = MessageFactory(conversation=conv, type="video", body="", external_id="VID1")
    MediaFile.objects.create(tenant=tenant, message=pending, connection=conv.connection, kind="video", ref=b"\x0a\x01v")
    return tenant


def media_state(tenant) -> dict:
    return {m.message.external_id: (m.state, m.sha256, m.size, m.mimetype, bytes(m.ref), bool(m.thumbnail_name))
            for m in MediaFile.objects.for_tenant(tenant).select_related("message")}


def stored_bytes(media_root, tenant) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (media_root / "media" / str(tenant.pk)).rglob("*") if p.is_file() and not p.name.endswith(".thumb")}


@pytest.mark.smoke
def test_media_files_travel_in_the_export_and_come_back_verified_and_once(tmp_path, media_root):
    acme = tenant_with_media()
    TenantFactory(slug="globex")
    before = media_state(acme)
    path = tmp_path / "acme.zip"
    manifest = export_tenant(acme, path)
    shas = {hashlib.sha256(d).hexdigest() for d in (samples.jpeg(), samples.pdf(), samples.ogg_opus())}
    assert manifest["media"] == "files" and manifest["media_missing"] == 0
    assert {n for n in manifest["files"] if n.startswith("media/")} == {f"media/{s}" for s in shas}
    for sha in shas:
        assert manifest["files"][f"media/{sha}"]["sha256"] == sha
    assert manifest["files"]["media.jsonl.gz"]["rows"] == 5

    delete_tenant(acme)
    shutil.rmtree(media_root)  # a new install: no database rows, no files
    result = import_tenant(path)
    restored = Tenant.objects.get(slug="acme")
    assert result["counts"]["media"] == {"read": 5, "created": 5, "existing": 0}
    assert result["counts"]["media_files"]["created"] == 3
    assert media_state(restored) == before  # states, checksums, sniffed types, references and thumbnails
    assert set(stored_bytes(media_root, restored).items()) == {(s, s) for s in shas}
    doc = MediaFile.objects.for_tenant(restored).get(message__external_id="DOC1")
    assert media.read_bytes(doc) == samples.pdf()
    assert Message.objects.for_tenant(restored).get(pk=doc.message_id).external_id == "DOC1"

    again = import_tenant(path)  # idempotent: nothing more, no file written again
    assert again["counts"]["media"]["created"] == 0 and again["counts"]["media_files"]["created"] == 0
    assert MediaFile.objects.for_tenant(restored).count() == 5


def test_without_media_the_export_carries_references_and_a_new_install_downloads_them_again(tmp_path, media_root,
                                                                                                 capsys):
    acme = tenant_with_media()
    path = tmp_path / "acme.zip"
    call_command("export_tenant", "--tenant", "acme", "--out", str(path), "--without-media")
    printed = json.loads(capsys.readouterr().out)
    assert printed["media"] == "references" and printed["media_files"] == 0
    with ArchiveReader(path) as reader:
        assert not [n for n in reader.files if n.startswith("media/")]

    assert all(c["created"] == 0 for c in import_tenant(path)["counts"].values())  # the same install: all there

    delete_tenant(acme)
    shutil.rmtree(media_root)
    import_tenant(path)
    restored = Tenant.objects.get(slug="acme")
    rows = {m.message.external_id: m for m in MediaFile.objects.for_tenant(restored).select_related("message")}
    assert {k: m.state for k, m in rows.items()} == dict.fromkeys(["IMG1", "IMG2", "DOC1", "VOICE1", "VID1"], "pending")
    assert bytes(rows["DOC1"].ref) == b"\x0a\x05media-ref-DOC1" and rows["DOC1"].attempts == 0
    assert not media_root.exists() or not list(media_root.rglob("*.*"))


def test_media_bytes_that_do_not_match_their_name_refuse_the_import_and_leave_nothing(tmp_path, media_root):
    acme = tenant_with_media()
    path = tmp_path / "acme.zip"
    export_tenant(acme, path)
    delete_tenant(acme)
    shutil.rmtree(media_root)
    pdf = f"media/{hashlib.sha256(samples.pdf()).hexdigest()}"
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(bad, "w") as dst:
        manifest = json.loads(src.read("manifest.json"))
        swapped = samples.png()  # other bytes under the PDF's name, the manifest's checksum made to match them
        manifest["files"][pdf].update(sha256=hashlib.sha256(swapped).hexdigest(), bytes=len(swapped))
        for info in src.infolist():
            data = {pdf: swapped, "manifest.json": json.dumps(manifest).encode()}.get(info.filename) or src.read(info)
            dst.writestr(info, data)
    with pytest.raises(CommandError, match=f"{pdf}: the file named .* holds other bytes.*nothing was imported"):
        call_command("import_tenant", str(bad))
    assert not Tenant.objects.filter(slug="acme").exists() and not MediaFile.objects.unscoped().exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]  # the files it had stored were removed again
