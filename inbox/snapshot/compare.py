"""Two snapshots compared row for row: each member's rows with the exporting database's ids replaced by what
they name (ids differ between the install a tenant left and the one it was restored into; what they name
does not). Used by the round-trip tests and bench/snapshot.py."""

from __future__ import annotations

import json
import re

from inbox.snapshot import tables
from inbox.snapshot.archive import ArchiveReader


def all_members(path) -> dict[str, list[dict]]:
    with ArchiveReader(path) as reader:
        reader.verify()
        return {name: list(reader.rows(name)) for name in reader.files if name.endswith(".jsonl.gz")}


# Which member a row's reference names.
REFS = {"connection_id": "connections", "message_connection_id": "connections", "contact_id": "contacts",
        "group_id": "contacts", "member_id": "contacts", "conversation_id": "conversations"}
for _table in tables.all_tables():
    REFS.update(_table.parents)


def canonical(path, drop=None) -> dict[str, list[str]]:
    """Each member's rows with ids replaced, recursively, by the content of the row they name; sorted.
    ``drop``: {member: fields left out} (to compare with a file of format 1, which has none of them)."""
    drop = drop or {}
    members = all_members(path)
    order = [f"{n}.jsonl.gz" for n in ("tenant", "users", "connections", "contacts", "identities", "group_participants",
                                       "jid_mappings", "conversations", "messages", "revisions", "alerts", "media")]
    order += [t.member for t in tables.all_tables()]  # parents before the rows naming them, as the loader reads
    unknown = set(members) - set(order)
    if unknown:
        raise ValueError(f"members this code does not know: {sorted(unknown)}")
    by_id: dict[str, dict] = {}
    out = {}
    for member, rows in ((m, members[m]) for m in order if m in members):
        name = member.removesuffix(".jsonl.gz")
        lines = []
        for row in rows:
            norm = {k: (by_id[REFS[k]][v] if k in REFS and v is not None else v) for k, v in row.items()
                    if k != "id" and k not in drop.get(member, ())}
            if norm.get("cause"):
                norm["cause"] = re.sub(r"connection:(\d+):", lambda m: f"connection:{by_id['connections'][int(m.group(1))]}:",
                                       norm["cause"])
            line = json.dumps(norm, sort_keys=True)
            if "id" in row:  # the tenant row has none
                by_id.setdefault(name, {})[row["id"]] = line
            lines.append(line)
        out[member] = sorted(lines)
    return out
