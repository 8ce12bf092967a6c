"""Laptop defaults for `make run`: DEBUG on, SQLite, the simulator transport, a development key."""

import os

os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: E402,F401,F403
from .base import SECRET_KEY  # noqa: E402

SECRET_KEY = SECRET_KEY or "dev-only-insecure-key-change-me"
# A webhook pointed at a receiver on the laptop is fine here (production refuses private addresses).
OUTBOUND_ALLOW_PRIVATE_ADDRESSES = env.bool("OUTBOUND_ALLOW_PRIVATE_ADDRESSES", default=True)  # noqa: F405
