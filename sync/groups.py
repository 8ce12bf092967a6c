"""Group facts of a batch: participants from JoinedGroupEv (the full list) and GroupInfoEv (joins, leaves,
promotions, demotions), written for the group contacts ``sync.identities`` resolved."""

from __future__ import annotations

from inbox.models import GroupParticipant
from sync.identities import Identities
from sync.results import IngestResult


def apply_groups(tenant_id: int, groups, identities: Identities, conv_ids: dict[str, int], result: IngestResult) -> None:
    """Group participants from JoinedGroupEv (full list) and GroupInfoEv (joins, leaves, promotions)."""
    contact_of, canon = identities.contact_of, identities.canonical

    def member_id(jid):
        return contact_of.get(canon.get(jid, jid)) or contact_of.get(jid)

    for g in groups:
        group_id = contact_of.get(g.group_jid)
        if group_id is None:
            continue
        result.conversation_ids.add(conv_ids[g.group_jid])
        if g.participants is not None:
            members = {}
            for jid, admin in g.participants:
                mid = member_id(jid)
                if mid:
                    members[mid] = members.get(mid, False) or admin
            GroupParticipant.objects.unscoped().filter(group_id=group_id).exclude(member_id__in=members).delete()
            GroupParticipant.objects.bulk_create(
                [GroupParticipant(tenant_id=tenant_id, group_id=group_id, member_id=mid, is_admin=adm)
                 for mid, adm in members.items()],
                update_conflicts=True, unique_fields=["group", "member"], update_fields=["is_admin"],
            )
        joins = {member_id(j) for j in g.join} - {None}
        if joins:
            GroupParticipant.objects.bulk_create(
                [GroupParticipant(tenant_id=tenant_id, group_id=group_id, member_id=mid) for mid in joins],
                ignore_conflicts=True,
            )
        leaves = {member_id(j) for j in g.leave} - {None}
        if leaves:
            GroupParticipant.objects.unscoped().filter(group_id=group_id, member_id__in=leaves).delete()
        for jids, admin in ((g.promote, True), (g.demote, False)):
            ids = {member_id(j) for j in jids} - {None}
            if ids:
                GroupParticipant.objects.unscoped().filter(group_id=group_id, member_id__in=ids).update(is_admin=admin)
