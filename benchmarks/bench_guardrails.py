"""What input guardrails cost per request, beside the gateway's own overhead.

One run, in one process, requests through the whole gateway pipeline (in process, no
sockets) to the ``mock`` provider answering at once, so the gateway's own work is all
that is measured:

1. the baseline: no guardrails;
2. each check alone: ``default.regexMatch``, ``default.pii`` (every category),
   ``default.promptInjection`` with patterns only, and with similarity to the known
   attacks (the local all-MiniLM-L6-v2 model);
3. the typical input set together -- regex + PII + injection (patterns and similarity) --
   as one hook whose checks run concurrently.

Each line gives p50 / p99 and the p50 added to the baseline. Nothing is asserted.

    python benchmarks/bench_guardrails.py [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import httpx
import orjson

from portkey_mw import Gateway, ServerSettings

PROMPT = (
    "Hi, I'm planning a team offsite in Lisbon next spring for about twenty people. Could "
    "you suggest a three-day agenda with one workshop per day, a few restaurants that take "
    "group bookings, and a rough budget per person? We would like to keep it under 900 "
    "euros each, travel excluded, and we prefer places within walking distance of Baixa."
)
CHECKS: dict[str, dict[str, Any]] = {
    "regex": {"default.regexMatch": {"rule": r"\b\d{16}\b", "not": True}},
    "pii": {"default.pii": {}},
    "injection (patterns)": {"default.promptInjection": {"similarity": False}},
    "injection (patterns + similarity)": {"default.promptInjection": {}},
}
TYPICAL = {
    "default.regexMatch": {"rule": r"\b\d{16}\b", "not": True},
    "default.pii": {},
    "default.promptInjection": {},
    "deny": True,
}


def quantiles_ms(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def headers(guardrails: list[dict[str, Any]] | None) -> dict[str, str]:
    config: dict[str, Any] = {"provider": "mock"}
    if guardrails:
        config["input_guardrails"] = guardrails
    return {"x-portkey-config": orjson.dumps(config).decode()}


async def measure(client: httpx.AsyncClient, head: dict[str, str], requests: int) -> list[float]:
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": PROMPT}]}
    for _ in range(20):  # warm: compiled config, loaded model, embedded attack list
        reply = await client.post("/v1/chat/completions", json=body, headers=head)
        assert reply.status_code == 200, reply.text
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        reply = await client.post("/v1/chat/completions", json=body, headers=head)
        times.append(time.perf_counter() - started)
        assert reply.status_code == 200, reply.text
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    settings = ServerSettings.from_mapping({"plugins": {"block": ["portkey-mw.structlog-sink"]}})
    gateway = Gateway(settings)
    transport = httpx.ASGITransport(app=gateway)
    async with (
        gateway.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        base = quantiles_ms(await measure(client, headers(None), args.requests))
        print(f"prompt of {len(PROMPT.split())} words; {args.requests} requests per line\n")
        print(f"{'no guardrails (core overhead)':<40} p50 {base[0]:6.3f} ms  p99 {base[1]:6.3f} ms")
        rows = [(name, [check]) for name, check in CHECKS.items()]
        rows.append(("typical set: regex + PII + injection", [TYPICAL]))
        for name, guardrails in rows:
            p50, p99 = quantiles_ms(await measure(client, headers(guardrails), args.requests))
            print(
                f"{name:<40} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms"
                f"  (+{p50 - base[0]:.3f} ms, x{p50 / base[0]:.1f} the core)"
            )


if __name__ == "__main__":
    asyncio.run(main())
