"""Spend control end to end, as clients meet it: the official portkey-ai and openai SDKs
against a gateway served over HTTP (uvicorn, in this process, so that the test owns the
limits' clock), with an admin creating keys through the portkey-ai SDK.

A token budget stops a key with 412 naming it; a cost budget is charged what genai-prices
says the usage costs, cache reads included; a monthly reset restores a spent budget; an
RPM limit answers 429 with Retry-After and OpenAI's rate-limit headers; a metadata budget
stops only its team; a stream's final usage is charged even when the client did not ask
for it (and the client does not see it).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import genai_prices
import httpx
import openai
import portkey_ai
import pytest
from genai_prices.types import Usage

from tests import planted
from tests.conftest import RunningGateway, ThreadedServer, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY

MESSAGES = [{"role": "user", "content": "hello there"}]


class Clock:
    """Epoch seconds the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2030, 1, 15, 12, 0, tzinfo=UTC))


@contextlib.contextmanager
def run_gateway(
    tmp_path: Path, fake: FakeUpstream, clock: Clock, monkeypatch: pytest.MonkeyPatch, **extra: Any
) -> Iterator[RunningGateway]:
    from portkey_mw import Gateway

    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")
    monkeypatch.delenv("PORTKEY_MW_REDIS_URL", raising=False)
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    path = server_file(tmp_path, fake, store=store, **extra)
    gateway = Gateway(config_file=path)
    gateway.spend.backend.clock = clock
    with ThreadedServer(gateway) as server:
        yield RunningGateway("mounted", server.url, server.url, app=gateway)


@pytest.fixture
def gw(
    tmp_path: Path, fake: FakeUpstream, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningGateway]:
    with run_gateway(tmp_path, fake, clock, monkeypatch) as running:
        yield running


def admin(gw: RunningGateway) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=ADMIN_KEY, base_url=gw.base_url)


def virtual_key(gw: RunningGateway, fake: FakeUpstream, **limits: Any) -> str:
    made = admin(gw).virtual_keys.create(
        name="openai", provider="openai", key=OPENAI_KEY, custom_host=fake.base_url, **limits
    )
    return str(made.slug)


def api_key(gw: RunningGateway, **limits: Any) -> tuple[str, str]:
    made = admin(gw).api_keys.create(
        name="app", type="organisation", sub_type="service", scopes=["completions.write"], **limits
    )
    return str(made.id), planted.plant(str(made.key))


def status_of(call: Any) -> tuple[int, str, httpx.Headers]:
    """Run a call that must fail: its status, message and response headers."""
    with pytest.raises(Exception) as caught:
        call()
    error: Any = caught.value
    return error.status_code, str(error), error.response.headers


def usage(gw: RunningGateway, path: str) -> dict[str, Any]:
    """The admin API's usage object for ``path`` (``api-keys/<id>``, ``virtual-keys/<slug>``),
    once every request so far has been charged."""
    gw.settle()
    answer = httpx.get(
        f"{gw.base_url}/{path}/usage", headers={"x-portkey-api-key": ADMIN_KEY}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_a_token_budget_stops_the_key_with_412_naming_it(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    slug = virtual_key(gw, fake)
    _, key = api_key(gw, usage_limits={"type": "tokens", "credit_limit": 100})
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=gw.base_url)
    first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    per_request = first.usage.total_tokens
    assert per_request > 0
    gw.settle()
    served = 1
    while served * per_request < 100:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        gw.settle()
        served += 1
    calls = len(fake.requests)
    status, message, _ = status_of(
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    )
    assert status == 412
    assert "budget of API key 'app' is exhausted" in message
    assert f"{served * per_request} of 100 tokens" in message
    assert len(fake.requests) == calls  # refused before the provider was called
    # The openai SDK gets the same answer.
    plain = openai.OpenAI(
        api_key=key,
        base_url=gw.base_url,
        max_retries=0,
        default_headers={"x-portkey-virtual-key": slug},
    )
    with pytest.raises(openai.APIStatusError) as caught:
        plain.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.status_code == 412
    body: Any = caught.value.body
    assert body["code"] == "budget_exhausted" and "API key 'app'" in body["message"]


def test_a_cost_budget_is_charged_what_genai_prices_says_cache_reads_included(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    slug = virtual_key(gw, fake, usage_limits={"type": "cost", "credit_limit": 5})
    _, key = api_key(gw)
    reported = {
        "prompt_tokens": 12_000,
        "completion_tokens": 800,
        "total_tokens": 12_800,
        "prompt_tokens_details": {"cached_tokens": 9_000},
    }
    reply = {
        "id": "chatcmpl-cached",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        ],
        "usage": reported,
    }
    fake.script("/v1/chat/completions", Reply(json=reply))
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=gw.base_url)
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    expected = genai_prices.calc_price(
        Usage(input_tokens=12_000, cache_read_tokens=9_000, output_tokens=800),
        model_ref="gpt-4o-2024-08-06",
        provider_id="openai",
    ).total_price
    # cache reads are cheaper than input: the figure is not the all-input price
    assert (
        expected
        < genai_prices.calc_price(
            Usage(input_tokens=12_000, output_tokens=800),
            model_ref="gpt-4o-2024-08-06",
            provider_id="openai",
        ).total_price
    )
    budget = usage(gw, f"virtual-keys/{slug}")["budget"]
    assert budget["type"] == "cost"
    assert budget["used"] == pytest.approx(float(expected), rel=1e-9)
    assert budget["remaining"] == pytest.approx(5 - float(expected), rel=1e-9)


def test_a_monthly_reset_restores_a_spent_budget(
    gw: RunningGateway, fake: FakeUpstream, clock: Clock
) -> None:
    slug = virtual_key(gw, fake)
    key_id, key = api_key(
        gw, usage_limits={"type": "tokens", "credit_limit": 1, "periodic_reset": "monthly"}
    )
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=gw.base_url)
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    budget = usage(gw, f"api-keys/{key_id}")["budget"]
    assert budget["exhausted"] and budget["next_reset"] == "2030-02-01T00:00:00Z"
    status, message, _ = status_of(
        lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    )
    assert status == 412 and "it resets at 2030-02-01T00:00:00Z" in message
    clock.set(datetime(2030, 1, 31, 23, 59, 59, tzinfo=UTC))
    assert (
        status_of(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))[0]
        == 412
    )
    clock.set(datetime(2030, 2, 1, 0, 0, tzinfo=UTC))  # the documented boundary, UTC
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    budget = usage(gw, f"api-keys/{key_id}")["budget"]
    assert budget["next_reset"] == "2030-03-01T00:00:00Z"


def test_an_rpm_limit_answers_429_with_retry_after_and_openai_headers(
    gw: RunningGateway, fake: FakeUpstream, clock: Clock
) -> None:
    slug = virtual_key(gw, fake)
    _, key = api_key(gw, rate_limits=[{"type": "requests", "unit": "rpm", "value": 2}])
    client = openai.OpenAI(
        api_key=key,
        base_url=gw.base_url,
        max_retries=0,
        default_headers={"x-portkey-virtual-key": slug},
    )
    ask = client.chat.completions.with_raw_response.create
    first = ask(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert first.headers["x-ratelimit-limit-requests"] == "2"
    assert first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-reset-requests"] == "30s"
    ask(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    calls = len(fake.requests)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    headers = caught.value.response.headers
    assert headers["retry-after"] == "30"
    assert headers["retry-after-ms"] == "30000"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"] == "1m0s"
    body: Any = caught.value.body
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "requests"
    assert "API key 'app': 2 requests per minute (rpm)" in body["message"]
    assert len(fake.requests) == calls
    # The portkey-ai SDK sees the same 429; 30 s later one more request fits.
    portkey = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=gw.base_url, max_retries=0)
    assert (
        status_of(lambda: portkey.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES))[
            0
        ]
        == 429
    )
    clock.now += 30
    assert ask(model="gpt-4o-mini", messages=MESSAGES).status_code == 200  # type: ignore[arg-type]


def test_a_metadata_budget_stops_only_that_team(
    tmp_path: Path, fake: FakeUpstream, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    limits = {
        "metadata": [
            {
                "name": "search",
                "match": {"team": "search"},
                "usage_limits": {"type": "tokens", "credit_limit": 1},
            }
        ]
    }
    with run_gateway(tmp_path, fake, clock, monkeypatch, limits=limits) as gw:
        slug = virtual_key(gw, fake)
        _, key = api_key(gw)

        def team(name: str) -> openai.OpenAI:
            return openai.OpenAI(
                api_key=key,
                base_url=gw.base_url,
                max_retries=0,
                default_headers={
                    "x-portkey-virtual-key": slug,
                    "x-portkey-metadata": json.dumps({"team": name}),
                },
            )

        search, ads = team("search"), team("ads")
        search.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        gw.settle()
        with pytest.raises(openai.APIStatusError) as caught:
            search.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        assert caught.value.status_code == 412
        assert "metadata budget 'search' (team=search)" in str(caught.value)
        for _ in range(3):
            assert ads.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices  # type: ignore[arg-type]


def test_a_streams_final_usage_is_charged_without_the_client_seeing_it(
    gw: RunningGateway, fake: FakeUpstream
) -> None:
    slug = virtual_key(gw, fake, usage_limits={"type": "tokens", "credit_limit": 1000})
    _, key = api_key(gw)
    client = portkey_ai.Portkey(api_key=key, virtual_key=slug, base_url=gw.base_url)
    plain = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert plain and all(chunk.choices for chunk in plain)  # no usage-only chunk
    sent = fake.requests[-1].json()
    assert sent["stream_options"] == {"include_usage": True}  # asked for by the gateway
    charged = usage(gw, f"virtual-keys/{slug}")["budget"]["used"]
    assert charged > 0
    # A client that asks for usage gets it, and is charged the same way.
    asked = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    final = [chunk for chunk in asked if chunk.usage]
    assert final and not final[-1].choices
    total = usage(gw, f"virtual-keys/{slug}")["budget"]["used"]
    assert total == charged + final[-1].usage.total_tokens
