"""What the dashboard's calls cost over a large log store: every request one view makes
(the overview's three stats calls, a log page near the start and deep in the table, a
metadata filter, the costs view's group-bys, and the overview filtered by a provider, which
the hourly rollups cannot serve), timed over HTTP in process against SQLite, each view's
calls sent together as the page sends them, over the page's "last 24 hours".

    python benchmarks/bench_dashboard.py [--records 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from _harness import ADMIN_KEY


def record(i: int, now: float, span: float) -> dict[str, Any]:
    status = 200 if i % 20 else (500 if i % 40 else 446)
    return {
        "request_id": uuid.uuid4().hex,
        "trace_id": uuid.uuid4().hex,
        "started_at": now - span * (i / 100_000 % 1),
        "endpoint": "chat_completions",
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": status,
        "success": status < 400,
        "stream": bool(i % 2),
        "provider": ("openai", "anthropic", "groq")[i % 3],
        "model": f"model-{i % 12}",
        "attempts": [],
        "retry_count": 0,
        "fallback": i % 50 == 0,
        "cache_status": ("HIT", "MISS", None)[i % 3],
        "latency_ms": 5.0 + i % 300,
        "tokens": {"input": 100, "output": 40, "total": 140},
        "cost_usd": 0.0004,
        "virtual_key": f"vk-{i % 5}",
        "metadata": {"team": f"team-{i % 8}", "env": ("prod", "dev")[i % 2]},
    }


CALLS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "overview": [
        ("/v1/logs/stats", {"group_by": "model", "interval": 3600}),
        ("/v1/logs/stats", {"group_by": "provider"}),
        ("/v1/logs", {"status": 446, "page_size": 1}),
    ],
    "logs page 0": [("/v1/logs", {"page": 0, "page_size": 50})],
    "logs page 1000": [("/v1/logs", {"page": 1000, "page_size": 50})],
    "logs metadata.team": [("/v1/logs", {"metadata.team": "team-3", "page_size": 50})],
    "costs": [
        ("/v1/logs/stats", {"group_by": "provider"}),
        ("/v1/logs/stats", {"group_by": "virtual_key"}),
        ("/v1/logs", {"page_size": 200}),
        ("/v1/logs/stats", {"group_by": "metadata.team"}),
    ],
    # a filter beyond the time range reads the raw rows instead of the hourly rollups
    "overview, provider=openai": [
        ("/v1/logs/stats", {"provider": "openai", "group_by": "model", "interval": 3600}),
        ("/v1/logs/stats", {"provider": "openai", "group_by": "virtual_key"}),
    ],
}


async def fill(queries: Any, records: int) -> float:
    """Insert ``records`` synthetic records spread over the last day: seconds taken."""
    now, span = time.time(), 86400.0
    started = time.perf_counter()
    for first in range(0, records, 2000):
        await queries.insert(
            [record(i, now, span) for i in range(first, min(records, first + 2000))]
        )
    return time.perf_counter() - started


async def time_views(client: httpx.AsyncClient, rounds: int = 3) -> dict[str, float]:
    """Each view's calls, sent together as the page sends them: median ms per view."""
    now, span = time.time(), 86400.0
    # the page's "last 24 hours": from the hour before, to now
    window = {"from": int((now - span) // 3600 * 3600), "to": now}
    medians = {}
    for view, calls in CALLS.items():
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            answers = await asyncio.gather(
                *(client.get(path, params={**window, **params}) for path, params in calls)
            )
            for answer in answers:
                assert answer.status_code == 200, answer.text
            times.append(time.perf_counter() - started)
        medians[view] = statistics.median(times) * 1000
    return medians


async def main(records: int) -> None:
    os.environ["PORTKEY_MW_ADMIN_KEY"] = ADMIN_KEY
    from portkey_mw import Gateway
    from portkey_mw.config.server import ServerSettings

    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    url = f"sqlite+aiosqlite:///{folder / 'control.db'}"
    gateway = Gateway(ServerSettings.model_validate({"store": {"url": url}}))
    transport = httpx.ASGITransport(app=gateway)
    headers = {"x-portkey-api-key": ADMIN_KEY}
    async with (
        gateway.lifespan(),
        httpx.AsyncClient(
            transport=transport, base_url="http://gw", headers=headers, timeout=120
        ) as client,
    ):
        queries = gateway.log_queries
        assert queries is not None, "no SQL log store"
        print(f"inserted {records} records in {await fill(queries, records):.1f} s")
        for view, ms in (await time_views(client)).items():
            print(f"{view:28} {ms:8.0f} ms ({len(CALLS[view])} calls)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().records))
