"""The SQL log store: the writer, every query of LogQueries, retention, the sink, and
requests through a gateway landing as rows. Every test that takes ``queries`` or
``store_url`` runs on a SQLite file and on a fresh PostgreSQL database."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic import command
from portkey_mw_plugins.sql_logs import PRUNE_EVERY_BATCHES, SQLLogSink
from sqlalchemy import func, select, text

from portkey_mw import Gateway, ServerSettings
from portkey_mw.config.server import LoggingOptions
from portkey_mw.logstore import GROUP_FIELDS, LogFilter, LogQueries
from portkey_mw.logstore import query as query_module
from portkey_mw.logstore.latency import RELATIVE_ERROR, bucket_index, percentile
from portkey_mw.logstore.retention import prune
from portkey_mw.logstore.schema import log_latency, log_metadata, log_rollups, request_logs
from portkey_mw.logstore.writer import log_row, metadata_rows
from portkey_mw.plugin import PluginManager
from portkey_mw.store.protocols import StoreUnavailable
from portkey_mw.store.sql.engine import make_engine, resolve_url
from portkey_mw.store.sql.migrate import alembic_config, upgrade
from tests.conftest import in_process
from tests.planted import plant
from tests.postgres import PostgresServer

T0 = 1_699_999_200.0  # a fixed start, on a whole hour: every record is at T0 + seconds
HOUR = 3600.0


def near(latency: float) -> Any:
    """A percentile read from the latency histogram: within its relative error."""
    return pytest.approx(latency, rel=RELATIVE_ERROR)


def rec(n: int, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
    """A record in ``LogEvent.to_dict()`` shape; ``n`` makes its id and default time."""
    record: dict[str, Any] = {
        "request_id": f"req-{n:04d}",
        "trace_id": f"trace-{n % 3}",
        "span_id": f"span-{n}",
        "parent_span_id": None,
        "span_name": None,
        "started_at": T0 + (n if at is None else at),
        "ended_at": T0 + n + 0.1,
        "endpoint": "chat/completions",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "success": True,
        "stream": False,
        "provider": "openai",
        "model": "gpt-4o",
        "served_model": "gpt-4o-2024",
        "target": None,
        "attempts": [],
        "retry_count": 0,
        "fallback": False,
        "cache_status": None,
        "hook_results": None,
        "error_type": None,
        "error_code": None,
        "error_message": None,
        "latency_ms": 10.0,
        "upstream_ms": 8.0,
        "ttfb_ms": None,
        "usage": None,
        "tokens": {
            "input": 3,
            "output": 5,
            "cache_read": 0,
            "cache_write": 0,
            "reasoning": 0,
            "total": 8,
        },
        "cost_usd": 0.25,
        "cost_saved_usd": None,
        "api_key_id": "key-a",
        "virtual_key": "vk-a",
        "config_id": "cfg-a",
        "metadata": {},
        "prompt_id": None,
        "prompt_version": None,
        "custom": False,
    }
    record.update(fields)
    return record


@pytest.fixture
async def queries(store_url: str) -> AsyncIterator[LogQueries]:
    url = resolve_url(store_url, environ={})
    await upgrade(url)
    engine = make_engine(url)
    try:
        yield LogQueries(engine)
    finally:
        await engine.dispose()


async def ids(queries: LogQueries, f: LogFilter, **kwargs: Any) -> list[str]:
    rows, _total = await queries.search(f, page_size=200, **kwargs)
    return [row["id"] for row in rows]


async def count(queries: LogQueries, table: Any) -> int:
    async with queries._engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar())


# -- writing and reading one record ----------------------------------------------------------
async def test_a_record_round_trips_with_its_columns(queries: LogQueries) -> None:
    record = rec(
        1,
        status=502,
        success=False,
        stream=True,
        cache_status="MISS",
        error_type="upstream_error",
        error_code="bad_gateway",
        retry_count=2,
        fallback=True,
        ttfb_ms=4.5,
        prompt_id="pr-1",
        prompt_version=3,
        tokens={
            "input": 1,
            "output": 2,
            "cache_read": 3,
            "cache_write": 4,
            "reasoning": 5,
            "total": 15,
        },
        metadata={"team": "search", "tier": 2, "beta": True},
        request_body={"messages": [{"role": "user", "content": "Find the Needle"}]},
        response_body="data: needle\n\n",
    )
    await queries.insert([record])
    assert await queries.get("req-0001") == record
    assert await queries.get("missing") is None
    (row,), total = await queries.search(LogFilter())
    assert total == 1
    assert "record" not in row and "body_text" not in row
    assert row["id"] == "req-0001"
    assert row["created_ms"] == int((T0 + 1) * 1000)
    assert (row["status"], row["success"], row["stream"]) == (502, False, True)
    assert (row["provider"], row["model"], row["served_model"]) == (
        "openai",
        "gpt-4o",
        "gpt-4o-2024",
    )
    assert (row["error_type"], row["error_code"]) == ("upstream_error", "bad_gateway")
    assert (row["retry_count"], row["fallback"], row["custom"]) == (2, True, False)
    assert (row["latency_ms"], row["upstream_ms"], row["ttfb_ms"]) == (10.0, 8.0, 4.5)
    tokens = [row[f"{k}_tokens"] for k in
              ("input", "output", "cache_read", "cache_write", "reasoning", "total")]  # fmt: skip
    assert tokens == [1, 2, 3, 4, 5, 15]
    assert (row["prompt_id"], row["prompt_version"]) == ("pr-1", 3)
    assert row["metadata"] == {"team": "search", "tier": 2, "beta": True}
    assert row["size_bytes"] > 100
    # metadata values are kept as text: strings as they are, the rest as JSON
    assert await ids(queries, LogFilter(metadata={"tier": "2", "beta": "true"})) == ["req-0001"]
    assert await ids(queries, LogFilter(text="NEEDLE")) == ["req-0001"]


async def test_duplicates_are_skipped_and_oversized_values_cut(queries: LogQueries) -> None:
    long = "x" * 5000
    await queries.insert([rec(1), rec(1, model="other")])
    await queries.insert([rec(1, model="again"), rec(2, model=long, metadata={long: long})])
    rows, total = await queries.search(LogFilter())
    assert total == 2
    assert {r["id"]: r["model"] for r in rows} == {"req-0001": "gpt-4o", "req-0002": "x" * 256}
    assert await count(queries, log_metadata) == 1
    # a record without the newer keys (an older event, logs.create) still stores
    await queries.insert(
        [{"status": 200, "started_at": T0, "usage": {"prompt_tokens": 4, "completion_tokens": 1}}]
    )
    (row,) = [r for r in (await queries.search(LogFilter(), page_size=5))[0]
              if r["id"] not in ("req-0001", "req-0002")]  # fmt: skip
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (4, 1, 5)
    assert len(row["id"]) == 32 and row["success"] is True


# -- search ----------------------------------------------------------------------------------
MIXED = [
    rec(0, provider="anthropic", model="claude", status=200, cache_status="HIT"),
    rec(1, status=429, success=False, api_key_id="key-b", metadata={"team": "a", "env": "p"}),
    rec(2, status=500, success=False, virtual_key="vk-b", metadata={"team": "a"}),
    rec(3, config_id="cfg-b", prompt_id="pr-1", cache_status="MISS", metadata={"team": "b"}),
    rec(4, provider="anthropic", request_body="The 100% _exact_ phrase", metadata={"env": "p"}),
    rec(5, model="claude", response_body={"text": "Another ANSWER"}),
]


@pytest.mark.parametrize(
    ("f", "expected"),
    [
        (LogFilter(), [5, 4, 3, 2, 1, 0]),
        (LogFilter(since=T0 + 2), [5, 4, 3, 2]),
        (LogFilter(until=T0 + 2), [1, 0]),
        (LogFilter(since=T0 + 1, until=T0 + 3), [2, 1]),
        (LogFilter(providers=("anthropic",)), [4, 0]),
        (LogFilter(providers=("anthropic", "openai")), [5, 4, 3, 2, 1, 0]),
        (LogFilter(models=("claude",)), [5, 0]),
        (LogFilter(statuses=(429, 500)), [2, 1]),
        (LogFilter(success=False), [2, 1]),
        (LogFilter(success=True), [5, 4, 3, 0]),
        (LogFilter(api_key_ids=("key-b",)), [1]),
        (LogFilter(virtual_keys=("vk-b",)), [2]),
        (LogFilter(configs=("cfg-b",)), [3]),
        (LogFilter(prompt_ids=("pr-1",)), [3]),
        (LogFilter(cache_statuses=("HIT", "MISS")), [3, 0]),
        (LogFilter(trace_id="trace-1"), [4, 1]),
        (LogFilter(metadata={"team": "a"}), [2, 1]),
        (LogFilter(metadata={"team": "a", "env": "p"}), [1]),
        (LogFilter(metadata={"team": "a"}, since=T0 + 2), [2]),
        (LogFilter(metadata={"team": "c"}), []),
        (LogFilter(text="answer"), [5]),
        (LogFilter(text="100% _exact_"), [4]),
        (LogFilter(text="100%_"), []),  # % and _ are literal, not patterns
        (LogFilter(providers=("openai",), statuses=(500,), metadata={"team": "a"}), [2]),
    ],
)
async def test_search_filters(queries: LogQueries, f: LogFilter, expected: list[int]) -> None:
    await queries.insert(MIXED)
    assert await ids(queries, f) == [f"req-{n:04d}" for n in expected]
    assert (await queries.search(f))[1] == len(expected)


async def test_search_pages_newest_first_with_the_total(queries: LogQueries) -> None:
    # the same millisecond for some: the id orders those
    await queries.insert([rec(n, at=n // 2) for n in range(7)])
    pages = [await queries.search(LogFilter(), page=p, page_size=3) for p in range(4)]
    assert [total for _rows, total in pages] == [7, 7, 7, 7]
    got = [row["id"] for rows, _total in pages for row in rows]
    assert got == [f"req-{n:04d}" for n in (6, 5, 4, 3, 2, 1, 0)]
    assert pages[3][0] == []
    with pytest.raises(ValueError):
        await queries.search(LogFilter(), page=-1)
    with pytest.raises(ValueError):
        await queries.search(LogFilter(), page_size=0)


HOSTILE = ["'; DROP TABLE request_logs; --", '" OR 1=1 --', "%", "_", "\\", "ü\u202e", "a" * 600]


@pytest.mark.parametrize("value", HOSTILE)
async def test_any_string_is_only_a_value(queries: LogQueries, value: str) -> None:
    await queries.insert(MIXED)
    hostile = LogFilter(
        providers=(value,),
        models=(value,),
        trace_id=value,
        metadata={value: value},
        text=value,
        cache_statuses=(value,),
    )
    assert await queries.search(hostile) == ([], 0)
    assert (await queries.totals(hostile))["requests"] == 0
    assert await queries.groups(LogFilter(text=value), by=f"metadata.{value}") == ([], 0)
    assert await queries.get(value) is None
    for bad in (value, f"{value}.x", "metadata.", "id", "record"):
        with pytest.raises(ValueError):
            await queries.groups(LogFilter(), by=bad)
    with pytest.raises(ValueError):
        await queries.groups(LogFilter(), by="model", order_by=value)
    assert (await queries.search(LogFilter()))[1] == len(MIXED)


async def test_bad_numbers_are_value_errors(queries: LogQueries) -> None:
    for bound in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            await queries.search(LogFilter(since=bound))
    for interval in (0, -5):
        with pytest.raises(ValueError):
            await queries.series(LogFilter(since=T0, until=T0 + 10), interval=interval)
    with pytest.raises(ValueError, match="buckets"):
        await queries.series(LogFilter(since=0, until=T0), interval=1)
    # a bound far outside any time is clamped, not an overflow
    assert await queries.search(LogFilter(since=-1e300, until=1e300)) == ([], 0)


async def test_records_streams_every_match_oldest_first(
    queries: LogQueries, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_module, "RECORDS_PAGE", 3)
    await queries.insert([rec(n, at=n // 3) for n in range(10)])
    got = [r["request_id"] async for r in queries.records(LogFilter())]
    assert got == [f"req-{n:04d}" for n in range(10)]
    got = [r["request_id"] async for r in queries.records(LogFilter(since=T0 + 2))]
    assert got == [f"req-{n:04d}" for n in range(6, 10)]


# -- aggregates ------------------------------------------------------------------------------
async def test_series_has_every_bucket(queries: LogQueries) -> None:
    await queries.insert(
        [
            rec(1, at=5, latency_ms=10.0),
            rec(2, at=50, status=500, latency_ms=30.0, cache_status="HIT", fallback=True),
            rec(3, at=59.999, latency_ms=20.0, cache_status="MISS"),
            rec(4, at=200),  # after until
        ]
    )
    series = await queries.series(LogFilter(since=T0, until=T0 + 180), interval=60)
    assert [p["t"] for p in series] == [int(T0), int(T0) + 60, int(T0) + 120]
    first, second, third = series
    assert first["requests"] == 3 and first["errors"] == 1
    assert first["cache_hits"] == 1 and first["cache_lookups"] == 2 and first["fallbacks"] == 1
    assert first["latency_avg_ms"] == pytest.approx(20.0)
    assert first["cost_usd"] == pytest.approx(0.75)
    assert (first["input_tokens"], first["output_tokens"], first["total_tokens"]) == (9, 15, 24)
    for empty in (second, third):
        assert empty == {"t": empty["t"], "requests": 0, "errors": 0, "cost_usd": 0.0,
                         "input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
                         "cache_hits": 0, "cache_lookups": 0, "fallbacks": 0,
                         "latency_avg_ms": 0.0}  # fmt: skip
    # buckets are aligned on the interval; a filter applies; no since = the first match
    series = await queries.series(LogFilter(since=T0 + 30, until=T0 + 61), interval=60)
    assert [(p["t"], p["requests"]) for p in series] == [(int(T0), 2), (int(T0) + 60, 0)]
    series = await queries.series(LogFilter(statuses=(500,), until=T0 + 120), interval=60)
    assert [(p["t"], p["requests"]) for p in series] == [(int(T0), 1), (int(T0) + 60, 0)]
    assert await queries.series(LogFilter(models=("none",)), interval=60) == []


@pytest.mark.parametrize("by", GROUP_FIELDS)
async def test_groups_by_each_field(queries: LogQueries, by: str) -> None:
    records = [
        rec(n, provider=f"p{n % 2}", model=f"m{n % 2}", status=200 + 300 * (n % 2),
            api_key_id=f"k{n % 2}", virtual_key=f"v{n % 2}", config_id=f"c{n % 2}",
            prompt_id=f"pr{n % 2}", cache_status=f"s{n % 2}", endpoint=f"e{n % 2}",
            prompt_version=1 + n % 2, prompt_label=f"l{n % 2}", latency_ms=float(n))
        for n in range(9)
    ]  # fmt: skip
    await queries.insert(records)
    groups, total = await queries.groups(LogFilter(), by=by)
    assert total == 2
    expected_keys = {0: records[0][by], 1: records[1][by]}
    assert [g["key"] for g in groups] == [expected_keys[0], expected_keys[1]]  # 5 before 4
    evens, odds = groups
    assert (evens["requests"], odds["requests"]) == (5, 4)
    # 0 2 4 6 8 | 1 3 5 7
    assert evens["latency_p50_ms"] == near(4.0) and odds["latency_p50_ms"] == near(3.0)
    assert evens["first_ms"] == int(T0 * 1000) and evens["last_ms"] == int((T0 + 8) * 1000)
    assert (await queries.groups(LogFilter(), by=by, limit=1, offset=1))[0][0]["key"] == (
        expected_keys[1]
    )


async def test_groups_by_metadata_key_and_order(queries: LogQueries) -> None:
    await queries.insert(
        [rec(n, metadata={"team": "a"}, latency_ms=100.0 + n) for n in range(3)]
        + [rec(n, metadata={"team": "b", "x": "1"}, status=500) for n in range(3, 5)]
        + [rec(n, metadata={"other": "z"}) for n in range(5, 7)]
    )
    groups, total = await queries.groups(LogFilter(), by="metadata.team")
    assert total == 2  # records without the key are in no group
    assert [(g["key"], g["requests"], g["errors"]) for g in groups] == [("a", 3, 0), ("b", 2, 2)]
    assert groups[0]["latency_p99_ms"] == near(102.0)
    by_errors, _ = await queries.groups(LogFilter(), by="metadata.team", order_by="error_rate")
    assert [g["key"] for g in by_errors] == ["b", "a"]
    filtered, total = await queries.groups(LogFilter(metadata={"x": "1"}), by="metadata.team")
    assert total == 1 and filtered[0]["key"] == "b"
    # NULL is a group of its own when grouping by a column
    _groups, total = await queries.groups(LogFilter(), by="prompt_id")
    assert total == 1


async def test_totals_with_percentiles(queries: LogQueries) -> None:
    # latencies 1..100 in a shuffled order, and one without a latency
    order = [(n * 37) % 100 + 1 for n in range(100)]
    records = [
        rec(i, latency_ms=float(latency), status=500 if latency <= 10 else 200,
            cache_status="HIT" if latency <= 20 else ("MISS" if latency <= 40 else None),
            fallback=latency % 25 == 0, retry_count=1 if latency % 50 == 0 else 0,
            cost_saved_usd=0.5 if latency <= 20 else None)
        for i, latency in enumerate(order)
    ]  # fmt: skip
    records.append(rec(100, latency_ms=None))
    await queries.insert(records)
    totals = await queries.totals(LogFilter())
    assert totals["requests"] == 101
    assert (totals["errors"], totals["error_rate"]) == (10, pytest.approx(10 / 101))
    assert (totals["latency_p50_ms"], totals["latency_p90_ms"], totals["latency_p99_ms"]) == (
        near(50.0),
        near(90.0),
        near(99.0),
    )
    assert totals["latency_avg_ms"] == pytest.approx(50.5)
    assert (totals["cache_hits"], totals["cache_lookups"]) == (20, 40)
    assert totals["cache_hit_rate"] == pytest.approx(0.5)
    assert (totals["fallbacks"], totals["retries"]) == (4, 2)
    assert totals["cost_usd"] == pytest.approx(101 * 0.25)
    assert totals["cost_saved_usd"] == pytest.approx(10.0)
    assert (totals["input_tokens"], totals["output_tokens"], totals["total_tokens"]) == (
        303,
        505,
        808,
    )
    assert totals["first_ms"] == int(T0 * 1000) and totals["last_ms"] == int((T0 + 100) * 1000)
    # nearest rank on a small set: 3 values -> p50 is the 2nd, p90 and p99 the 3rd
    small = await queries.totals(LogFilter(until=T0 + 3))
    latencies = sorted(order[:3])
    assert (small["latency_p50_ms"], small["latency_p99_ms"]) == (
        near(latencies[1]),
        near(latencies[2]),
    )
    empty = await queries.totals(LogFilter(models=("none",)))
    assert empty["requests"] == 0 and empty["latency_p50_ms"] is None
    assert empty["error_rate"] == 0.0 and empty["first_ms"] is None


# -- the latency histogram and the hourly rollups --------------------------------------------
def test_histogram_percentiles_are_within_their_error_of_the_exact_ones() -> None:
    rng = random.Random(7)
    for size in (1, 2, 3, 10, 99, 1000):
        latencies = [rng.lognormvariate(4, 1.5) for _ in range(size)] + [0.0] * (size // 10)
        counts: dict[int, int] = {}
        for latency in latencies:
            index = bucket_index(latency)
            assert index is not None
            counts[index] = counts.get(index, 0) + 1
        ordered = sorted(latencies)
        for p in (1, 50, 90, 99, 100):
            exact = ordered[math.ceil(p * len(ordered) / 100) - 1]
            got = percentile(counts, p)
            assert got is not None
            if exact >= 0.001:  # below that every latency shares the lowest bucket
                assert got == pytest.approx(exact, rel=RELATIVE_ERROR)
    assert percentile({}, 50) is None
    assert bucket_index(None) is None and bucket_index(float("nan")) is None


def scattered(count: int, seed: int) -> list[dict[str, Any]]:
    """Records spread over five hours with a mix of every rolled-up column."""
    rng = random.Random(seed)
    return [
        rec(n, at=rng.uniform(0, 5 * HOUR), provider=rng.choice(["openai", "groq", None]),
            model=f"m{rng.randrange(4)}", status=rng.choice([200, 200, 429, 500, None]),
            api_key_id=rng.choice(["k1", "k2"]), virtual_key=rng.choice(["v1", None]),
            config_id=rng.choice(["c1", "c2", None]), prompt_id=rng.choice(["p1", None]),
            cache_status=rng.choice(["HIT", "SEMANTIC_HIT", "MISS", None]),
            endpoint=rng.choice(["chat/completions", "embeddings"]),
            latency_ms=rng.choice([None, rng.uniform(1, 900)]), fallback=rng.random() < 0.2,
            retry_count=rng.randrange(3), cost_usd=rng.choice([None, rng.uniform(0, 0.01)]),
            tokens={"input": rng.randrange(50), "output": rng.randrange(50), "total": 7},
            metadata=rng.choice([{}, {"team": "a"}, {"team": "b", "env": "prod"}, {"env": 1}]))
        for n in range(count)
    ]  # fmt: skip


def same(rolled: Any, raw: Any) -> None:
    """Rollup and raw answers agree: counts exactly, float sums to rounding."""
    if isinstance(raw, dict):
        assert rolled.keys() == raw.keys()
        for key in raw:
            same(rolled[key], raw[key])
    elif isinstance(raw, list | tuple):
        assert len(rolled) == len(raw)
        for a, b in zip(rolled, raw, strict=True):
            same(a, b)
    elif isinstance(raw, float):
        assert rolled == pytest.approx(raw, rel=1e-9, abs=1e-12)
    else:
        assert rolled == raw


@pytest.mark.parametrize("seed", [1, 2])
async def test_rollups_answer_as_the_raw_rows_do(queries: LogQueries, seed: int) -> None:
    await queries.insert(scattered(400, seed))
    raw = LogQueries(queries.engine, rollups=False)
    rng = random.Random(seed)
    ranges = [(None, None), (None, T0 + 2 * HOUR), (T0, T0 + 5 * HOUR), (T0 + HOUR, None)]
    ranges += [
        (T0 + rng.uniform(0, 2.5 * HOUR), T0 + rng.uniform(2.5 * HOUR, 5 * HOUR)) for _ in range(3)
    ]
    ranges.append((T0 + 1.2 * HOUR, T0 + 1.7 * HOUR))  # no whole hour inside
    for since, until in ranges:
        f = LogFilter(since=since, until=until)
        same(await queries.totals(f), await raw.totals(f))
        for by in [*GROUP_FIELDS, "metadata.team", "metadata.env", "metadata.none"]:
            for order in ("requests", "latency_p90_ms", "cost_usd"):
                same(
                    await queries.groups(f, by=by, order_by=order, limit=3, offset=1),
                    await raw.groups(f, by=by, order_by=order, limit=3, offset=1),
                )
        bounded = LogFilter(since=since or T0, until=until or T0 + 5 * HOUR)
        for interval in (3600, 7200, 1800):
            same(
                await queries.series(bounded, interval=interval),
                await raw.series(bounded, interval=interval),
            )
    totals = await queries.totals(LogFilter())
    assert totals["requests"] == 400 and totals["latency_p50_ms"] is not None


async def test_a_duplicate_is_not_counted_twice(queries: LogQueries) -> None:
    await queries.insert([rec(1), rec(2)])
    await queries.insert([rec(2), rec(3), rec(3)])  # a retried batch, a repeat in a batch
    assert (await queries.totals(LogFilter()))["requests"] == 3
    async with queries.engine.connect() as connection:
        total = select(log_rollups.c.requests).where(log_rollups.c.dimension == "")
        assert (await connection.execute(total)).scalars().all() == [3]


async def test_migrating_fills_the_rollups_from_existing_records(store_url: str) -> None:
    url = resolve_url(store_url, environ={})
    await upgrade(url)
    await asyncio.to_thread(command.downgrade, alembic_config(url), "0004")
    records = scattered(300, 5)
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:  # rows as 0004 wrote them
            for record in records:
                row = log_row(record)
                del row["latency_index"]
                del row["prompt_label"]  # (migration 0007's)
                columns = ", ".join(row)
                values = ", ".join(f":{name}" for name in row)
                tags = metadata_rows(row)
                row["metadata"] = None
                await connection.execute(
                    text(f"INSERT INTO request_logs ({columns}) VALUES ({values})"), row
                )
                if tags:
                    await connection.execute(log_metadata.insert(), tags)
        await upgrade(url)
        rolled, raw = LogQueries(engine), LogQueries(engine, rollups=False)
        same(await rolled.totals(LogFilter()), await raw.totals(LogFilter()))
        same(
            await rolled.groups(LogFilter(), by="model"), await raw.groups(LogFilter(), by="model")
        )
        assert (await rolled.totals(LogFilter()))["requests"] == 300
        assert (await rolled.groups(LogFilter(), by="metadata.team"))[1] == 2
        assert (await rolled.totals(LogFilter()))["latency_p99_ms"] is not None
    finally:
        await engine.dispose()


# -- retention -------------------------------------------------------------------------------
async def test_retention_by_age_and_by_count(queries: LogQueries) -> None:
    engine = queries._engine
    day = 86400.0
    await queries.insert(
        [rec(n, at=-day * (10 - n), metadata={"k": str(n)}) for n in range(10)]  # 10..1 days old
    )
    now = T0
    assert await prune(engine, retention_days=0, max_records=0, now=now) == 0
    deleted = await prune(engine, retention_days=4.5, max_records=0, now=now, chunk=2)
    assert deleted == 6
    assert await ids(queries, LogFilter()) == [f"req-{n:04d}" for n in (9, 8, 7, 6)]
    assert await count(queries, log_metadata) == 4
    deleted = await prune(engine, retention_days=0, max_records=3, now=now, chunk=2)
    assert deleted == 1
    assert await ids(queries, LogFilter()) == [f"req-{n:04d}" for n in (9, 8, 7)]
    await queries.insert([rec(n, at=n) for n in range(20, 27)])
    assert await prune(engine, retention_days=30, max_records=2, now=T0 + 100, chunk=3) == 8
    assert await ids(queries, LogFilter()) == ["req-0026", "req-0025"]
    assert await count(queries, log_metadata) == 0


async def test_retention_drops_the_rollups_of_hours_past_it(queries: LogQueries) -> None:
    engine = queries._engine
    await queries.insert([rec(n, at=-HOUR * n) for n in range(6)])  # one record an hour back
    # max_records bounds the records only: the hours' aggregates stay
    await prune(engine, retention_days=0, max_records=2, now=T0 + 1)
    assert (await queries.totals(LogFilter()))["requests"] == 6
    # retention by age drops the hours that ended by the cutoff (2.5 hours back): the hour
    # from -3 to -2 ends after it and stays
    await prune(engine, retention_days=3.5 / 24, max_records=0, now=T0 + HOUR)
    assert (await queries.totals(LogFilter()))["requests"] == 4
    hours = select(func.count(func.distinct(log_rollups.c.bucket_ms)))
    async with engine.connect() as connection:
        assert (await connection.execute(hours)).scalar_one() == 4
        left = select(func.min(log_latency.c.bucket_ms))
        assert (await connection.execute(left)).scalar_one() == int((T0 - 3 * HOUR) * 1000)


# -- the sink --------------------------------------------------------------------------------
class _Event:
    """Stands in for a LogEvent: the sink reads only ``to_dict()``."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def to_dict(self) -> dict[str, Any]:
        return self.record


async def test_sink_writes_migrates_and_prunes_on_schedule(store_url: str) -> None:
    now = [0.0]
    url = resolve_url(store_url, environ={})
    sink = SQLLogSink(url, LoggingOptions(retention_days=0, max_records=5), clock=lambda: now[0])
    try:
        # the first write migrates an empty database, and prunes
        await sink.write([_Event(rec(n, at=n)) for n in range(8)])  # type: ignore[misc]
        assert (await sink.log_queries.search(LogFilter()))[1] == 5
        await sink.write([_Event(rec(n, at=n)) for n in range(10, 13)])  # type: ignore[misc]
        assert (await sink.log_queries.search(LogFilter()))[1] == 8  # not due yet
        now[0] = 61.0
        await sink.write([_Event(rec(20, at=20))])  # type: ignore[misc]
        assert (await sink.log_queries.search(LogFilter()))[1] == 5  # 60 s passed
        for n in range(PRUNE_EVERY_BATCHES):
            await sink.write([_Event(rec(100 + n, at=100 + n))])  # type: ignore[misc]
        assert (await sink.log_queries.search(LogFilter()))[1] == 5  # N batches passed
    finally:
        await sink.aclose()


async def test_sink_raises_when_the_database_fails() -> None:
    password = plant("planted-logstore-password")
    port = PostgresServer.closed_port()
    url = resolve_url(f"postgresql://u:{password}@127.0.0.1:{port}/logs", environ={})
    sink = SQLLogSink(url, LoggingOptions())
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await sink.write([_Event(rec(1))])  # type: ignore[list-item]
    finally:
        await sink.aclose()
    # The dispatcher logs the traceback with its frames' locals: none may hold the URL.
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    frames = [entry.frame for entry in raised.traceback[1:]]  # after this test's own
    assert password not in str(raised.value)
    assert all(password not in repr(v) for f in frames for v in f.f_locals.values())


def test_no_sink_without_the_log_store_or_the_store() -> None:
    assert Gateway(ServerSettings(logging={"store": "off"})).log_queries is None
    assert Gateway(ServerSettings(store={"enabled": False})).log_queries is None
    gateway = Gateway(ServerSettings())
    assert isinstance(gateway.log_queries, LogQueries)
    assert "sql-logs" in [sink.name for sink in gateway.log_sinks]


# -- end to end ------------------------------------------------------------------------------
async def next_millisecond() -> None:
    """Return once the wall clock's millisecond has moved on (a record's ``created_ms``)."""
    now = time.time()
    # The rest of this millisecond, plus a hair for the clock's rounding.
    await asyncio.sleep((int(now * 1000) + 1) / 1000 - now + 0.0001)
    assert int(time.time() * 1000) > int(now * 1000)


async def test_requests_through_a_gateway_land_as_rows(store_url: str) -> None:
    settings = ServerSettings.from_mapping({"mock": True, "store": {"url": store_url}})
    manager = PluginManager()
    manager.load_entry_points()
    gateway = Gateway(settings, plugins=manager)
    headers = {"x-portkey-provider": "mock", "x-portkey-metadata": '{"team": "e2e"}'}
    chat = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    started = time.time()
    async with in_process(gateway) as client:
        for _ in range(3):
            assert (
                await client.post("/v1/chat/completions", json=chat, headers=headers)
            ).status_code == 200
        # Rows come newest first by start time in milliseconds, ties in request-id order (a
        # random one): each request below starts in a millisecond of its own.
        await next_millisecond()
        stream = await client.post(
            "/v1/chat/completions", json={**chat, "stream": True}, headers=headers
        )
        assert stream.status_code == 200
        await next_millisecond()
        bad = await client.post("/v1/chat/completions", content=b"{", headers=headers)
        assert bad.status_code == 400
        await gateway.settled()
        await gateway.logs.flush()
        queries = gateway.log_queries
        assert queries is not None
        rows, total = await queries.search(LogFilter())
        tagged = await queries.search(LogFilter(metadata={"team": "e2e"}))
        full = await queries.get(rows[0]["id"])  # (the engine closes with the gateway)
    assert total == 5
    assert [r["status"] for r in rows] == [400, 200, 200, 200, 200]
    assert [r["stream"] for r in rows][1] is True
    for row in rows:
        assert row["created_ms"] >= int(started * 1000) - 1
        # the endpoint as the record names it (the record's own spelling is not this test's)
        assert row["endpoint"] in ("chat/completions", "chat_completions")
        assert row["path"] == "/v1/chat/completions"
        assert row["method"] == "POST"
        assert row["latency_ms"] is not None and row["trace_id"]
    ok = rows[1:]
    assert tagged[1] == 4 and all(r["metadata"] == {"team": "e2e"} for r in ok)
    assert {r["provider"] for r in ok} == {"mock"} and {r["model"] for r in ok} == {"mock-gpt"}
    assert all(r["success"] for r in ok) and rows[0]["success"] is False
    assert all(r["total_tokens"] > 0 for r in ok[1:])  # the complete responses report usage
    # the full record is kept, and the rows are in the store's own database
    assert full is not None and full["status"] == 400
    engine = make_engine(resolve_url(store_url, environ={}))
    try:
        async with engine.connect() as connection:
            stored = (await connection.execute(text("SELECT count(*) FROM request_logs"))).scalar()
    finally:
        await engine.dispose()
    assert stored == 5
    assert request_logs.name == "request_logs"
