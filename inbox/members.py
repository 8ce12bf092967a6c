"""Members of a tenant, managed by its owners and admins: check_* validate the rules, then call the
``do_*`` membership actions in inbox.actions (which close or re-check the users' sockets on commit).

Rules: owners and admins manage members; only an owner may make someone an owner or change or remove
an owner; a tenant always keeps at least one owner.
"""

import logging

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _

from inbox import actions
from inbox.models import Membership

logger = logging.getLogger(__name__)
Role = Membership.Role


class MemberRuleError(Exception):
    """A change the rules refuse; the message is shown to the user."""


def _check_may_touch(by: Membership, target_role: str, new_role: str | None = None) -> None:
    if by.role not in Membership.MANAGER_ROLES:
        raise MemberRuleError(_("Only owners and admins manage members."))
    if by.role != Role.OWNER and (target_role == Role.OWNER or new_role == Role.OWNER):
        raise MemberRuleError(_("Only an owner may make someone an owner, or change or remove an owner."))


def _check_keeps_an_owner(membership: Membership) -> None:
    """Call inside transaction.atomic: locks the tenant's owner rows."""
    owners = list(Membership.objects.select_for_update().filter(tenant_id=membership.tenant_id, role=Role.OWNER)
                  .values_list("pk", flat=True))
    if membership.role == Role.OWNER and owners == [membership.pk]:
        raise MemberRuleError(_("A workspace needs at least one owner: make someone else an owner first."))


def check_add_member(by: Membership, *, username: str, email: str, role: str, password: str) -> Membership:
    """A new account with its first password, member of ``by``'s tenant with ``role``."""
    _check_may_touch(by, role)
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, email=email, password=password)
        membership = actions.do_save_membership(Membership(user=user, tenant_id=by.tenant_id, role=role))
    logger.info("inbox.member_added", extra={"tenant_id": by.tenant_id, "user_id": user.pk, "role": role,
                                             "by_user_id": by.user_id})
    return membership


def check_change_role(by: Membership, membership: Membership, role: str) -> Membership:
    _check_may_touch(by, membership.role, role)
    with transaction.atomic():
        if role != Role.OWNER:
            _check_keeps_an_owner(membership)
        old = membership.role
        membership.role = role
        actions.do_save_membership(membership)  # their sockets re-check: a demoted admin leaves the numbers page
    logger.info("inbox.member_role_changed", extra={"tenant_id": membership.tenant_id, "user_id": membership.user_id,
                                                    "from": old, "to": role, "by_user_id": by.user_id})
    return membership


def check_remove_member(by: Membership, membership: Membership) -> None:
    _check_may_touch(by, membership.role)
    with transaction.atomic():
        _check_keeps_an_owner(membership)
        actions.do_remove_memberships([membership])  # their open sockets in this tenant close on commit
    logger.info("inbox.member_removed", extra={"tenant_id": membership.tenant_id, "user_id": membership.user_id,
                                               "by_user_id": by.user_id})

