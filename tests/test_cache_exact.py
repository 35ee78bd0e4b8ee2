"""Exact ("simple") caching with the in-process memory backend, through the openai SDK."""

from __future__ import annotations

import time
from typing import Any

import openai
import orjson
import pytest

from tests.conftest import RunningGateway
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN

MESSAGES = [{"role": "user", "content": "cache me"}]


def sdk(
    gateway: RunningGateway, fake: FakeUpstream, max_age: int = 60, **headers: str
) -> openai.OpenAI:
    config = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "cache": {"mode": "simple", "max_age": max_age},
    }
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-cache",
        max_retries=0,
        default_headers={"x-portkey-config": orjson.dumps(config).decode(), **headers},
    )


def ask(client: openai.OpenAI, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, **extra
    )


def test_second_identical_request_is_a_hit(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, fake, **{"x-portkey-cache-namespace": "hit-test"})
    first = ask(client, user="alice")
    second = ask(client, user="bob", metadata={"team": "x"})  # not part of the key
    assert first.headers["x-portkey-cache-status"] == "MISS"
    assert second.headers["x-portkey-cache-status"] == "HIT"
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert len(fake.requests) == 1


def test_what_changes_the_answer_changes_the_key(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    client = sdk(gateway, fake, **{"x-portkey-cache-namespace": "key-test"})
    ask(client)
    assert ask(client, temperature=0.2).headers["x-portkey-cache-status"] == "MISS"
    other_model = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MESSAGES
    )
    assert other_model.headers["x-portkey-cache-status"] == "MISS"
    system = [{"role": "system", "content": "Be terse."}, *MESSAGES]
    with_system = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=system
    )
    assert with_system.headers["x-portkey-cache-status"] == "MISS"
    assert len(fake.requests) == 4


def test_entries_expire_after_max_age_seconds(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, fake, max_age=1, **{"x-portkey-cache-namespace": "ttl-test"})
    ask(client)
    assert ask(client).headers["x-portkey-cache-status"] == "HIT"
    deadline = time.monotonic() + 5
    while ask(client).headers["x-portkey-cache-status"] == "HIT":
        assert time.monotonic() < deadline, "the entry outlived max_age"
        time.sleep(0.1)


def test_force_refresh_and_namespaces(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, fake, **{"x-portkey-cache-namespace": "refresh-test"})
    ask(client)
    refreshed = ask(client, extra_headers={"x-portkey-cache-force-refresh": "true"})
    assert refreshed.headers["x-portkey-cache-status"] == "REFRESH"
    assert ask(client).headers["x-portkey-cache-status"] == "HIT"
    other = sdk(gateway, fake, **{"x-portkey-cache-namespace": "another-tenant"})
    assert ask(other).headers["x-portkey-cache-status"] == "MISS"
    assert len(fake.requests) == 3


def test_cached_answer_replays_as_a_stream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, fake, **{"x-portkey-cache-namespace": "replay-test"})
    ask(client)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["x-portkey-cache-status"] == "HIT"
    chunks = list(raw.parse())
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "echo: cache me"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert len(fake.requests) == 1


def test_streamed_answer_is_stored_once_complete(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    client = sdk(gateway, fake, **{"x-portkey-cache-namespace": "stream-store-test"})
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        if c.choices
    )
    hit = ask(client)
    assert hit.headers["x-portkey-cache-status"] == "HIT"
    assert hit.parse().choices[0].message.content == streamed
    assert len(fake.requests) == 1


def test_failures_are_not_stored(gateway: RunningGateway, fake: FakeUpstream) -> None:
    from tests.fake_upstream import Reply

    fake.script("/v1/chat/completions", Reply(status=500))
    client = sdk(gateway, fake, **{"x-portkey-cache-namespace": "failure-test"})
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert ask(client).headers["x-portkey-cache-status"] == "MISS"
    assert len(fake.requests) == 2


def test_no_cache_config_means_disabled(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk",
        max_retries=0,
        default_headers={"x-portkey-config": "openai-fake"},
    )
    raw = ask(client)
    assert raw.headers["x-portkey-cache-status"] == "DISABLED"


def test_purge_by_namespace_and_all(gateway: RunningGateway, fake: FakeUpstream) -> None:
    import httpx

    one = sdk(gateway, fake, **{"x-portkey-cache-namespace": "purge-one"})
    two = sdk(gateway, fake, **{"x-portkey-cache-namespace": "purge-two"})
    ask(one)
    ask(two)
    purged = httpx.delete(
        gateway.base_url + "/admin/cache", params={"namespace": "purge-one"}, headers=ADMIN
    )
    assert purged.status_code == 200 and purged.json() == {"purged": 1, "namespace": "purge-one"}
    assert ask(one).headers["x-portkey-cache-status"] == "MISS"
    assert ask(two).headers["x-portkey-cache-status"] == "HIT"
    everything = httpx.delete(gateway.base_url + "/admin/cache", headers=ADMIN).json()
    assert everything["purged"] >= 2
    assert ask(two).headers["x-portkey-cache-status"] == "MISS"


def test_portkey_sdk_cache_options(gateway: RunningGateway, fake: FakeUpstream) -> None:
    from portkey_ai import Portkey

    def portkey(**options: Any) -> Any:
        return Portkey(
            base_url=gateway.base_url,
            config={
                "provider": "openai",
                "api_key": "sk-cache",
                "custom_host": fake.base_url,
                "cache": {"mode": "simple", "max_age": 60},
            },
            max_retries=0,
            **options,
        )

    def status(client: Any) -> str:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        return str(completion.get_headers()["cache-status"])  # the SDK strips x-portkey-

    first = portkey(cache_namespace="sdk-a")
    assert status(first) == "MISS"
    assert status(first) == "HIT"
    assert status(portkey(cache_namespace="sdk-b")) == "MISS"  # another partition
    assert status(portkey(cache_namespace="sdk-a", cache_force_refresh=True)) == "REFRESH"
    assert len(fake.requests) == 3


def test_answers_are_not_shared_across_api_keys_or_routes(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    namespace = {"x-portkey-cache-namespace": "partition-test"}
    alice = sdk(gateway, fake, **namespace)
    assert ask(alice).headers["x-portkey-cache-status"] == "MISS"
    assert ask(alice).headers["x-portkey-cache-status"] == "HIT"
    bob = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-someone-else",
        max_retries=0,
        default_headers=dict(alice.default_headers),  # type: ignore[arg-type]
    )
    assert ask(bob).headers["x-portkey-cache-status"] == "MISS"
    # A config that sends the same request to another model must not get gpt-4o-mini's answer.
    rerouted = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "override_params": {"model": "gpt-4o"},
        "cache": {"mode": "simple", "max_age": 60},
    }
    other_route = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-cache",
        max_retries=0,
        default_headers={"x-portkey-config": orjson.dumps(rerouted).decode(), **namespace},
    )
    assert ask(other_route).headers["x-portkey-cache-status"] == "MISS"
    assert len(fake.requests) == 3
