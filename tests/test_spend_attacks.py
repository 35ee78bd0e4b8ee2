"""Spend control attacked by its clients: a gateway API key with a small budget and rate
limit, a client of a virtual key with limits, a team under a metadata budget of the server
file. Each test is one attempt to get provider tokens past the limits, to have someone else
charged for them, or to make the gateway fail; each attack the gateway once let through
says so in its docstring.

The gateway runs in process (``in_process``), a fake OpenAI upstream on 127.0.0.1 plays the
provider, and the virtual keys and API keys hold planted secrets, so the suite's scanner
fails any test during which one shows up in a response, a webhook body or a log line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from portkey_mw import Gateway
from portkey_mw.limits.subject import Subject
from tests import planted
from tests.conftest import in_process, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY

ADMIN = {"x-portkey-api-key": ADMIN_KEY}
MESSAGES = [{"role": "user", "content": "hello there"}]
#: what the fake upstream reports for MESSAGES: 2 prompt words, "echo: hello there" back
HELLO_TOKENS = 5
CLIENT_KEY = planted.plant("sk-planted-clients-own-openai-key-3rT6yU9")
#: an output guardrail that fails every answer, and whose result carries the whole text
#: (``matchDetails.matchedText``) back to the client in the 446
DENY_EVERYTHING = {"default.regexMatch": {"rule": "[\\s\\S]+", "not": True}, "deny": True}


@pytest.fixture
def auth_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")


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


async def make_key(client: httpx.AsyncClient, **body: Any) -> tuple[str, str]:
    """An API key that may only call the data plane; its key is planted."""
    answer = await client.post(
        "/v1/api-keys/organisation/service",
        headers=ADMIN,
        json={"name": "app", "scopes": ["completions.write"], **body},
    )
    assert answer.status_code == 200, answer.text
    made = answer.json()
    return str(made["id"]), planted.plant(str(made["key"]))


def vk_subject(gw: Gateway, slug: str) -> Subject:
    record = gw.control.catalog.virtual_keys[slug]  # type: ignore[union-attr]
    subject = gw.spend.virtual_key(record)
    assert subject is not None
    return subject


def key_subject(gw: Gateway, key_id: str) -> Subject:
    record = next(k for k in gw.control.catalog.api_keys.values() if k.id == key_id)  # type: ignore[union-attr]
    subject = gw.spend.api_key(record)
    assert subject is not None
    return subject


async def used(gw: Gateway, subject: Subject) -> float:
    """``subject``'s budget usage once every request so far has been charged."""
    await gw.settled()
    return (await gw.spend.usage(subject)).used


async def chat(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    path: str = "/v1/chat/completions",
    **body: Any,
) -> httpx.Response:
    return await client.post(
        path, headers=headers, json={"model": "gpt-4o-mini", "messages": MESSAGES, **body}
    )


def config(value: dict[str, Any]) -> dict[str, str]:
    return {"x-portkey-config": json.dumps(value)}


# -- holes that were open ---------------------------------------------------------------


async def test_an_answer_an_output_guardrail_denies_is_still_charged(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """Attack: the client's own config adds an output guardrail that fails every answer.
    The provider answered (and billed), the 446 carries the whole answer back in the
    check's result (``matchedText``), and the request used to be charged nothing: a token
    budget never ran out."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "denied", usage_limits={"type": "tokens"})
        headers = config({"virtual_key": slug, "output_guardrails": [DENY_EVERYTHING]})
        answer = await chat(client, headers)
        assert answer.status_code == 446
        checks = answer.json()["hook_results"]["after_request_hooks"][0]["checks"]
        assert checks[0]["data"]["matchDetails"]["matchedText"] == "echo: hello there"
        assert await used(gw, vk_subject(gw, slug)) == HELLO_TOKENS


async def test_a_stream_an_output_guardrail_stops_at_once_is_still_charged(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """Attack: as above, streamed. The guardrail stops the stream on its first event,
    before anything reaches the client; the provider had read the whole prompt, yet
    nothing was charged (the estimate for a stream cut short needed an event relayed)."""
    gw = gateway(tmp_path, fake)
    first = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "all of it"}}]}
    fake.script("/v1/chat/completions", Reply(stream=[first]))
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "denied", usage_limits={"type": "tokens"})
        headers = config({"virtual_key": slug, "output_guardrails": [DENY_EVERYTHING]})
        long = " ".join(["word"] * 400)
        answer = await chat(
            client, headers, stream=True, messages=[{"role": "user", "content": long}]
        )
        assert answer.status_code == 200
        assert answer.content.startswith(b'data: {"error"')  # nothing else reached it
        assert await used(gw, vk_subject(gw, slug)) >= 400  # the prompt, at least


async def test_a_failed_virtual_key_is_not_charged_for_the_target_that_answered_after_it(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """Attack: a fallback from a limited virtual key to another one. The first fails (a
    5xx; a client can provoke a failure with ``on_status_codes``), the second answers; the
    first key's budget used to be charged the second one's tokens (a client draining a
    shared key's budget with answers served by another)."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        failing = await make_vk(
            client,
            fake,
            "failing",
            usage_limits={"type": "tokens"},
            custom_host=f"{fake.host_url}/failing/v1",
        )
        spare = await make_vk(client, fake, "spare")
        fake.script("/failing/v1/chat/completions", Reply(status=500))
        plan = {
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": failing}, {"virtual_key": spare}],
        }
        answer = await chat(client, config(plan))
        assert answer.status_code == 200
        assert answer.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert await used(gw, vk_subject(gw, failing)) == 0


async def test_a_target_without_limits_after_a_limited_one_charges_the_api_key_only(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """The same fallback under a limited API key: the key that answered (none with limits)
    and the API key are charged, the failed virtual key is not."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        key_id, key = await make_key(client, usage_limits={"type": "tokens"})
        failing = await make_vk(
            client,
            fake,
            "failing",
            usage_limits={"type": "tokens"},
            custom_host=f"{fake.host_url}/failing/v1",
        )
        spare = await make_vk(client, fake, "spare")
        fake.script("/failing/v1/chat/completions", Reply(status=503))
        plan = {
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": failing}, {"virtual_key": spare}],
        }
        answer = await chat(client, {"x-portkey-api-key": key, **config(plan)})
        assert answer.status_code == 200
        assert await used(gw, vk_subject(gw, failing)) == 0
        assert await used(gw, key_subject(gw, key_id)) == HELLO_TOKENS


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
async def test_override_params_cannot_turn_off_a_charged_streams_usage(
    tmp_path: Path, fake: FakeUpstream, path: str
) -> None:
    """Attack: ``override_params: {stream_options: {include_usage: false}}`` in the client's
    config replaced the gateway's request for the final usage, so a charged stream was
    only estimated (and a provider the gateway translates, whose chunks carry many tokens
    each, is estimated far below its bill)."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "streams", usage_limits={"type": "tokens"})
        off = {"stream_options": {"include_usage": False}}
        headers = config({"virtual_key": slug, "override_params": off})
        answer = await chat(client, headers, path=path, stream=True, max_tokens=50)
        assert answer.status_code == 200
        sent = fake.requests[-1].json()
        assert sent["stream_options"]["include_usage"] is True
        if path == "/v1/chat/completions":
            assert b'"usage":{' not in answer.content  # the client did not ask for it
        assert await used(gw, vk_subject(gw, slug)) == HELLO_TOKENS  # reported, not guessed


async def test_a_cut_stream_is_estimated_on_the_prompt_the_provider_was_sent(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """Attack: a tiny request whose config's ``override_params`` carry a long prompt, cut
    before its usage (here by the upstream; a client hanging up does the same). The
    estimate counted the prompt by the size of the client's body, not of what the provider
    read: 2 000 words billed, about 20 tokens charged."""
    gw = gateway(tmp_path, fake)
    fake.script("/v1/chat/completions", Reply(drop="mid_stream"))
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "cut", usage_limits={"type": "tokens"})
        long = [{"role": "user", "content": " ".join(["word"] * 2000)}]
        headers = config({"virtual_key": slug, "override_params": {"messages": long}})
        answer = await chat(client, headers, stream=True)
        assert answer.status_code == 200
        assert b"error" in answer.content
        assert await used(gw, vk_subject(gw, slug)) >= 2000
