"""Which tenant-owned tables a snapshot carries, and how: the one list a new model must be added to.

Every model deriving ``inbox.tenancy.TenantOwned`` is in exactly one of three places, which
``tests/inbox/test_snapshot_coverage.py`` checks against the app registry (a model in none fails it):

- ``MEMBER_MODELS``: the tables with a member of their own, written and read by hand (``export.py``,
  ``load.py``): numbers, contacts, conversations, messages... (their natural keys need bespoke lookups);
- a ``Table``: everything else that is the tenant's data, exported and imported the generic way below: the
  agent tools' rows (``CORE_TABLES``), and the tables of apps outside the core, which say so themselves
  with a ``snapshot_table`` attribute on the model (the core never imports those apps: the api app's
  tokens and webhook endpoints are found through the app registry, ``integration_tables()``);
- ``EXCLUDED`` (or a model's own ``snapshot_excluded`` attribute): deliberately left out, with the reason.

Columns too: every concrete column of an exported model is either in its member or named in
``LOCAL_COLUMNS`` with the reason it stays behind (runtime state, install-local storage names).

A ``Table`` row carries its exported ``id``; foreign keys to other tables are exported ids (``parents``,
mapped to this database's ids on import, so parents load first: ``ALL_TABLES`` order), users are named by
username (``users``). Import is idempotent by ``key``: a row whose key exists is left as it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Table:
    member: str  # "labels.jsonl.gz"
    model_label: str  # "inbox.Label"
    fields: tuple[str, ...]  # columns copied as they are (datetimes as ISO 8601)
    key: tuple[str, ...]  # the natural key, in column names after mapping ("conversation_id", "label_id")
    parents: dict[str, str] = field(default_factory=dict)  # column -> the map of the table it names
    users: tuple[str, ...] = ()  # foreign keys to users, exported as the username (None when empty)
    casefold: str = ""  # a key column compared whatever its case (unique on Lower(...))
    across_tenants: bool = False  # the key is unique in the whole install: another tenant's row refuses the import
    secrets: tuple[str, ...] = ()  # columns written only encrypted, in ``secrets.bin`` (``--with-secrets``)
    # Imported without its secrets: these columns are set instead (callables are called per row).
    without_secrets: dict[str, object] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.member.removesuffix(".jsonl.gz")

    @property
    def model(self):
        from django.apps import apps

        return apps.get_model(self.model_label)

    def exported_columns(self) -> list[str]:
        """``values_list`` names of the member's rows (users as ``<fk>__username``; secrets left out)."""
        return ["id", *(f for f in self.fields if f not in self.secrets), *self.parents,
                *(f"{u}__username" for u in self.users)]

    def covered_columns(self) -> set[str]:
        return {"id", "tenant_id", *self.fields, *self.parents, *(f"{u}_id" for u in self.users)}

    def fill_without_secrets(self) -> dict:
        return {k: (v() if callable(v) else v) for k, v in self.without_secrets.items()}


# The tables written by hand (export.py / load.py), by model: their members.
MEMBER_MODELS = {
    "connections.Connection": "connections.jsonl.gz",
    "inbox.Contact": "contacts.jsonl.gz",
    "inbox.ContactIdentity": "identities.jsonl.gz",
    "inbox.GroupParticipant": "group_participants.jsonl.gz",
    "sync.JidMapping": "jid_mappings.jsonl.gz",
    "inbox.Conversation": "conversations.jsonl.gz",
    "inbox.Message": "messages.jsonl.gz",
    "inbox.MessageRevision": "revisions.jsonl.gz",
    "inbox.Alert": "alerts.jsonl.gz",
    "inbox.MediaFile": "media.jsonl.gz",
}

# The agent tools' rows, in the order they load (a table after those its ``parents`` name).
CORE_TABLES = (
    Table("labels.jsonl.gz", "inbox.Label", ("name", "color", "created_at"), key=("name",), casefold="name"),
    Table("conversation_labels.jsonl.gz", "inbox.ConversationLabel", ("created_at",),
          key=("conversation_id", "label_id"), parents={"conversation_id": "conversations", "label_id": "labels"},
          users=("added_by",)),
    Table("notes.jsonl.gz", "inbox.Note", ("body", "created_at"), key=("conversation_id", "created_at", "body"),
          parents={"conversation_id": "conversations"}, users=("author",)),
    # A mention is also its user's notification: read and e-mailed marks travel with it (no second e-mail).
    Table("note_mentions.jsonl.gz", "inbox.NoteMention", ("created_at", "read_at", "emailed_at"),
          key=("note_id", "user_id"), parents={"note_id": "notes"}, users=("user",)),
    Table("canned_responses.jsonl.gz", "inbox.CannedResponse", ("shortcut", "body", "created_at"),
          key=("shortcut",), casefold="shortcut", users=("created_by",)),
    # The wake-up task is not in the file: beat's sweep (inbox.snooze) wakes an imported snooze when due.
    Table("snoozes.jsonl.gz", "inbox.Snooze", ("until", "created_at"), key=("conversation_id",),
          parents={"conversation_id": "conversations"}, users=("snoozed_by",)),
)

EXCLUDED = {
    "inbox.MessageSearchEntry": "derived from the messages: the import indexes the messages it writes",
    "connections.ConnectionEvent": "a number's state history (connects, drops, leases): operational, "
                                   "meaningless on another install",
    "sync.RawEvent": "the raw event journal: operational, pruned by retention; its result is the messages",
    "sync.SyncRun": "the sync's accounting of past runs: operational",
    "sync.PendingOperation": "the sync's bookkeeping of events waiting for their message: resolved by the journal, "
                             "which is not exported either",
    "sync.SearchBacklog": "search indexing still to do: the import indexes what it writes",
}

# Columns of exported models that stay behind, and why.
_RUNTIME = "runtime state of the runner holding the number"
LOCAL_COLUMNS = {
    "connections.Connection": {
        "last_heartbeat_at": _RUNTIME, "pairing_code": _RUNTIME, "pairing_expires_at": _RUNTIME,
        "reconnect_attempts": _RUNTIME, "next_retry_at": _RUNTIME, "runner_id": _RUNTIME, "lease_expires_at": _RUNTIME,
    },
    "inbox.MediaFile": {
        "storage_name": "this install's storage path: the file travels as media/<sha256>",
        "thumbnail_name": "made again by the import",
        "next_attempt_at": "the download retry schedule: runtime state",
    },
}


def integration_tables() -> list[Table]:
    """The ``snapshot_table`` of tenant-owned models outside the core (the api app), from the app registry."""
    from django.apps import apps

    from inbox.tenancy import TenantOwned

    return [m.snapshot_table for m in apps.get_models()
            if issubclass(m, TenantOwned) and getattr(m, "snapshot_table", None) is not None]


def all_tables() -> list[Table]:
    return [*CORE_TABLES, *sorted(integration_tables(), key=lambda t: (len(t.parents), t.member))]


def excluded() -> dict[str, str]:
    """Model label -> why it is not in a snapshot (the core's list and the models that say so themselves)."""
    from django.apps import apps

    own = {m._meta.label: m.snapshot_excluded for m in apps.get_models() if getattr(m, "snapshot_excluded", "")}
    return {**EXCLUDED, **own}


def _member_columns(fields) -> set[str]:
    """Columns a hand-written member covers: ``assignee__username`` and ``message__external_id`` name their
    foreign key (``assignee_id``, ``message_id``)."""
    out = {"tenant_id"}
    for name in fields:
        head = name.split("__")[0]
        out |= {head, f"{head}_id"}
    return out


def coverage_gaps(exclusions: dict[str, str] | None = None) -> list[str]:
    """What a snapshot would silently leave out: a tenant-owned model in no member and not excluded with a
    reason, a column of an exported model in no member and not said local, a stale entry. [] when complete."""
    from django.apps import apps

    from inbox.models import Tenant
    from inbox.snapshot.export import MEMBER_FIELDS, TENANT_FIELDS
    from inbox.tenancy import TenantOwned

    exclusions = excluded() if exclusions is None else exclusions
    owned = {m._meta.label: m for m in apps.get_models() if issubclass(m, TenantOwned)}
    columns = {label: _member_columns(fields) for label, fields in MEMBER_FIELDS.items()}
    columns |= {t.model_label: t.covered_columns() for t in all_tables()}
    gaps = [f"{label}: neither exported nor excluded with a reason (inbox/snapshot/tables.py)"
            for label in sorted(owned) if label not in columns and not exclusions.get(label, "").strip()]
    gaps += [f"{label}: both exported and excluded" for label in sorted(set(columns) & set(exclusions))]
    gaps += [f"{label}: listed, but not a tenant-owned model" for label in sorted((set(columns) | set(exclusions)) - set(owned))]
    for label, covered in sorted(columns.items()):
        if label in owned:
            local = LOCAL_COLUMNS.get(label, {})
            gaps += [f"{label}.{f.attname}: a column in no member and not in LOCAL_COLUMNS"
                     for f in owned[label]._meta.concrete_fields if f.attname not in covered and f.attname not in local]
    gaps += [f"inbox.Tenant.{f.attname}: not in the tenant member (export.TENANT_FIELDS)"
             for f in Tenant._meta.concrete_fields if f.attname not in ("id", *TENANT_FIELDS)]
    return gaps
