"""A config cannot stop the gateway: patterns with catastrophic backtracking are cut short
(a check errors, a condition is a 400), and checks with unbounded work are bounded
(through ``portkey-mw serve``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream

EVIL = "^(a|aa)+$"
#: about 35 s of backtracking for Python's re (measured by the red-team review)
VICTIM_TEXT = "a" * 42 + "b"


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(tmp_path_factory.mktemp("dos"), upstream_server)
    with standalone_gateway(path) as running:
        yield running


def ask(
    gateway: RunningGateway, config: dict[str, Any], text: str, **headers: str
) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": text}]},
        headers={"x-portkey-config": orjson.dumps(config).decode(), **headers},
        timeout=30,
    )


@pytest.mark.parametrize(
    "hook",
    [
        {"default.regexMatch": {"rule": EVIL}},
        {"default.regexReplace": {"rule": EVIL}},
        {"default.jsonSchema": {"schema": {"type": "string", "pattern": EVIL}}},
    ],
)
def test_a_backtracking_pattern_in_a_check_errors_quickly(
    gateway: RunningGateway, fake: FakeUpstream, hook: dict[str, Any]
) -> None:
    config = {
        "provider": "openai",
        "api_key": "sk-x",
        "custom_host": fake.base_url,
        "input_guardrails": [hook],
    }
    text = VICTIM_TEXT if "jsonSchema" not in str(hook) else orjson.dumps(VICTIM_TEXT).decode()
    started = time.monotonic()
    reply = ask(gateway, config, text)
    # Python's re would backtrack for about 35 s here, with the event loop stopped.
    assert time.monotonic() - started < 2
    assert reply.status_code == 200, reply.text  # an errored check does not block
    check = reply.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
    assert check["error"] and "took longer than" in check["error"]["message"]


def test_a_backtracking_conditional_regex_is_a_400(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.u": {"$regex": EVIL}}, "then": "a"}],
            "default": "a",
        },
        "targets": [{"name": "a", "provider": "openai", "custom_host": fake.base_url}],
    }
    metadata = orjson.dumps({"u": VICTIM_TEXT}).decode()
    started = time.monotonic()
    reply = ask(
        gateway, config, "hi", **{"x-portkey-metadata": metadata, "authorization": "Bearer k"}
    )
    assert time.monotonic() - started < 5
    assert reply.status_code == 400 and "took longer than" in reply.json()["error"]["message"]


def test_contains_lists_are_bounded(gateway: RunningGateway, fake: FakeUpstream) -> None:
    hook = {"default.contains": {"words": [f"w{i}" for i in range(300)]}}
    config = {"provider": "openai", "custom_host": fake.base_url, "input_guardrails": [hook]}
    reply = ask(gateway, config, "hi")
    assert reply.status_code == 400 and "at most 256 words" in reply.json()["error"]["message"]
