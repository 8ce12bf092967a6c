"""Laptop defaults for `make run`: DEBUG on, SQLite, the simulator transport."""

import os

os.environ.setdefault("DEBUG", "true")

from .base import *  # noqa: E402,F401,F403
