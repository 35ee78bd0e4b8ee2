"""Queries over the SQL log store: search, one record, time series, groups, totals, and
the records themselves for exports. Async SQLAlchemy Core, one statement text for SQLite
and PostgreSQL; every value a caller passes is a bound parameter, and nothing a caller
passes becomes SQL text (a group-by is one of :data:`GROUP_FIELDS` or ``metadata.<key>``,
an order one of :data:`AGGREGATES`; anything else is a :class:`ValueError`).

Percentiles are nearest-rank (the value at rank ``ceil(p * n)`` among the ``n`` latencies of
a group), computed in SQL with ``ROW_NUMBER``/``COUNT`` windows: SQLite 3.25+ and
PostgreSQL both run them, and no row leaves the database to be sorted in Python.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    FromClause,
    and_,
    case,
    cast,
    false,
    func,
    literal,
    null,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from portkey_mw.logstore.db import connection
from portkey_mw.logstore.schema import (
    METADATA_KEY_LENGTH,
    METADATA_VALUE_LENGTH,
    log_metadata,
    request_logs,
)
from portkey_mw.logstore.writer import insert_rows

__all__ = ["AGGREGATES", "GROUP_FIELDS", "SERIES_FIELDS", "LogFilter", "LogQueries"]

#: Columns a group-by may name (besides ``metadata.<key>``).
GROUP_FIELDS = (
    "provider",
    "model",
    "status",
    "api_key_id",
    "virtual_key",
    "config_id",
    "prompt_id",
    "cache_status",
    "endpoint",
)
#: What groups and totals report, in this order (and what a group list may be ordered by).
AGGREGATES = (
    "requests",
    "errors",
    "error_rate",
    "cost_usd",
    "cost_saved_usd",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_hits",
    "cache_lookups",
    "cache_hit_rate",
    "fallbacks",
    "retries",
    "latency_avg_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "first_ms",
    "last_ms",
)
#: What each series bucket reports (besides ``t``).
SERIES_FIELDS = (
    "requests",
    "errors",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_hits",
    "cache_lookups",
    "fallbacks",
    "latency_avg_ms",
)
METADATA_PREFIX = "metadata."
#: Columns of a search result (the record and the bodies' text stay behind).
SUMMARY_COLUMNS = tuple(
    column for column in request_logs.columns if column.name not in ("record", "body_text")
)
CACHE_HITS = ("HIT", "SEMANTIC_HIT")
#: Most buckets one series may have: a bound on the memory a query's zeros take.
MAX_BUCKETS = 100_000
#: Records per round trip when streaming them out (exports).
RECORDS_PAGE = 500
_MAX_MS = 2**62  # beyond any real time; keeps a huge bound inside BIGINT
_PERCENTILES = {"latency_p50_ms": 50, "latency_p90_ms": 90, "latency_p99_ms": 99}


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which records a query covers: every field given must match (values within one
    field are alternatives)."""

    since: float | None = None  # epoch seconds, inclusive
    until: float | None = None  # exclusive
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    statuses: tuple[int, ...] = ()
    success: bool | None = None
    api_key_ids: tuple[str, ...] = ()
    virtual_keys: tuple[str, ...] = ()
    configs: tuple[str, ...] = ()
    prompt_ids: tuple[str, ...] = ()
    cache_statuses: tuple[str, ...] = ()
    trace_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)  # all must match
    text: str | None = None  # substring of body_text (case-insensitive)
    # inclusive ranges (Portkey's cost and token filters); None: unbounded
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None
    min_total_tokens: int | None = None
    max_total_tokens: int | None = None
    min_input_tokens: int | None = None
    max_input_tokens: int | None = None
    min_output_tokens: int | None = None
    max_output_tokens: int | None = None


class LogQueries:
    """The log store's queries, over the engine of the database holding ``request_logs``.

    :param engine: an async engine on the control-plane database (migrated to 0003+).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    @property
    def engine(self) -> AsyncEngine:
        """The engine (the feedback and export tables share its database)."""
        return self._engine

    # -- records -------------------------------------------------------------------------

    async def insert(self, records: Sequence[dict[str, Any]]) -> None:
        """Store ``records`` (``LogEvent.to_dict()`` shape) in one transaction; ids already
        stored are skipped.

        :raises StoreUnavailable: the database cannot be reached (nothing was stored).
        """
        if not records:
            return
        async with connection(self._engine, write=True) as conn:
            await insert_rows(conn, records)

    async def get(self, request_id: str) -> dict[str, Any] | None:
        """The full record of ``request_id``, or ``None``."""
        query = select(request_logs.c.record).where(request_logs.c.id == request_id)
        async with connection(self._engine) as conn:
            found = (await conn.execute(query)).scalar_one_or_none()
        return None if found is None else _load(found)

    async def search(
        self, f: LogFilter, *, page: int = 0, page_size: int = 50
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of the records ``f`` matches, newest first, as summaries (the columns,
        without the bodies or the whole record), and how many match in all."""
        if page < 0 or page_size < 1:
            raise ValueError("page must be >= 0 and page_size >= 1")
        conditions = _conditions(f)
        c = request_logs.c
        rows = (
            select(*SUMMARY_COLUMNS)
            .where(*conditions)
            .order_by(c.created_ms.desc(), c.id.desc())
            .limit(page_size)
            .offset(page * page_size)
        )
        total = select(func.count()).select_from(request_logs).where(*conditions)
        async with connection(self._engine) as conn:
            found = (await conn.execute(rows)).mappings().all()
            count = (await conn.execute(total)).scalar_one()
        # str(): SQLAlchemy's quoted_name keys are a str subclass orjson refuses
        return [{str(k): v for k, v in row.items()} for row in found], int(count)

    async def records(self, f: LogFilter) -> AsyncIterator[dict[str, Any]]:
        """Every full record ``f`` matches, oldest first, read a page at a time (each page
        its own short read, so a slow consumer holds no transaction open)."""
        c = request_logs.c
        conditions = _conditions(f)
        after: tuple[int, str] | None = None
        while True:
            query = select(c.created_ms, c.id, c.record).where(*conditions)
            if after is not None:
                query = query.where(
                    or_(c.created_ms > after[0], and_(c.created_ms == after[0], c.id > after[1]))
                )
            query = query.order_by(c.created_ms, c.id).limit(RECORDS_PAGE)
            async with connection(self._engine) as conn:
                page = (await conn.execute(query)).all()
            for _created_ms, _id, record in page:
                yield _load(record)
            if len(page) < RECORDS_PAGE:
                return
            after = (page[-1][0], page[-1][1])

    # -- aggregates ----------------------------------------------------------------------

    async def totals(self, f: LogFilter) -> dict[str, Any]:
        """The aggregates (:data:`AGGREGATES`) over every record ``f`` matches."""
        conditions = _conditions(f)
        sums = select(*_aggregates(request_logs)).where(*conditions)
        ranks = select(*_percentiles(_ranked(request_logs, None, conditions)))
        async with connection(self._engine) as conn:
            row = dict((await conn.execute(sums)).mappings().one())
            row.update((await conn.execute(ranks)).mappings().one())
        return _finish(row)

    async def groups(
        self,
        f: LogFilter,
        *,
        by: str,
        limit: int = 50,
        offset: int = 0,
        order_by: str = "requests",
        descending: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        """The aggregates per value of ``by`` (a :data:`GROUP_FIELDS` column, or
        ``metadata.<key>``: records without that key are in no group), largest
        ``order_by`` first, and how many groups there are in all."""
        if order_by not in AGGREGATES:
            raise ValueError(f"cannot order groups by {order_by!r}")
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        source, key = _group_key(by)
        conditions = _conditions(f)
        # The sums in a plain GROUP BY; the percentiles over a narrow ranked subquery (key
        # and latency only, so the sort carries little); joined on the key, NULL included.
        sums = (
            select(key.label("group_key"), *_aggregates(request_logs))
            .select_from(source)
            .where(*conditions)
            .group_by(key)
            .subquery("sums")
        )
        ranked = _ranked(source, key, conditions)
        ranks = (
            select(ranked.c.group_key, *_percentiles(ranked))
            .group_by(ranked.c.group_key)
            .subquery("ranks")
        )
        measures = {
            name: (ranks.c[name] if name in _PERCENTILES else sums.c[name]) for name in AGGREGATES
        }
        query = (
            select(sums.c.group_key.label("key"), *measures.values())
            .select_from(
                sums.outerjoin(ranks, sums.c.group_key.is_not_distinct_from(ranks.c.group_key))
            )
            .order_by(
                measures[order_by].desc() if descending else measures[order_by].asc(),
                sums.c.group_key,
            )
            .limit(limit)
            .offset(offset)
        )
        count = select(func.count(func.distinct(key))).select_from(source).where(*conditions)
        # COUNT(DISTINCT) leaves NULL out, but NULL is a group of its own.
        nulls = select(func.count()).select_from(source).where(*conditions, key.is_(None))
        async with connection(self._engine) as conn:
            found = (await conn.execute(query)).mappings().all()
            total = (await conn.execute(count)).scalar_one()
            has_null = (await conn.execute(nulls.limit(1))).scalar_one()
        groups = [{"key": row["key"], **_finish(row)} for row in found]
        return groups, int(total) + (1 if has_null else 0)

    async def series(self, f: LogFilter, *, interval: int) -> list[dict[str, Any]]:
        """Buckets of ``interval`` seconds (aligned on multiples of it since the epoch)
        from ``f.since`` (default: the first matching record) to ``f.until`` (default:
        now), every one present, empty ones as zeros; fields :data:`SERIES_FIELDS` + ``t``
        (the bucket's start, epoch seconds)."""
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError("interval must be a positive number of seconds")
        width = interval * 1000
        c = request_logs.c
        conditions = _conditions(f)
        bucket = (c.created_ms // literal(width, BigInteger)).label("bucket")
        measures = [m for m in _aggregates(request_logs) if m.name in SERIES_FIELDS]
        query = select(bucket, *measures).where(*conditions).group_by(bucket).order_by(bucket)
        async with connection(self._engine) as conn:
            since_ms = _ms(f.since)
            if since_ms is None:
                first = select(func.min(c.created_ms)).where(*conditions)
                since_ms = (await conn.execute(first)).scalar_one()
                if since_ms is None:
                    return []
            rows = (await conn.execute(query)).mappings().all()
        until_ms = _ms(f.until)
        if until_ms is None:
            until_ms = max(int(time.time() * 1000), since_ms + 1)
        first_bucket, end_bucket = since_ms // width, -(-until_ms // width)  # ceil
        if end_bucket - first_bucket > MAX_BUCKETS:
            raise ValueError(f"more than {MAX_BUCKETS} buckets: choose a longer interval")
        found = {int(row["bucket"]): row for row in rows}
        series = []
        for number in range(first_bucket, end_bucket):
            row = found.get(number)
            point: dict[str, Any] = {"t": number * interval}
            point.update(_finish(row, SERIES_FIELDS) if row else _zeros())
            series.append(point)
        return series


def _load(record: str) -> dict[str, Any]:
    loaded = orjson.loads(record)
    return loaded if isinstance(loaded, dict) else {"record": loaded}


def _ms(seconds: float | None) -> int | None:
    """Epoch seconds as whole milliseconds (clamped into BIGINT); ``ValueError`` if not a
    finite number."""
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise ValueError("a time bound must be a number of epoch seconds")
    if not math.isfinite(seconds):
        raise ValueError("a time bound must be finite")
    return max(-_MAX_MS, min(_MAX_MS, math.floor(seconds * 1000)))


def _conditions(f: LogFilter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of ``f`` on ``request_logs`` (all bound parameters)."""
    c = request_logs.c
    found: list[ColumnElement[bool]] = []
    since, until = _ms(f.since), _ms(f.until)
    if since is not None:
        found.append(c.created_ms >= since)
    if until is not None:
        found.append(c.created_ms < until)
    for column, values in (
        (c.provider, f.providers),
        (c.model, f.models),
        (c.api_key_id, f.api_key_ids),
        (c.virtual_key, f.virtual_keys),
        (c.config_id, f.configs),
        (c.prompt_id, f.prompt_ids),
        (c.cache_status, f.cache_statuses),
    ):
        if values:
            found.append(column.in_([str(v) for v in values]))
    if f.statuses:
        found.append(c.status.in_([int(s) for s in f.statuses]))
    if f.success is not None:
        found.append(c.success.is_(true() if f.success else false()))
    if f.trace_id is not None:
        found.append(c.trace_id == f.trace_id)
    m = log_metadata.c
    for key, value in f.metadata.items():
        # The id list comes from the (key, value, created_ms) index, in the time range.
        ids = select(m.log_id).where(
            m.key == str(key)[:METADATA_KEY_LENGTH],
            m.value == str(value)[:METADATA_VALUE_LENGTH],
        )
        if since is not None:
            ids = ids.where(m.created_ms >= since)
        if until is not None:
            ids = ids.where(m.created_ms < until)
        found.append(c.id.in_(ids))
    if f.text:
        found.append(c.body_text.icontains(f.text, autoescape=True))
    for column, low, high in (
        (c.cost_usd, f.min_cost_usd, f.max_cost_usd),
        (c.total_tokens, f.min_total_tokens, f.max_total_tokens),
        (c.input_tokens, f.min_input_tokens, f.max_input_tokens),
        (c.output_tokens, f.min_output_tokens, f.max_output_tokens),
    ):
        if low is not None:
            found.append(column >= low)
        if high is not None:
            found.append(column <= high)
    return found


def _group_key(by: str) -> tuple[FromClause, ColumnElement[Any]]:
    """What to select from and the grouping expression for ``by``."""
    if by in GROUP_FIELDS:
        return request_logs, request_logs.c[by]
    if by.startswith(METADATA_PREFIX) and len(by) > len(METADATA_PREFIX):
        key = by[len(METADATA_PREFIX) :][:METADATA_KEY_LENGTH]
        m = log_metadata.c
        joined = request_logs.join(log_metadata, and_(m.log_id == request_logs.c.id, m.key == key))
        return joined, m.value
    raise ValueError(
        f"cannot group by {by!r}: use one of {', '.join(GROUP_FIELDS)} or metadata.<key>"
    )


def _ranked(
    source: FromClause,
    key: ColumnElement[Any] | None,
    conditions: list[ColumnElement[bool]],
) -> Any:
    """The matching rows' latencies (missing ones left out), each with its rank in its
    group (``rn``) and the number of latencies in the group (``nl``)."""
    c = request_logs.c
    partition = [key] if key is not None else None
    columns = [
        (key if key is not None else null()).label("group_key"),
        c.latency_ms,
        func.row_number().over(partition_by=partition, order_by=c.latency_ms).label("rn"),
        func.count().over(partition_by=partition).label("nl"),
    ]
    return (
        select(*columns)
        .select_from(source)
        .where(*conditions, c.latency_ms.is_not(None))
        .subquery("ranked")
    )


def _percentiles(ranked: Any) -> list[Any]:
    """p50/p90/p99 over :func:`_ranked` rows: nearest rank, ``ceil(p * n / 100)`` in
    integer arithmetic (the same on both databases)."""
    s = ranked.c
    return [
        func.max(case((s.rn == (s.nl * p + 99) // 100, s.latency_ms), else_=None)).label(name)
        for name, p in _PERCENTILES.items()
    ]


def _aggregates(source: Any) -> list[Any]:
    """The aggregate expressions over ``source`` (``request_logs``), labelled with their
    :data:`AGGREGATES` names, percentiles apart (:func:`_percentiles`)."""
    s = source.c
    requests = func.count()
    errors = func.coalesce(func.sum(case((s.status >= 400, 1), else_=0)), 0)
    hits = func.coalesce(func.sum(case((s.cache_status.in_(CACHE_HITS), 1), else_=0)), 0)
    lookups = func.count(s.cache_status)
    found = [
        requests.label("requests"),
        errors.label("errors"),
        (cast(errors, Double) / func.nullif(requests, 0)).label("error_rate"),
        func.coalesce(func.sum(s.cost_usd), 0.0).label("cost_usd"),
        func.coalesce(func.sum(s.cost_saved_usd), 0.0).label("cost_saved_usd"),
        func.coalesce(func.sum(s.input_tokens), 0).label("input_tokens"),
        func.coalesce(func.sum(s.output_tokens), 0).label("output_tokens"),
        func.coalesce(func.sum(s.total_tokens), 0).label("total_tokens"),
        hits.label("cache_hits"),
        lookups.label("cache_lookups"),
        (cast(hits, Double) / func.nullif(lookups, 0)).label("cache_hit_rate"),
        func.coalesce(func.sum(case((s.fallback.is_(true()), 1), else_=0)), 0).label("fallbacks"),
        func.coalesce(func.sum(s.retry_count), 0).label("retries"),
        func.avg(s.latency_ms).label("latency_avg_ms"),
    ]
    found += [
        func.min(s.created_ms).label("first_ms"),
        func.max(s.created_ms).label("last_ms"),
    ]
    return found


_INTS = frozenset(
    {"requests", "errors", "input_tokens", "output_tokens", "total_tokens", "cache_hits",
     "cache_lookups", "fallbacks", "retries", "first_ms", "last_ms"}
)  # fmt: skip


def _finish(row: Mapping[Any, Any], names: Sequence[str] = AGGREGATES) -> dict[str, Any]:
    """A result row as plain numbers (PostgreSQL hands sums back as Decimal)."""
    out: dict[str, Any] = {}
    for name in names:
        value = row[name]
        if value is None:
            out[name] = 0.0 if name == "latency_avg_ms" and names is SERIES_FIELDS else None
        elif name in _INTS:
            out[name] = int(value)
        else:
            out[name] = float(value)
    if names is AGGREGATES and not out["requests"]:
        out.update(error_rate=0.0, cache_hit_rate=None)
    return out


def _zeros() -> dict[str, Any]:
    return {name: (0 if name in _INTS else 0.0) for name in SERIES_FIELDS}
