"""The one tenant gate for ids: every lookup by id from a request goes through here.

Each helper returns the same 404 for "does not exist" and "belongs to another tenant".
"""

from django.http import Http404

from connections.models import Connection
from inbox.models import Alert, Contact, Conversation, MediaFile, Membership, Message, Tenant


def access_tenant(user, slug: str) -> tuple[Tenant, Membership]:
    """The tenant with this slug and the user's membership in it, or 404 (also for non-members)."""
    if not user.is_authenticated:
        raise Http404
    membership = (
        # The user's profile in the same query: its time zone is the page's (inbox.timezones).
        # An archived tenant (inbox.deletion) is closed to its members until a platform admin restores it.
        Membership.objects.select_related("tenant", "user__inbox_profile")
        .filter(user=user, tenant__slug=slug, tenant__archived_at__isnull=True).first()
    )
    if membership is None:
        raise Http404
    return membership.tenant, membership


def _get(queryset, pk):
    """``queryset`` is already one tenant's (``for_tenant``)."""
    try:
        return queryset.get(pk=int(pk))
    except (ValueError, TypeError, queryset.model.DoesNotExist):
        raise Http404 from None


def access_contact(tenant, contact_id) -> Contact:
    return _get(Contact.objects.for_tenant(tenant), contact_id)


def access_conversation(tenant, conversation_id) -> Conversation:
    return _get(Conversation.objects.for_tenant(tenant).select_related("contact", "connection", "assignee"), conversation_id)


def access_connection(tenant, connection_id) -> Connection:
    """A number of the tenant's numbers page: a deleted (archived) one is gone for its pages (404)."""
    return _get(Connection.objects.for_tenant(tenant).filter(archived_at__isnull=True), connection_id)


def access_membership(tenant, membership_id) -> Membership:
    """A membership of this tenant, with its user; another tenant's is the same 404 as none."""
    try:
        return Membership.objects.select_related("user").get(tenant=tenant, pk=int(membership_id))
    except (ValueError, TypeError, OverflowError, Membership.DoesNotExist):
        raise Http404 from None


def access_message(tenant, message_id) -> Message:
    return _get(Message.objects.for_tenant(tenant).select_related("conversation"), message_id)


def access_media(tenant, conversation_id, media_id) -> MediaFile:
    """A media file of a message in this tenant's conversation ``conversation_id``; anything else is 404."""
    media = _get(MediaFile.objects.for_tenant(tenant).defer("ref").select_related("message"), media_id)
    if media.message.conversation_id != int(conversation_id):
        raise Http404
    return media


def access_alert(tenant, alert_id) -> Alert:
    return _get(Alert.objects.for_tenant(tenant), alert_id)


def session_user(session_key: str | None):
    """The user this session is still logged in as (Django's checks: session not ended or expired, user
    active, password unchanged: the session's auth hash), else None. Two queries: session, user."""
    from importlib import import_module
    from types import SimpleNamespace

    from django.conf import settings
    from django.contrib.auth import get_user

    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = get_user(SimpleNamespace(session=session))  # the same checks as an HTTP request's user
    return user if user.is_authenticated else None


def session_membership(session_key: str | None, tenant_id: int) -> Membership | None:
    """The membership in this tenant of the user this session is still logged in as, else None.

    What a live socket re-checks (inbox.consumers): None once the session ended (logout, expiry), once
    Django would refuse the session (user deactivated or deleted, password changed: the session's auth
    hash), or once the membership is gone. Three queries: session, user, membership.
    """
    user = session_user(session_key)
    if user is None:
        return None
    return Membership.objects.filter(user_id=user.pk, tenant_id=tenant_id, tenant__archived_at__isnull=True).first()
