"""Laptop defaults for `make run`: DEBUG on, SQLite, the simulator transport, a development key."""

import os

os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: E402,F401,F403
from .base import SECRET_KEY  # noqa: E402

SECRET_KEY = SECRET_KEY or "dev-only-insecure-key-change-me"
