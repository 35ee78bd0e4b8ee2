"""Queries over the SQL log store: search, one record, time series, groups, totals, and
the records themselves for exports. Async SQLAlchemy Core, one statement text for SQLite
and PostgreSQL; every value a caller passes is a bound parameter, and nothing a caller
passes becomes SQL text (a group-by is one of :data:`GROUP_FIELDS` or ``metadata.<key>``,
an order one of :data:`AGGREGATES`; anything else is a :class:`ValueError`).

Aggregates (totals, groups, series) over a time range only, grouped by a column, read the
whole hours inside the range from the hourly rollups and only the part-hours at its ends
from the raw rows, so a day of traffic costs a few hundred rollup rows however many
requests it held; any other filter reads the raw rows. Both give the same
:class:`~portkey_mw.logstore.aggregate.Partial` sums, and percentiles come from the same
latency histogram either way (:mod:`portkey_mw.logstore.latency`: nearest rank, within
2%).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from portkey_mw.logstore.aggregate import AGGREGATES, SERIES_FIELDS, Partial, merge_into
from portkey_mw.logstore.db import connection
from portkey_mw.logstore.feedback import owned_by
from portkey_mw.logstore.feedback_exports import feedback
from portkey_mw.logstore.rollups import CACHE_HITS, read_groups, read_series
from portkey_mw.logstore.schema import (
    GROUP_COLUMNS,
    METADATA_DIMENSION,
    METADATA_KEY_LENGTH,
    METADATA_VALUE_LENGTH,
    ROLLUP_DIMENSIONS,
    ROLLUP_MS,
    UNROLLED_GROUP_COLUMNS,
    log_metadata,
    request_logs,
)
from portkey_mw.logstore.writer import insert_rows

__all__ = ["AGGREGATES", "GROUP_FIELDS", "SERIES_FIELDS", "LogFilter", "LogQueries"]

#: Columns a group-by may name (besides ``metadata.<key>``).
GROUP_FIELDS = (*GROUP_COLUMNS, *UNROLLED_GROUP_COLUMNS)
METADATA_PREFIX = METADATA_DIMENSION  # a group-by or filter naming a metadata key
#: Columns of a search result (the record, the bodies' text and the histogram bucket
#: stay behind).
SUMMARY_COLUMNS = tuple(
    column
    for column in request_logs.columns
    if column.name not in ("record", "body_text", "latency_index")
)
#: Most buckets one series may have: a bound on the memory a query's zeros take.
MAX_BUCKETS = 100_000
#: Records per round trip when streaming them out (exports).
RECORDS_PAGE = 500
_MAX_MS = 2**62  # beyond any real time; keeps a huge bound inside BIGINT


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
    prompt_labels: tuple[str, ...] = ()
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

    :param engine: an async engine on the control-plane database (migrated to 0005+).
    :param rollups: read aggregates from the hourly rollups where they serve (``False``:
        always from the raw rows; the tests compare the two).
    """

    def __init__(self, engine: AsyncEngine, *, rollups: bool = True) -> None:
        self._engine = engine
        self._rollups = rollups

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
        async with connection(self._engine) as conn:
            found = await self._partials(conn, f, None)
        return found.get(None, Partial()).result()

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
        ``order_by`` first (ties by key), and how many groups there are in all."""
        if order_by not in AGGREGATES:
            raise ValueError(f"cannot order groups by {order_by!r}")
        if limit < 1 or offset < 0:
            raise ValueError("limit must be >= 1 and offset >= 0")
        _group_key(by)  # an unknown field is a ValueError before any query
        async with connection(self._engine) as conn:
            found = await self._partials(conn, f, by)
        groups = [{"key": key, **partial.result()} for key, partial in found.items()]
        # by key first, then (stable) by the measure; None sorts below every number
        groups.sort(key=lambda g: (g["key"] is not None, g["key"] if g["key"] is not None else ""))
        groups.sort(key=lambda g: (g[order_by] is not None, g[order_by] or 0), reverse=descending)
        return groups[offset : offset + limit], len(groups)

    async def feedback_groups(
        self, f: LogFilter, *, by: str, api_key_ids: Sequence[str] | None = None
    ) -> dict[Any, dict[str, Any]]:
        """The feedback on the traces of the records ``f`` matches, per value of ``by`` (a
        :data:`GROUP_FIELDS` column) among those records: ``{key: {feedback_count,
        feedback_avg, feedback_weighted_avg}}``. Feedback on a trace counts once for each
        value its records carry (a trace that ran two versions of a prompt scores both);
        with ``api_key_ids``, only feedback :func:`owned_by` those keys counts."""
        if by not in GROUP_FIELDS:
            raise ValueError(f"cannot group feedback by {by!r}")
        c, fb = request_logs.c, feedback.c
        traces = (
            select(c.trace_id, c[by].label("group_key"))
            .where(*_conditions(f), c.trace_id.is_not(None))
            .distinct()
            .subquery()
        )
        owned = owned_by(api_key_ids) if api_key_ids is not None else []
        query = (
            select(
                traces.c.group_key,
                func.count().label("n"),
                func.sum(fb.value).label("total"),
                func.sum(fb.value * fb.weight).label("weighted"),
                func.sum(fb.weight).label("weights"),
            )
            .select_from(feedback.join(traces, fb.trace_id == traces.c.trace_id))
            .where(*owned)
            .group_by(traces.c.group_key)
        )
        async with connection(self._engine) as conn:
            rows = (await conn.execute(query)).mappings().all()
        found: dict[Any, dict[str, Any]] = {}
        for row in rows:
            n, weights = int(row["n"]), float(row["weights"] or 0.0)
            found[row["group_key"]] = {
                "feedback_count": n,
                "feedback_avg": round(float(row["total"] or 0) / n, 4) if n else None,
                "feedback_weighted_avg": round(float(row["weighted"] or 0.0) / weights, 4)
                if weights
                else None,
            }
        return found

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
        async with connection(self._engine) as conn:
            since_ms = _ms(f.since)
            if since_ms is None:
                first = select(func.min(c.created_ms)).where(*conditions)
                since_ms = (await conn.execute(first)).scalar_one()
                if since_ms is None:
                    return []
            until_ms = _ms(f.until)
            if until_ms is None:
                until_ms = max(int(time.time() * 1000), since_ms + 1)
            first_bucket, end_bucket = since_ms // width, -(-until_ms // width)  # ceil
            if end_bucket - first_bucket > MAX_BUCKETS:
                raise ValueError(f"more than {MAX_BUCKETS} buckets: choose a longer interval")
            plan = self._plan(f, "") if width % ROLLUP_MS == 0 else None
            if plan is None:
                found = await _raw_series(conn, conditions, width)
            else:
                found = await read_series(conn, plan.lo, plan.hi, width)
                for lo, hi in plan.edges:
                    merge_into(
                        found, await _raw_series(conn, _between(c.created_ms, lo, hi), width)
                    )
        series = []
        for number in range(first_bucket, end_bucket):
            point: dict[str, Any] = {"t": number * interval}
            point.update((found.get(number) or Partial()).result(SERIES_FIELDS))
            series.append(point)
        return series

    async def _partials(
        self, conn: AsyncConnection, f: LogFilter, by: str | None
    ) -> dict[Any, Partial]:
        """The partial per group of ``by`` (``None``: one, key ``None``) of the records
        ``f`` matches: from the rollups over the whole hours and the raw rows at the edges
        when it can (:meth:`_plan`), else from the raw rows."""
        source, key = (request_logs, None) if by is None else _group_key(by)
        dimension = "" if by is None else _dimension(by)
        tagged = dimension.startswith(METADATA_DIMENSION)

        def in_time(lo: int | None, hi: int | None) -> list[ColumnElement[bool]]:
            # A metadata join gets the range on its own created_ms too: the planner then
            # reads the key's index entries in range instead of every record with the key.
            found = _between(request_logs.c.created_ms, lo, hi)
            return found + (_between(log_metadata.c.created_ms, lo, hi) if tagged else [])

        plan = self._plan(f, dimension)
        if plan is None:
            conditions = _conditions(f) + (in_time(_ms(f.since), _ms(f.until)) if tagged else [])
            return await _raw_partials(conn, source, key, conditions)
        found = await read_groups(conn, dimension, plan.lo, plan.hi)
        for lo, hi in plan.edges:
            merge_into(found, await _raw_partials(conn, source, key, in_time(lo, hi)))
        if by is None and None not in found:
            found[None] = Partial()
        return found

    def _plan(self, f: LogFilter, dimension: str) -> _RollupPlan | None:
        """How to read ``f`` from the rollups: when it filters on time only and groups by
        a rolled-up dimension, the whole hours inside its range come from the rollups
        and the part-hours at either end from the raw rows; ``None`` when it cannot."""
        if not self._rollups:
            return None
        if dimension not in ROLLUP_DIMENSIONS and not dimension.startswith(METADATA_DIMENSION):
            return None
        if replace(f, since=None, until=None) != _TIME_ONLY:
            return None
        since, until = _ms(f.since), _ms(f.until)
        end = until if until is not None else int(time.time() * 1000)
        hi = end // ROLLUP_MS * ROLLUP_MS
        lo = None if since is None else -(-since // ROLLUP_MS) * ROLLUP_MS
        if lo is not None and lo >= hi:
            return None  # no whole hour inside: the raw rows are few
        edges: list[tuple[int | None, int | None]] = []
        if since is not None and lo is not None and since < lo:
            edges.append((since, lo))
        if until is None or until > hi:
            edges.append((hi, until))
        return _RollupPlan(lo, hi, edges)


@dataclass(frozen=True, slots=True)
class _RollupPlan:
    """The whole hours ``[lo, hi)`` (epoch ms) read from the rollups, and the part-hours
    at the ends (``[start, end)``, ``None``: unbounded) read from the raw rows."""

    lo: int | None
    hi: int
    edges: list[tuple[int | None, int | None]]


def _between(column: Any, lo: int | None, hi: int | None) -> list[ColumnElement[bool]]:
    """``lo <= column < hi`` (epoch ms; ``None``: no such bound)."""
    return [
        *([] if lo is None else [column >= lo]),
        *([] if hi is None else [column < hi]),
    ]


_TIME_ONLY = LogFilter()


async def _raw_partials(
    conn: AsyncConnection,
    source: FromClause,
    key: ColumnElement[Any] | None,
    conditions: list[ColumnElement[bool]],
) -> dict[Any, Partial]:
    """The partial per value of ``key`` (``None``: one, key ``None``) of the raw rows of
    ``source`` meeting ``conditions``: the sums in one GROUP BY, the histogram in another."""
    c = request_logs.c
    k = (key if key is not None else literal(0)).label("group_key")
    sums = select(k, *_sums(request_logs)).select_from(source).where(*conditions)
    counts = (
        select(k, c.latency_index, func.count().label("n"))
        .select_from(source)
        .where(*conditions, c.latency_index.is_not(None))
    )
    if key is not None:
        sums = sums.group_by(key)
        counts = counts.group_by(key, c.latency_index)
    else:
        counts = counts.group_by(c.latency_index)
    found: dict[Any, Partial] = {}
    for row in (await conn.execute(sums)).mappings():
        group = row["group_key"] if key is not None else None
        found[group] = Partial.from_row(row)
    for group, index, n in (await conn.execute(counts)).all():
        partial = found.get(group if key is not None else None)
        if partial is not None:
            partial.latency[int(index)] = partial.latency.get(int(index), 0) + int(n)
    if key is None and found and not found[None].sums["requests"]:
        found[None] = Partial()  # a sum over no rows is one row of NULLs
    return found


async def _raw_series(
    conn: AsyncConnection, conditions: list[ColumnElement[bool]], width: int
) -> dict[int, Partial]:
    """Per series bucket of ``width`` ms, the partial of the raw rows meeting
    ``conditions`` (without histograms: a series has none)."""
    c = request_logs.c
    bucket = (c.created_ms // literal(width, BigInteger)).label("bucket")
    query = select(bucket, *_sums(request_logs)).where(*conditions).group_by(bucket)
    return {
        int(row["bucket"]): Partial.from_row(row) for row in (await conn.execute(query)).mappings()
    }


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
    since, until = _ms(f.since), _ms(f.until)
    found = _between(c.created_ms, since, until)
    for column, values in (
        (c.provider, f.providers),
        (c.model, f.models),
        (c.api_key_id, f.api_key_ids),
        (c.virtual_key, f.virtual_keys),
        (c.config_id, f.configs),
        (c.prompt_id, f.prompt_ids),
        (c.prompt_label, f.prompt_labels),
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
            *_between(m.created_ms, since, until),
        )
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


def _dimension(by: str) -> str:
    """The rollup dimension of a group-by :func:`_group_key` accepted."""
    if by in GROUP_FIELDS:
        return by
    return METADATA_DIMENSION + by[len(METADATA_PREFIX) :][:METADATA_KEY_LENGTH]


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


def _sums(source: Any) -> list[Any]:
    """The :data:`SUM_FIELDS` of ``source`` (``request_logs``) as SQL aggregates, counted
    as the rollups count them (``rollups._contribution``), and the first and last time."""
    s = source.c
    hits = case((s.cache_status.in_(CACHE_HITS), 1), else_=0)
    return [
        func.count().label("requests"),
        func.sum(case((s.status >= 400, 1), else_=0)).label("errors"),
        func.sum(s.cost_usd).label("cost_usd"),
        func.sum(s.cost_saved_usd).label("cost_saved_usd"),
        func.sum(s.input_tokens).label("input_tokens"),
        func.sum(s.output_tokens).label("output_tokens"),
        func.sum(s.total_tokens).label("total_tokens"),
        func.sum(hits).label("cache_hits"),
        func.count(s.cache_status).label("cache_lookups"),
        func.sum(case((s.fallback.is_(true()), 1), else_=0)).label("fallbacks"),
        func.sum(s.retry_count).label("retries"),
        func.sum(s.latency_ms).label("latency_sum"),
        func.count(s.latency_ms).label("latency_count"),
        func.min(s.created_ms).label("first_ms"),
        func.max(s.created_ms).label("last_ms"),
    ]
