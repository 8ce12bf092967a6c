"""Which UI languages the open live sockets read, so pushed fragments are rendered only in those.

A fragment is rendered once per language it is sent in (``inbox.rendering.render_localized``); rendering
it in every language of ``settings.LANGUAGES`` whether anyone reads it or not doubled a flood's rendering
(docs/measurements.md). So:

* the default language (``settings.LANGUAGE_CODE``) is always rendered: it is the event's ``html``;
* another language is rendered while some socket of this deployment reads it: each process that serves
  sockets (daphne) keeps, per language, a Redis key ``live:<scope>:lang:<code>`` alive (``KEY_TTL``,
  refreshed every ``REFRESH_SECONDS`` while it has such a socket; set before the socket joins any group);
* a socket that gets a localized fragment without its language (it opened while that fragment was
  being rendered, or its key expired in a Redis blip) delivers a ``live:refresh`` trigger instead: its
  page fetches its live regions again, in its own language, as after a reconnect (inbox.consumers).

Publishers read the keys at most once per ``CACHE_SECONDS`` per process (one publish renders several
fragments). If Redis cannot be read, every language is rendered.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

from asgiref.sync import sync_to_async
from django.conf import settings

from config.redis import redis_client
from config.scope import database_scope
from inbox.languages import language_codes

logger = logging.getLogger(__name__)

KEY_TTL = 60  # seconds a language stays "in use" after its last socket's process stopped refreshing it
REFRESH_SECONDS = 20.0
CACHE_SECONDS = 0.1


def _key(code: str) -> str:
    return f"live:{database_scope()}:lang:{code}"


# --- publishers (sync) ----------------------------------------------------------------------------------

_cache: dict = {"at": -1e9, "codes": None}


def languages_in_use() -> list[str]:
    """The languages to render a pushed fragment in, the default one first."""
    now = time.monotonic()
    if _cache["codes"] is not None and now - _cache["at"] < CACHE_SECONDS:
        return _cache["codes"]
    default = settings.LANGUAGE_CODE
    others = [code for code in language_codes() if code != default]
    codes = [default]
    if others:
        try:
            marks = redis_client().mget([_key(code) for code in others])
        except Exception:  # noqa: BLE001 - not knowing costs rendering, never a missing language
            logger.warning("live.languages_unknown", exc_info=True)
            return [default, *others]
        codes += [code for code, mark in zip(others, marks, strict=True) if mark is not None]
    _cache.update(at=now, codes=codes)
    return codes


# --- socket servers (async) -----------------------------------------------------------------------------

_open: Counter = Counter()  # language -> open sockets of this process that read it
_refresher: dict = {"task": None}


def _mark(codes: list[str]) -> None:
    pipe = redis_client().pipeline()
    for code in codes:
        pipe.set(_key(code), "1", ex=KEY_TTL)
    pipe.execute()


async def socket_opened(code: str) -> None:
    """A socket reading ``code`` opens (call before it joins its groups)."""
    _open[code] += 1
    if code == settings.LANGUAGE_CODE:
        return
    try:
        await sync_to_async(_mark, thread_sensitive=False)([code])
        _cache["codes"] = None  # this process's own publishes see it at once
    except Exception:  # noqa: BLE001 - the socket still works: it gets refresh triggers instead
        logger.warning("live.language_mark_failed", exc_info=True)
    task, loop = _refresher["task"], asyncio.get_running_loop()
    if task is None or task.done() or task.get_loop() is not loop:
        _refresher["task"] = loop.create_task(_refresh())


def socket_closed(code: str) -> None:
    _open[code] -= 1
    if _open[code] <= 0:
        del _open[code]


async def _refresh() -> None:
    """Keep this process's languages marked while it has sockets reading them (other than the default)."""
    while True:
        await asyncio.sleep(REFRESH_SECONDS)
        codes = [code for code, n in _open.items() if n > 0 and code != settings.LANGUAGE_CODE]
        if not codes:
            return
        try:
            await sync_to_async(_mark, thread_sensitive=False)(codes)
        except Exception:  # noqa: BLE001 - tried again next period
            logger.warning("live.language_mark_failed", exc_info=True)
