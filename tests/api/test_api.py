"""/api/v1/: every operation answers what the OpenAPI document says (validated against it), another
tenant's token sees none of it (404), scopes and rate limits hold, and a send with an Idempotency-Key made
twice is one message."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient

from api.tokens import do_create_token, do_revoke_token
from inbox.alerts import do_raise_alert
from inbox.labels import check_create_label
from inbox.media import do_queue_media_reply
from inbox.models import ConversationLabel, Label, MediaFile, Message
from tests.api import schema
from tests.factories import ConnectionFactory, ConversationFactory, MembershipFactory, MessageFactory, UserFactory

pytestmark = pytest.mark.django_db

SEEN: set = set()  # operations validated against the document by this module's tests


def client_for(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def png(color=(200, 30, 30), size=(8, 8)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def world(acme, globex, acme_owner):
    """Acme's number, conversation (with three messages and a sent image), contact, member, alert and labels;
    Globex's too."""
    def build(tenant, tag):
        number = ConnectionFactory(tenant=tenant, name=f"{tag} number", status="connected")
        conversation = ConversationFactory(connection=number)
        base = timezone.now()
        messages = [MessageFactory(conversation=conversation, sent_at=base - timezone.timedelta(minutes=3 - i))
                    for i in range(3)]
        alert, _ = do_raise_alert(f"connection:{number.pk}:down", kind="number_down", message="down",
                                  tenant_id=tenant.pk, connection_id=number.pk)
        vip = check_create_label(tenant, "VIP", "red")
        billing = check_create_label(tenant, "billing", "blue")
        image = do_queue_media_reply(conversation, None, png(), kind="image", filename="photo.png", caption="look")
        return {"number": number, "conversation": conversation, "contact": conversation.contact,
                "messages": messages, "alert": alert, "vip": vip, "billing": billing, "image": image}

    agent = MembershipFactory(tenant=acme, user=UserFactory(username="api-agent"), role="agent").user
    _, write = do_create_token(acme, name="erp", scope="read_write", created_by=acme_owner)
    _, read = do_create_token(acme, name="bi", scope="read", created_by=acme_owner)
    _, other = do_create_token(globex, name="globex", scope="read_write")
    return {"acme": build(acme, "acme"), "globex": build(globex, "globex"), "agent": agent,
            "write": client_for(write), "read": client_for(read), "other": client_for(other)}


def urls(w) -> list[tuple[str, str, dict | None]]:
    """Every operation of the API on Acme's rows: (method, path, body); deleting a label last."""
    a = w["acme"]
    conv = a["conversation"].pk
    return [
        ("get", "/api/v1/numbers/", None),
        ("get", f"/api/v1/numbers/{a['number'].pk}/", None),
        ("get", "/api/v1/contacts/", None),
        ("get", f"/api/v1/contacts/{a['contact'].pk}/", None),
        ("patch", f"/api/v1/contacts/{a['contact'].pk}/", {"notes": "pays by invoice", "attributes": {"Pedido": "4521"}}),
        ("get", "/api/v1/conversations/", None),
        ("get", f"/api/v1/conversations/{conv}/", None),
        ("post", f"/api/v1/conversations/{conv}/assign/", {"assignee_id": w["agent"].pk}),
        ("post", f"/api/v1/conversations/{conv}/status/", {"status": "pending"}),
        ("get", f"/api/v1/conversations/{conv}/messages/", None),
        ("post", f"/api/v1/conversations/{conv}/messages/", {"text": "hello from the ERP"}),
        ("get", f"/api/v1/messages/{a['messages'][0].pk}/", None),
        ("get", "/api/v1/alerts/", None),
        ("get", "/api/v1/labels/", None),
        ("post", "/api/v1/labels/", {"name": "urgent", "color": "orange"}),
        ("get", f"/api/v1/labels/{a['vip'].pk}/", None),
        ("patch", f"/api/v1/labels/{a['vip'].pk}/", {"name": "VIP customer"}),
        ("post", f"/api/v1/conversations/{conv}/labels/", {"label_id": a["billing"].pk}),
        ("delete", f"/api/v1/conversations/{conv}/labels/{a['billing'].pk}/", None),
        ("post", f"/api/v1/conversations/{conv}/media/", "multipart"),
        ("get", f"/api/v1/messages/{a['image'].pk}/media/", None),
        ("delete", f"/api/v1/labels/{a['vip'].pk}/", None),
    ]


def upload(name="scan.png", data=None):
    return SimpleUploadedFile(name, data if data is not None else png(), content_type="image/png")


def call(client, method, path, body=None, **extra):
    if method == "get":
        return client.get(path, **extra)
    if body == "multipart":
        return client.post(path, {"file": upload(), "caption": "your invoice"}, format="multipart", **extra)
    return getattr(client, method)(path, body, format="json", **extra)


def test_every_operation_answers_what_the_schema_documents(world):
    for method, path, body in urls(world):
        response = call(world["write"], method, path, body)
        assert response.status_code in (200, 201, 204), (method, path, response.content[:300])
        schema.validate(response, SEEN)


def test_reads_show_the_tenants_rows(world):
    a = world["acme"]
    client = world["read"]
    numbers = client.get("/api/v1/numbers/").json()["results"]
    assert [n["id"] for n in numbers] == [a["number"].pk] and numbers[0]["status"] == "connected"
    conversations = client.get("/api/v1/conversations/").json()["results"]
    assert [c["id"] for c in conversations] == [a["conversation"].pk]
    assert conversations[0]["contact"]["id"] == a["contact"].pk
    messages = client.get(f"/api/v1/conversations/{a['conversation'].pk}/messages/").json()
    assert [m["id"] for m in messages["results"]] == [m.pk for m in [*a["messages"], a["image"]]]  # oldest first
    assert messages["next_cursor"] is None
    contact = client.get(f"/api/v1/contacts/{a['contact'].pk}/").json()
    assert contact["identities"] and contact["identities"][0]["kind"] == "pn"
    alerts = client.get("/api/v1/alerts/", {"open": "true"}).json()["results"]
    assert [x["id"] for x in alerts] == [a["alert"].pk]


def test_message_pages_walk_back_with_the_cursor(world, monkeypatch):
    from inbox import selectors

    monkeypatch.setattr(selectors.thread_page, "__defaults__", (None, 2))
    a = world["acme"]
    path = f"/api/v1/conversations/{a['conversation'].pk}/messages/"
    first = world["read"].get(path)
    schema.validate(first, SEEN)
    assert [m["id"] for m in first.json()["results"]] == [a["messages"][2].pk, a["image"].pk]
    older = world["read"].get(path, {"cursor": first.json()["next_cursor"]}).json()
    assert [m["id"] for m in older["results"]] == [m.pk for m in a["messages"][:2]]
    assert older["next_cursor"] is None  # the oldest page says so


def test_conversation_filters_are_the_inboxs(world):
    a = world["acme"]
    client = world["write"]
    assert client.get("/api/v1/conversations/", {"assignee": "unassigned"}).json()["results"]
    client.post(f"/api/v1/conversations/{a['conversation'].pk}/assign/", {"assignee_id": world["agent"].pk},
                format="json")
    assert not client.get("/api/v1/conversations/", {"assignee": "unassigned"}).json()["results"]
    mine = client.get("/api/v1/conversations/", {"assignee": str(world["agent"].pk)}).json()["results"]
    assert [c["id"] for c in mine] == [a["conversation"].pk] and mine[0]["assignee"]["username"] == "api-agent"
    assert not client.get("/api/v1/conversations/", {"status": "resolved"}).json()["results"]
    name = a["contact"].display_name
    assert client.get("/api/v1/conversations/", {"q": name}).json()["results"]
    assert not client.get("/api/v1/conversations/", {"number_id": world["globex"]["number"].pk}).json()["results"]


def test_bad_input_is_a_documented_400(world):
    a = world["acme"]
    client = world["write"]
    for response in [
        client.get("/api/v1/conversations/", {"cursor": "not-a-cursor"}),
        client.get("/api/v1/conversations/", {"status": "sleeping"}),
        client.post(f"/api/v1/conversations/{a['conversation'].pk}/status/", {"status": "gone"}, format="json"),
        # Snoozing needs a time and a wake-up (the inbox's snooze), not a bare status that would never wake.
        client.post(f"/api/v1/conversations/{a['conversation'].pk}/status/", {"status": "snoozed"}, format="json"),
        client.post(f"/api/v1/conversations/{a['conversation'].pk}/messages/", {"text": "  "}, format="json"),
        client.post(f"/api/v1/conversations/{a['conversation'].pk}/messages/", {"text": "a\x00b"}, format="json"),
        # A member of another tenant cannot be assigned.
        client.post(f"/api/v1/conversations/{a['conversation'].pk}/assign/",
                    {"assignee_id": world["globex"]["conversation"].tenant.memberships.first().user_id
                     if world["globex"]["conversation"].tenant.memberships.exists() else 10**9}, format="json"),
    ]:
        assert response.status_code == 400, response.content
        assert response.json()["errors"]
        schema.validate(response, SEEN)


def test_contacts_carry_notes_and_attributes_and_are_edited_as_on_the_contact_panel(world):
    a = world["acme"]
    contact = a["contact"]
    path = f"/api/v1/contacts/{contact.pk}/"
    client = world["write"]
    shown = client.get(path)
    schema.validate(shown, SEEN)
    assert (shown.json()["name_locked"], shown.json()["notes"], shown.json()["attributes"]) == (False, "", {})

    edited = client.patch(path, {"name": "  Ana   Souza ", "notes": "prefers mornings\r\nno calls",
                                 "attributes": {"CPF": "529.982.247-25", "Pedido": "88", "empty": ""}}, format="json")
    schema.validate(edited, SEEN)
    assert edited.status_code == 200, edited.content
    body = edited.json()
    assert (body["name"], body["display_name"], body["name_locked"]) == ("Ana Souza", "Ana Souza", True)
    assert body["notes"] == "prefers mornings\nno calls"  # cleaned as the panel cleans it
    assert body["attributes"] == {"CPF": "529.982.247-25", "Pedido": "88"}  # an empty value drops its key
    listed = client.get("/api/v1/contacts/")
    schema.validate(listed, SEEN)
    assert listed.json()["results"][0]["attributes"] == body["attributes"]

    # A field left out keeps its value.
    notes_only = client.patch(path, {"notes": "VIP"}, format="json").json()
    assert (notes_only["name"], notes_only["name_locked"], notes_only["attributes"]) == (
        "Ana Souza", True, body["attributes"])

    # The panel's rules, the panel's messages; a refused edit changes nothing.
    for change, field in [({"attributes": {"CPF": "111.111.111-11"}}, "attributes"),
                          ({"attributes": {"Pedido": "1", "pedido": "2"}}, "attributes"),
                          ({"attributes": {"bad key!": "1"}}, "attributes"),
                          ({"attributes": {f"k{i}": "v" for i in range(31)}}, "attributes"),
                          ({"notes": "x" * 4001, "name": "Someone else"}, "notes"),
                          ({"name": "n" * 256}, "name"),
                          ({"attributes": ["not", "an", "object"]}, "attributes"),
                          ({"attributes": {"Pedido": {"nested": 1}}}, "attributes")]:
        refused = client.patch(path, change, format="json")
        assert refused.status_code == 400 and field in refused.json()["errors"], (change, refused.content)
        schema.validate(refused, SEEN)
    contact.refresh_from_db()
    assert (contact.display_name, contact.notes, contact.attributes) == ("Ana Souza", "VIP", body["attributes"])

    # A null value drops its key, as an empty one does.
    dropped = client.patch(path, {"attributes": {**body["attributes"], "Pedido": None}}, format="json").json()
    assert dropped["attributes"] == {"CPF": "529.982.247-25"}

    # An empty name hands the name back to WhatsApp's (the sync may set it again).
    unlocked = client.patch(path, {"name": ""}, format="json").json()
    assert unlocked["name_locked"] is False

    # A read token may look, not edit.
    forbidden = world["read"].patch(path, {"notes": "from BI"}, format="json")
    assert forbidden.status_code == 403
    schema.validate(forbidden, SEEN)
    contact.refresh_from_db()
    assert contact.notes == "VIP" and contact.attributes == {"CPF": "529.982.247-25"}


def test_send_goes_through_the_outbox(world):
    a = world["acme"]
    response = world["write"].post(f"/api/v1/conversations/{a['conversation'].pk}/messages/", {"text": " hi "},
                                   format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["direction"] == "out" and body["body"] == "hi"
    assert body["whatsapp_id"] is None  # a local id until the runner sends it
    message = Message.objects.for_tenant(a["conversation"].tenant_id).get(pk=body["id"])
    assert message.sender_user_id is None and message.status == Message.Status.QUEUED


def test_the_same_idempotency_key_twice_is_one_message_and_the_same_answer(world):
    a = world["acme"]
    path = f"/api/v1/conversations/{a['conversation'].pk}/messages/"
    before = Message.objects.for_tenant(a["conversation"].tenant_id).count()
    first = world["write"].post(path, {"text": "order 42 shipped"}, format="json", HTTP_IDEMPOTENCY_KEY="k-42")
    second = world["write"].post(path, {"text": "order 42 shipped"}, format="json", HTTP_IDEMPOTENCY_KEY="k-42")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert Message.objects.for_tenant(a["conversation"].tenant_id).count() == before + 1
    reused = world["write"].post(path, {"text": "another text"}, format="json", HTTP_IDEMPOTENCY_KEY="k-42")
    assert reused.status_code == 422
    schema.validate(reused, SEEN)
    # Another key is another message; a refused send leaves its key free for a corrected retry.
    assert world["write"].post(path, {"text": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="k-43").json()["id"] != \
        first.json()["id"]
    assert world["write"].post(path, {"text": ""}, format="json", HTTP_IDEMPOTENCY_KEY="k-44").status_code == 400
    assert world["write"].post(path, {"text": "fixed"}, format="json", HTTP_IDEMPOTENCY_KEY="k-44").status_code == 201


@pytest.mark.smoke  # SQLite too
def test_labels_are_listed_created_renamed_put_on_filtered_and_taken_off(world):
    a = world["acme"]
    client = world["write"]
    conv = a["conversation"].pk
    assert {x["name"] for x in client.get("/api/v1/labels/").json()["results"]} == {"billing", "VIP"}
    for body in ({"name": "vip", "color": "red"}, {"name": "  ", "color": "red"}, {"name": "x", "color": "teal"}):
        refused = client.post("/api/v1/labels/", body, format="json")
        assert refused.status_code == 400 and refused.json()["errors"], body
        schema.validate(refused, SEEN)
    assert Label.objects.for_tenant(a["vip"].tenant_id).count() == 2  # nothing half-made
    renamed = client.patch(f"/api/v1/labels/{a['billing'].pk}/", {"color": "green"}, format="json").json()
    assert (renamed["name"], renamed["color"]) == ("billing", "green")
    clash = client.patch(f"/api/v1/labels/{a['billing'].pk}/", {"name": "VIP"}, format="json")
    assert clash.status_code == 400 and "VIP" in clash.json()["errors"]["name"][0]

    added = client.post(f"/api/v1/conversations/{conv}/labels/", {"label_id": a["vip"].pk}, format="json").json()
    again = client.post(f"/api/v1/conversations/{conv}/labels/", {"label_id": a["vip"].pk}, format="json").json()
    assert added["labels"] == again["labels"] == [{"id": a["vip"].pk, "name": "VIP", "color": "red"}]
    listed = client.get("/api/v1/conversations/", {"label_id": a["vip"].pk}).json()["results"]
    assert [c["id"] for c in listed] == [conv] and listed[0]["labels"][0]["name"] == "VIP"
    assert not client.get("/api/v1/conversations/", {"label_id": a["billing"].pk}).json()["results"]
    assert client.get(f"/api/v1/conversations/{conv}/").json()["labels"][0]["id"] == a["vip"].pk
    removed = client.delete(f"/api/v1/conversations/{conv}/labels/{a['vip'].pk}/")
    assert removed.status_code == 200 and removed.json()["labels"] == []
    assert not client.get("/api/v1/conversations/", {"label_id": a["vip"].pk}).json()["results"]
    assert world["read"].post("/api/v1/labels/", {"name": "n"}, format="json").status_code == 403


@pytest.mark.smoke  # SQLite too
def test_a_media_send_goes_through_the_outbox_with_the_reply_boxs_limits(world, settings):
    a = world["acme"]
    client = world["write"]
    path = f"/api/v1/conversations/{a['conversation'].pk}/media/"
    data = png(size=(20, 20))
    response = client.post(path, {"file": upload("scan.png", data), "caption": " your invoice "}, format="multipart")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["type"], body["status"], body["body"], body["direction"]) == ("image", "queued", "your invoice", "out")
    assert body["media"]["kind"] == "image" and body["media"]["mimetype"] == "image/png"
    assert body["media"]["size"] == len(data) and body["media"]["state"] == "fetched"
    download = client.get(body["media"]["download_url"])
    assert download.status_code == 200 and b"".join(download.streaming_content) == data
    assert download["Content-Type"] == "image/png" and download["X-Content-Type-Options"] == "nosniff"
    assert download["Content-Disposition"].startswith("attachment")
    assert world["read"].get(body["media"]["download_url"]).status_code == 200  # a read token may download
    message = Message.objects.for_tenant(a["conversation"].tenant_id).get(pk=body["id"])
    assert message.sender_user_id is None and message.media.state == MediaFile.State.FETCHED

    # A PDF is a document; a file over its kind's limit, or an empty one, is refused and stores nothing.
    pdf = client.post(path, {"file": upload("terms.pdf", b"%PDF-1.4 terms")}, format="multipart").json()
    assert pdf["type"] == "document" and pdf["media"]["filename"] == "terms.pdf" and pdf["body"] == ""
    settings.MEDIA_MAX_BYTES = {**settings.MEDIA_MAX_BYTES, "image": 100}
    before = Message.objects.for_tenant(a["conversation"].tenant_id).count()
    for file in (upload("big.png", png(size=(64, 64)) + b"\0" * 200), upload("empty.png", b"")):
        refused = client.post(path, {"file": file}, format="multipart")
        assert refused.status_code == 400 and refused.json()["errors"]["file"], refused.content
        schema.validate(refused, SEEN)
    assert Message.objects.for_tenant(a["conversation"].tenant_id).count() == before
    # A text message has no media and nothing to download.
    text = client.get(f"/api/v1/messages/{a['messages'][0].pk}/").json()
    assert text["media"] is None
    missing = client.get(f"/api/v1/messages/{a['messages'][0].pk}/media/")
    assert missing.status_code == 404
    schema.validate(missing, SEEN)


def test_a_media_send_with_an_idempotency_key_twice_is_one_message(world):
    a = world["acme"]
    path = f"/api/v1/conversations/{a['conversation'].pk}/media/"
    tenant_id = a["conversation"].tenant_id
    before = Message.objects.for_tenant(tenant_id).count()
    first = world["write"].post(path, {"file": upload(), "caption": "receipt"}, format="multipart",
                                HTTP_IDEMPOTENCY_KEY="m-1")
    second = world["write"].post(path, {"file": upload(), "caption": "receipt"}, format="multipart",
                                 HTTP_IDEMPOTENCY_KEY="m-1")
    assert first.status_code == second.status_code == 201 and first.json() == second.json()
    assert Message.objects.for_tenant(tenant_id).count() == before + 1
    other_file = world["write"].post(path, {"file": upload(data=png(color=(0, 0, 255))), "caption": "receipt"},
                                     format="multipart", HTTP_IDEMPOTENCY_KEY="m-1")
    assert other_file.status_code == 422
    schema.validate(other_file, SEEN)


def test_another_tenants_token_gets_404_on_every_operation(world):
    """The isolation sweep: every operation, with Acme's ids and Globex's read-write token."""
    for method, path, body in urls(world):
        if "/" not in path.removeprefix("/api/v1/").rstrip("/"):
            continue  # lists: checked below, they hold only the caller's rows
        response = call(world["other"], method, path, body)
        assert response.status_code == 404, (method, path, response.status_code)
        schema.validate(response, SEEN)
    g, a = world["globex"], world["acme"]
    other = world["other"]
    assert [n["id"] for n in other.get("/api/v1/numbers/").json()["results"]] == [g["number"].pk]
    assert [c["id"] for c in other.get("/api/v1/contacts/").json()["results"]] == [g["contact"].pk]
    assert [c["id"] for c in other.get("/api/v1/conversations/").json()["results"]] == [g["conversation"].pk]
    assert [x["id"] for x in other.get("/api/v1/alerts/").json()["results"]] == [g["alert"].pk]
    assert {x["id"] for x in other.get("/api/v1/labels/").json()["results"]} == {g["vip"].pk, g["billing"].pk}
    # Filtering by another tenant's label finds nothing; adding one is refused like a missing one.
    assert not other.get("/api/v1/conversations/", {"label_id": a["vip"].pk}).json()["results"]
    refused = other.post(f"/api/v1/conversations/{g['conversation'].pk}/labels/", {"label_id": a["vip"].pk},
                         format="json")
    assert refused.status_code == 400 and refused.json()["errors"]["label_id"]
    assert Label.objects.for_tenant(a["vip"].tenant_id).get(pk=a["vip"].pk).name == "VIP"
    assert not ConversationLabel.objects.for_tenant(g["conversation"].tenant_id).exists()
    assert a["conversation"].__class__.objects.for_tenant(a["conversation"].tenant_id).get(
        pk=a["conversation"].pk).status == "open"  # nothing written by the other tenant's calls
    a["contact"].refresh_from_db()
    assert (a["contact"].notes, a["contact"].attributes) == ("", {})


def test_tokens_missing_revoked_or_read_only(world, acme):
    anonymous = APIClient()
    response = anonymous.get("/api/v1/numbers/")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    schema.validate(response, SEEN)
    assert client_for("inb_nothing_here").get("/api/v1/numbers/").status_code == 401
    # Session cookies are not API credentials (and so no CSRF hole): a logged-in owner gets 401.
    owner_session = APIClient()
    owner_session.force_login(acme.memberships.get(role="owner").user)
    assert owner_session.get("/api/v1/numbers/").status_code == 401

    a = world["acme"]
    response = world["read"].post(f"/api/v1/conversations/{a['conversation'].pk}/status/", {"status": "resolved"},
                                  format="json")
    assert response.status_code == 403
    schema.validate(response, SEEN)

    row, token = do_create_token(acme, name="short-lived", scope="read")
    assert client_for(token).get("/api/v1/numbers/").status_code == 200
    row.refresh_from_db()
    assert row.last_used_at is not None and row.key_hash != token and token not in str(row.__dict__)
    do_revoke_token(row)
    assert client_for(token).get("/api/v1/numbers/").status_code == 401


def test_each_token_has_its_own_rate_limit(world, acme, settings):
    settings.API_TOKEN_RATE = "3/min"
    _, token = do_create_token(acme, name="busy", scope="read")
    busy = client_for(token)
    answers = [busy.get("/api/v1/numbers/").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    limited = busy.get("/api/v1/numbers/")
    assert "Retry-After" in limited
    schema.validate(limited, SEEN)
    _, other = do_create_token(acme, name="calm", scope="read")
    assert client_for(other).get("/api/v1/numbers/").status_code == 200


def test_schema_and_docs_are_served_without_a_cdn(client):
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui-bundle.js" in html and "//cdn" not in html and "https://" not in html
    assert "<style" not in html and "<script>" not in html  # nothing inline: the CSP allows none
    assert docs["Content-Security-Policy"]
    script = client.get("/api/v1/docs/", {"script": ""})
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


def test_every_operation_of_the_document_was_validated():
    """Last in the module: the tests above exercised and validated every documented operation."""
    if not SEEN:
        pytest.skip("run with the module's other tests")
    documented = {(method, path) for path, ops in schema.document()["paths"].items() for method in ops
                  if path.startswith("/api/v1/") and not path.startswith(("/api/v1/schema", "/api/v1/docs"))}
    assert documented - SEEN == set()
