"""How long the SQL log store's queries take on a SQLite store of 100k records.

One run fills a fresh SQLite store (a temporary directory, migrated as the gateway does)
with synthetic records spread over 7 days: 4 providers, 12 models, 50 API keys, 20 virtual
keys, metadata (``team`` of 10, ``env`` of 3, ``user`` of 1000), 5% errors, 20% cache
lookups, log-normal latencies, bodies on 10% of the rows. Then each query runs a few times
(after one warm-up) and its median is printed, in milliseconds:

1. totals with p50/p90/p99 over everything;
2. groups by model;
3. the hourly series over the 7 days;
4. search page 0 with a metadata filter (``team``);
5. search with a text query (over the bodies).

    python benchmarks/bench_logstore.py [--records 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from portkey_mw.logstore import LogFilter, LogQueries
from portkey_mw.store.sql.engine import make_engine, resolve_url
from portkey_mw.store.sql.migrate import migrate

DAY = 86_400.0
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")


def synthetic(n: int, now: float, rng: random.Random) -> dict[str, Any]:
    """One record in ``LogEvent.to_dict()`` shape."""
    provider = rng.choice(("openai", "anthropic", "google", "bedrock"))
    status = 200 if rng.random() > 0.05 else rng.choice((400, 429, 500, 502))
    cache = rng.choice(("HIT", "MISS", "MISS", "SEMANTIC_HIT")) if rng.random() < 0.2 else None
    tokens_in, tokens_out = rng.randint(5, 2000), rng.randint(1, 800)
    record: dict[str, Any] = {
        "request_id": f"{n:032x}",
        "trace_id": f"t{n // 4:031x}",
        "started_at": now - rng.random() * 7 * DAY,
        "endpoint": "chat/completions",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": status,
        "success": status < 400,
        "stream": rng.random() < 0.3,
        "provider": provider,
        "model": f"{provider}-model-{rng.randint(1, 3)}",
        "cache_status": cache,
        "latency_ms": rng.lognormvariate(6.0, 0.8),
        "retry_count": 1 if rng.random() < 0.03 else 0,
        "fallback": rng.random() < 0.02,
        "tokens": {"input": tokens_in, "output": tokens_out, "total": tokens_in + tokens_out},
        "cost_usd": (tokens_in * 2.5 + tokens_out * 10) / 1e6,
        "api_key_id": f"key-{rng.randint(1, 50)}",
        "virtual_key": f"vk-{rng.randint(1, 20)}",
        "metadata": {
            "team": f"team-{rng.randint(1, 10)}",
            "env": rng.choice(("prod", "staging", "dev")),
            "user": f"user-{rng.randint(1, 1000)}",
        },
    }
    if rng.random() < 0.1:
        text = " ".join(rng.choices(WORDS, k=60))
        record["request_body"] = {"messages": [{"role": "user", "content": text}]}
        record["response_body"] = {"choices": [{"message": {"content": text[::-1]}}]}
    return record


async def timed(run: Callable[[], Awaitable[Any]], runs: int) -> float:
    """The median milliseconds of ``runs`` calls, after one warm-up."""
    await run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(records: int, runs: int) -> None:
    rng = random.Random(13)
    now = time.time()
    with tempfile.TemporaryDirectory() as directory:
        url = resolve_url(f"sqlite:///{Path(directory) / 'control.db'}", environ={})
        engine = make_engine(url)
        await migrate(engine, url)
        queries = LogQueries(engine)
        start = time.perf_counter()
        for first in range(0, records, 256):  # the sink's batch size
            await queries.insert(
                [synthetic(n, now, rng) for n in range(first, min(first + 256, records))]
            )
        fill = time.perf_counter() - start
        print(f"filled {records} records in {fill:.1f} s ({records / fill:,.0f} records/s)")
        week = LogFilter(since=now - 7 * DAY, until=now)
        cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("totals with p50/p90/p99, all", lambda: queries.totals(LogFilter())),
            ("groups by model", lambda: queries.groups(LogFilter(), by="model")),
            ("series hourly over 7 days", lambda: queries.series(week, interval=3600)),
            (
                "search page 0, metadata team",
                lambda: queries.search(LogFilter(metadata={"team": "team-3"})),
            ),
            ("search, text query", lambda: queries.search(LogFilter(text="foxtrot golf"))),
        ]
        for name, run in cases:
            print(f"{name:<34} {await timed(run, runs):9.1f} ms (median of {runs})")
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.records, arguments.runs))
