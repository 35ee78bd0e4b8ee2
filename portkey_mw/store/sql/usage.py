"""The statements behind :meth:`SQLStore.save_usage` and :meth:`SQLStore.load_usage`:
budget usage in ``budget_usage``, one row per (subject, type), the last write winning.

A save is one upsert run as one batch (``INSERT ... ON CONFLICT DO UPDATE``, which SQLite
and PostgreSQL both speak) and one delete of the rows whose period ended. It takes no lock
on the revision counter, so admin writes never wait for it and no catalog reloads for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from portkey_mw.limits.results import UsageEntry
from portkey_mw.limits.spec import BudgetType
from portkey_mw.store.sql.models import MAX_USAGE_SUBJECT, budget_usage

__all__ = ["load", "rows", "save"]

#: Key of the PostgreSQL advisory lock that serialises usage saves of every replica: two
#: batches upserting the same rows in one transaction each could otherwise deadlock.
_USAGE_LOCK = 7_270_313_118
_TYPES: dict[str, BudgetType] = {"cost": "cost", "tokens": "tokens"}
_UPDATED = ("period", "used", "alerted", "exhausted", "expires_at", "updated_at")


def rows(entries: Sequence[UsageEntry], updated_at: datetime) -> tuple[list[dict[str, Any]], int]:
    """The rows to upsert for ``entries``, one per (subject, type) -- the last entry of a
    budget wins -- in key order; and how many entries the table cannot hold were skipped.
    """
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    skipped = 0
    for entry in entries:
        if len(entry.subject) > MAX_USAGE_SUBJECT or not math.isfinite(entry.used):
            skipped += 1
            continue
        latest[(entry.subject, entry.type)] = {
            "subject": entry.subject,
            "type": entry.type,
            "period": entry.period,
            "used": float(entry.used),
            "alerted": bool(entry.alerted),
            "exhausted": bool(entry.exhausted),
            "expires_at": None if entry.expires_at is None else float(entry.expires_at),
            "updated_at": updated_at,
        }
    # One order for every writer: concurrent batches lock rows in the same sequence.
    return [latest[key] for key in sorted(latest)], skipped


def _upsert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(budget_usage)
    return statement.on_conflict_do_update(
        index_elements=[budget_usage.c.subject, budget_usage.c.type],
        set_={name: statement.excluded[name] for name in _UPDATED},
    )


async def save(connection: AsyncConnection, batch: list[dict[str, Any]], now: float) -> None:
    """Upsert ``batch`` (from :func:`rows`) and delete rows ended at ``now``, inside the
    caller's transaction."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _USAGE_LOCK})
    if batch:
        await connection.execute(_upsert(dialect), batch)  # executemany: one batch
    await connection.execute(
        delete(budget_usage).where(
            budget_usage.c.expires_at.is_not(None) & (budget_usage.c.expires_at <= now)
        )
    )


async def load(connection: AsyncConnection, now: float) -> list[UsageEntry]:
    """Every row whose period has not ended at ``now``, in key order."""
    result = await connection.execute(
        select(budget_usage)
        .where(or_(budget_usage.c.expires_at.is_(None), budget_usage.c.expires_at > now))
        .order_by(budget_usage.c.subject, budget_usage.c.type)
    )
    return [
        UsageEntry(
            subject=row.subject,
            type=_TYPES[row.type],
            period=row.period,
            used=float(row.used),
            alerted=bool(row.alerted),
            exhausted=bool(row.exhausted),
            expires_at=None if row.expires_at is None else float(row.expires_at),
        )
        for row in result
        # A type a later portkey-mw wrote is not this one's to load.
        if row.type in _TYPES
    ]
