"""Settings for bench/live.py's processes: the test settings with a channel-layer prefix of its own.

Redis pub/sub channels ignore the database number, so without a prefix a test run on the same Redis
publishing to ``conversation-3`` would reach the benchmark's sockets (and the other way round).
"""

from config.settings.test import *  # noqa: F403

CHANNEL_LAYERS = {
    "default": {
        **CHANNEL_LAYERS["default"],  # noqa: F405
        "CONFIG": {**CHANNEL_LAYERS["default"]["CONFIG"], "prefix": "bench-live"},  # noqa: F405
    }
}
