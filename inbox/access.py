"""The one tenant gate for ids: every lookup by id from a request goes through here.

Each helper returns the same 404 for "does not exist" and "belongs to another tenant".
"""

from functools import lru_cache

from django.conf import settings
from django.db import connection
from django.http import Http404
from django.utils import timezone

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


def session_still_member(session_key: str | None, user_id: int, tenant_id: int, role: str) -> bool:
    """Whether a live socket opened by ``user_id`` with this session and role in the tenant may go on:
    ``session_membership`` names the same user with the same role. One query when nothing changed
    (``_unchanged_in_one_query``); anything else is judged by ``session_membership`` itself."""
    if _unchanged_in_one_query(session_key, user_id, tenant_id, role):
        return True
    membership = session_membership(session_key, tenant_id)
    return membership is not None and membership.user_id == user_id and membership.role == role


DB_SESSIONS = "django.contrib.sessions.backends.db"


def _unchanged_in_one_query(session_key: str | None, user_id: int, tenant_id: int, role: str) -> bool:
    """True only when ``session_membership`` would return this user's membership with this role, read in
    one query (the session's row, the user's and the membership's) instead of its three ORM queries.

    It asks what Django's ``get_user`` asks: the session row exists and has not expired; its data (signed,
    decoded by the session store) names this user and a backend of AUTHENTICATION_BACKENDS whose
    ``get_user`` and ``user_can_authenticate`` are ModelBackend's (the user exists and is active); the
    session's auth hash is the one of the user's current password under the current SECRET_KEY. False
    for anything else, including a hash only a fallback key verifies: the caller then runs Django's own
    code, which also does what Django does then (rotate the session, or flush it)."""
    if not session_key or settings.SESSION_ENGINE != DB_SESSIONS:
        return False
    with connection.cursor() as cursor:
        cursor.execute(_one_query_sql(), [user_id, tenant_id, session_key, timezone.now()])
        row = cursor.fetchone()
    if row is None:
        return False
    session_data, password, is_active, member_role = row
    return (member_role == role and is_active is True
            and _session_logs_in(session_data, user_id, password))


def _session_logs_in(session_data: str, user_id: int, password: str) -> bool:
    """Whether this session data logs ``user_id`` in as Django's ``get_user`` would, given the user's
    current password hash (the user's being active is checked by the caller)."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
    from django.utils.crypto import constant_time_compare

    data = _decoded_session(session_data)
    user_model = get_user_model()
    try:
        if user_model._meta.pk.to_python(data[SESSION_KEY]) != user_id:
            return False
        backend_path = data[BACKEND_SESSION_KEY]
    except Exception:  # noqa: BLE001 - a key missing, an id that is no id: the full check decides
        return False
    session_hash = data.get(HASH_SESSION_KEY)
    return (bool(session_hash) and backend_path in settings.AUTHENTICATION_BACKENDS
            and _model_backend(backend_path)
            and constant_time_compare(session_hash, user_model(password=password).get_session_auth_hash()))


@lru_cache(maxsize=4096)
def _decoded_session(session_data: str) -> dict:
    """The session store's own decoding (signature checked) of a row's data: the same text decodes to the
    same dict, so a socket's re-checks decode its session once (callers only read the dict)."""
    from django.contrib.sessions.backends.db import SessionStore

    return SessionStore().decode(session_data)


@lru_cache(maxsize=16)
def _model_backend(backend_path: str) -> bool:
    """Whether this backend finds a session's user as ModelBackend does (by id, active users only)."""
    from django.contrib.auth import load_backend
    from django.contrib.auth.backends import ModelBackend

    backend = type(load_backend(backend_path))
    return (backend.get_user is ModelBackend.get_user
            and backend.user_can_authenticate is ModelBackend.user_can_authenticate)


@lru_cache(maxsize=1)
def _one_query_sql() -> str:
    """The session's row, the user's and the membership's in a tenant that is not archived (names from
    the models; parameters: user id, tenant id, session key, now)."""
    from django.contrib.auth import get_user_model
    from django.contrib.sessions.models import Session

    user = get_user_model()
    s, u, m, t = (_names(model) for model in (Session, user, Membership, Tenant))
    return (
        f"SELECT s.{s['session_data']}, u.{u['password']}, u.{u['is_active']}, m.{m['role']} "  # noqa: S608 - names from the models
        f"FROM {s['table']} s JOIN {u['table']} u ON u.{u['pk']} = %s "
        f"JOIN {m['table']} m ON m.{m['user']} = u.{u['pk']} AND m.{m['tenant']} = %s "
        f"JOIN {t['table']} t ON t.{t['pk']} = m.{m['tenant']} AND t.{t['archived_at']} IS NULL "
        f"WHERE s.{s['session_key']} = %s AND s.{s['expire_date']} > %s"
    )


def _names(model) -> dict[str, str]:
    """A model's quoted table name (``table``), primary key column (``pk``) and field columns by field name."""
    quote = connection.ops.quote_name
    names = {f.name: quote(f.column) for f in model._meta.concrete_fields}
    return {**names, "table": quote(model._meta.db_table), "pk": quote(model._meta.pk.column)}
