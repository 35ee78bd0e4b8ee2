"""Costs from genai-prices: cache reads and writes at the provider's rates, per provider,
the server file's prices winning, unpriced models counted, and no network needed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import openai
import orjson
import pytest
from genai_prices import Usage, calc_price, data, extract_usage
from genai_prices.types import ModelPrice

from portkey_mw import Gateway, LogSink, ServerSettings, hookimpl
from portkey_mw.errors import InvalidConfig
from portkey_mw.plugin import PluginManager
from portkey_mw.pricing import PROVIDERS, TRANSLATED, Price, PriceTable
from portkey_mw.pricing import table as table_module
from portkey_mw.pricing.providers import NO_LIST_PRICE
from portkey_mw.pricing.usage import FlatRates
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN
from tests.test_logging import ListSink

CLAUDE = "claude-3-5-sonnet-20241022"
#: Anthropic's usage for a prompt mostly read from its cache, a little written to it
ANTHROPIC_USAGE = {
    "input_tokens": 120,
    "cache_read_input_tokens": 3000,
    "cache_creation_input_tokens": 400,
    "output_tokens": 250,
}
ANTHROPIC_MESSAGE = {
    "id": "msg_01",
    "type": "message",
    "role": "assistant",
    "model": CLAUDE,
    "content": [{"type": "text", "text": "Cached."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": ANTHROPIC_USAGE,
}
ANTHROPIC_STREAM: list[bytes | dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            **ANTHROPIC_MESSAGE,
            "content": [],
            "stop_reason": None,
            "usage": {**ANTHROPIC_USAGE, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 250},
    },
    {"type": "message_stop"},
]


def genai_figure(usage: Usage, model: str, provider: str) -> float:
    """What genai-prices itself says ``usage`` costs (its bundled data)."""
    return float(calc_price(usage, model, provider_id=provider).total_price)


def anthropic_figure() -> float:
    u = ANTHROPIC_USAGE
    return genai_figure(
        Usage(
            # genai-prices' input_tokens count every input token, cached ones included
            input_tokens=u["input_tokens"]
            + u["cache_read_input_tokens"]
            + u["cache_creation_input_tokens"],
            cache_read_tokens=u["cache_read_input_tokens"],
            cache_write_tokens=u["cache_creation_input_tokens"],
            output_tokens=u["output_tokens"],
        ),
        CLAUDE,
        "anthropic",
    )


def gateway_with_sink(settings: dict[str, Any]) -> tuple[Gateway, ListSink]:
    sink = ListSink()

    class SinkPlugin:
        @hookimpl
        def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
            register(sink)

    manager = PluginManager()
    manager.load_entry_points()
    manager.register(SinkPlugin(), "list-sink")
    return Gateway(ServerSettings.from_mapping(settings), plugins=manager), sink


async def sdk_chat(gateway: Gateway, config: dict[str, Any], *, stream: bool = False) -> None:
    """One chat completion through the openai SDK, in process."""
    async with (
        gateway.lifespan(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway)) as http,
    ):
        client = openai.AsyncOpenAI(
            base_url="http://gw/v1",
            api_key="sk-test-provider",
            http_client=http,
            max_retries=0,
            default_headers={"x-portkey-config": orjson.dumps(config).decode()},
        )
        messages: Any = [{"role": "user", "content": "What is cached?"}]
        if stream:
            chunks = await client.chat.completions.create(
                model=CLAUDE,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for _ in chunks:
                pass
        else:
            await client.chat.completions.create(model=CLAUDE, messages=messages)


# -- through the gateway ----------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
def test_cache_reads_and_writes_cost_what_genai_prices_says(
    fake: FakeUpstream, stream: bool
) -> None:
    reply = Reply(stream=ANTHROPIC_STREAM, done=False) if stream else Reply(json=ANTHROPIC_MESSAGE)
    fake.script("/v1/messages", reply)
    gateway, sink = gateway_with_sink({})
    config = {"provider": "anthropic", "custom_host": fake.base_url}
    asyncio.run(sdk_chat(gateway, config, stream=stream))
    (event,) = sink.events
    record = event.to_dict()
    details = record["usage"]["prompt_tokens_details"]
    assert details == {"cached_tokens": 3000, "cache_creation_tokens": 400}
    expected = anthropic_figure()
    assert record["cost_usd"] == pytest.approx(expected, rel=1e-12)
    # Cache reads are cheaper than input, writes dearer: the figure is neither flat price.
    flat_input = genai_figure(Usage(input_tokens=3520, output_tokens=250), CLAUDE, "anthropic")
    assert record["cost_usd"] < flat_input
    assert gateway.prices.stats()["priced_requests"] == 1


def test_openai_cached_tokens_are_priced_at_openais_cache_rate(fake: FakeUpstream) -> None:
    usage = {
        "prompt_tokens": 2048,
        "completion_tokens": 100,
        "total_tokens": 2148,
        "prompt_tokens_details": {"cached_tokens": 1536, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }
    fake.script(
        "/v1/chat/completions",
        Reply(
            json={
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-2024-08-06",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        ),
    )
    gateway, sink = gateway_with_sink({})
    asyncio.run(sdk_chat(gateway, {"provider": "openai", "custom_host": fake.base_url}))
    (event,) = sink.events
    expected = extract_usage(
        {"model": "gpt-4o", "usage": usage}, provider_id="openai", api_flavor="chat"
    )
    assert event.cost_usd == pytest.approx(float(expected.calc_price().total_price), rel=1e-12)
    assert event.cost_usd < genai_figure(
        Usage(input_tokens=2048, output_tokens=100), "gpt-4o", "openai"
    )


def test_unpriced_models_cost_nothing_and_are_counted() -> None:
    gateway, sink = gateway_with_sink({"mock": True})

    async def scenario() -> dict[str, Any]:
        async with (
            gateway.lifespan(),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=gateway), base_url="http://gw"
            ) as client,
        ):
            for model in ("house-model", "house-model", "other-model"):
                body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
                reply = await client.post(
                    "/v1/chat/completions", json=body, headers={"x-portkey-provider": "mock"}
                )
                assert reply.status_code == 200
            await gateway.logs.flush()
            refused = await client.get("/v1/admin/pricing")
            assert refused.status_code == 401
            reply = await client.get("/v1/admin/pricing", headers=ADMIN)
            assert reply.status_code == 200
            stats: dict[str, Any] = reply.json()
            return stats

    stats = asyncio.run(scenario())
    assert all(event.to_dict()["cost_usd"] is None for event in sink.events)
    assert stats["priced_requests"] == 0
    assert stats["unpriced_requests"] == 3
    assert stats["unpriced"][0] == {
        "provider": "mock",
        "model": "house-model",
        "requests": 2,
        "reason": "no price for this model at this provider",
    }
    assert stats["unpriced"][1]["model"] == "other-model"
    assert stats["source"]["package"] == "genai-prices"
    assert stats["providers"]["bedrock"] == "aws"


def test_a_server_file_price_wins_over_genai_prices(fake: FakeUpstream) -> None:
    fake.script("/v1/messages", Reply(json=ANTHROPIC_MESSAGE))
    pricing = {CLAUDE: {"input": 1.0, "output": 2.0, "cache_read": 0.5, "cache_write": 4.0}}
    gateway, sink = gateway_with_sink({"pricing": pricing})
    asyncio.run(sdk_chat(gateway, {"provider": "anthropic", "custom_host": fake.base_url}))
    (event,) = sink.events
    assert event.cost_usd == pytest.approx((120 * 1.0 + 3000 * 0.5 + 400 * 4.0 + 250 * 2.0) / 1e6)
    assert event.cost_usd != pytest.approx(anthropic_figure())
    assert gateway.prices.stats()["overrides"][CLAUDE]["cache_write"] == 4.0


# -- the table ----------------------------------------------------------------------------


def test_the_same_model_costs_what_each_provider_charges() -> None:
    table = PriceTable()
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    model = "openai/gpt-oss-120b"
    costs = {}
    for provider in ("groq", "openrouter", "together-ai"):
        cost = table.cost(usage, provider=provider, model=model)
        figure = genai_figure(
            Usage(input_tokens=1_000_000, output_tokens=1_000_000), model, PROVIDERS[provider]
        )
        assert cost == pytest.approx(figure, rel=1e-12)
        costs[provider] = cost
    assert len(set(costs.values())) > 1, costs
    # Claude costs more on Bedrock's regional endpoints than at Anthropic.
    anthropic = table.cost(usage, provider="anthropic", model="claude-opus-4-5")
    bedrock = table.cost(usage, provider="bedrock", model="claude-opus-4-5")
    assert anthropic is not None and bedrock is not None and bedrock > anthropic


def test_an_override_without_cache_prices_charges_cache_tokens_as_input() -> None:
    # The server file's old shape (input, output) keeps its meaning.
    table = PriceTable({"gpt-4o": Price(input=2.0, output=8.0)})
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 600},
    }
    assert table.cost(usage, provider="openai", model="gpt-4o-2024-08-06") == pytest.approx(
        (1000 * 2.0 + 10 * 8.0) / 1e6
    )
    assert table.override_for("openai/gpt-4o-mini") == Price(input=2.0, output=8.0)
    assert table.override_for("gpt-4") is None


def test_the_model_the_response_names_is_priced_first() -> None:
    # An Azure deployment is named by the operator; the response names the model.
    table = PriceTable()
    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    cost = table.cost(
        usage, provider="azure-openai", model="my-deployment", answered_by="gpt-4o-2024-08-06"
    )
    figure = genai_figure(Usage(input_tokens=1000, output_tokens=100), "gpt-4o", "azure")
    assert cost == pytest.approx(figure, rel=1e-12)
    assert table.cost(usage, provider="azure-openai", model="my-deployment") is None
    assert table.stats()["unpriced"][0]["model"] == "my-deployment"


RELAYED_AND_READ = sorted(
    provider
    for provider in set(PROVIDERS) - TRANSLATED
    if next(p for p in data.providers if p.id == PROVIDERS[provider]).extractors
)


@pytest.mark.parametrize("provider", RELAYED_AND_READ)
def test_a_relayed_usage_is_read_as_genai_prices_reads_that_provider(provider: str) -> None:
    """xAI's reasoning tokens outside completion_tokens, Perplexity's citation tokens, ..."""
    catalog_id = PROVIDERS[provider]
    listed = next(p for p in data.providers if p.id == catalog_id)
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 80,
        "reasoning_tokens": 30,
        "citation_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 300},
        "completion_tokens_details": {"reasoning_tokens": 30},
    }
    table = PriceTable()
    flavors = {e.api_flavor for e in listed.extractors or ()}
    _, read = listed.extract_usage(
        {"usage": usage}, api_flavor="chat" if "chat" in flavors else "default"
    )
    checked = 0
    for model in listed.models[:40]:
        # The model's id, or the name it is called by (Fireworks' "accounts/..." paths).
        name = model.id if model.is_match(model.id) else getattr(model.match, "equals", "")
        found = table.model_for(provider, name)
        if found is None or found[1] is not model:
            continue  # a name genai-prices itself matches to another model
        try:
            figure = float(model.calc_price(read, listed).total_price)
        except ValueError:
            continue  # a usage this model cannot take: genai-prices refuses it too
        cost = table.cost(usage, provider=provider, model=name)
        assert cost == pytest.approx(figure, rel=1e-12), name
        checked += 1
    assert checked


def test_flat_rates_agree_with_genai_prices_over_its_whole_catalogue() -> None:
    usages = [
        {"input_tokens": 1_234_567, "output_tokens": 89_012},
        {"input_tokens": 5000, "cache_read_tokens": 4000, "output_tokens": 7},
        {"input_tokens": 5000, "cache_read_tokens": 1000, "cache_write_tokens": 3000},
        {"input_tokens": 31, "output_tokens": 0},
        {"input_tokens": 0, "output_tokens": 0},
        {"input_tokens": 100, "cache_read_tokens": 200},
        {
            "input_tokens": 5000,
            "cache_read_tokens": 1000,
            "cache_write_tokens": 500,
            "input_audio_tokens": 200,
            "output_tokens": 300,
            "output_reasoning_tokens": 100,
            "output_audio_tokens": 50,
        },
        {"input_tokens": 700, "output_tokens": 90, "output_reasoning_tokens": 90},
        {"input_tokens": 10, "output_reasoning_tokens": 5},
    ]
    flat = checked = 0
    seen = set()
    for provider in data.providers:
        for model in provider.models:
            prices = model.prices
            listed = [prices] if isinstance(prices, ModelPrice) else [c.prices for c in prices]
            for price in listed:
                rates = FlatRates.of(price)
                if rates is None or rates in seen:
                    continue  # models with the same prices cost the same
                seen.add(rates)
                flat += 1
                for counts in usages:
                    try:
                        expected = price.calc_price(Usage(**counts))["total_price"]
                    except ValueError:
                        assert rates.cost(counts) is None, (provider.id, model.id, counts)
                        continue
                    cost = rates.cost(counts)
                    if cost is not None:  # None: left to genai-prices itself
                        assert cost == expected, (provider.id, model.id, counts)
                        checked += 1
    assert flat > 500 and checked > 3000, (flat, checked)


def test_counts_genai_prices_cannot_split_are_unpriced_not_guessed() -> None:
    table = PriceTable()
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 1,
        "prompt_tokens_details": {"cached_tokens": 50},
    }
    assert table.cost(usage, provider="anthropic", model=CLAUDE) is None
    (entry,) = table.stats()["unpriced"]
    assert entry["reason"].startswith("usage genai-prices cannot price")


def test_unpriced_models_are_counted_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table_module, "MAX_UNPRICED_MODELS", 3)
    table = PriceTable()
    for n in range(10):
        table.cost({"prompt_tokens": 1}, provider="mock", model=f"m{n}")
    stats = table.stats()
    assert len(stats["unpriced"]) == 3
    assert stats["unpriced_other_models"] == 7 and stats["unpriced_requests"] == 10


def test_prices_depend_on_when_the_request_was_made() -> None:
    # DeepSeek charged less off-peak (a time-of-day price in genai-prices' data).
    model = next(
        m for p in data.providers if p.id == "deepseek" for m in p.models if m.id == "deepseek-chat"
    )
    assert not isinstance(model.prices, ModelPrice)
    table = PriceTable()
    usage = {"prompt_tokens": 1_000_000, "completion_tokens": 1_000_000}
    costs = {
        table.cost(usage, provider="deepseek", model="deepseek-chat", at=hour.timestamp())
        for hour in (datetime(2025, 3, 1, 4, tzinfo=UTC), datetime(2025, 3, 1, 18, tzinfo=UTC))
    }
    assert len(costs) == 2


def test_every_provider_plugin_is_mapped_or_knowingly_unpriced() -> None:
    gateway = Gateway(ServerSettings.from_mapping({"mock": True}))
    # Mapped, priced by genai-prices under the same id, or knowingly without a list price.
    catalog = {p.id for p in data.providers}
    for provider in gateway.providers:
        assert provider in PROVIDERS or provider in catalog or provider in NO_LIST_PRICE, provider
    assert not NO_LIST_PRICE & catalog  # one that gained a price belongs in PROVIDERS
    assert set(PROVIDERS.values()) <= catalog
    assert set(PROVIDERS) >= TRANSLATED


def test_negative_cache_prices_are_rejected() -> None:
    with pytest.raises(InvalidConfig, match=r"pricing\.m\.cache_read"):
        ServerSettings.from_mapping({"pricing": {"m": {"input": 1, "cache_read": -1}}})


# -- offline ------------------------------------------------------------------------------


def test_prices_without_any_network() -> None:
    """A fresh interpreter whose every socket call fails still prices, and starts no
    genai-prices updater."""
    script = textwrap.dedent(
        """
        import socket, threading

        def refuse(*args, **kwargs):
            raise OSError("network is off in this test")

        socket.socket.connect = refuse
        socket.socket.connect_ex = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse

        from portkey_mw.pricing import PriceTable

        table = PriceTable()
        usage = {"prompt_tokens": 4000, "completion_tokens": 100,
                 "prompt_tokens_details": {"cached_tokens": 3000}}
        print(table.cost(usage, provider="anthropic", model="claude-3-5-sonnet-20241022"))
        print(sorted(t.name for t in threading.enumerate()))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    cost, threads = done.stdout.splitlines()
    expected = genai_figure(
        Usage(input_tokens=4000, cache_read_tokens=3000, output_tokens=100), CLAUDE, "anthropic"
    )
    assert float(cost) == pytest.approx(expected, rel=1e-12)
    assert "genai_prices:update" not in threads


def test_a_fetched_snapshot_elsewhere_in_the_process_changes_nothing() -> None:
    """Another library starting genai-prices' updater replaces its global snapshot; the
    gateway keeps pricing from the bundled data."""
    from genai_prices import data_snapshot

    usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    expected = genai_figure(Usage(input_tokens=1000, output_tokens=100), "gpt-4o", "openai")
    empty = data_snapshot.DataSnapshot(providers=[], from_auto_update=True)
    data_snapshot.set_custom_snapshot(empty)
    try:
        with pytest.raises(LookupError):  # genai-prices' own calc_price now knows nothing
            genai_figure(Usage(input_tokens=1), "gpt-4o", "openai")
        cost = PriceTable().cost(usage, provider="openai", model="gpt-4o")
    finally:
        data_snapshot.set_custom_snapshot(None)
    assert cost == pytest.approx(expected, rel=1e-12)
