"""What a budget and a rate limit add to a request, in process and on Redis, beside the
core's own cost.

One run, one process, two gateways (each with its SQLite store in a temporary directory and
the in-process ``mock`` provider answering at once; one counts limits in process, the other
on Redis), requests driven straight through their ASGI interface, one after another, so
that the gateway's own work is what is measured. Cases, interleaved over rounds:

1. the core: ``x-portkey-provider: mock``, no API key;
2. an API key without limits + ``x-portkey-virtual-key`` (the keyed request's baseline);
3. the same with the API key carrying a cost budget and an RPM limit, in process;
4. the same on Redis (three round trips per request: the budget read, the admission, the
   charge).

Limits are high enough that nothing is refused and the mock model has a price, so every
request does the whole check and charge. Each line: mean µs per request (median of
rounds), what it adds to its baseline, and the admission + charge alone (the time spent
in ``SpendControl.admit`` and ``SpendControl.settle`` during those requests, apart).

Redis: ``--redis-url`` (default: starts ``redis-server`` on a free loopback port, without
persistence, and stops it at the end).

    python benchmarks/bench_spend.py [--requests 3000] [--rounds 5] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from _harness import ADMIN_KEY, admin, call, redis_server

from portkey_mw import Gateway, ServerSettings
from portkey_mw.store.sql import SQLStore

BODY = orjson.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]})
LIMITS = {
    "usage_limits": {"type": "cost", "credit_limit": 10**9, "alert_threshold": 10**8},
    "rate_limits": [{"type": "requests", "unit": "rpm", "value": 10**9}],
}


class SpendTimer:
    """Wraps a gateway's ``spend.admit`` and ``spend.settle`` to add up the time spent in
    each (two ``perf_counter`` calls a call: well under a microsecond)."""

    def __init__(self, gateway: Gateway) -> None:
        self.seconds = {"admit": 0.0, "settle": 0.0}
        spend = gateway.spend
        spend.admit = self._timed("admit", spend.admit)  # type: ignore[method-assign,assignment]
        spend.settle = self._timed("settle", spend.settle)  # type: ignore[method-assign,assignment]

    def _timed(
        self, name: str, method: Callable[..., Awaitable[None]]
    ) -> Callable[..., Awaitable[None]]:
        async def timed(*args: Any) -> None:
            began = time.perf_counter()
            try:
                await method(*args)
            finally:
                self.seconds[name] += time.perf_counter() - began

        return timed

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)


@dataclass
class Case:
    """One kind of request, and what its rounds measured."""

    title: str
    gateway: Gateway
    headers: dict[str, str]
    timer: SpendTimer
    baseline: str | None = None
    whole: list[float] = field(default_factory=list)
    admit: list[float] = field(default_factory=list)
    settle: list[float] = field(default_factory=list)

    async def measure(self, requests: int) -> None:
        """Mean µs per request over ``requests``, and of that the admission and the charge."""
        self.timer.reset()
        began = time.perf_counter()
        for _ in range(requests):
            status, reply = await call(
                self.gateway, "POST", "/v1/chat/completions", self.headers, BODY
            )
            assert status == 200, reply
        self.whole.append((time.perf_counter() - began) / requests * 1e6)
        self.admit.append(self.timer.seconds["admit"] / requests * 1e6)
        self.settle.append(self.timer.seconds["settle"] / requests * 1e6)


@contextlib.asynccontextmanager
async def gateway(data: Path, limits: dict[str, Any]) -> AsyncIterator[Gateway]:
    """A started gateway with its own store under ``data`` and the ``limits`` section."""
    store = SQLStore(
        f"sqlite+aiosqlite:///{data / 'control.db'}", master_key=os.urandom(32), data_dir=data
    )
    settings = ServerSettings.from_mapping(
        {
            "mock": True,
            "pricing": {"mock-gpt": {"input": 2.5, "output": 10.0}},
            "limits": limits,
            "plugins": {"block": ["portkey-mw.structlog-sink"]},
        }
    )
    running = Gateway(settings, store=store)
    await running.startup()
    try:
        yield running
    finally:
        await running.shutdown()


async def keyed(running: Gateway, name: str, limits: dict[str, Any]) -> dict[str, str]:
    """Headers of a new API key (with ``limits``) calling a virtual key of the mock."""
    vk = await admin(
        running, "/v1/virtual-keys", {"name": name, "provider": "mock", "key": "sk-bench"}
    )
    made = await admin(
        running,
        "/v1/api-keys/organisation/service",
        {"name": name, "scopes": ["completions.write"], **limits},
    )
    return {"x-portkey-api-key": made["key"], "x-portkey-virtual-key": vk["slug"]}


async def main(args: argparse.Namespace, url: str) -> None:
    os.environ["PORTKEY_MW_ADMIN_KEY"] = ADMIN_KEY
    os.environ["PORTKEY_MW_AUTH"] = "optional"
    os.environ.pop("PORTKEY_MW_REDIS_URL", None)  # each gateway says which backend it uses
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "memory").mkdir()
        (Path(tmp) / "redis").mkdir()
        async with (
            gateway(Path(tmp) / "memory", {"backend": "memory"}) as local,
            gateway(Path(tmp) / "redis", {"backend": "redis", "redis_url": url}) as shared,
        ):
            local_timer, shared_timer = SpendTimer(local), SpendTimer(shared)
            core = Case(
                "core: x-portkey-provider: mock", local, {"x-portkey-provider": "mock"}, local_timer
            )
            plain = Case(
                "API key, no limits",
                local,
                await keyed(local, "plain", {}),
                local_timer,
                core.title,
            )
            cases = [
                core,
                plain,
                Case(
                    "API key, budget + rpm, in process",
                    local,
                    await keyed(local, "limited", LIMITS),
                    local_timer,
                    plain.title,
                ),
                Case(
                    "API key, budget + rpm, on Redis",
                    shared,
                    await keyed(shared, "limited", LIMITS),
                    shared_timer,
                    plain.title,
                ),
            ]
            for case in cases:  # warm: compiled plans, caches, Redis connections and scripts
                await case.measure(200)
                case.whole.clear()
                case.admit.clear()
                case.settle.clear()
            for _ in range(args.rounds):
                for case in cases:
                    await case.measure(args.requests)
            assert not shared.spend.backend.degraded, "Redis went away during the benchmark"
            report(cases, args)


def report(cases: list[Case], args: argparse.Namespace) -> None:
    print(
        f"{args.requests} requests per case and round, {args.rounds} rounds interleaved, in "
        "process, one at a time, mock provider; µs per request (median of rounds)"
    )
    print(
        f"     {'case':<36} {'request':>8}  {'added':>14}  {'ratio':>6}  "
        f"{'admit':>6}  {'charge':>6}"
    )
    medians = {case.title: statistics.median(case.whole) for case in cases}
    numbers = {case.title: n for n, case in enumerate(cases, 1)}
    for n, case in enumerate(cases, 1):
        mean = medians[case.title]
        added, ratio = "baseline", ""
        if case.baseline is not None:
            base = medians[case.baseline]
            added = f"{mean - base:+.1f} vs {numbers[case.baseline]}"
            ratio = f"{mean / base:.2f}x"
        admit, settle = statistics.median(case.admit), statistics.median(case.settle)
        print(
            f"  {n}. {case.title:<36} {mean:8.1f}  {added:>14}  {ratio:>6}  "
            f"{admit:6.1f}  {settle:6.1f}"
        )
    print(
        "  added: to the baseline case named; admit: SpendControl.admit (the budget read and "
        "the\n  rate-limit admission); charge: SpendControl.settle (pricing the usage, charging "
        "the budget)"
    )


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis-url", default=None, help="default: start a redis-server")
    args = parser.parse_args()
    if args.redis_url:
        asyncio.run(main(args, args.redis_url))
    else:
        with redis_server() as url:
            asyncio.run(main(args, url))


if __name__ == "__main__":
    run()
