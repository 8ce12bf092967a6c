"""Canned responses (issue 15): a team's saved replies, searched by shortcut from the reply box
(type ``/`` then letters: static/inbox/tools.js asks ``canned_search``) and inserted with their
variables filled in for the open conversation. The agent still reads and sends the reply: inserting
sends nothing.

Variables: ``{{contact_name}}``, ``{{contact_first_name}}``, ``{{contact_phone}}``, ``{{agent_name}}``,
``{{team_name}}``; spaces inside the braces are allowed, an unknown one is left as typed.
"""

from __future__ import annotations

import logging
import re

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.http import Http404
from django.utils.translation import gettext as _

from inbox.models import CannedResponse

logger = logging.getLogger(__name__)

SHORTCUT_RE = re.compile(r"^[\w-]{1,40}$")
MAX_BODY = 4096
SEARCH_LIMIT = 8
VARIABLE_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
VARIABLES = ("contact_name", "contact_first_name", "contact_phone", "agent_name", "team_name")


class CannedRefused(ValueError):
    pass


def variables_for(conversation, agent) -> dict[str, str]:
    contact = conversation.contact
    name = contact.display_name or contact.push_name or ""
    agent_name = (agent.get_full_name() or agent.get_username()) if agent is not None else ""
    return {
        "contact_name": name or contact.phone_number,
        "contact_first_name": (name.split() or [""])[0],
        "contact_phone": contact.phone_number,
        "agent_name": agent_name,
        "team_name": conversation.tenant.name,
    }


def fill(body: str, variables: dict[str, str]) -> str:
    return VARIABLE_RE.sub(lambda m: variables.get(m.group(1), m.group(0)), body)


def search(tenant, query: str, limit: int = SEARCH_LIMIT) -> list[CannedResponse]:
    """Shortcuts starting with the query first, then those containing it or whose text does (one query)."""
    query = query.strip().lstrip("/")[:40]
    qs = CannedResponse.objects.for_tenant(tenant)
    if query:
        qs = qs.filter(Q(shortcut__icontains=query) | Q(body__icontains=query))
    rows = list(qs.order_by("shortcut")[:50])
    rows.sort(key=lambda r: (not r.shortcut.lower().startswith(query.lower()), r.shortcut.lower()))
    return rows[:limit]


def tenant_canned_responses(tenant) -> list[CannedResponse]:
    return list(CannedResponse.objects.for_tenant(tenant).order_by("shortcut"))


def access_canned(tenant, canned_id) -> CannedResponse:
    try:
        return CannedResponse.objects.for_tenant(tenant).get(pk=int(canned_id))
    except (ValueError, TypeError, OverflowError, CannedResponse.DoesNotExist):
        raise Http404 from None


def check_create_canned(tenant, shortcut: str, body: str, user) -> CannedResponse:
    shortcut = (shortcut or "").strip().lstrip("/")
    body = (body or "").replace("\r\n", "\n").strip()
    if not SHORTCUT_RE.match(shortcut):
        raise CannedRefused(_("A shortcut is 1-40 letters, digits, - or _ (e.g. greeting)."))
    if not body:
        raise CannedRefused(_("Write the response's text."))
    if len(body) > MAX_BODY or "\x00" in body:
        raise CannedRefused(_("The text is too long (at most %(max)d characters).") % {"max": MAX_BODY})
    if CannedResponse.objects.for_tenant(tenant).filter(shortcut__iexact=shortcut).exists():
        raise CannedRefused(_("The shortcut /%(shortcut)s is taken.") % {"shortcut": shortcut})
    try:
        with transaction.atomic():
            return do_create_canned(tenant, shortcut, body, user)
    except IntegrityError:
        raise CannedRefused(_("The shortcut /%(shortcut)s is taken.") % {"shortcut": shortcut}) from None


def do_create_canned(tenant, shortcut: str, body: str, user=None) -> CannedResponse:
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    canned = CannedResponse.objects.create(tenant_id=tenant_id, shortcut=shortcut, body=body, created_by=user)
    logger.info("inbox.canned_created", extra={"canned_id": canned.pk, "tenant_id": tenant_id})
    return canned


def do_delete_canned(canned) -> None:
    canned.delete()
    logger.info("inbox.canned_deleted", extra={"canned_id": canned.pk})
