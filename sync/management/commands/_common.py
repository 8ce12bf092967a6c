from django.core.management.base import CommandError

from connections.models import Connection


def get_connection(connection_id) -> Connection:
    """Commands act on one connection by id; every tenant is meant (an operator's tool)."""
    try:
        return Connection.objects.unscoped().get(pk=int(connection_id))
    except (Connection.DoesNotExist, ValueError, TypeError):
        raise CommandError(f"no connection with id {connection_id!r}")
