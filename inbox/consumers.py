"""The live websockets: push server-rendered fragments; never write anything.

``/ws/ops/`` (``OpsConsumer``): platform staff only (others are refused with 4403); joins the ops group,
on which heartbeats, status changes and alerts say "the platform's figures may have moved" (the /ops/
page then fetches its body again). Its re-check asks whether the session still logs in a staff user.

``/ws/t/<slug>/`` joins the tenant's inbox group (and, for owners/admins, its connections group);
``?conversation=<id>`` also joins that thread's group. The session user is authenticated by
AuthMiddlewareStack; anonymous users and non-members are refused (closed with code 4403) before
any group is joined. Access goes through inbox.access, the same gate as the pages.

A socket does not outlive the access it was opened with:

* it also joins its user's group (``events.user_group``), on which actions announce, on commit, that the
  user's access changed (logout, a membership removed or its role changed, the account changed); the
  socket then re-checks at once;
* before delivering a fragment it re-checks when its last check is older than
  ``LIVE_ACCESS_RECHECK_SECONDS`` (a safety net for any change nobody announced: a session that expired,
  a row edited in a shell, an announcement lost with a Redis blip).

The check (``inbox.access.session_still_member``) asks whether the socket's session still logs its user in
and the user is still a member of the tenant with the same role (one query while nothing changed; else
``session_membership``'s own, with Django's code). If not, the socket leaves its groups,
drops what it was about to send and closes with ``CLOSE_ACCESS_CHANGED``; the page reloads on that code
(static/inbox/live.js), which shows the login page, a 404, or the page as the new role sees it.
"""

import asyncio
import logging
import os
import queue
import threading
import time
from functools import cached_property
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import Http404

from inbox import events, live_languages
from inbox.access import access_conversation, access_tenant, session_still_member, session_user
from inbox.languages import supported_language

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
CLOSE_ACCESS_CHANGED = 4401
# Delivered instead of a localized fragment that lacks the socket's language (inbox.live_languages): the
# page fetches its live regions again, in its own language, as it does after a reconnect.
REFRESH_TRIGGER = '<div data-upsert="trigger" data-event="live:refresh"></div>'


@database_sync_to_async
def _resolve(user, slug, conversation_id):
    tenant, membership = access_tenant(user, slug)
    conversation = access_conversation(tenant, conversation_id) if conversation_id else None
    return tenant, membership, conversation


def _still_staff(session_key, user_id) -> bool:
    user = session_user(session_key)
    return user is not None and user.pk == user_id and user.is_staff


# --- the re-checks' thread ----------------------------------------------------------------------------
# Every socket re-checks at least every LIVE_ACCESS_RECHECK_SECONDS while fragments reach it: 100 open
# sockets make 20 checks a second. ``database_sync_to_async`` opened a new database connection for each
# (CONN_MAX_AGE = 0: a backend started per check, most of a socket server's CPU in a flood,
# docs/measurements.md). The checks run instead, one at a time as before, on one thread of the process
# that keeps its connection while checks keep coming and closes it after ``RECHECK_IDLE_CLOSE`` seconds
# without one (a connection that saw an error is replaced before the next check).

RECHECK_IDLE_CLOSE = 1.0
_rechecks: dict = {"pid": None, "jobs": None}
_rechecks_lock = threading.Lock()


def _recheck_jobs() -> queue.SimpleQueue:
    with _rechecks_lock:
        if _rechecks["pid"] != os.getpid():
            jobs = queue.SimpleQueue()
            threading.Thread(target=_run_rechecks, args=(jobs,), name="live-rechecks", daemon=True).start()
            _rechecks.update(pid=os.getpid(), jobs=jobs)
        return _rechecks["jobs"]


def _run_rechecks(jobs: queue.SimpleQueue) -> None:
    from django.db import connection

    from config.db import drop_broken_connections

    while True:
        try:
            fn, args, settle = jobs.get(timeout=RECHECK_IDLE_CLOSE)
        except queue.Empty:
            connection.close()
            continue
        drop_broken_connections()
        try:
            result, error = fn(*args), None
        except Exception as exc:  # noqa: BLE001 - raised in the socket that asked
            result, error = None, exc
        settle(result, error)


async def _on_recheck_thread(fn, *args):
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def resolve(result, error):
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def settle(result, error):
        try:
            loop.call_soon_threadsafe(resolve, result, error)
        except RuntimeError:  # the socket's loop is gone
            pass

    _recheck_jobs().put((fn, args, settle))
    return await future


class _LiveConsumer(AsyncWebsocketConsumer):
    """A push-only socket that does not outlive the access it was opened with (the module's docstring):
    subclasses join their groups in ``connect`` through ``_join`` and say in ``_allowed`` what is re-checked."""

    async def _join(self, groups) -> None:
        self.revoked = False
        self.checked_at = time.monotonic()
        # Before joining: every fragment this socket can receive is then rendered in its language.
        await live_languages.socket_opened(self.language)
        self.language_noted = True
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()

    async def _allowed(self) -> bool:
        raise NotImplementedError

    async def dispatch(self, message):
        # Channels runs ``close_old_connections`` on a worker thread before every handler (a thread hop
        # per fragment delivered: ~1/5 of daphne's CPU in bench/flood.py). Delivering a fragment uses no
        # database connection of those threads (the re-checks have their own thread, which replaces a
        # broken connection itself), so fragments skip it; every other message goes the usual way.
        if message.get("type") == events.FRAGMENT_EVENT:
            await self.live_fragment(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code):
        await self._leave_groups()
        if getattr(self, "language_noted", False):
            self.language_noted = False
            live_languages.socket_closed(self.language)

    async def receive(self, text_data=None, bytes_data=None):
        # The socket is push-only; writes go through the pages' forms (actions, CSRF, access checks).
        return

    async def live_fragment(self, event):
        if getattr(self, "revoked", True):
            return
        if time.monotonic() - self.checked_at >= settings.LIVE_ACCESS_RECHECK_SECONDS and not await self._recheck():
            return
        # ``html``: the default language (or a fragment that is the same in every language); ``translations``:
        # the other languages rendered (inbox.events._message).
        translations = event.get("translations")
        if translations is None or self.language == settings.LANGUAGE_CODE:
            await self.send(text_data=event["html"])
        else:
            await self.send(text_data=translations.get(self.language, REFRESH_TRIGGER))

    @cached_property
    def language(self) -> str:
        """The page's language (``?lang=``, set by the page from its own), else the default: the fragments
        this socket delivers are in it (inbox.events renders each in the languages open sockets read)."""
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        return supported_language((query.get("lang") or [""])[0]) or settings.LANGUAGE_CODE

    async def access_changed(self, event):
        if not getattr(self, "revoked", True):
            await self._recheck()

    async def _recheck(self) -> bool:
        """True if the socket may go on; else it is closed (and delivers nothing more)."""
        allowed = await self._allowed()
        self.checked_at = time.monotonic()
        if not allowed:
            self.revoked = True
            logger.info("live.socket_revoked", extra={"user_id": self.access[1], "path": self.scope.get("path", "")})
            await self._leave_groups()
            await self.close(code=CLOSE_ACCESS_CHANGED)
        return allowed

    async def _leave_groups(self):
        groups, self.groups_joined = getattr(self, "groups_joined", []), []
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    def _session_key(self):
        session = self.scope.get("session")
        return session.session_key if session is not None else None


class InboxConsumer(_LiveConsumer):
    """``/ws/t/<slug>/[?conversation=<id>]``: a member's inbox, thread and (managers) numbers page."""

    async def connect(self):
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["slug"]
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        conversation_id = (query.get("conversation") or [None])[0]
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        try:
            tenant, membership, conversation = await _resolve(user, slug, conversation_id)
        except Http404:
            logger.info("live.socket_refused", extra={"user_id": user.pk, "slug": slug, "conversation_id": conversation_id})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.access = (self._session_key(), user.pk, tenant.pk, membership.role)
        groups = [events.user_group(user.pk), events.inbox_group(tenant.pk)]
        if membership.is_manager:
            groups.append(events.connections_group(tenant.pk))
        if conversation is not None:
            groups.append(events.conversation_group(conversation.pk))
        await self._join(groups)

    async def _allowed(self) -> bool:
        return await _on_recheck_thread(session_still_member, *self.access)


class OpsConsumer(_LiveConsumer):
    """``/ws/ops/``: platform staff on /ops/; told when the platform's figures may have moved."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_staff:
            logger.info("live.socket_refused", extra={"user_id": getattr(user, "pk", None), "path": "/ws/ops/"})
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.access = (self._session_key(), user.pk)
        await self._join([events.user_group(user.pk), events.ops_group()])

    async def _allowed(self) -> bool:
        return await _on_recheck_thread(_still_staff, *self.access)
