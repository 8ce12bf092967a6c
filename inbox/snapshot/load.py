"""``import_tenant``: an export file (``archive.py``) into this database: verified, all or nothing, idempotent.

1. Verified first: the format and its version (a newer one is refused, saying so), then every member's
   sha256 against the manifest, before a single row is read. Row counts are checked as members are read.
2. All or nothing: everything is written in one transaction; any error (a corrupt row, a number whose
   WhatsApp id belongs to another tenant here) rolls it all back.
3. Idempotent: every row is matched by its natural key and written only if missing; rows that exist are
   left as they are (an import never overwrites), so importing the same file twice changes nothing the
   second time, and importing into the install it came from only adds what was deleted since.

   | rows | natural key |
   | --- | --- |
   | tenant | slug |
   | users | username, same e-mail (created without staff rights; never changed; another e-mail refuses) |
   | memberships | (user, tenant) |
   | numbers | the JID when paired (one on another tenant here refuses the import), else the name |
   | contacts | any of its identities' JIDs; without identities: names, phone, creation time |
   | identities | (tenant, JID) |
   | conversations | (number, chat JID) |
   | messages | (number, WhatsApp message id) |
   | revisions | (message, replaced_at, body) |
   | group participants | (group, member) |
   | JID mappings | (tenant, LID) |
   | alerts | (cause, kind, created_at) |
   | labels, canned responses | name, shortcut (whatever the case) |
   | label links, mentions, snoozes | (conversation, label), (note, user), conversation |
   | notes | (conversation, created_at, body) |
   | API tokens, webhook endpoints | the hash (another tenant's here refuses the import); (URL, created_at) |

Writes go through the database's constraints and triggers (migration inbox 0001), never around them:
messages through ``sync.upsert.insert_new`` (the sync engine's binary COPY on PostgreSQL, which the
statement-level triggers check), search entries added for the new messages (``inbox.search``).
Timestamps (``created_at``/``updated_at``) are kept as exported: their ``auto_now`` is switched off for
the import's duration (this process only; imports run from a management command).

Memory: messages and revisions stream in batches; the maps from exported ids to this database's ids
(numbers, contacts, conversations, users) and the identities by contact are held, so memory grows with
the count of contacts and conversations (about 100 bytes each), not with messages.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.batching import chunks
from connections.models import Connection
from inbox import search, statements
from inbox.models import (
    Alert,
    Contact,
    ContactIdentity,
    Conversation,
    GroupParticipant,
    MediaFile,
    Membership,
    Message,
    MessageRevision,
    Tenant,
)
from inbox.snapshot import export as spec
from inbox.snapshot.archive import ArchiveError, ArchiveReader
from inbox.snapshot.tables import Table, all_tables

logger = logging.getLogger(__name__)

BATCH = 2000


class ImportRefused(ArchiveError):
    """The file is fine but cannot go into this database as it is (e.g. a number's JID is another tenant's)."""


@dataclass
class Counts:
    """Per member: rows read, rows created (the rest already existed)."""

    read: dict = field(default_factory=lambda: defaultdict(int))
    created: dict = field(default_factory=lambda: defaultdict(int))

    def add(self, name: str, read: int, created: int) -> None:
        self.read[name] += read
        self.created[name] += created

    def as_dict(self) -> dict:
        return {name: {"read": self.read[name], "created": self.created[name],
                       "existing": self.read[name] - self.created[name]} for name in self.read}


@contextmanager
def kept_timestamps(*models):
    """``auto_now``/``auto_now_add`` off for these models' fields: imported rows keep their exported times."""
    fields = [f for m in models for f in m._meta.concrete_fields if getattr(f, "auto_now", False)
              or getattr(f, "auto_now_add", False)]
    saved = [(f, f.auto_now, f.auto_now_add) for f in fields]
    for f in fields:
        f.auto_now = f.auto_now_add = False
    try:
        yield
    finally:
        for f, auto_now, auto_now_add in saved:
            f.auto_now, f.auto_now_add = auto_now, auto_now_add


def _dt(value):
    return parse_datetime(value) if isinstance(value, str) else value


def _dates(row: dict, *names) -> dict:
    for name in names:
        if name in row:
            row[name] = _dt(row[name])
    return row


def _fields(names: list[str], skip=("id",)) -> list[str]:
    return [spec._renamed(n) for n in names if n not in skip]


class Loader:
    def __init__(self, reader: ArchiveReader, secrets: dict | None = None):
        self.reader = reader
        self.secrets = secrets  # {member: {exported id: {column: value}}} from secrets.bin, when opened
        self.counts = Counts()
        self.users: dict[str, int] = {}  # username -> id here
        self.connections: dict[int, int] = {}  # exported id -> id here
        self.contacts: dict[int, int] = {}
        self.conversations: dict[int, int] = {}
        self.new_conversations: set[int] = set()  # created by this import: their messages need no probe
        self.tenant: Tenant | None = None
        # The generic tables' maps, by name; the hand-written members' maps under the names tables use.
        self.ids: dict[str, dict[int, int]] = {"connections": self.connections, "contacts": self.contacts,
                                               "conversations": self.conversations}
        self.new_files: list[str] = []  # stored by this import: removed again if it rolls back

    def rows(self, name):
        return self.reader.rows(name)

    # --- tenant, users, memberships ---------------------------------------------------------------
    def load_tenant(self):
        rows = list(self.rows("tenant.jsonl.gz"))
        if len(rows) != 1:
            raise ArchiveError(f"tenant.jsonl.gz holds {len(rows)} rows, one expected")
        row = _dates(rows[0], "created_at", "archived_at")
        self.tenant = Tenant.objects.filter(slug=row["slug"]).first()
        created = self.tenant is None
        if created:
            self.tenant = Tenant.objects.create(**row)
        self.counts.add("tenant", 1, int(created))

    def load_users(self):
        User = get_user_model()
        for batch in chunks(self.rows("users.jsonl.gz"), BATCH):
            names = [r["username"] for r in batch]
            existing = {u: (pk, email) for u, pk, email in
                        User.objects.filter(username__in=names).values_list("username", "id", "email")}
            # A username here that belongs to someone else (another e-mail address) would hand them the
            # tenant's membership: refused, so an operator renames one of them first.
            clashes = sorted(r["username"] for r in batch if r["username"] in existing and r.get("email")
                             and existing[r["username"]][1] and existing[r["username"]][1].lower() != r["email"].lower())
            if clashes:
                raise ImportRefused(f"user(s) {', '.join(clashes)} exist here with another e-mail address: rename them "
                                    "here (or in the source install) before importing")
            have = {u: pk for u, (pk, _) in existing.items()}
            new = []
            for r in batch:
                if r["username"] not in have:
                    fields = {k: v for k, v in r.items() if k not in ("id", "role", "member_since")}
                    new.append(User(**_dates(fields, "date_joined"), is_staff=False, is_superuser=False))
            User.objects.bulk_create(new)
            have.update(User.objects.filter(username__in=names).values_list("username", "id"))
            self.users.update(have)
            self.counts.add("users", len(batch), len(new))
            members = {r["username"]: r for r in batch if r.get("role")}
            existing = set(Membership.objects.filter(tenant=self.tenant, user_id__in=[have[n] for n in members])
                           .values_list("user_id", flat=True))
            # ``member_since`` is in files of version 2 on; before, the membership is as old as the import.
            new_members = [Membership(tenant=self.tenant, user_id=have[n], role=r["role"],
                                      created_at=_dt(r.get("member_since")) or timezone.now())
                           for n, r in members.items() if have[n] not in existing]
            Membership.objects.bulk_create(new_members)
            self.counts.add("memberships", len(members), len(new_members))

    def user_id(self, username):
        return self.users.get(username) if username else None

    # --- numbers -----------------------------------------------------------------------------------
    def load_connections(self):
        for r in self.rows("connections.jsonl.gz"):
            old = r.pop("id")
            _dates(r, "paired_at", "last_connected_at", "archived_at", "created_at", "updated_at")
            if r.get("jid"):
                conn = Connection.objects.unscoped().filter(jid=r["jid"]).first()
                if conn is not None and conn.tenant_id != self.tenant.pk:
                    raise ImportRefused(
                        f"number {r['name']!r} ({r['jid']}) is linked to another tenant here (tenant id "
                        f"{conn.tenant_id}); a WhatsApp number belongs to one tenant")
            else:
                conn = (Connection.objects.for_tenant(self.tenant).filter(name=r["name"])
                        .filter(jid__isnull=True).order_by("pk").first()
                        or Connection.objects.for_tenant(self.tenant).filter(name=r["name"], jid="").order_by("pk").first())
            created = conn is None
            if created:
                conn = Connection(tenant=self.tenant, **r)
                conn.save(force_insert=True)
            self.connections[old] = conn.pk
            self.counts.add("connections", 1, int(created))

    # --- contacts and identities ------------------------------------------------------------------
    def load_contacts(self):
        identities: dict[int, list[dict]] = defaultdict(list)
        for r in self.rows("identities.jsonl.gz"):
            identities[r["contact_id"]].append(_dates(r, "created_at"))
        t = self.tenant
        for batch in chunks(self.rows("contacts.jsonl.gz"), BATCH):
            jids = [i["jid"] for r in batch for i in identities.get(r["id"], [])]
            owner = dict(ContactIdentity.objects.for_tenant(t).filter(jid__in=jids).values_list("jid", "contact_id"))
            new, new_old_ids, ident_rows = [], [], []
            for r in batch:
                old = r["id"]
                mine = identities.get(old, [])
                found = next((owner[i["jid"]] for i in mine if i["jid"] in owner), None)
                if found is None and not mine:
                    found = (Contact.objects.for_tenant(t).filter(
                        identities__isnull=True, kind=r["kind"], display_name=r["display_name"], push_name=r["push_name"],
                        phone_number=r["phone_number"], created_at=_dt(r["created_at"])).values_list("pk", flat=True)
                        .order_by("pk").first())
                if found is not None:
                    self.contacts[old] = found
                    continue
                fields = _dates({k: v for k, v in r.items() if k != "id"}, "created_at", "updated_at")
                new.append(Contact(tenant=t, **fields))
                new_old_ids.append(old)
            Contact.objects.bulk_create(new)
            for old, contact in zip(new_old_ids, new, strict=True):
                self.contacts[old] = contact.pk
            self.counts.add("contacts", len(batch), len(new))
            for r in batch:
                for i in identities.get(r["id"], []):
                    if i["jid"] not in owner:
                        ident_rows.append(ContactIdentity(tenant=t, contact_id=self.contacts[r["id"]], jid=i["jid"],
                                                          kind=i["kind"], created_at=i["created_at"]))
            ContactIdentity.objects.bulk_create(ident_rows)
            self.counts.add("identities", sum(len(identities.get(r["id"], [])) for r in batch), len(ident_rows))

    def load_group_participants(self):
        for batch in chunks(self.rows("group_participants.jsonl.gz"), BATCH):
            pairs = [(self.contacts[r["group_id"]], self.contacts[r["member_id"]], r["is_admin"]) for r in batch]
            have = set(GroupParticipant.objects.for_tenant(self.tenant)
                       .filter(group_id__in={g for g, _, _ in pairs}).values_list("group_id", "member_id"))
            new = [GroupParticipant(tenant=self.tenant, group_id=g, member_id=m, is_admin=a) for g, m, a in pairs
                   if (g, m) not in have]
            GroupParticipant.objects.bulk_create(new)
            self.counts.add("group_participants", len(batch), len(new))

    def load_jid_mappings(self):
        from sync.models import JidMapping

        for batch in chunks(self.rows("jid_mappings.jsonl.gz"), BATCH):
            have = set(JidMapping.objects.for_tenant(self.tenant).filter(lid_jid__in=[r["lid_jid"] for r in batch])
                       .values_list("lid_jid", flat=True))
            new = [JidMapping(tenant=self.tenant, lid_jid=r["lid_jid"], pn_jid=r["pn_jid"], created_at=_dt(r["created_at"]))
                   for r in batch if r["lid_jid"] not in have]
            JidMapping.objects.bulk_create(new)
            self.counts.add("jid_mappings", len(batch), len(new))

    # --- conversations, messages, revisions -------------------------------------------------------
    def load_conversations(self):
        t = self.tenant
        for batch in chunks(self.rows("conversations.jsonl.gz"), BATCH):
            keys = {(self.connections[r["connection_id"]], r["chat_jid"]) for r in batch}
            have = {}
            for cid, jids in _group(keys).items():
                have.update({(cid, jid): pk for jid, pk in Conversation.objects.for_tenant(t)
                             .filter(connection_id=cid, chat_jid__in=jids).values_list("chat_jid", "pk")})
            new, new_old_ids = [], []
            for r in batch:
                key = (self.connections[r["connection_id"]], r["chat_jid"])
                if key in have:
                    self.conversations[r["id"]] = have[key]
                    continue
                fields = _dates({k: v for k, v in r.items() if k not in ("id", "connection_id", "contact_id", "assignee")},
                                "last_message_at", "oldest_synced_at", "newest_synced_at", "created_at", "updated_at")
                new.append(Conversation(tenant=t, connection_id=key[0], contact_id=self.contacts[r["contact_id"]],
                                        assignee_id=self.user_id(r["assignee"]), **fields))
                new_old_ids.append(r["id"])
            Conversation.objects.bulk_create(new)
            for old, conv in zip(new_old_ids, new, strict=True):
                self.conversations[old] = conv.pk
                self.new_conversations.add(conv.pk)
            self.counts.add("conversations", len(batch), len(new))

    MESSAGE_COLUMNS = ["tenant_id", "conversation_id", "connection_id", "sender_user_id"] + [
        c for c in _fields(spec.MESSAGE_FIELDS, skip=("id", "conversation_id", "connection_id", "sender_user__username"))]
    MESSAGE_DATES = ("sent_at", "edited_at", "deleted_at", "next_attempt_at", "created_at", "updated_at")

    def _message_batches(self):
        """(rows read, {connection id here: rows to insert}) per batch of the file's messages."""
        rest = self.MESSAGE_COLUMNS[4:]
        tenant_id = self.tenant.pk
        for batch in chunks(self.rows("messages.jsonl.gz"), BATCH):
            by_connection: dict[int, list[tuple]] = defaultdict(list)
            for r in batch:
                _dates(r, *self.MESSAGE_DATES)
                cid = self.connections[r["connection_id"]]
                by_connection[cid].append((tenant_id, self.conversations[r["conversation_id"]], cid,
                                           self.user_id(r["sender_user"]), *(r[c] for c in rest)))
            yield len(batch), by_connection

    def load_messages(self):
        """Messages through the sync's upsert (binary COPY), batch by batch, with their search entries.
        Messages of the conversations this import created are not probed first (they cannot exist yet;
        should one anyway, ``insert_new`` falls back to probing). Reading the next batch while the database
        writes this one (a helper thread) was measured and left out: the COPY's own Python feeder then
        competes with it for the GIL and the import was no faster."""
        from sync.upsert import insert_new

        fresh = ("conversation_id", self.new_conversations)
        analyze = self._message_statistics_missing()
        for read, by_connection in self._message_batches():
            created = 0
            for cid, rows in by_connection.items():
                id_range: list = []
                inserted = insert_new(Message, self.MESSAGE_COLUMNS, rows, scope={"connection_id": cid},
                                      key="external_id", id_range=id_range, fresh=fresh)
                created += len(inserted)
                if not inserted:
                    continue
                if id_range:
                    search.index_message_range(cid, *id_range)
                else:
                    search.index_connection_messages(cid, inserted)
            self.counts.add("messages", read, created)
            if analyze and created:
                with connection.cursor() as cursor:
                    cursor.execute(f"ANALYZE {Message._meta.db_table}")  # noqa: S608 - the model's own table
                analyze = False

    def _message_statistics_missing(self) -> bool:
        """True when the message table's statistics know fewer rows than this file adds (a new install's
        table: never analyzed, or analyzed empty). The planner then takes each batch's probe and search
        range for a scan of all the number's messages so far (quadratic: on 1M messages into an empty
        install the probes took 45.6 s of the messages' 106.5 s), so the table is analyzed once, after the first batch:
        ANALYZE counts this transaction's own rows. It holds the table's SHARE UPDATE EXCLUSIVE lock until
        the import commits (autovacuum skips the table meanwhile; reads and writes go on)."""
        known = statements.planner_row_estimate(Message)
        return known is not None and known < self.reader.files.get("messages.jsonl.gz", {}).get("rows", 0) > BATCH

    def load_revisions(self):
        t = self.tenant
        for batch in chunks(self.rows("revisions.jsonl.gz"), BATCH):
            wanted = defaultdict(set)
            for r in batch:
                wanted[self.connections[r["message_connection_id"]]].add(r["message_external_id"])
            ids = {}
            for cid, ext in wanted.items():
                ids.update({(cid, e): pk for e, pk in Message.objects.for_tenant(t)
                            .filter(connection_id=cid, external_id__in=ext).values_list("external_id", "pk")})
            have = set(MessageRevision.objects.for_tenant(t).filter(message_id__in=ids.values())
                       .values_list("message_id", "replaced_at", "body"))
            new = []
            for r in batch:
                mid = ids.get((self.connections[r["message_connection_id"]], r["message_external_id"]))
                if mid is None:
                    raise ArchiveError(f"revision {r['id']} names message {r['message_external_id']}, not in the file")
                key = (mid, _dt(r["replaced_at"]), r["body"])
                if key not in have:
                    have.add(key)
                    new.append(MessageRevision(tenant=t, message_id=mid, body=r["body"], replaced_at=key[1],
                                               created_at=_dt(r["created_at"])))
            MessageRevision.objects.bulk_create(new)
            self.counts.add("revisions", len(batch), len(new))

    # --- media -------------------------------------------------------------------------------------
    MEDIA_COPIED = ("kind", "history", "declared_mimetype", "declared_size", "filename", "state", "attempts", "error",
                    "sha256", "size", "mimetype", "fetched_at", "created_at", "updated_at")

    def load_media(self):
        """Media rows, each with its message (a message that has one already keeps it); a stored file is
        taken from this install's storage when the tenant has those bytes, else from the file's
        ``media/<sha256>`` member (checked against the checksum as it is stored); a file in neither (an
        export ``--without-media`` into another install, or one the storage had lost) is downloaded again
        from WhatsApp: the row is ``pending`` with its download reference."""
        import base64

        from inbox.media import ChecksumMismatch, storage, storage_name, store_verified_stream
        from inbox.snapshot.export import media_member

        t, store = self.tenant, storage()
        State = MediaFile.State
        for batch in chunks(self.rows("media.jsonl.gz"), BATCH):
            wanted = defaultdict(set)
            for r in batch:
                wanted[self.connections[r["connection_id"]]].add(r["message_external_id"])
            ids = {}
            for cid, ext in wanted.items():
                ids.update({(cid, e): pk for e, pk in Message.objects.for_tenant(t)
                            .filter(connection_id=cid, external_id__in=ext).values_list("external_id", "pk")})
            have = set(MediaFile.objects.for_tenant(t).filter(message_id__in=ids.values()).values_list("message_id", flat=True))
            new, files = [], 0
            for r in batch:
                cid = self.connections[r["connection_id"]]
                mid = ids.get((cid, r["message_external_id"]))
                if mid is None:
                    raise ArchiveError(f"media {r['id']} names message {r['message_external_id']}, not in the file")
                if mid in have:
                    continue
                have.add(mid)
                _dates(r, "fetched_at", "created_at", "updated_at")
                fields = {k: r[k] for k in self.MEDIA_COPIED}
                fields.update(ref=base64.b64decode(r["ref"] or ""), storage_name="", thumbnail_name="")
                sha = r["sha256"]
                if r["state"] == State.FETCHED and sha:
                    name, member = storage_name(t.pk, sha), media_member(sha)
                    stored = None
                    try:
                        if store.exists(name):  # the tenant has these bytes here (the same install)
                            stored = store_verified_stream(t.pk, sha, None, r["mimetype"])
                        elif member in self.reader.files:  # checked against the name as it is stored
                            with self.reader.open_member(member) as src:
                                stored = store_verified_stream(t.pk, sha, src, r["mimetype"])
                    except ChecksumMismatch as exc:
                        raise ArchiveError(f"{self.reader.path}: {member}: {exc}") from exc
                    if stored is not None:
                        fields.update(storage_name=stored[0], thumbnail_name=stored[1])
                        if stored[2]:
                            self.new_files.append(stored[0])
                            files += 1
                    else:  # not here and not in the file: fetched again from WhatsApp
                        fields.update(state=State.PENDING, attempts=0, error="", sha256="", size=None, mimetype="",
                                      fetched_at=None)
                new.append(MediaFile(tenant=t, message_id=mid, connection_id=cid, **fields))
            MediaFile.objects.bulk_create(new)
            self.counts.add("media", len(batch), len(new))
            self.counts.add("media_files", files, files)
        pending = MediaFile.objects.for_tenant(t).filter(state=State.PENDING).values_list("connection_id", flat=True)
        if pending.exists():
            from inbox.media import nudge_fetch_on_commit

            nudge_fetch_on_commit(set(pending))

    def remove_new_files(self):
        """The files this import stored, after it rolled back (nothing names them)."""
        from inbox.media import storage

        store = storage()
        for name in self.new_files:
            for n in (name, f"{name}.thumb"):
                if store.exists(n):
                    store.delete(n)

    # --- alerts ------------------------------------------------------------------------------------
    def _cause(self, cause: str) -> str:
        """Causes name numbers by id (``connection:12:down``): renamed to this database's ids."""
        m = re.fullmatch(r"connection:(\d+):(.+)", cause or "")
        if m and int(m.group(1)) in self.connections:
            return f"connection:{self.connections[int(m.group(1))]}:{m.group(2)}"
        return cause

    def load_alerts(self):
        t = self.tenant
        for batch in chunks(self.rows("alerts.jsonl.gz"), BATCH):
            for r in batch:
                _dates(r, "created_at", "last_raised_at", "resolved_at", "acknowledged_at")
                r["cause"] = self._cause(r["cause"])
            have = set(Alert.objects.for_tenant(t).filter(created_at__in=[r["created_at"] for r in batch])
                       .values_list("cause", "kind", "created_at"))
            open_causes = set(Alert.objects.unscoped().filter(resolved_at__isnull=True, cause__in=[
                r["cause"] for r in batch if r["cause"] and r["resolved_at"] is None]).values_list("cause", flat=True))
            new = []
            for r in batch:
                if (r["cause"], r["kind"], r["created_at"]) in have:
                    continue
                if r["cause"] and r["resolved_at"] is None and r["cause"] in open_causes:
                    continue  # one open alert per cause: the one open here stands for it
                fields = {k: v for k, v in r.items() if k not in ("id", "connection_id", "acknowledged_by")}
                new.append(Alert(tenant=t, connection_id=self.connections.get(r["connection_id"]),
                                 acknowledged_by_id=self.user_id(r["acknowledged_by"]), **fields))
            Alert.objects.bulk_create(new)
            self.counts.add("alerts", len(batch), len(new))

    # --- the generic tables (inbox.snapshot.tables): agent tools, the api app's tokens and endpoints ------
    def _values(self, table: Table, model, row: dict) -> dict:
        """A row's columns for this database: parents and users mapped, datetimes parsed, secrets filled in."""
        values = {}
        for name in table.fields:
            if name in table.secrets:
                continue
            if name in row:
                values[name] = _dt(row[name]) if model._meta.get_field(name).get_internal_type() == "DateTimeField" \
                    else row[name]
        for column, parent in table.parents.items():
            old = row[column]
            if old is not None and old not in self.ids[parent]:
                raise ArchiveError(f"{table.member}: row {row['id']} names {parent} {old}, not in the file")
            values[column] = None if old is None else self.ids[parent][old]
        for fk in table.users:
            values[f"{fk}_id"] = self.user_id(row[fk])
        if table.secrets:
            found = (self.secrets or {}).get(table.member, {}).get(str(row["id"]))
            values.update(found if found is not None else table.fill_without_secrets())
        return values

    def _existing(self, table: Table, model, keys: list[tuple]) -> dict[tuple, tuple[int, int]]:
        """key -> (pk, tenant id) of the rows here with these keys (the tenant's; the install's when the key
        is unique across tenants)."""
        if not keys:
            return {}
        rows = model.objects.unscoped() if table.across_tenants else model.objects.for_tenant(self.tenant)
        exprs = {f"k{i}": Lower(c) if c == table.casefold else F(c) for i, c in enumerate(table.key)}
        rows = rows.annotate(**exprs).filter(k0__in={k[0] for k in keys})
        return {tuple(k): (pk, tenant_id) for *k, pk, tenant_id in rows.values_list(*exprs, "pk", "tenant_id")}

    def load_table(self, table: Table) -> None:
        model, ids = table.model, self.ids.setdefault(table.name, {})
        for batch in chunks(self.rows(table.member), BATCH):
            rows = [(r["id"], self._values(table, model, r)) for r in batch]

            def key(values):
                return tuple(values[c].lower() if c == table.casefold else values[c] for c in table.key)

            have = self._existing(table, model, [key(v) for _, v in rows])
            new: dict[tuple, object] = {}  # key -> the row to write (a key seen twice in the file is one row)
            new_old_ids = []
            for old, values in rows:
                k = key(values)
                if k in have:
                    pk, tenant_id = have[k]
                    if tenant_id != self.tenant.pk:
                        raise ImportRefused(f"{table.member}: row {old} ({', '.join(table.key)} {k}) belongs to another "
                                            f"tenant here (tenant id {tenant_id})")
                    ids[old] = pk
                    continue
                new.setdefault(k, model(tenant=self.tenant, **values))
                new_old_ids.append((old, k))
            model.objects.bulk_create(list(new.values()))
            for old, k in new_old_ids:
                ids[old] = new[k].pk
            self.counts.add(table.name, len(batch), len(new))

    def load(self):
        self.load_tenant()
        self.load_users()
        self.load_connections()
        self.load_contacts()
        self.load_group_participants()
        self.load_jid_mappings()
        self.load_conversations()
        self.load_messages()
        self.load_revisions()
        self.load_media()
        self.load_alerts()
        for table in all_tables():
            self.load_table(table)


def _group(pairs) -> dict:
    out = defaultdict(list)
    for a, b in pairs:
        out[a].append(b)
    return out


def _open_secrets(reader: ArchiveReader, passphrase: str) -> dict:
    """``secrets.bin`` opened with the passphrase (before anything is written): {member: {id: {column: value}}}."""
    import json

    from inbox.snapshot.sessions import decrypt

    blob = reader.blob("secrets.bin")
    if blob is None:
        raise ArchiveError(f"{reader.path}: no secrets in this export (it was made without --with-secrets)")
    try:
        return json.loads(decrypt(blob, passphrase, member="secrets.bin", what="secrets"))
    except ValueError as exc:
        raise ArchiveError(f"{reader.path}: secrets.bin is unreadable ({exc})") from exc


def import_tenant(path, *, dry_run: bool = False, with_sessions: bool = False, passphrase: str = "",
                  with_secrets: bool = False) -> dict:
    """Verify ``path``, then write its rows in one transaction; returns {"tenant", "counts", "manifest"}.

    Raises ArchiveError (nothing written) for a file that is corrupt, cut short, of a newer format, or that
    cannot go into this database. ``dry_run``: everything is written and then rolled back (a rehearsal).
    ``with_sessions``: the file's encrypted session keys too, opened with ``passphrase`` before anything is
    written, and added to the whatsmeow store after the project's rows are committed. ``with_secrets``: the
    webhook endpoints' signing secrets, opened the same way; without them an endpoint is imported disabled,
    with a new secret (``inbox.snapshot.tables``)."""
    from django.conf import settings

    from inbox.snapshot import sessions
    from sync.models import JidMapping

    started = time.monotonic()
    with ArchiveReader(path) as reader:
        reader.verify()
        session_rows = None
        if with_sessions:
            blob = reader.blob("sessions.bin")
            if blob is None:
                raise ArchiveError(f"{path}: no session keys in this export (it was made without --with-sessions)")
            session_rows = sessions.open_sessions(blob, passphrase)
        loader = Loader(reader, _open_secrets(reader, passphrase) if with_secrets else None)
        models = (Tenant, get_user_model(), Membership, Connection, Contact, ContactIdentity, Conversation, Message,
                  MessageRevision, Alert, JidMapping, MediaFile, *(t.model for t in all_tables()))
        try:
            with transaction.atomic(), kept_timestamps(*models):
                loader.load()
                if dry_run:
                    transaction.set_rollback(True)
        except (KeyError, TypeError, ValueError) as exc:
            loader.remove_new_files()
            raise ArchiveError(f"{path}: a row does not fit this installation ({exc.__class__.__name__}: {exc})") from exc
        except BaseException:
            loader.remove_new_files()
            raise
        if dry_run:
            loader.remove_new_files()
        restored = None
        if session_rows is not None and not dry_run:
            restored = sessions.restore_sessions(session_rows, settings.WHATSMEOW_STORE)
        result = {"tenant": loader.tenant.slug, "counts": loader.counts.as_dict(), "dry_run": dry_run,
                  "sessions": restored if restored is not None else ("in the file, not asked for"
                                                                      if "sessions.bin" in reader.files else "none"),
                  "secrets": ("imported" if with_secrets else "in the file, not asked for" if "secrets.bin" in reader.files
                              else "none"),
                  "format_version": reader.manifest["version"], "seconds": round(time.monotonic() - started, 2)}
    logger.info("snapshot.imported", extra={**result, "path": str(path), "database": connection.vendor})
    return result
