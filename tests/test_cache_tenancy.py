"""Tenants split by a header the gateway forwards or maps upstream never share a cache
entry: the key covers every such header (through ``portkey-mw serve``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import orjson
import pytest

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream

CACHE = {"mode": "simple", "max_age": 60}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    held = {"provider": "openai", "api_key": planted.OPENAI_KEY, "cache": CACHE}
    configs = {
        # A server-held key: every client shares it, so only the headers tell tenants apart.
        "shared": {**held, "custom_host": upstream_server.base_url},
        "forwarding": {
            **held,
            "custom_host": upstream_server.base_url,
            "forward_headers": ["x-tenant"],
        },
    }
    path = server_file(tmp_path_factory.mktemp("tenancy"), upstream_server, configs=configs)
    with standalone_gateway(path) as running:
        yield running


def ask(gateway: RunningGateway, config: str, question: str, **headers: str) -> str:
    reply = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": question}]},
        headers={"x-portkey-config": config, **headers},
        timeout=20,
    )
    assert reply.status_code == 200, reply.text
    return reply.headers["x-portkey-cache-status"]


def test_a_header_forwarded_by_the_request_splits_the_cache(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    forward = {"x-portkey-forward-headers": "x-tenant"}
    question = "What is our refund policy? (request-listed)"
    assert ask(gateway, "shared", question, **forward, **{"x-tenant": "a"}) == "MISS"
    assert ask(gateway, "shared", question, **forward, **{"x-tenant": "b"}) == "MISS"
    assert ask(gateway, "shared", question, **forward, **{"x-tenant": "b"}) == "HIT"
    assert ask(gateway, "shared", question, **forward, **{"x-tenant": "a"}) == "HIT"
    assert [r.headers["x-tenant"] for r in fake.requests] == ["a", "b"]


def test_a_header_forwarded_by_the_config_splits_the_cache(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    question = "What is our refund policy? (config-listed)"
    assert ask(gateway, "forwarding", question, **{"x-tenant": "a"}) == "MISS"
    assert ask(gateway, "forwarding", question, **{"x-tenant": "b"}) == "MISS"
    assert ask(gateway, "forwarding", question, **{"x-tenant": "a"}) == "HIT"
    assert ask(gateway, "forwarding", question) == "MISS"  # no tenant is a tenant too
    assert len(fake.requests) == 3


def test_a_provider_option_header_splits_the_cache(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    question = "What is our refund policy? (organisation)"
    org = "x-portkey-openai-organization"
    assert ask(gateway, "shared", question, **{org: "org-a"}) == "MISS"
    assert ask(gateway, "shared", question, **{org: "org-b"}) == "MISS"
    assert ask(gateway, "shared", question, **{org: "org-a"}) == "HIT"
    assert [r.headers["openai-organization"] for r in fake.requests] == ["org-a", "org-b"]


def test_headers_that_cannot_change_the_answer_still_share(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    question = "What is our refund policy? (neutral)"
    assert ask(gateway, "shared", question, **{"x-portkey-trace-id": "t-1"}) == "MISS"
    assert ask(gateway, "shared", question, **{"x-portkey-trace-id": "t-2"}) == "HIT"
    metadata = orjson.dumps({"user": "u-2"}).decode()
    assert ask(gateway, "shared", question, **{"x-portkey-metadata": metadata}) == "HIT"
    assert len(fake.requests) == 1


def test_metadata_splits_the_cache_when_a_condition_routes_on_it(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    conditional = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.tier": {"$eq": "pro"}}, "then": "big"}],
            "default": "small",
        },
        "cache": CACHE,
        "targets": [
            {
                "name": "big",
                "provider": "openai",
                "custom_host": fake.base_url,
                "override_params": {"model": "big-model"},
            },
            {
                "name": "small",
                "provider": "openai",
                "custom_host": fake.base_url,
                "override_params": {"model": "small-model"},
            },
        ],
    }
    config = orjson.dumps(conditional).decode()
    question = "What is our refund policy? (conditional)"
    key = {"authorization": "Bearer sk-tenant"}
    pro = {"x-portkey-metadata": orjson.dumps({"tier": "pro"}).decode(), **key}
    free = {"x-portkey-metadata": orjson.dumps({"tier": "free"}).decode(), **key}
    assert ask(gateway, config, question, **pro) == "MISS"
    assert ask(gateway, config, question, **free) == "MISS"
    assert ask(gateway, config, question, **pro) == "HIT"
    assert [r.json()["model"] for r in fake.requests] == ["big-model", "small-model"]


def test_an_output_mutator_cannot_poison_what_others_are_served(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """A client's config may rewrite its own answers; the cache keeps the provider's."""
    question = "What is the support phone number?"
    route = {"provider": "openai", "custom_host": fake.base_url, "cache": CACHE}
    mutator = {
        **route,
        "output_guardrails": [
            {"type": "mutator", "default.regexReplace": {"rule": "[\\s\\S]+", "redactText": "SCAM"}}
        ],
    }
    key = {"authorization": "Bearer sk-same-tenant"}
    poisoner = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": question}]},
        headers={"x-portkey-config": orjson.dumps(mutator).decode(), **key},
        timeout=20,
    )
    assert poisoner.json()["choices"][0]["message"]["content"] == "SCAM"
    victim = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": question}]},
        headers={"x-portkey-config": orjson.dumps(route).decode(), **key},
        timeout=20,
    )
    assert victim.headers["x-portkey-cache-status"] == "HIT"
    assert victim.json()["choices"][0]["message"]["content"] == f"echo: {question}"
    assert len(fake.requests) == 1
