"""What identity and virtual-key resolution add to a request, beside the core's own cost.

One run, one process, one gateway (the SQLite store in a temporary directory, the
in-process ``mock`` provider answering at once), requests driven straight through its ASGI
interface so that the gateway's own work is what is measured:

1. the core: ``x-portkey-provider: mock``, no API key;
2. a gateway API key + ``x-portkey-virtual-key``;
3. a gateway API key + ``model: "@slug/mock-gpt"``;
4. a gateway API key + a saved config (its slug) whose target is a virtual key;
5. an unknown API key (refused, 401), every request with a different one.

Each line: mean µs per request (median of batches), what it adds to the core, and how many
SQL statements the store ran while it was measured (the data plane must run none: the
catalog serves from memory; unknown keys spend at most ``store.miss_reads_per_second``).

    python benchmarks/bench_control_plane.py [--requests 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from _harness import admin, call, store_bench

from portkey_mw import Gateway

BODY = orjson.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})


async def measure(
    gateway: Gateway, make_headers: Any, requests: int, body: bytes, expect: int
) -> float:
    """Mean µs per request: the median over 10 batches."""
    for i in range(200):  # warm: compiled plans, caches
        status, reply = await call(gateway, "POST", "/v1/chat/completions", make_headers(i), body)
        assert status == expect, reply
    batch = max(1, requests // 10)
    means = []
    for b in range(10):
        started = time.perf_counter()
        for i in range(batch):
            await call(gateway, "POST", "/v1/chat/completions", make_headers(b * batch + i), body)
        means.append((time.perf_counter() - started) / batch * 1e6)
    await gateway.settled()
    return statistics.median(means)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench = await store_bench(Path(tmp))
        gateway = bench.gateway
        vk, key = {"slug": bench.virtual_key}, bench.api_key
        config = await admin(
            gateway, "/v1/configs", {"name": "bench", "config": {"virtual_key": vk["slug"]}}
        )
        model_body = orjson.dumps(
            {"model": f"@{vk['slug']}/mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
        )
        cases: list[tuple[str, Any, bytes, int]] = [
            ("core: x-portkey-provider: mock", lambda i: {"x-portkey-provider": "mock"}, BODY, 200),
            (
                "API key + x-portkey-virtual-key",
                lambda i: {"x-portkey-api-key": key, "x-portkey-virtual-key": vk["slug"]},
                BODY,
                200,
            ),
            (
                "API key + model @slug/mock-gpt",
                lambda i: {"x-portkey-api-key": key},
                model_body,
                200,
            ),
            (
                "API key + saved config (virtual key)",
                lambda i: {"x-portkey-api-key": key, "x-portkey-config": config["slug"]},
                BODY,
                200,
            ),
            (
                "unknown API key, a new one each request",
                lambda i: {
                    "x-portkey-api-key": f"pk-mw-unknown-{i:012d}",
                    "x-portkey-provider": "mock",
                },
                BODY,
                401,
            ),
        ]
        print(
            f"{args.requests} requests per case and round, {args.rounds} rounds interleaved, "
            "in process, mock provider, SQLite store"
        )
        catalog = gateway.control.catalog
        assert catalog is not None
        results: dict[str, list[float]] = {title: [] for title, *_ in cases}
        queries: dict[str, int] = dict.fromkeys(results, 0)
        misses: dict[str, int] = dict.fromkeys(results, 0)
        elapsed: dict[str, float] = dict.fromkeys(results, 0.0)
        for _ in range(args.rounds):
            for title, make, body, expect in cases:
                bench.statements = 0
                before = catalog.miss_reads
                started = time.perf_counter()
                results[title].append(await measure(gateway, make, args.requests, body, expect))
                elapsed[title] += time.perf_counter() - started
                queries[title] += bench.statements
                misses[title] += catalog.miss_reads - before
        core = statistics.median(results[cases[0][0]])
        for title, *_ in cases:
            mean = statistics.median(results[title])
            added = "baseline" if title == cases[0][0] else f"{mean - core:+6.1f} µs"
            print(
                f"  {title:<40} {mean:7.1f} µs/request  {added:<11} ({mean / core:.3f}x)  "
                f"store statements {queries[title]} in {elapsed[title]:.1f} s "
                f"({misses[title]} miss reads)"
            )
        # The two steps alone (identify + resolve), without the rest of the request: the
        # same cases, timed over many calls each.
        print("identify + resolve alone (µs per call, median of 5 runs of 20,000):")
        step_cases = [
            ("core: x-portkey-provider: mock", {"x-portkey-provider": "mock"}, None),
            (
                "API key + x-portkey-virtual-key",
                {"x-portkey-api-key": key, "x-portkey-virtual-key": vk["slug"]},
                None,
            ),
            ("API key + model @slug/mock-gpt", {"x-portkey-api-key": key}, vk["slug"]),
            (
                "API key + saved config (virtual key)",
                {"x-portkey-api-key": key, "x-portkey-config": config["slug"]},
                None,
            ),
        ]
        pipeline = gateway.pipeline
        base = None
        for title, head, model_ref in step_cases:
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(20_000):
                    who = await pipeline.identifier.identify(head)
                    await pipeline.resolver.resolve(head, who, model_ref)
                runs.append((time.perf_counter() - started) / 20_000 * 1e6)
            step = statistics.median(runs)
            base = step if base is None else base
            extra = "baseline" if step is base else f"{step - base:+.2f} µs"
            print(f"  {title:<40} {step:6.2f} µs  {extra}")
        await gateway.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
