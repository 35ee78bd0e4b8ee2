"""The example guardrail: the check alone, then through a gateway that discovered it."""

from __future__ import annotations

import asyncio
import importlib.metadata

import httpx
import orjson
import pytest
from portkey_mw_example_guardrail import BannedTopics

from portkey_mw import Gateway, GuardrailInput, ServerSettings

TOPICS = {"topics": ["merger", "layoffs"]}


def judge(text: str, params: dict[str, object]) -> tuple[bool, list[str] | None]:
    check = BannedTopics()
    check.validate(params)
    subject = GuardrailInput(phase="before", texts=[text], request={})
    verdict = asyncio.run(check.check(subject, params))
    return verdict.passed, verdict.texts


def test_fails_on_a_banned_topic_and_masks_when_asked() -> None:
    assert judge("what's for lunch?", TOPICS) == (True, None)
    assert judge("tell me about the merger", TOPICS)[0] is False
    assert judge("tell me about the merger", {**TOPICS, "mask": True}) == (
        True,
        ["tell me about the ******"],
    )


def test_rejects_missing_topics() -> None:
    with pytest.raises(ValueError, match="topics"):
        BannedTopics().validate({})


def test_installed_and_discovered_by_the_gateway() -> None:
    names = {ep.name for ep in importlib.metadata.entry_points(group="portkey_mw")}
    assert "portkey-mw-example-guardrail" in names
    gateway = Gateway(ServerSettings(mock=True))
    assert isinstance(gateway.guardrails["example.bannedTopics"], BannedTopics)
    info = {p.name: p for p in gateway.plugins.plugins()}["portkey-mw-example-guardrail"]
    assert info.distribution == "portkey-mw-example-guardrail"

    async def scenario() -> httpx.Response:
        config = {
            "provider": "mock",
            "input_guardrails": [{"example.bannedTopics": TOPICS, "deny": True}],
        }
        transport = httpx.ASGITransport(app=gateway)
        async with (
            gateway.lifespan(),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            return await client.post(
                "/v1/chat/completions",
                json={"model": "mock-gpt", "messages": [{"role": "user", "content": "layoffs?"}]},
                headers={"x-portkey-config": orjson.dumps(config).decode()},
            )

    reply = asyncio.run(scenario())
    assert reply.status_code == 446
    check = reply.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
    assert check["id"] == "example.bannedTopics" and check["data"]["found"] == ["layoffs"]
