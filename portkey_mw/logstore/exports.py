"""Log exports: the ``log_exports`` rows, and writing an export's JSON-lines file.

An export is made as a ``draft`` (filters and fields), started (``in_progress``; the file is
written off the request, by a background task), and ends ``success``, ``failed`` or
``stopped`` (cancelled). The file holds one JSON object per matching record, oldest first,
with the fields asked for under Portkey's names (:data:`EXPORT_FIELDS`).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from portkey_mw.logstore.feedback_exports import connection, log_exports

__all__ = ["EXPORT_FIELDS", "ExportStore", "project", "write_export"]


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def _tokens(record: Mapping[str, Any], key: str) -> int:
    tokens = record.get("tokens") or {}
    return int(tokens.get(key) or 0)


#: Portkey's ``requested_data`` names -> how to read each from a log record.
EXPORT_FIELDS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "id": lambda r: r.get("request_id"),
    "trace_id": lambda r: r.get("trace_id"),
    "created_at": lambda r: _iso(r.get("started_at")),
    "request": lambda r: {
        "url": r.get("path"),
        "method": r.get("method"),
        "body": r.get("request_body"),
    },
    "response": lambda r: {
        "status": r.get("status"),
        "body": r.get("response_body"),
        "response_time": r.get("latency_ms"),
    },
    "is_success": lambda r: r.get("success"),
    "ai_org": lambda r: r.get("provider"),
    "ai_model": lambda r: r.get("model"),
    "req_units": lambda r: _tokens(r, "input"),
    "res_units": lambda r: _tokens(r, "output"),
    "total_units": lambda r: _tokens(r, "total"),
    "request_url": lambda r: r.get("path"),
    "cost": lambda r: r.get("cost_usd"),
    "cost_currency": lambda r: "USD",
    "response_time": lambda r: r.get("latency_ms"),
    "response_status_code": lambda r: r.get("status"),
    "mode": lambda r: "fallback" if r.get("fallback") else "single",
    "config": lambda r: r.get("config_id"),
    "prompt_slug": lambda r: r.get("prompt_id"),
    "metadata": lambda r: r.get("metadata") or {},
}


def project(record: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """The ``fields`` of one record, under Portkey's names (every field when empty)."""
    return {name: EXPORT_FIELDS[name](record) for name in (fields or EXPORT_FIELDS)}


async def write_export(
    records: Any, fields: Sequence[str], path: Path, *, stopped: Callable[[], bool]
) -> int | None:
    """Write ``records`` (an async iterator of log records) to ``path`` as JSON lines.

    Written to a temporary name and renamed, so a reader never sees half a file.

    :returns: how many lines were written, or ``None`` when ``stopped()`` turned true.
    """
    partial = path.with_suffix(".partial")
    count = 0
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        async for record in records:
            if stopped():
                break
            out.write(orjson.dumps(project(record, fields)) + b"\n")
            count += 1
    if stopped():
        partial.unlink(missing_ok=True)
        return None
    partial.replace(path)
    return count


def _now_ms() -> int:
    return int(time.time() * 1000)


def _export(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "workspace_id": row.workspace_id,
        "description": row.description,
        "filters": row.filters or {},
        "requested_data": list(row.requested_data or []),
        "status": row.status,
        "total_records": row.total_records,
        "created_ms": row.created_ms,
        "updated_ms": row.updated_ms,
        "created_by": row.created_by,
        "file_path": row.file_path,
        "error": row.error,
    }


class ExportStore:
    """The ``log_exports`` table.

    :param engine: the log store's engine.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def create(
        self,
        *,
        workspace_id: str | None,
        description: str | None,
        filters: Mapping[str, Any],
        requested_data: Sequence[str],
        created_by: str | None,
    ) -> dict[str, Any]:
        """A new ``draft`` export."""
        now = _now_ms()
        row = {
            "id": "exp-" + uuid.uuid4().hex,
            "workspace_id": workspace_id,
            "description": description,
            "filters": dict(filters),
            "requested_data": list(requested_data),
            "status": "draft",
            "total_records": 0,
            "created_ms": now,
            "updated_ms": now,
            "created_by": created_by,
            "file_path": None,
            "error": None,
        }
        async with connection(self.engine, begin=True) as conn:
            await conn.execute(log_exports.insert(), [row])
        return row

    async def get(self, export_id: str) -> dict[str, Any] | None:
        """One export, or ``None``."""
        async with connection(self.engine) as conn:
            row = (
                await conn.execute(select(log_exports).where(log_exports.c.id == export_id))
            ).first()
        return None if row is None else _export(row)

    async def list(
        self, workspace_id: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Exports, newest first; only ``workspace_id``'s when given."""
        query = select(log_exports).order_by(log_exports.c.created_ms.desc()).limit(limit)
        if workspace_id is not None:
            query = query.where(log_exports.c.workspace_id == workspace_id)
        async with connection(self.engine) as conn:
            return [_export(r) for r in await conn.execute(query)]

    async def update(self, export_id: str, *, only_from: Sequence[str] = (), **values: Any) -> bool:
        """Change fields of an export; with ``only_from``, only while its status is one of
        those (so a cancel and a finishing task cannot overwrite each other). Whether a row
        changed."""
        query = update(log_exports).where(log_exports.c.id == export_id)
        if only_from:
            query = query.where(log_exports.c.status.in_(list(only_from)))
        async with connection(self.engine, begin=True) as conn:
            result = await conn.execute(query.values(updated_ms=_now_ms(), **values))
        return bool(result.rowcount)
