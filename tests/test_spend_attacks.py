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

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from portkey_mw import Gateway
from portkey_mw.limits.subject import Subject
from portkey_mw.spend.control import total_tokens
from tests import planted
from tests.conftest import in_process
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY
from tests.test_spend import gateway, make_vk, vk_subject

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


async def test_a_virtual_key_turned_off_is_not_called_for_a_merged_model_list(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """Attack: ``GET /v1/models`` over a config of several targets asks every provider at
    once, and used to skip the admission of their virtual keys: one turned off by a rate
    limit of 0 was still called with its credential (alone, it answers 429)."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        off = await make_vk(
            client, fake, "off", rate_limits=[{"type": "requests", "unit": "rpm", "value": 0}]
        )
        other = await make_vk(client, fake, "other", custom_host=f"{fake.host_url}/other/v1")
        plan = {
            "strategy": {"mode": "fallback"},
            "targets": [{"virtual_key": off}, {"virtual_key": other}],
        }
        listed = await client.get("/v1/models", headers=config(plan))
        assert listed.status_code == 200
        assert [r.path for r in fake.requests] == ["/other/v1/models"]
        alone = await client.get("/v1/models", headers=config({"virtual_key": off}))
        assert alone.status_code == 429


# -- attacks the gateway resists ----------------------------------------------------------


async def test_a_clients_own_provider_key_still_counts_against_its_api_key(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """Routing with the client's own provider key (a server-file config, the client's
    ``Authorization``) reaches the provider without any virtual key: the API key's budget
    still applies, and stops the key with 412 before the provider is called."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        _, key = await make_key(client, usage_limits={"type": "tokens", "credit_limit": 1})
        headers = {
            "x-portkey-api-key": key,
            "x-portkey-config": "openai-fake",
            "authorization": f"Bearer {CLIENT_KEY}",
        }
        assert (await chat(client, headers)).status_code == 200
        assert fake.requests[-1].headers["authorization"] == f"Bearer {CLIENT_KEY}"
        await gw.settled()
        for extra in ({}, {"x-portkey-provider": "openai"}):
            refused = await chat(client, {**headers, **extra})
            assert refused.status_code == 412, refused.text
            assert "budget of API key 'app' is exhausted" in refused.json()["error"]["message"]
        assert len(fake.requests) == 1


@pytest.mark.parametrize("way", ["header", "provider", "model", "config", "nested"])
async def test_every_way_of_naming_a_virtual_key_meets_its_limits(
    tmp_path: Path, fake: FakeUpstream, way: str
) -> None:
    """A virtual key turned off by a rate limit of 0 stays off however the client names
    it: the header, ``x-portkey-provider: @slug``, ``model: @slug/model``, an inline config,
    a config nesting it under strategies."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(
            client, fake, "off", rate_limits=[{"type": "requests", "unit": "rpm", "value": 0}]
        )
        body: dict[str, Any] = {}
        headers = {
            "header": {"x-portkey-virtual-key": slug},
            "provider": {"x-portkey-provider": f"@{slug}"},
            "model": {},
            "config": config({"virtual_key": slug}),
            "nested": config(
                {
                    "strategy": {"mode": "loadbalance"},
                    "targets": [
                        {"strategy": {"mode": "fallback"}, "targets": [{"virtual_key": slug}]}
                    ],
                }
            ),
        }[way]
        if way == "model":
            body["model"] = f"@{slug}/gpt-4o-mini"
        answer = await chat(client, headers, **body)
        assert answer.status_code == 429, answer.text
        assert f"virtual key {slug!r}" in answer.json()["error"]["message"]
        assert not fake.requests


async def test_a_cache_hit_does_not_get_past_a_spent_api_key(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """Cached answers are free, but the budget is checked before the cache: a key whose
    budget is spent is refused even the answer it already paid for."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        key_id, key = await make_key(client, usage_limits={"type": "tokens", "credit_limit": 1})
        slug = await make_vk(client, fake, "cached")
        headers = {
            "x-portkey-api-key": key,
            **config({"virtual_key": slug, "cache": {"mode": "simple"}}),
        }
        first = await chat(client, headers)
        assert first.headers["x-portkey-cache-status"] == "MISS"
        assert await used(gw, key_subject(gw, key_id)) == HELLO_TOKENS
        refused = await chat(client, headers)
        assert refused.status_code == 412
        assert len(fake.requests) == 1


async def test_a_cache_hit_still_counts_as_a_request(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """A requests limit is not escaped by asking for answers the cache holds."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        _, key = await make_key(
            client, rate_limits=[{"type": "requests", "unit": "rph", "value": 2}]
        )
        slug = await make_vk(client, fake, "cached")
        headers = {
            "x-portkey-api-key": key,
            **config({"virtual_key": slug, "cache": {"mode": "simple"}}),
        }
        statuses = [(await chat(client, headers)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


async def test_a_pinned_team_cannot_be_left_by_sending_another(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """A key whose metadata pins ``team: search`` is charged to that team's budget
    whatever metadata the client sends: another team, the value in another type or case,
    none at all."""
    limits = {
        "metadata": [
            {
                "name": "search",
                "match": {"team": "search"},
                "usage_limits": {"type": "tokens", "credit_limit": 1},
            }
        ]
    }
    gw = gateway(tmp_path, fake, limits=limits)
    async with in_process(gw) as client:
        _, key = await make_key(client, defaults={"metadata": {"team": "search"}})
        slug = await make_vk(client, fake, "shared")
        headers = {"x-portkey-api-key": key, "x-portkey-virtual-key": slug}
        assert (await chat(client, headers)).status_code == 200
        await gw.settled()
        for sent in ({"team": "ads"}, {"team": None}, {"Team": "x"}, None):
            extra = {"x-portkey-metadata": json.dumps(sent)} if sent is not None else {}
            refused = await chat(client, {**headers, **extra})
            assert refused.status_code == 412, (sent, refused.text)
            assert "metadata budget 'search'" in refused.json()["error"]["message"]
        # a value that is no scalar is refused before any budget is looked at
        nested = {**headers, "x-portkey-metadata": json.dumps({"team": ["ads"]})}
        refused = await chat(client, nested)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_metadata"
        assert len(fake.requests) == 1


async def test_distinct_metadata_values_cost_no_memory(tmp_path: Path, fake: FakeUpstream) -> None:
    """Metadata budgets are the server file's policies, not one counter per value: a
    client sending thousands of distinct values adds no state to the limits backend."""
    limits = {
        "metadata": [
            {
                "match": {"team": "search"},
                "rate_limits": [{"type": "requests", "unit": "rpm", "value": 10_000}],
            }
        ]
    }
    gw = gateway(tmp_path, fake, limits=limits)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "shared")
        for index in range(300):
            metadata = {"team": f"team-{index}", f"k{index}": "v" * 100}
            headers = {"x-portkey-virtual-key": slug, "x-portkey-metadata": json.dumps(metadata)}
            assert (await chat(client, headers)).status_code == 200
        backend: Any = gw.spend.backend
        assert not backend._buckets and not backend._accounts


async def test_a_concurrent_burst_gets_exactly_the_rate_limit_through(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """Forty requests at once, all in flight together (the upstream holds them), against a
    limit of 5 per hour: five reach the provider, the rest are refused with 429."""
    gate = threading.Event()
    fake.script("/v1/chat/completions", *[Reply(gate=gate) for _ in range(40)])
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        _, key = await make_key(
            client, rate_limits=[{"type": "requests", "unit": "rph", "value": 5}]
        )
        slug = await make_vk(client, fake, "shared")
        headers = {"x-portkey-api-key": key, "x-portkey-virtual-key": slug}
        calls = [asyncio.ensure_future(chat(client, headers)) for _ in range(40)]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, fake.wait_for, lambda: len(fake.requests) >= 5)
        gate.set()
        statuses = sorted(answer.status_code for answer in await asyncio.gather(*calls))
        assert statuses == [200] * 5 + [429] * 35
        assert len(fake.requests) == 5


ODD_USAGE: list[tuple[Any, int]] = [
    ({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": -50}, 7),
    ({"prompt_tokens": 3, "completion_tokens": 4}, 7),
    ({"prompt_tokens": -3, "completion_tokens": 4, "total_tokens": "7"}, 4),
    ({"prompt_tokens": 3.5, "completion_tokens": True}, 0),
    ({"input_tokens": 3, "output_tokens": 4}, 7),
    ("seven", 0),
    ([7], 0),
    (None, 0),
    ({"total_tokens": 2**62}, 2**62),
]


@pytest.mark.parametrize(("usage", "tokens"), ODD_USAGE)
def test_odd_usage_is_read_as_tokens_never_below_zero(usage: Any, tokens: int) -> None:
    assert total_tokens(usage if isinstance(usage, dict) else None) == tokens


@pytest.mark.parametrize(("usage", "tokens"), ODD_USAGE[:-1])
async def test_odd_usage_from_the_provider_never_refunds_a_budget_or_fails(
    tmp_path: Path, fake: FakeUpstream, usage: Any, tokens: int
) -> None:
    """A provider's usage that is negative, partial, of the wrong type, or not an object
    charges what can be read of it (never a negative amount; an estimate when nothing can),
    and the client gets its answer; for a cost budget as for a token budget."""
    reply = {
        "id": "chatcmpl-odd",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
        "usage": usage,
    }
    fake.script("/v1/chat/completions", Reply(json=reply), Reply(json=reply))
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        counted = await make_vk(client, fake, "tokens", usage_limits={"type": "tokens"})
        priced = await make_vk(client, fake, "cost", usage_limits={"type": "cost"})
        for slug in (counted, priced):
            answer = await chat(client, {"x-portkey-virtual-key": slug})
            assert answer.status_code == 200
        charged = await used(gw, vk_subject(gw, counted))
        # usage that counts no token is estimated from the sizes, as an answer without any
        assert charged == tokens if tokens else charged > 0
        assert await used(gw, vk_subject(gw, priced)) >= 0


async def test_usage_in_a_chunk_before_the_last_is_still_charged(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """A stream whose usage arrives before its last content chunk (as some providers send
    it) is charged that usage, not nothing."""
    chunk = {"object": "chat.completion.chunk", "model": "gpt-4o-mini"}
    events: list[bytes | dict[str, Any]] = [
        {**chunk, "choices": [{"index": 0, "delta": {"content": "a"}}]},
        {**chunk, "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 2}},
        {**chunk, "choices": [{"index": 0, "delta": {"content": "b"}}], "usage": None},
        {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    fake.script("/v1/chat/completions", Reply(stream=events))
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "early", usage_limits={"type": "tokens"})
        answer = await chat(client, {"x-portkey-virtual-key": slug}, stream=True)
        assert answer.status_code == 200
        assert b'"content":"b"' in answer.content
        assert await used(gw, vk_subject(gw, slug)) == 42


@pytest.mark.parametrize(
    ("path", "body", "tokens"),
    [
        ("/v1/completions", {"prompt": "a b c d", "stream": True}, 4 + 5),
        ("/v1/completions", {"prompt": ["a b", "c d"], "stream": True}, 4 + 6),
        ("/v1/chat/completions", {"stream": True, "n": 3}, HELLO_TOKENS),
        (
            "/v1/chat/completions",
            {"stream": True, "stream_options": {"include_usage": False, "extra": 1}},
            HELLO_TOKENS,
        ),
        ("/v1/messages", {"max_tokens": 10}, HELLO_TOKENS),
        ("/v1/messages", {"max_tokens": 10, "stream": True}, HELLO_TOKENS),
        ("/v1/embeddings", {"input": "a b c d"}, 4),
    ],
)
async def test_every_route_is_charged_its_reported_usage(
    tmp_path: Path, fake: FakeUpstream, path: str, body: dict[str, Any], tokens: int
) -> None:
    """Streams through the legacy completions route, several choices, a client asking for
    no usage (with odd extra options), the Anthropic Messages route, embeddings: each is
    charged exactly the usage the provider reported (none is estimated)."""
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "routes", usage_limits={"type": "tokens"})
        payload = {"model": "gpt-4o-mini", **body}
        if "prompt" not in body and "input" not in body:
            payload["messages"] = MESSAGES
        answer = await client.post(path, headers={"x-portkey-virtual-key": slug}, json=payload)
        assert answer.status_code == 200, answer.text
        assert await used(gw, vk_subject(gw, slug)) == tokens


async def test_count_tokens_is_admitted_and_charged_nothing(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """``/v1/messages/count_tokens`` costs nothing at the provider: it counts against a
    requests limit (a spent one refuses it) but charges no tokens, whatever it counted."""
    fake.script("/v1/messages/count_tokens", Reply(json={"input_tokens": 5000}))
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(
            client,
            fake,
            "claude",
            provider="anthropic",
            usage_limits={"type": "tokens"},
            rate_limits=[{"type": "requests", "unit": "rph", "value": 1}],
        )
        headers = {"x-portkey-virtual-key": slug}
        path = "/v1/messages/count_tokens"
        counted = await chat(client, headers, path=path, model="claude-3-5-haiku-latest")
        assert counted.status_code == 200, counted.text
        assert counted.json() == {"input_tokens": 5000}
        assert await used(gw, vk_subject(gw, slug)) == 0
        again = await chat(client, headers, path=path, model="claude-3-5-haiku-latest")
        assert again.status_code == 429


async def test_an_api_keys_alert_and_refusal_name_it_without_any_secret(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    """The alert webhook and the 412 a spent API key gets name the key (its name and id),
    never the key itself, the provider key it used or the virtual key's credential."""
    limits = {"alert_webhook": f"{fake.host_url}/hooks/budget"}
    fake.script("/hooks/budget", Reply(json={"ok": True}), Reply(json={"ok": True}))
    gw = gateway(tmp_path, fake, limits=limits)
    async with in_process(gw) as client:
        key_id, key = await make_key(
            client, usage_limits={"type": "tokens", "credit_limit": 1, "alert_threshold": 1}
        )
        slug = await make_vk(client, fake, "shared")
        headers = {"x-portkey-api-key": key, "x-portkey-virtual-key": slug}
        assert (await chat(client, headers)).status_code == 200
        await gw.settled()
        refused = await chat(client, headers)
        assert refused.status_code == 412
        await gw.spend.alerts.aclose()
    hooks = [r for r in fake.requests if r.path == "/hooks/budget"]
    events = sorted(r.json()["event"] for r in hooks)
    assert events == ["budget.alert_threshold", "budget.exhausted"]
    for hook in hooks:
        body = hook.body.decode()
        assert key not in body and OPENAI_KEY not in body
        sent = hook.json()
        assert sent["subject"] == f"api_key:{key_id}" and sent["owner"] == "API key 'app'"
    assert key not in refused.text


# -- answers without usage -----------------------------------------------------------------


async def test_an_upstream_that_never_reports_usage_is_not_free(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """An operator's virtual key for a self-hosted server that reports no usage: its
    complete answers are charged an estimate, as its streams are, so a token budget stops
    the same requests unstreamed too."""
    reply = {
        "id": "chatcmpl-none",
        "object": "chat.completion",
        "created": 1,
        "model": "local-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "x " * 500}}],
    }
    fake.script("/v1/chat/completions", Reply(json=reply))
    gw = gateway(tmp_path, fake)
    async with in_process(gw) as client:
        slug = await make_vk(client, fake, "local", usage_limits={"type": "tokens"})
        answer = await chat(client, {"x-portkey-virtual-key": slug}, model="local-model")
        assert answer.status_code == 200
        assert await used(gw, vk_subject(gw, slug)) > 0
