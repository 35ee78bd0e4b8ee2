"""Upstream calls for a burst of identical cacheable misses, with and without single-flight.

Fires 50 identical chat requests at once at a cold cache (plain, then streamed) through an
in-process gateway, against the test suite's fake upstream answering after a delay, and
prints how many calls reached the upstream with ``cache.coalesce`` on (the default) and
off::

    python benchmarks/bench_singleflight.py [--burst 50] [--delay 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

import httpx
import orjson
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.fake_upstream

from portkey_mw import Gateway, ServerSettings
from tests.fake_upstream import FakeUpstream, Reply

CHAT = "/v1/chat/completions"


async def burst(fake: FakeUpstream, *, coalesce: bool, stream: bool, size: int) -> float:
    """Send ``size`` identical requests at once; the seconds until all were answered."""
    settings = ServerSettings.from_mapping(
        {"cache": {"coalesce": coalesce}, "routing": {"circuit_breaker": {"enabled": False}}}
    )
    gateway = Gateway(settings)
    config = {"provider": "openai", "custom_host": fake.base_url, "cache": {"mode": "simple"}}
    headers = {
        "authorization": "Bearer sk-bench",
        "x-portkey-config": orjson.dumps(config).decode(),
    }
    body = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"burst {coalesce} {stream}"}],
        "stream": stream,
    }
    transport = httpx.ASGITransport(app=gateway)
    async with (
        gateway.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://gw", timeout=60) as client,
    ):
        started = time.perf_counter()
        replies = await asyncio.gather(
            *(client.post(CHAT, json=body, headers=headers) for _ in range(size))
        )
        elapsed = time.perf_counter() - started
    assert all(reply.status_code == 200 for reply in replies)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.5, help="upstream latency, seconds")
    args = parser.parse_args()
    # one log line per request would bury the table
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    print(f"{args.burst} identical requests at once, upstream latency {args.delay} s")
    print(f"{'coalesce':<10}{'stream':<8}{'upstream calls':>16}{'burst seconds':>15}")
    with FakeUpstream() as fake:
        for stream in (False, True):
            for coalesce in (False, True):
                fake.reset()
                fake.script(CHAT, *(Reply(delay=args.delay) for _ in range(args.burst)))
                elapsed = asyncio.run(
                    burst(fake, coalesce=coalesce, stream=stream, size=args.burst)
                )
                calls = len(fake.requests)
                print(f"{coalesce!s:<10}{stream!s:<8}{calls:>16}{elapsed:>15.3f}")


if __name__ == "__main__":
    main()
