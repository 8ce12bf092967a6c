"""The inbox websocket: pushes server-rendered fragments; never writes anything.

``/ws/t/<slug>/`` joins the tenant's inbox group (and, for owners/admins, its connections group);
``?conversation=<id>`` also joins that thread's group. The session user is authenticated by
AuthMiddlewareStack; anonymous users and non-members are refused (closed with code 4403) before
any group is joined. Access goes through inbox.access, the same gate as the pages.
"""

import logging
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import Http404

from inbox import events
from inbox.access import access_conversation, access_tenant

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403


@database_sync_to_async
def _resolve(user, slug, conversation_id):
    tenant, membership = access_tenant(user, slug)
    conversation = access_conversation(tenant, conversation_id) if conversation_id else None
    return tenant, membership, conversation


class InboxConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.groups_joined = []
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
        groups = [events.inbox_group(tenant.pk)]
        if membership.is_manager:
            groups.append(events.connections_group(tenant.pk))
        if conversation is not None:
            groups.append(events.conversation_group(conversation.pk))
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined = groups
        await self.accept()

    async def disconnect(self, code):
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # The socket is push-only; writes go through the pages' forms (actions, CSRF, access checks).
        return

    async def live_fragment(self, event):
        await self.send(text_data=event["html"])
