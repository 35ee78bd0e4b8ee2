"""Translation overhead: streamed chat completions through the anthropic adapter.

One run, three measurements of the same streamed answer (8 content chunks):

1. in process, no network: the cost of translating one Anthropic stream into OpenAI chunks
   (``StreamTranslator``) beside merely checking an OpenAI stream (``StreamGuard``, which
   every stream goes through anyway) -- per request and per chunk;
2. end to end, sequential requests (no queueing): ``portkey-mw serve`` in front of a fast
   upstream, once as plain OpenAI pass-through (``openai``) and once translated
   (``anthropic``, upstream speaking Anthropic's event format) -- p50 latency of each and
   the difference, per request and per content chunk;
3. the same two at concurrency 32: requests per second.

Nothing is asserted: the numbers depend on the machine.

    python benchmarks/bench_translation.py [--requests 2000] [--duration 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from multiprocessing import Process, Queue
from typing import Any

import orjson
from bench_proxy import (
    ANTHROPIC_STREAM,
    REQUEST,
    STREAM_BODY,
    free_port,
    run_load,
    run_upstream,
    wait_for_port,
)
from bench_routing import quantiles_ms, send
from portkey_mw_plugins.anthropic.stream import StreamTranslator

from portkey_mw.streaming import StreamGuard

CHUNKS = 8


def in_process(repeats: int) -> tuple[float, float]:
    """Microseconds per stream: guard only (OpenAI), and translation plus guard (Anthropic)."""

    async def one(body: bytes) -> AsyncIterator[bytes]:
        yield body

    async def guard_only() -> None:
        async for _ in StreamGuard(one(STREAM_BODY), provider="p", idle_timeout=60):
            pass

    async def translated() -> None:
        translator = StreamTranslator(
            provider="anthropic", model="bench", include_usage=True, json_mode=False
        )
        async for _ in StreamGuard(
            translator.translate(one(ANTHROPIC_STREAM)), provider="p", idle_timeout=60
        ):
            pass

    async def timed(work: Any) -> float:
        started = time.perf_counter()
        for _ in range(repeats):
            await work()
        return (time.perf_counter() - started) / repeats * 1e6

    async def both() -> tuple[float, float]:
        return await timed(guard_only), await timed(translated)

    return asyncio.run(both())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()

    guard_us, translate_us = in_process(20_000)
    extra = translate_us - guard_us
    print("in process, one streamed answer of 8 content chunks:")
    print(f"  OpenAI stream, checked:           {guard_us:7.1f} us")
    print(f"  Anthropic stream, translated:     {translate_us:7.1f} us")
    print(
        f"  translation overhead:             {extra:7.1f} us per request, "
        f"{extra / CHUNKS:.1f} us per chunk"
    )

    upstream_port, gateway_port = free_port(), free_port()
    upstream = Process(target=run_upstream, args=(upstream_port,), daemon=True)
    upstream.start()
    gateway = subprocess.Popen(
        [sys.executable, "-m", "portkey_mw", "serve", "--port", str(gateway_port)],
        env={**os.environ, "PORTKEY_MW_BLOCK_PLUGINS": "portkey-mw-example-plugin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    host = f"http://127.0.0.1:{upstream_port}/v1"
    configs = {
        "openai pass-through": {"provider": "openai", "custom_host": host},
        "anthropic translated": {"provider": "anthropic", "custom_host": host},
    }
    body = orjson.dumps({**orjson.loads(REQUEST), "stream": True})
    url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
    try:
        wait_for_port(upstream_port)
        wait_for_port(gateway_port)
        print(f"end to end, {args.requests} sequential streamed requests each:")
        p50s = {}
        for name, config in configs.items():
            asyncio.run(send(url, config, 100, 1, body=body))  # warm up
            _, latencies, errors = asyncio.run(send(url, config, args.requests, 1, body=body))
            p50, p99 = quantiles_ms(latencies)
            p50s[name] = p50
            print(f"  {name:22} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  errors {errors}")
        delta = (p50s["anthropic translated"] - p50s["openai pass-through"]) * 1000
        per_chunk = delta / CHUNKS
        print(f"  translation overhead: {delta:+.0f} us per request, {per_chunk:+.1f} us per chunk")
        print(f"at concurrency 32, {args.duration:g} s each:")
        for name, config in configs.items():
            headers = {
                "content-type": "application/json",
                "authorization": "Bearer sk-bench",
                "x-portkey-config": orjson.dumps(config).decode(),
            }
            results: Queue[Any] = Queue()
            load = Process(target=run_load, args=(url, headers, body, args.duration, 32, results))
            load.start()
            result = results.get(timeout=args.duration + 60)
            load.join()
            rps = len(result["latencies"]) / result["elapsed"]
            print(f"  {name:22} {rps:7.0f} req/s  errors {result['errors']}")
    finally:
        gateway.terminate()
        gateway.wait(20)
        upstream.terminate()


if __name__ == "__main__":
    main()
