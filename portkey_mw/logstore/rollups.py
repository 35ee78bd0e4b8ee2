"""The hourly rollups (``request_log_rollups`` and ``request_log_latency``): what the writer
adds for a batch of rows, and what a query over whole hours reads back.

The writer sums a batch in Python first, so one upsert per (dimension, value, hour) and
one per (dimension, value, hour, latency bucket) touches the database, in key order
(two replicas adding to the same rows take their locks in the same order).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, case, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from portkey_mw.logstore.aggregate import SUM_FIELDS, Partial
from portkey_mw.logstore.schema import (
    METADATA_DIMENSION,
    ROLLUP_DIMENSIONS,
    ROLLUP_MS,
    log_latency,
    log_rollups,
)

__all__ = [
    "CACHE_HITS",
    "add_rollups",
    "decode_value",
    "encode_value",
    "read_groups",
    "read_series",
    "rollup_rows",
    "rollup_statements",
]

CACHE_HITS = ("HIT", "SEMANTIC_HIT")
_KEY = ("dimension", "value", "bucket_ms")


def encode_value(value: Any) -> str:
    """How a dimension's value is kept in a rollup key (``""``: no value)."""
    return "" if value is None else "=" + str(value)


def decode_value(dimension: str, stored: str) -> Any:
    """The value :func:`encode_value` kept (``status`` back as its integer)."""
    if not stored:
        return None
    value = stored[1:]
    return int(value) if dimension == "status" else value


def _contribution(row: Mapping[str, Any]) -> dict[str, int | float]:
    """What one ``request_logs`` row adds to each sum (as the raw queries count it)."""
    status, latency = row.get("status"), row.get("latency_ms")
    cache_status = row.get("cache_status")
    return {
        "requests": 1,
        "errors": 1 if status is not None and status >= 400 else 0,
        "cost_usd": row.get("cost_usd") or 0.0,
        "cost_saved_usd": row.get("cost_saved_usd") or 0.0,
        "input_tokens": row.get("input_tokens") or 0,
        "output_tokens": row.get("output_tokens") or 0,
        "total_tokens": row.get("total_tokens") or 0,
        "cache_hits": 1 if cache_status in CACHE_HITS else 0,
        "cache_lookups": 0 if cache_status is None else 1,
        "fallbacks": 1 if row.get("fallback") else 0,  # (an untyped read gives 1)
        "retries": row.get("retry_count") or 0,
        "latency_sum": latency or 0.0,
        "latency_count": 0 if latency is None else 1,
    }


def _keys(
    row: Mapping[str, Any], metadata: Iterable[Mapping[str, Any]]
) -> Iterable[tuple[str, str]]:
    """Each (dimension, stored value) a row is rolled up under."""
    for dimension in ROLLUP_DIMENSIONS:
        yield dimension, encode_value(row.get(dimension)) if dimension else ""
    for entry in metadata:
        yield METADATA_DIMENSION + entry["key"], encode_value(entry["value"])


def rollup_rows(
    rows: Iterable[Mapping[str, Any]], metadata: Iterable[Mapping[str, Any]] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rollup rows and latency rows that ``rows`` (``request_logs`` rows) add, with
    their ``metadata`` (``request_log_metadata`` rows), each key once, in key order."""
    tags: dict[str, list[Mapping[str, Any]]] = {}
    for entry in metadata:
        tags.setdefault(entry["log_id"], []).append(entry)
    sums: dict[tuple[str, str, int], dict[str, Any]] = {}
    counts: dict[tuple[str, str, int, int], int] = {}
    for row in rows:
        created = int(row["created_ms"])
        bucket = created // ROLLUP_MS * ROLLUP_MS
        adds = _contribution(row)
        index = row.get("latency_index")
        for dimension, value in _keys(row, tags.get(row["id"], ())):
            key = (dimension, value, bucket)
            found = sums.get(key)
            if found is None:
                sums[key] = {
                    "dimension": dimension,
                    "value": value,
                    "bucket_ms": bucket,
                    **adds,
                    "first_ms": created,
                    "last_ms": created,
                }
            else:
                for name, amount in adds.items():
                    found[name] += amount
                found["first_ms"] = min(found["first_ms"], created)
                found["last_ms"] = max(found["last_ms"], created)
            if index is not None:
                counts[(*key, index)] = counts.get((*key, index), 0) + 1
    latency = [
        {"dimension": d, "value": v, "bucket_ms": b, "latency_index": i, "count": n}
        for (d, v, b, i), n in sorted(counts.items())
    ]
    return [sums[key] for key in sorted(sums)], latency


def rollup_statements(
    dialect: str, rows: Iterable[Mapping[str, Any]], metadata: Iterable[Mapping[str, Any]] = ()
) -> list[tuple[Any, Any]]:
    """The upserts (statement, parameter list) that add ``rows`` (newly inserted
    ``request_logs`` rows, with their ``metadata`` rows) to the rollups on a ``dialect``
    database."""
    sums, latency = rollup_rows(rows, metadata)
    if not sums:
        return []
    module: Any = postgresql if dialect == "postgresql" else sqlite
    t = log_rollups.c
    upsert = module.insert(log_rollups)
    new = upsert.excluded
    adds: dict[str, Any] = {name: t[name] + new[name] for name in SUM_FIELDS}
    adds["first_ms"] = case((new.first_ms < t.first_ms, new.first_ms), else_=t.first_ms)
    adds["last_ms"] = case((new.last_ms > t.last_ms, new.last_ms), else_=t.last_ms)
    statements = [(upsert.on_conflict_do_update(index_elements=list(_KEY), set_=adds), sums)]
    if latency:
        upsert = module.insert(log_latency)
        more = {"count": log_latency.c["count"] + upsert.excluded["count"]}
        key = [*_KEY, "latency_index"]
        statements.append((upsert.on_conflict_do_update(index_elements=key, set_=more), latency))
    return statements


async def add_rollups(
    connection: AsyncConnection,
    rows: Iterable[Mapping[str, Any]],
    metadata: Iterable[Mapping[str, Any]] = (),
) -> None:
    """Add ``rows`` (newly inserted ``request_logs`` rows, with their ``metadata`` rows) to
    the rollups, inside the caller's transaction."""
    for statement, parameters in rollup_statements(connection.dialect.name, rows, metadata):
        await connection.execute(statement, parameters)


def _hours(table: Any, dimension: str, lo: int | None, hi: int) -> list[ColumnElement[bool]]:
    conditions = [table.c.dimension == dimension, table.c.bucket_ms < hi]
    if lo is not None:
        conditions.append(table.c.bucket_ms >= lo)
    return conditions


def _summed(table: Any) -> list[Any]:
    c = table.c
    return [
        *(func.sum(c[name]).label(name) for name in SUM_FIELDS),
        func.min(c.first_ms).label("first_ms"),
        func.max(c.last_ms).label("last_ms"),
    ]


async def read_groups(
    connection: AsyncConnection, dimension: str, lo: int | None, hi: int
) -> dict[Any, Partial]:
    """Per value of ``dimension`` (``""``: one group, key ``None``), the partial of the
    whole hours in ``[lo, hi)`` (epoch ms, multiples of ROLLUP_MS; ``lo`` None: from the
    first)."""
    r, h = log_rollups.c, log_latency.c
    sums = (
        select(r.value, *_summed(log_rollups))
        .where(*_hours(log_rollups, dimension, lo, hi))
        .group_by(r.value)
    )
    counts = (
        select(h.value, h.latency_index, func.sum(h["count"]).label("n"))
        .where(*_hours(log_latency, dimension, lo, hi))
        .group_by(h.value, h.latency_index)
    )
    found: dict[Any, Partial] = {}
    for row in (await connection.execute(sums)).mappings():
        found[decode_value(dimension, row["value"])] = Partial.from_row(row)
    for value, index, n in (await connection.execute(counts)).all():
        partial = found.get(decode_value(dimension, value))
        if partial is not None:
            partial.latency[int(index)] = partial.latency.get(int(index), 0) + int(n)
    return found


async def read_series(
    connection: AsyncConnection, lo: int | None, hi: int, width: int
) -> dict[int, Partial]:
    """Per series bucket of ``width`` ms (a multiple of ROLLUP_MS), the partial of the
    whole hours in ``[lo, hi)``, without latency histograms (a series has none)."""
    r = log_rollups.c
    bucket = (r.bucket_ms // literal(width, BigInteger)).label("bucket")
    query = (
        select(bucket, *_summed(log_rollups))
        .where(*_hours(log_rollups, "", lo, hi))
        .group_by(bucket)
    )
    return {
        int(row["bucket"]): Partial.from_row(row)
        for row in (await connection.execute(query)).mappings()
    }
