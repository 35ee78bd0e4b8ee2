"""Feedback on traces: written by ``POST /v1/feedback``, read beside a log record and by
the feedback analytics graphs.

SQLAlchemy Core over the log store's engine; every call is one short transaction.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from portkey_mw.logstore.db import connection
from portkey_mw.logstore.feedback_exports import feedback
from portkey_mw.logstore.schema import request_logs

__all__ = ["FeedbackIn", "FeedbackStore", "owned_by"]


@dataclass(frozen=True, slots=True)
class FeedbackIn:
    """One feedback item, already checked (value -10..10, weight 0..1)."""

    trace_id: str
    value: int
    weight: float = 1.0
    metadata: Mapping[str, Any] = field(default_factory=dict)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "trace_id": row.trace_id,
        "value": row.value,
        "weight": row.weight,
        "metadata": row.metadata or {},
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
    }


def owned_by(api_key_ids: Sequence[str]) -> list[ColumnElement[bool]]:
    """Feedback on traces whose every request log is by one of ``api_key_ids``. Feedback
    names no key, so a trace another key's requests share (or a custom log copied its id)
    may hold the other's feedback: a workspace key is shown none of it."""
    logs = request_logs.c
    ids = list(api_key_ids)
    mine = select(logs.trace_id).where(logs.api_key_id.in_(ids))
    others = select(logs.trace_id).where(
        logs.trace_id.is_not(None), or_(logs.api_key_id.is_(None), logs.api_key_id.not_in(ids))
    )
    return [feedback.c.trace_id.in_(mine), feedback.c.trace_id.not_in(others)]


class FeedbackStore:
    """The ``feedback`` table.

    :param engine: the log store's engine (same database as ``request_logs``).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def unknown_traces(self, trace_ids: Sequence[str]) -> list[str]:
        """The trace ids among ``trace_ids`` that no request log carries, in input order."""
        wanted = sorted(set(trace_ids))
        known: set[str] = set()
        async with connection(self.engine) as conn:
            for start in range(0, len(wanted), 500):  # bounded IN lists
                chunk = wanted[start : start + 500]
                rows = await conn.execute(
                    select(request_logs.c.trace_id)
                    .where(request_logs.c.trace_id.in_(chunk))
                    .distinct()
                )
                known.update(r[0] for r in rows)
        seen: set[str] = set()
        missing = []
        for trace in trace_ids:
            if trace not in known and trace not in seen:
                missing.append(trace)
                seen.add(trace)
        return missing

    async def create(self, items: Sequence[FeedbackIn]) -> list[str]:
        """Store every item in one transaction; their new ids, in input order."""
        now = _now_ms()
        rows: list[dict[str, Any]] = [
            {
                "id": uuid.uuid4().hex,
                "trace_id": item.trace_id,
                "value": item.value,
                "weight": item.weight,
                "metadata": dict(item.metadata),
                "created_ms": now,
                "updated_ms": now,
            }
            for item in items
        ]
        if rows:
            async with connection(self.engine, write=True) as conn:
                await conn.execute(feedback.insert(), rows)
        return [str(row["id"]) for row in rows]

    async def update(
        self,
        feedback_id: str,
        *,
        value: int | None = None,
        weight: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change the fields given; whether the feedback exists."""
        values: dict[str, Any] = {"updated_ms": _now_ms()}
        if value is not None:
            values["value"] = value
        if weight is not None:
            values["weight"] = weight
        if metadata is not None:
            values["metadata"] = dict(metadata)
        async with connection(self.engine, write=True) as conn:
            result = await conn.execute(
                update(feedback).where(feedback.c.id == feedback_id).values(**values)
            )
        return bool(result.rowcount)

    async def for_trace(
        self, trace_id: str, limit: int = 1000, *, api_key_ids: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The feedback on one trace, oldest first (at most ``limit``); with
        ``api_key_ids``, only if every request of the trace is by one of those keys."""
        owned = owned_by(api_key_ids) if api_key_ids is not None else []
        async with connection(self.engine) as conn:
            rows = await conn.execute(
                select(feedback)
                .where(feedback.c.trace_id == trace_id, *owned)
                .order_by(feedback.c.created_ms, feedback.c.id)
                .limit(limit)
            )
            return [_row(r) for r in rows]

    async def in_range(
        self,
        since: float,
        until: float,
        *,
        limit: int = 100_000,
        api_key_ids: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The feedback given in ``[since, until)`` (epoch seconds), oldest first, each with
        the ``model`` of its trace's first request (``None`` when no log is left); with
        ``api_key_ids``, only on traces whose every request is by one of those keys."""
        owned = owned_by(api_key_ids) if api_key_ids is not None else []
        model = (
            select(request_logs.c.model)
            .where(request_logs.c.trace_id == feedback.c.trace_id)
            .order_by(request_logs.c.created_ms)
            .limit(1)
            .correlate(feedback)
            .scalar_subquery()
        )
        async with connection(self.engine) as conn:
            rows = await conn.execute(
                select(feedback, model.label("model"))
                .where(
                    feedback.c.created_ms >= int(since * 1000),
                    feedback.c.created_ms < int(until * 1000),
                    *owned,
                )
                .order_by(feedback.c.created_ms)
                .limit(limit)
            )
            return [{**_row(r), "model": r.model} for r in rows]

    async def count(self) -> int:
        """How many feedback rows there are."""
        async with connection(self.engine) as conn:
            return int(
                (await conn.execute(select(func.count()).select_from(feedback))).scalar_one()
            )
