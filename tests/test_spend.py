"""Spend control in the request path, one behaviour at a time (the gateway in process, a
fake upstream on 127.0.0.1): virtual keys admitted per target (a spent one falls back),
cache hits charged nothing, alerts once per period to a webhook, unreadable stored limits
refused, the server file's metadata budgets validated, and the stream filter that hides
the usage chunk the gateway asked for."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portkey_mw import Gateway
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import InvalidConfig
from portkey_mw.limits.subject import Subject
from portkey_mw.pipeline import _without_usage
from tests.conftest import ThreadedServer, in_process, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY

ADMIN = {"x-portkey-api-key": ADMIN_KEY}
MESSAGES = [{"role": "user", "content": "hello there"}]


def gateway(tmp_path: Path, fake: FakeUpstream, **extra: Any) -> Gateway:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    return Gateway(config_file=server_file(tmp_path, fake, store=store, **extra))


async def make_vk(client: httpx.AsyncClient, fake: FakeUpstream, name: str, **body: Any) -> str:
    answer = await client.post(
        "/v1/virtual-keys",
        headers=ADMIN,
        json={
            "name": name,
            "provider": "openai",
            "key": OPENAI_KEY,
            "custom_host": fake.base_url,
            **body,
        },
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["slug"])


async def chat(client: httpx.AsyncClient, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        headers=headers,
        json={"model": "gpt-4o-mini", "messages": MESSAGES, **body},
    )


def vk_subject(gw: Gateway, slug: str) -> Subject:
    """The virtual key's subject, as spend control holds it (the key must have limits)."""
    record = gw.control.catalog.virtual_keys[slug]  # type: ignore[union-attr]
    subject = gw.spend.virtual_key(record)
    assert subject is not None
    return subject


async def settled(gw: Gateway) -> None:
    await gw.settled()


async def test_a_spent_virtual_key_falls_back_to_the_next(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        spent = await make_vk(
            client, fake, "spent", usage_limits={"type": "tokens", "credit_limit": 0}
        )
        spare = await make_vk(client, fake, "spare")
        config = {
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": spent}, {"virtual_key": spare}],
        }
        answer = await chat(client, {"x-portkey-config": json.dumps(config)})
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert len(fake.requests) == 1  # the spent key was never called
        # Alone, the spent key answers 412 naming it.
        alone = await chat(client, {"x-portkey-virtual-key": spent})
        assert alone.status_code == 412
        assert f"budget of virtual key {spent!r} is exhausted" in alone.json()["error"]["message"]
        assert len(fake.requests) == 1


async def test_a_virtual_key_rate_limit_of_zero_disables_it(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        off = await make_vk(
            client, fake, "off", rate_limits=[{"type": "requests", "unit": "rpm", "value": 0}]
        )
        answer = await chat(client, {"x-portkey-virtual-key": off})
        assert answer.status_code == 429
        error = answer.json()["error"]
        assert error["code"] == "rate_limit_exceeded"
        assert "is disabled by its rate limit" in error["message"]
        assert "retry-after" not in answer.headers  # waiting would not help
        assert not fake.requests


async def test_virtual_key_rate_limits_count_each_target_once(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(
            client, fake, "two", rate_limits=[{"type": "requests", "unit": "rph", "value": 2}]
        )
        for _ in range(2):
            assert (await chat(client, {"x-portkey-virtual-key": slug})).status_code == 200
        third = await chat(client, {"x-portkey-virtual-key": slug})
        assert third.status_code == 429
        assert third.headers["x-ratelimit-limit-requests"] == "2"
        assert int(third.headers["retry-after"]) > 0
        assert len(fake.requests) == 2


async def test_a_cache_hit_is_charged_nothing(tmp_path: Path, fake: FakeUpstream) -> None:
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "cached", usage_limits={"type": "tokens"})
        config = json.dumps({"virtual_key": slug, "cache": {"mode": "simple"}})
        first = await chat(client, {"x-portkey-config": config})
        await settled(gw)
        assert first.headers["x-portkey-cache-status"] == "MISS"
        second = await chat(client, {"x-portkey-config": config})
        await settled(gw)
        assert second.headers["x-portkey-cache-status"] == "HIT"
        used = (await gw.spend.usage(vk_subject(gw, slug))).used
        assert used == first.json()["usage"]["total_tokens"]


async def test_an_alert_fires_once_per_period_to_the_webhook(
    tmp_path: Path, fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"alert_webhook": f"{fake.host_url}/hooks/budget"}
    gw = gateway(tmp_path, fake, limits=limits)
    fake.script("/hooks/budget", Reply(json={"ok": True}), Reply(json={"ok": True}))
    async with in_process(gw) as client:
        slug = await make_vk(
            client,
            fake,
            "alerting",
            usage_limits={"type": "tokens", "credit_limit": 1000, "alert_threshold": 1},
        )
        for _ in range(3):
            assert (await chat(client, {"x-portkey-virtual-key": slug})).status_code == 200
            await settled(gw)
        await gw.spend.alerts.aclose()
    hooks = [r for r in fake.requests if r.path == "/hooks/budget"]
    assert len(hooks) == 1
    event = hooks[0].json()
    assert event["event"] == "budget.alert_threshold"
    assert event["owner"] == f"virtual key {slug!r}" and event["type"] == "tokens"
    assert event["credit_limit"] == 1000 and event["used"] >= 1
    assert OPENAI_KEY not in hooks[0].body.decode()
    logged = [r for r in caplog.records if "budget.alert_threshold" in r.getMessage()]
    assert len(logged) == 1


async def test_unreadable_stored_limits_refuse_the_request(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "broken")
        store = gw.control.store
        assert store is not None
        # Written straight into the store, past the admin API's validation.
        await store.update_virtual_key(slug, {"rate_limits": ({"unit": "rpy", "value": 1},)})
        await gw.control.refresh()
        answer = await chat(client, {"x-portkey-virtual-key": slug})
        assert answer.status_code == 503
        error = answer.json()["error"]
        assert error["code"] == "invalid_limits"
        assert (
            f"virtual key {slug!r}" in error["message"] and "rate_limits.0.unit" in error["message"]
        )
        assert not fake.requests


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"match": {}, "usage_limits": {"credit_limit": 1}}, "match"),
        ({"match": {"team": "x" * 300}, "usage_limits": {"credit_limit": 1}}, "match"),
        (
            {"match": {"team": "a"}, "usage_limits": {"credit_limit": -1}},
            "usage_limits.credit_limit",
        ),
        (
            {"match": {"team": "a"}, "usage_limits": {"credit_limit": "10"}},
            "usage_limits.credit_limit",
        ),
        (
            {"match": {"team": "a"}, "usage_limits": {"periodic_reset_days": 0}},
            "periodic_reset_days",
        ),
        (
            {"match": {"team": "a"}, "usage_limits": {"periodic_reset_days": 366}},
            "periodic_reset_days",
        ),
        ({"match": {"team": "a"}, "usage_limits": {"type": "dollars"}}, "usage_limits.type"),
        (
            {"match": {"team": "a"}, "rate_limits": [{"unit": "rpy", "value": 1}]},
            "rate_limits.0.unit",
        ),
        (
            {"match": {"team": "a"}, "rate_limits": [{"unit": "rpm", "value": -1}]},
            "rate_limits.0.value",
        ),
        (
            {"match": {"team": "a"}, "rate_limits": [{"type": "calls", "unit": "rpm", "value": 1}]},
            "rate_limits.0.type",
        ),
    ],
)
def test_bad_metadata_budgets_are_refused_naming_the_field(
    policy: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidConfig) as caught:
        ServerSettings.from_mapping({"limits": {"metadata": [policy]}})
    assert field in str(caught.value)


def test_two_metadata_budgets_may_not_share_a_name() -> None:
    twice = {"match": {"team": "a"}, "usage_limits": {"credit_limit": 1}}
    with pytest.raises(InvalidConfig, match="two metadata budgets are named 'team=a'"):
        ServerSettings.from_mapping({"limits": {"metadata": [twice, twice]}})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"usage_limits": {"periodic_reset_days": 0}}, "usage_limits.periodic_reset_days"),
        ({"usage_limits": {"periodic_reset_days": 366}}, "usage_limits.periodic_reset_days"),
        ({"usage_limits": {"credit_limit": "10"}}, "usage_limits.credit_limit"),
        ({"usage_limits": {"credit_limit": -1}}, "usage_limits.credit_limit"),
        ({"usage_limits": {"type": "dollars"}}, "usage_limits.type"),
        ({"rate_limits": [{"unit": "rpy", "value": 1}]}, "rate_limits.0.unit"),
        ({"rate_limits": [{"type": "calls", "unit": "rpm", "value": 1}]}, "rate_limits.0.type"),
        ({"rate_limits": [{"unit": "rpm", "value": "ten"}]}, "rate_limits.0.value"),
        ({"rate_limits": [{"unit": "rpm", "value": -3}]}, "rate_limits.0.value"),
    ],
)
async def test_bad_limits_through_the_admin_api_are_400_naming_the_field(
    tmp_path: Path, fake: FakeUpstream, body: dict[str, Any], field: str
) -> None:
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        for path, record in (
            ("/v1/virtual-keys", {"name": "x", "provider": "openai"}),
            ("/v1/api-keys/organisation/service", {"name": "x"}),
        ):
            answer = await client.post(path, headers=ADMIN, json={**record, **body})
            assert answer.status_code == 400, answer.text
            assert field in answer.json()["error"]["message"]


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_the_usage_chunk_the_gateway_asked_for_is_hidden() -> None:
    content = b'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\n'
    done = b"data: [DONE]\n\n"
    stream = content + usage + done
    # Split anywhere: inside the usage event, between events, one byte at a time.
    for cut in (len(content) + 7, len(content), 3):
        parts = (stream[:cut], stream[cut:])
        relayed = b"".join([chunk async for chunk in _without_usage(_chunks(*parts))])
        assert relayed == content + done
    relayed = b"".join([c async for c in _without_usage(_chunks(*(bytes([b]) for b in stream)))])
    assert relayed == content + done


async def test_a_stream_cut_before_its_usage_is_charged_an_estimate(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    gw = gateway(tmp_path, fake)
    fake.script("/v1/chat/completions", Reply(drop="mid_stream"))
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "cut", usage_limits={"type": "tokens"})
        answer = await chat(client, {"x-portkey-virtual-key": slug}, stream=True)
        assert answer.status_code == 200
        assert b"error" in answer.content  # the stream ended with an error event
        await settled(gw)
        subject = vk_subject(gw, slug)
        # a hang-up is not free: about a token per event, and the prompt by its size
        assert (await gw.spend.usage(subject)).used > 0


def test_a_client_that_hangs_up_mid_stream_is_charged_an_estimate(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    import threading

    gate = threading.Event()
    fake.script("/v1/chat/completions", Reply(gate=gate))
    gw = gateway(tmp_path, fake)
    with ThreadedServer(gw) as server:
        made = httpx.post(
            f"{server.url}/v1/virtual-keys",
            headers=ADMIN,
            json={
                "name": "leaver",
                "provider": "openai",
                "key": OPENAI_KEY,
                "custom_host": fake.base_url,
                "usage_limits": {"type": "tokens"},
            },
        )
        slug = made.json()["slug"]
        body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
        headers = {"x-portkey-virtual-key": slug}
        with httpx.stream(
            "POST", f"{server.url}/v1/chat/completions", json=body, headers=headers
        ) as stream:
            next(stream.iter_bytes())  # the first event, then hang up
        try:
            fake.wait_for(lambda: fake.disconnects >= 1, timeout=10)
        finally:
            gate.set()
        subject = vk_subject(gw, slug)
        deadline = time.monotonic() + 10
        while gw.in_flight:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        used = asyncio.run(gw.spend.usage(subject)).used
        assert used > 0


async def test_usage_survives_a_restart_and_so_does_a_reset(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    first = gateway(tmp_path, fake)
    async with in_process(first) as client:
        slug = await make_vk(
            client, fake, "kept", usage_limits={"type": "tokens", "credit_limit": 1}
        )
        assert (await chat(client, {"x-portkey-virtual-key": slug})).status_code == 200
        await settled(first)
    # Shut down: the last usage was written in a batch (every few seconds, not per request).
    assert first.spend.keeper.writes >= 1
    second = gateway(tmp_path, fake)
    async with in_process(second) as client:
        refused = await chat(client, {"x-portkey-virtual-key": slug})
        assert refused.status_code == 412  # the usage came back from the store
        subject = vk_subject(second, slug)
        await second.spend.reset(subject)
        assert (await chat(client, {"x-portkey-virtual-key": slug})).status_code == 200
        await settled(second)
        await second.spend.reset(subject)
    third = gateway(tmp_path, fake)
    async with in_process(third) as client:
        # the reset was written at once: the old usage does not come back
        assert (await chat(client, {"x-portkey-virtual-key": slug})).status_code == 200
