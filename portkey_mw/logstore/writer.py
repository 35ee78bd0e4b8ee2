"""From log records (``LogEvent.to_dict()`` shape) to ``request_logs`` and
``request_log_metadata`` rows, and the batched insert of them (which adds the rows it
inserted to the hourly rollups in the same transaction).

The writer is lenient on purpose: a record missing a key gets ``NULL``, a string longer
than its column is cut to fit, a duplicate id is skipped. One bad record must never fail
the batch it came in (the sink would retry that batch forever).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from portkey_mw.logstore.latency import bucket_index
from portkey_mw.logstore.rollups import add_rollups
from portkey_mw.logstore.schema import (
    COLUMN_LENGTHS,
    METADATA_KEY_LENGTH,
    METADATA_VALUE_LENGTH,
    log_metadata,
    request_logs,
)

__all__ = ["body_text", "encode_record", "insert_rows", "log_row", "metadata_rows"]

#: the record's token keys -> the columns they go to
_TOKEN_COLUMNS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_tokens",
    "cache_write": "cache_write_tokens",
    "reasoning": "reasoning_tokens",
    "total": "total_tokens",
}
#: string columns copied from the record key of the same name
_TEXT_KEYS = (
    "trace_id", "span_id", "endpoint", "method", "path", "provider", "model", "served_model",
    "cache_status", "api_key_id", "virtual_key", "config_id", "prompt_id", "prompt_label",
    "error_type", "error_code",
)  # fmt: skip
_FLOAT_KEYS = ("latency_ms", "upstream_ms", "ttfb_ms", "cost_usd", "cost_saved_usd")
#: PostgreSQL's Integer is 32 bits: a larger count is clamped rather than fail the batch
_INT_MAX = 2**31 - 1
#: a start time past this (the year 5138) is no time: the record is stamped with now
_MAX_SECONDS = 1e11


def encode_record(record: Mapping[str, Any]) -> bytes:
    """``record`` as orjson bytes; a value JSON cannot hold becomes its ``str``."""
    return orjson.dumps(record, default=str, option=orjson.OPT_NON_STR_KEYS)


def body_text(record: Mapping[str, Any]) -> str | None:
    """The searchable text of the record's bodies (``None`` when neither was kept)."""
    parts: list[str] = []
    for key in ("request_body", "response_body"):
        body = record.get(key)
        if body is None:
            continue
        if isinstance(body, str):
            parts.append(body)
        elif isinstance(body, bytes):
            parts.append(body.decode("utf-8", "replace"))
        else:
            parts.append(encode_record(body).decode())
    # NUL cannot be stored in PostgreSQL text (a binary upload's body holds some).
    return "\n".join(parts).replace("\x00", "") if parts else None


def log_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``request_logs`` row of one record (every column present)."""
    encoded = encode_record(record)
    row: dict[str, Any] = {
        "id": _text(record.get("request_id"), "id") or uuid.uuid4().hex,
        "created_ms": _created_ms(record.get("started_at")),
        "status": _int(record.get("status")),
        "prompt_version": _int(record.get("prompt_version")),
        "retry_count": _int(record.get("retry_count")) or 0,
        "stream": _bool(record.get("stream")),
        "fallback": _bool(record.get("fallback")),
        "custom": bool(record.get("custom")),
        "metadata": _metadata(record.get("metadata")),
        "body_text": body_text(record),
        "record": encoded.decode(),
        "size_bytes": len(encoded),
    }
    for key in _TEXT_KEYS:
        row[key] = _text(record.get(key), key)
    for key in _FLOAT_KEYS:
        row[key] = _float(record.get(key))
    row["latency_index"] = bucket_index(row["latency_ms"])
    success = record.get("success")
    status = row["status"]
    row["success"] = (
        bool(success) if isinstance(success, bool) else (status is not None and 200 <= status < 400)
    )
    tokens = _tokens(record)
    for key, column in _TOKEN_COLUMNS.items():
        row[column] = tokens.get(key, 0)
    return row


def metadata_rows(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``request_log_metadata`` rows of a ``request_logs`` row (one per key)."""
    rows: dict[str, dict[str, Any]] = {}
    for key, value in (row.get("metadata") or {}).items():
        if value is None:
            continue
        # NUL cannot be stored in PostgreSQL text: a client's ``\u0000`` would fail the batch
        cut = str(key).replace("\x00", "")[:METADATA_KEY_LENGTH]
        rows.setdefault(
            cut,
            {
                "log_id": row["id"],
                "key": cut,
                "value": metadata_value(value).replace("\x00", "")[:METADATA_VALUE_LENGTH],
                "created_ms": row["created_ms"],
            },
        )
    return list(rows.values())


def metadata_value(value: Any) -> str:
    """How a metadata value is kept as text (and so how a filter must spell it):
    strings as they are, booleans ``true``/``false``, everything else JSON."""
    if isinstance(value, str):
        return value
    return encode_record(value).decode() if not isinstance(value, bytes) else value.decode()


async def insert_rows(connection: AsyncConnection, records: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``records`` over ``connection`` (inside the caller's transaction), skipping
    ids already stored (a retried batch, a client's ``logs.create`` of a known id), and
    add the rows it inserted, only those, to the rollups."""
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        row = log_row(record)
        rows.setdefault(row["id"], row)
    if not rows:
        return
    dialect = connection.dialect.name
    inserted = await connection.execute(
        _insert_ignoring(request_logs, dialect).returning(request_logs.c.id),
        list(rows.values()),
    )
    new = [rows[found] for found in inserted.scalars()]
    meta = [m for row in new for m in metadata_rows(row)]
    if meta:
        await connection.execute(_insert_ignoring(log_metadata, dialect), meta)
    await add_rollups(connection, new, meta)


def _insert_ignoring(table: Table, dialect: str) -> Any:
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing()


def _text(value: Any, column: str) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    # NUL cannot be stored in PostgreSQL text; such a value is a client's, keep the rest.
    text = text.replace("\x00", "")
    return text[: COLUMN_LENGTHS.get(column, 64)]


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return max(-_INT_MAX, min(_INT_MAX, int(value)))


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _created_ms(started_at: Any) -> int:
    seconds = _float(started_at)
    if seconds is None or not 0 <= seconds < _MAX_SECONDS:
        # (a custom log's absurd response_time puts its start out of BIGINT's range)
        seconds = time.time()
    return int(seconds * 1000)


def _metadata(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        return {}
    return orjson.loads(encode_record(dict(value)))  # type: ignore[no-any-return]


def _tokens(record: Mapping[str, Any]) -> dict[str, int]:
    """The record's ``tokens``; for a record without them (logs.create, an older event),
    what an OpenAI- or Anthropic-shaped ``usage`` says."""
    tokens = record.get("tokens")
    if isinstance(tokens, Mapping):
        return {key: _int(tokens.get(key)) or 0 for key in _TOKEN_COLUMNS}
    usage = record.get("usage")
    if not isinstance(usage, Mapping):
        return {}
    found = {
        "input": _int(usage.get("prompt_tokens", usage.get("input_tokens"))) or 0,
        "output": _int(usage.get("completion_tokens", usage.get("output_tokens"))) or 0,
    }
    found["total"] = _int(usage.get("total_tokens")) or found["input"] + found["output"]
    return found
