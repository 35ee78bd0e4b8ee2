"""Issue 13's figures in one run: what logging every request to the SQL log store costs, a
``/metrics`` scrape after that traffic, and the dashboard's calls over 100k records.

1. **Logging cost.** Two gateways, each with its SQLite store in a temporary directory and
   the in-process ``mock`` provider answering at once, the structlog sink off in both: one
   with ``logging.store: off``, one with ``sql``. Requests go one after another through the
   ASGI interface, then the log is flushed; the time per request counts the flush, so the
   SQL sink's inserts (batched, in the same event loop) are in it. Rounds interleave the
   two; medians.
2. **Scrape.** ``GET /metrics`` (admin key) on the ``sql`` gateway after that traffic.
3. **Dashboard.** 100k synthetic records inserted into that store, then every view's calls
   (``bench_dashboard.CALLS``: the overview's stats, log pages, a metadata filter, the
   costs view), timed over HTTP in process.

    python benchmarks/bench_observability.py [--requests 2000] [--rounds 3] [--records 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
from _harness import ADMIN_KEY, call
from bench_dashboard import CALLS, fill, time_views

from portkey_mw import Gateway, ServerSettings

BODY = orjson.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
HEADERS = {"x-portkey-provider": "mock", "x-portkey-metadata": '{"team": "bench"}'}


@contextlib.asynccontextmanager
async def gateway(store: str) -> AsyncIterator[Gateway]:
    """A started gateway with its own SQLite store and ``logging.store`` set to ``store``."""
    data = Path(tempfile.mkdtemp(prefix=f"bench-obs-{store}-"))
    settings = ServerSettings.from_mapping(
        {
            "mock": True,
            "pricing": {"mock-gpt": {"input": 2.5, "output": 10.0}},
            "store": {"url": f"sqlite+aiosqlite:///{data / 'control.db'}"},
            "logging": {"store": store},
            "plugins": {"block": ["portkey-mw.structlog-sink"]},
        }
    )
    running = Gateway(settings)
    async with running.lifespan():
        yield running


async def per_request(running: Gateway, requests: int) -> float:
    """µs per request over ``requests`` requests, the log flushed at the end."""
    began = time.perf_counter()
    for _ in range(requests):
        status, reply = await call(running, "POST", "/v1/chat/completions", HEADERS, BODY)
        assert status == 200, reply
    await running.settled()
    await running.logs.flush()
    return (time.perf_counter() - began) / requests * 1e6


async def scrape_ms(running: Gateway, scrapes: int = 20) -> tuple[float, int]:
    """Median ms of a ``/metrics`` scrape, and the body's size."""
    times, size = [], 0
    for _ in range(scrapes):
        began = time.perf_counter()
        status, body = await call(
            running, "GET", "/metrics", {"authorization": f"Bearer {ADMIN_KEY}"}
        )
        times.append((time.perf_counter() - began) * 1000)
        assert status == 200, body
        size = len(body)
    return statistics.median(times), size


async def main(requests: int, rounds: int, records: int) -> None:
    os.environ["PORTKEY_MW_ADMIN_KEY"] = ADMIN_KEY
    os.environ["PORTKEY_MW_AUTH"] = "optional"  # the core path: no API key
    async with gateway("off") as off, gateway("sql") as sql:
        assert off.log_queries is None and sql.log_queries is not None
        for running in (off, sql):  # warm up: imports, the first connections
            await per_request(running, 50)
        figures: dict[str, list[float]] = {"off": [], "sql": []}
        for _ in range(rounds):
            figures["off"].append(await per_request(off, requests))
            figures["sql"].append(await per_request(sql, requests))
        base, logged = statistics.median(figures["off"]), statistics.median(figures["sql"])
        print(f"1. logging cost: {requests} requests x {rounds} rounds, µs per request (median)")
        print(f"   SQL log store off  {base:8.1f}")
        print(
            f"   SQL log store on   {logged:8.1f}   +{logged - base:.1f} µs ({logged / base:.2f}x)"
        )
        ms, size = await scrape_ms(sql)
        print(f"2. /metrics scrape after that traffic: {ms:.2f} ms ({size} bytes)")
        print(f"3. dashboard calls over {records} more records (median of 3)")
        print(f"   inserted in {await fill(sql.log_queries, records):.1f} s")
        transport = httpx.ASGITransport(app=sql)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://gw",
            headers={"x-portkey-api-key": ADMIN_KEY},
            timeout=120,
        ) as client:
            for view, view_ms in (await time_views(client)).items():
                print(f"   {view:28} {view_ms:8.0f} ms ({len(CALLS[view])} calls)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    asyncio.run(main(args.requests, args.rounds, args.records))
