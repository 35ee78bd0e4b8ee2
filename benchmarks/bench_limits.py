"""What a budget and rate-limit check costs per request, in process and on Redis.

Per request the pipeline will make four calls: before the provider, ``admit`` (an API
key's rpm + tokens-per-minute limits) and ``check_budget``; after the answer,
``record_tokens`` and ``charge``. This runs that set, one request after another, on
each backend and prints mean µs per call and per request (median of rounds); then the
same with many requests in flight at once on Redis (what a busy replica sees: round
trips overlap).

Redis: ``--redis-url`` (default: starts ``redis-server`` on a free loopback port, without
persistence, and stops it at the end). Limits are set high enough that nothing is
refused, so every call does its full work.

    python benchmarks/bench_limits.py [--requests 20000] [--rounds 3] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from _harness import redis_server

from portkey_mw.limits import (
    Budget,
    LimitBackend,
    MemoryLimitBackend,
    RedisLimitBackend,
    parse_rate_limits,
)

LIMITS = parse_rate_limits(
    [
        {"type": "requests", "unit": "rpm", "value": 10**9},
        {"type": "tokens", "unit": "rpm", "value": 10**12},
    ]
)
BUDGET = Budget(10**9, "cost", alert_threshold=10**8, periodic_reset="monthly")
STEPS = ("admit", "check_budget", "record_tokens", "charge")


async def one_request(backend: LimitBackend, subject: str) -> None:
    """The four calls of one request."""
    decision = await backend.admit(subject, LIMITS)
    assert decision.allowed
    assert not (await backend.check_budget(subject, BUDGET)).exhausted
    await backend.record_tokens(subject, LIMITS, 120)
    await backend.charge(subject, BUDGET, 0.000125)


async def per_step(backend: LimitBackend, requests: int) -> dict[str, float]:
    """Mean µs of each call, measured separately."""
    timings = {}
    for step in STEPS:
        began = time.perf_counter()
        for i in range(requests):
            subject = f"key-{i % 100}"
            if step == "admit":
                await backend.admit(subject, LIMITS)
            elif step == "check_budget":
                await backend.check_budget(subject, BUDGET)
            elif step == "record_tokens":
                await backend.record_tokens(subject, LIMITS, 120)
            else:
                await backend.charge(subject, BUDGET, 0.000125)
        timings[step] = (time.perf_counter() - began) / requests * 1e6
    return timings


async def sequential(backend: LimitBackend, requests: int) -> float:
    began = time.perf_counter()
    for i in range(requests):
        await one_request(backend, f"key-{i % 100}")
    return (time.perf_counter() - began) / requests * 1e6


async def concurrent(backend: LimitBackend, requests: int, concurrency: int) -> float:
    """Mean µs per request with ``concurrency`` requests in flight (wall time / requests)."""
    gate = asyncio.Semaphore(concurrency)

    async def request(i: int) -> None:
        async with gate:
            await one_request(backend, f"key-{i % 100}")

    began = time.perf_counter()
    await asyncio.gather(*(request(i) for i in range(requests)))
    return (time.perf_counter() - began) / requests * 1e6


async def measure(backend: LimitBackend, args: argparse.Namespace) -> None:
    await sequential(backend, min(args.requests, 2000))  # warm up: connections, scripts
    steps = [await per_step(backend, args.requests) for _ in range(args.rounds)]
    whole = [await sequential(backend, args.requests) for _ in range(args.rounds)]
    parts = "  ".join(f"{s} {statistics.median(r[s] for r in steps):7.1f}" for s in STEPS)
    print(f"{backend.name:>6}: {parts}")
    print(f"{'':>6}  one request (4 calls, one at a time): {statistics.median(whole):7.1f} µs")
    if isinstance(backend, RedisLimitBackend):
        crowd = [
            await concurrent(backend, args.requests, args.concurrency) for _ in range(args.rounds)
        ]
        print(
            f"{'':>6}  with {args.concurrency} requests in flight: "
            f"{statistics.median(crowd):7.1f} µs of wall time per request"
        )
        assert not backend.degraded, "Redis went away during the benchmark"


async def main(args: argparse.Namespace, url: str) -> None:
    print(f"µs per call (mean, median of {args.rounds} rounds of {args.requests})")
    await measure(MemoryLimitBackend(), args)
    redis_backend = RedisLimitBackend(url, timeout=2.0)
    try:
        await measure(redis_backend, args)
    finally:
        await redis_backend.aclose()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(main(args, args.redis_url))
    else:
        with redis_server() as url:
            asyncio.run(main(args, url))


if __name__ == "__main__":
    run()
