"""A short tag naming this deployment's database, for names that live outside it.

Redis keys and pub/sub channels (pub/sub ignores the db number) and lock files in /tmp are shared by
whatever else runs on the machine: another deployment, or the test suite beside `make run`. Ids are
per database, so such names carry this tag. It is read at call time, so in tests it names the test
database that pytest-django created, in the test process and in the processes it starts alike.
"""

import hashlib

from django.conf import settings


def database_scope(database_name: str | None = None) -> str:
    """The tag of this deployment's database (or of another one, given its name)."""
    name = database_name if database_name is not None else str(settings.DATABASES["default"]["NAME"])
    return hashlib.sha1(name.encode()).hexdigest()[:12]
