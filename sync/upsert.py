"""The one bulk "insert what is new" helper of the sync engine.

``insert_new(model, columns, rows, scope, key)`` inserts the rows whose ``key`` column value does not
exist yet within ``scope`` (a dict of column -> value shared by every row, e.g. the connection) and
returns the key values it inserted; existing rows are left untouched, which is what makes a replay
change nothing. ``rows`` are tuples in ``columns`` order (JSON columns as already-encoded strings or
Python objects; both are accepted).

The caller holds the per-connection journal lock, so nobody else inserts into the same scope
meanwhile. The existing keys are read with one probe of the unique index (rows of a parent created in
this transaction are not probed: see ``fresh``) and the new rows are inserted with their primary keys
(``sync.statements.insert_rows``: a binary COPY on PostgreSQL); should a row appear in the meantime
anyway (another path writing the same key), the unique constraint aborts the batch and the processor
retries its rows one by one, which then see the row and count it as a duplicate.
Call inside ``transaction.atomic()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from operator import itemgetter

from django.db import IntegrityError, models, transaction

from sync import statements, timing

logger = logging.getLogger(__name__)


def existing_keys(model, scope: dict, key: str | tuple[str, ...], values) -> set:
    """The values of ``key`` (a column, or a tuple of columns whose values are tuples) that exist
    within ``scope`` (column -> value equalities)."""
    if isinstance(key, tuple):
        return statements.existing_key_tuples(model, scope, key, list(values))
    return statements.existing_keys(model, scope, key, list(values))


def insert_new(model: type[models.Model], columns: Sequence[str], rows: Sequence[tuple], scope: dict,
               key: str | tuple[str, ...], beside_copy: Callable[[], None] | None = None,
               id_range: list | None = None, fresh: tuple[str, set] | None = None,
               ids: list | None = None) -> list:
    """Insert rows whose ``key`` (a column, or a tuple of columns: values are then tuples) is new within
    ``scope``; returns the inserted key values in order.

    ``beside_copy``: work without database access, run in this thread while the COPY is fed from a
    helper thread (PostgreSQL; see ``sync.statements.insert_rows``). Not run when nothing is inserted.
    ``ids``: a list that receives the inserted rows' primary keys, in the order of the returned keys.
    ``id_range``: a list that receives ``(after_id, through_id)``: every inserted row's primary key is in
    ``after_id < id <= through_id`` (other sessions' ids may be interleaved).
    ``fresh``: ``(column, values)``: rows whose ``column`` is in ``values`` are not probed, because their
    parent row was created in this transaction (a message of a conversation this batch created cannot
    exist yet: a first history sync probes nothing). Should one exist anyway, the insert meets the
    unique constraint (in a savepoint) and is redone after a probe of those rows."""
    if not rows:
        return []
    cols = list(columns)
    k = itemgetter(*(cols.index(c) for c in key)) if isinstance(key, tuple) else itemgetter(cols.index(key))
    started = time.perf_counter()
    unprobed: list[tuple] = []
    probed = rows
    if fresh is not None and fresh[1]:
        f, values = cols.index(fresh[0]), fresh[1]
        probed = [r for r in rows if r[f] not in values]
        unprobed = [r for r in rows if r[f] in values]
    present = existing_keys(model, scope, key, (k(r) for r in probed)) if probed else set()
    timing.add("message_probe", time.perf_counter() - started)
    new_rows = [r for r in rows if k(r) not in present] if present else list(rows)  # in the rows' order
    if unprobed:
        try:
            with transaction.atomic():  # a savepoint: the rows not probed may meet an existing key
                return _insert(model, columns, new_rows, k, beside_copy, id_range, ids)
        except IntegrityError:
            logger.info("sync.upsert.fresh_key_existed", extra={"table": model._meta.db_table, "rows": len(rows)})
        present = existing_keys(model, scope, key, (k(r) for r in unprobed))
        new_rows = [r for r in new_rows if k(r) not in present]
        beside_copy = None  # it ran during the COPY that failed
    return _insert(model, columns, new_rows, k, beside_copy, id_range, ids)


def _insert(model, columns, new_rows: list[tuple], k, beside_copy, id_range: list | None, ids: list | None) -> list:
    if not new_rows:
        return []
    inserted_ids = statements.insert_rows(model, columns, new_rows, beside_copy)
    if id_range is not None:
        id_range[:] = [min(inserted_ids) - 1, max(inserted_ids)]
    if ids is not None:
        ids[:] = inserted_ids
    return [k(r) for r in new_rows]
