"""Cache hits are logged as hits with the cost they saved; totals at GET /v1/admin/cache."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from portkey_mw import Gateway, LogSink, ServerSettings, hookimpl
from portkey_mw.plugin import PluginManager
from portkey_mw.pricing import Price, PriceTable
from tests.conftest import in_process
from tests.planted import ADMIN
from tests.test_logging import ListSink

PRICED = {"pricing": {"mock-gpt": {"input": 1000.0, "output": 2000.0}}}
CACHED = {
    "x-portkey-provider": "mock",
    "x-portkey-config": orjson.dumps(
        {"provider": "mock", "cache": {"mode": "simple", "max_age": 60}}
    ).decode(),
}


def chat(model: str = "mock-gpt") -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "what does it cost?"}]}


def run(settings: dict[str, Any], requests: Callable[[httpx.AsyncClient], Any]) -> ListSink:
    sink = ListSink()

    class SinkPlugin:
        @hookimpl
        def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
            register(sink)

    async def scenario() -> None:
        manager = PluginManager()
        manager.load_entry_points()
        manager.register(SinkPlugin(), "list-sink")
        gateway = Gateway(ServerSettings.from_mapping({**settings, "mock": True}), plugins=manager)
        async with in_process(gateway) as client:
            await requests(client)

    asyncio.run(scenario())
    return sink


def test_a_hit_is_logged_with_the_cost_it_saved() -> None:
    stats: dict[str, Any] = {}

    async def requests(client: httpx.AsyncClient) -> None:
        for _ in range(3):
            reply = await client.post("/v1/chat/completions", json=chat(), headers=CACHED)
            assert reply.status_code == 200
        stats.update((await client.get("/v1/admin/cache", headers=ADMIN)).json())

    sink = run(PRICED, requests)
    miss, *hits = (event.to_dict() for event in sink.events)
    usage = miss["usage"]
    expected = (usage["prompt_tokens"] * 1000.0 + usage["completion_tokens"] * 2000.0) / 1e6
    assert miss["cache_status"] == "MISS"
    assert miss["cost_usd"] == pytest.approx(expected)
    assert miss["cost_saved_usd"] is None
    for hit in hits:
        assert hit["cache_status"] == "HIT"
        assert hit["cost_usd"] == 0.0
        assert hit["cost_saved_usd"] == pytest.approx(expected)
    assert stats["hits"] == 2 and stats["misses"] == 1
    assert stats["hit_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert stats["cost_saved_usd"] == pytest.approx(2 * expected)


def test_unpriced_models_have_no_cost_rather_than_a_guess() -> None:
    stats: dict[str, Any] = {}

    async def requests(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            await client.post("/v1/chat/completions", json=chat(), headers=CACHED)
        stats.update((await client.get("/v1/admin/cache", headers=ADMIN)).json())

    sink = run({}, requests)
    assert all(event.to_dict()["cost_usd"] is None for event in sink.events)
    assert stats["unpriced_hits"] == 1 and stats["cost_saved_usd"] == 0.0


def test_server_file_prices_match_the_longest_listed_prefix() -> None:
    table = PriceTable(
        {"acme-large": Price(input=4.0, output=8.0), "acme": Price(input=1.0, output=1.0)}
    )
    assert table.override_for("acme-large-v2") == Price(input=4.0, output=8.0)
    assert table.override_for("acme-small") == Price(input=1.0, output=1.0)
    assert table.override_for("vendor/acme-large") == Price(input=4.0, output=8.0)
    assert table.override_for("unknown-model") is None
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 500_000}
    assert table.cost(usage, provider="mock", model="acme-large") == pytest.approx(8.0)
    assert table.cost(
        {"input_tokens": 10, "output_tokens": 5}, provider="mock", model="acme-large"
    ) == pytest.approx(80e-6)
    assert table.cost(usage, provider="mock", model="unknown-model") is None


def test_negative_prices_are_rejected() -> None:
    from portkey_mw.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match=r"pricing\.m\.input"):
        ServerSettings.from_mapping({"pricing": {"m": {"input": -1}}})
