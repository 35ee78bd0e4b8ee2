"""Retention of the SQL log store: delete records older than ``logging.retention_days``
and the oldest beyond ``logging.max_records``, their metadata rows with them, and the
hourly rollups of hours wholly older than ``retention_days`` (``max_records`` bounds the
records only: the aggregates of the retention period outlive the records it cut).

Each delete is a chunk of ids picked through the ``created_ms`` index (oldest first) and
removed in its own short transaction, so pruning never holds the write lock long enough
to stall the sink or the control plane, however much there is to delete.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from portkey_mw.logstore.schema import (
    ROLLUP_MS,
    log_latency,
    log_metadata,
    log_rollups,
    request_logs,
)
from portkey_mw.store.sql.engine import translate_errors

__all__ = ["CHUNK", "prune"]

#: Records deleted per transaction.
CHUNK = 1000


async def prune(
    engine: AsyncEngine,
    *,
    retention_days: float,
    max_records: int,
    now: float | None = None,
    chunk: int = CHUNK,
) -> int:
    """Delete what retention no longer keeps (``0`` for either bound: no such bound).

    :param now: the current time in epoch seconds (tests pass one).
    :returns: how many records were deleted.
    :raises StoreUnavailable: the database cannot be reached.
    """
    url = engine.url.render_as_string(hide_password=False)
    deleted = 0
    async with translate_errors(url):
        if retention_days > 0:
            cutoff = int(((time.time() if now is None else now) - retention_days * 86400) * 1000)
            while True:
                count = await _delete_oldest(engine, chunk, request_logs.c.created_ms < cutoff)
                deleted += count
                if count < chunk:
                    break
            await _delete_rollups(engine, cutoff)
        if max_records > 0:
            async with engine.connect() as connection:
                total = (
                    await connection.execute(select(func.count()).select_from(request_logs))
                ).scalar_one()
            excess = int(total) - max_records
            while excess > 0:
                count = await _delete_oldest(engine, min(chunk, excess))
                if count == 0:
                    break
                deleted += count
                excess -= count
    return deleted


async def _delete_rollups(engine: AsyncEngine, cutoff_ms: int) -> None:
    """Delete the rollups of the hours that ended by ``cutoff_ms``."""
    async with engine.connect() as connection:
        connection = await connection.execution_options(write=True)
        async with connection.begin():
            for table in (log_rollups, log_latency):
                ended = table.c.bucket_ms <= cutoff_ms - ROLLUP_MS
                await connection.execute(delete(table).where(ended))


async def _delete_oldest(
    engine: AsyncEngine, limit: int, condition: ColumnElement[bool] | None = None
) -> int:
    """Delete the ``limit`` oldest records (matching ``condition``) and their metadata,
    in one transaction; returns how many went."""
    c = request_logs.c
    pick: Any = select(c.id).order_by(c.created_ms, c.id).limit(limit)
    if condition is not None:
        pick = pick.where(condition)
    async with engine.connect() as connection:
        connection = await connection.execution_options(write=True)
        async with connection.begin():
            ids = list((await connection.execute(pick)).scalars())
            if ids:
                await connection.execute(delete(log_metadata).where(log_metadata.c.log_id.in_(ids)))
                await connection.execute(delete(request_logs).where(c.id.in_(ids)))
    return len(ids)
