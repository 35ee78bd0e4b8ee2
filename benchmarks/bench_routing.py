"""Routing: a 50/30/20 load balance over 10,000 requests, and what a fallback hop costs.

Starts a fast upstream and ``portkey-mw serve`` (one worker), each in its own process on
loopback, then:

1. sends 10,000 requests (concurrency 32) through a loadbalance config with weights
   50/30/20 and prints the share each target answered (from
   ``x-portkey-last-used-option-index``) beside its weight;
2. sends the same sequential load through a single healthy target and through a fallback
   whose first target answers 503, and prints p50/p99 of both and the difference -- the
   added latency of one fallback hop. Circuit breaking is off for this part (with it on,
   the failing target is skipped after a few requests and the hop disappears); a third run
   with the breaker on shows that.

Nothing is asserted: the numbers depend on the machine.

    python benchmarks/bench_routing.py [--requests 10000] [--hop-requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from multiprocessing import Process
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from bench_proxy import REQUEST, free_port, run_upstream, wait_for_port

LAST_USED = "x-portkey-last-used-option-index"


def start_gateway(port: int, settings: dict[str, Any], workdir: Path) -> subprocess.Popen[bytes]:
    path = workdir / f"gateway-{port}.yaml"
    path.write_text(yaml.safe_dump(settings))
    env = {**os.environ, "PORTKEY_MW_BLOCK_PLUGINS": "portkey-mw-example-plugin"}
    return subprocess.Popen(
        [sys.executable, "-m", "portkey_mw", "serve", "--port", str(port), "--config", str(path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def send(
    url: str, config: dict[str, Any], total: int, concurrency: int, body: bytes = REQUEST
) -> tuple[Counter[str], list[float], int]:
    """``total`` requests with ``concurrency`` in flight: answering targets, latencies, errors."""
    headers = {
        "content-type": "application/json",
        "authorization": "Bearer sk-bench",
        "x-portkey-config": orjson.dumps(config).decode(),
    }
    answered: Counter[str] = Counter()
    latencies: list[float] = []
    errors = 0
    remaining = total
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            nonlocal remaining, errors
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - started)
                    if response.status != 200:
                        errors += 1
                    answered[response.headers.get(LAST_USED, "?")] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return answered, latencies, errors


def quantiles_ms(latencies: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--hop-requests", type=int, default=2_000)
    args = parser.parse_args()

    upstream_port = free_port()
    upstream = Process(target=run_upstream, args=(upstream_port,), daemon=True)
    upstream.start()
    host = f"http://127.0.0.1:{upstream_port}"

    def target(name: str, **extra: Any) -> dict[str, Any]:
        return {"provider": "openai", "custom_host": f"{host}/{name}/v1", **extra}

    balanced = {
        "strategy": {"mode": "loadbalance"},
        "targets": [target("a", weight=50), target("b", weight=30), target("c", weight=20)],
    }
    healthy = target("a")
    with_hop = {"strategy": {"mode": "fallback"}, "targets": [target("fail"), target("a")]}

    workdir = Path(tempfile.mkdtemp(prefix="bench-routing-"))
    breaker_off = {"routing": {"circuit_breaker": {"enabled": False}}}
    ports = {"breaker off": free_port(), "breaker on": free_port()}
    gateways = [
        start_gateway(ports["breaker off"], breaker_off, workdir),
        start_gateway(ports["breaker on"], {}, workdir),
    ]
    try:
        wait_for_port(upstream_port)
        for port in ports.values():
            wait_for_port(port)
        url = f"http://127.0.0.1:{ports['breaker off']}/v1/chat/completions"
        on_url = f"http://127.0.0.1:{ports['breaker on']}/v1/chat/completions"

        asyncio.run(send(url, healthy, 200, 8))  # warm up pools and caches
        started = time.perf_counter()
        answered, latencies, errors = asyncio.run(
            send(url, balanced, args.requests, args.concurrency)
        )
        elapsed = time.perf_counter() - started
        print(
            f"loadbalance 50/30/20: {args.requests} requests, concurrency {args.concurrency}, "
            f"{errors} errors; {args.requests / elapsed:.0f} req/s, p50/p99 "
            "{:.2f}/{:.2f} ms".format(*quantiles_ms(latencies))
        )
        for index, weight in enumerate((50, 30, 20)):
            share = 100 * answered[f"config.targets[{index}]"] / args.requests
            print(
                f"  targets[{index}] weight {weight}%: answered {share:5.2f}% "
                f"({share - weight:+.2f} points)"
            )

        n = args.hop_requests
        _, direct, _ = asyncio.run(send(url, healthy, n, 1))
        _, hop, hop_errors = asyncio.run(send(url, with_hop, n, 1))
        asyncio.run(send(on_url, with_hop, 50, 1))  # let the breaker open
        on_answered, skipped, _ = asyncio.run(send(on_url, with_hop, n, 1))
        print(f"fallback hop, {n} sequential requests each:")
        rows = (
            ("direct success", direct),
            ("503, then fallback", hop),
            ("same, breaker open", skipped),
        )
        base_p50, base_p99 = quantiles_ms(direct)
        for name, series in rows:
            p50, p99 = quantiles_ms(series)
            print(
                f"  {name:20} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  "
                f"({p50 - base_p50:+.2f} / {p99 - base_p99:+.2f} ms)"
            )
        print(
            f"  fallback errors: {hop_errors}; with the breaker on, "
            f"{on_answered['config.targets[1]']} of {n} went straight to the backup"
        )
    finally:
        for gateway in gateways:
            gateway.terminate()
            gateway.wait(20)
        upstream.terminate()


if __name__ == "__main__":
    main()
