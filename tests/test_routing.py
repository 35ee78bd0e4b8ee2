"""Routing and resilience, through the official openai SDK against scripted fake upstreams.

One fake server plays several providers: ``/a/v1/...``, ``/b/v1/...`` and ``/c/v1/...`` are
three upstreams (see ``tests/fake_upstream.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.conftest import RunningGateway, free_port, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN

MESSAGES = [{"role": "user", "content": "route me"}]
CHAT = "/v1/chat/completions"
IDLE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("routing"),
        upstream_server,
        routing={
            "stream_idle_timeout": IDLE_TIMEOUT,
            "retry_base_delay": 0.01,
            "circuit_breaker": {"enabled": False},
        },
    )
    with mounted_gateway(path) as running:
        yield running


def upstream(fake: FakeUpstream, name: str, **extra: Any) -> dict[str, Any]:
    """A target for the virtual upstream ``name`` on the fake server."""
    return {"provider": "openai", "custom_host": f"{fake.host_url}/{name}/v1", **extra}


def sdk(gateway: RunningGateway, config: dict[str, Any], **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-test",
        max_retries=0,
        timeout=20,
        default_headers={"x-portkey-config": orjson.dumps(config).decode(), **headers},
    )


def fallback(*targets: dict[str, Any], **strategy: Any) -> dict[str, Any]:
    return {"strategy": {"mode": "fallback", **strategy}, "targets": list(targets)}


def paths(fake: FakeUpstream) -> list[str]:
    return [request.path.split("/v1/")[0] for request in fake.requests]


def chat(client: openai.OpenAI) -> Any:
    return client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)


def stream_text(client: openai.OpenAI) -> str:
    chunks = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# -- fallback ----------------------------------------------------------------------------------


def test_5xx_then_success_on_the_fallback(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=503))
    raw = chat(sdk(gateway, fallback(upstream(fake, "a"), upstream(fake, "b"))))
    assert raw.parse().choices[0].message.content == "echo: route me"
    assert paths(fake) == ["/a", "/b"]
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert raw.headers["x-portkey-retry-attempt-count"] == "0"


def test_connection_reset_falls_back(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(drop="before_headers"))
    raw = chat(sdk(gateway, fallback(upstream(fake, "a"), upstream(fake, "b"))))
    assert raw.parse().choices[0].message.content == "echo: route me"
    assert paths(fake) == ["/a", "/b"]


def test_slow_first_byte_past_the_timeout_falls_back(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(delay=5))
    config = fallback(upstream(fake, "a", request_timeout=300), upstream(fake, "b"))
    started = time.monotonic()
    raw = chat(sdk(gateway, config))
    assert raw.parse().choices[0].message.content == "echo: route me"
    assert time.monotonic() - started < 4  # did not wait for the slow upstream
    assert paths(fake) == ["/a", "/b"]


def test_fallback_only_on_its_own_status_codes(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=503))
    config = fallback(upstream(fake, "a"), upstream(fake, "b"), on_status_codes=[429])
    with pytest.raises(openai.InternalServerError) as info:
        chat(sdk(gateway, config))
    assert info.value.status_code == 503
    assert paths(fake) == ["/a"]


def test_4xx_does_not_fall_back_by_default(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=400))
    with pytest.raises(openai.BadRequestError):
        chat(sdk(gateway, fallback(upstream(fake, "a"), upstream(fake, "b"))))
    assert paths(fake) == ["/a"]


def test_all_targets_failing(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=503))
    fake.script(f"/c{CHAT}", Reply(status=429, headers={"retry-after": "7"}))
    closed = {"provider": "openai", "custom_host": f"http://127.0.0.1:{free_port()}/v1"}
    config = fallback(upstream(fake, "a"), closed, upstream(fake, "c"))
    with pytest.raises(openai.RateLimitError) as info:
        chat(sdk(gateway, config))
    # The most meaningful status wins (a 429 says when to come back), not merely the last.
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "7"
    body = info.value.body
    assert isinstance(body, dict)
    attempts = [(a["target"], a["status"]) for a in body["attempts"]]
    assert attempts == [
        ("config.targets[0]", 503),
        ("config.targets[1]", 502),
        ("config.targets[2]", 429),
    ]
    assert body["attempts"][1]["error_type"] == "api_connection_error"


def test_all_targets_unreachable_lists_attempts(gateway: RunningGateway) -> None:
    hosts = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]
    config = fallback(*({"provider": "openai", "custom_host": h} for h in hosts))
    with pytest.raises(openai.APIStatusError) as info:
        chat(sdk(gateway, config))
    assert info.value.status_code == 502
    assert isinstance(info.value.body, dict)
    assert len(info.value.body["attempts"]) == 2


def test_nested_fallback_inside_loadbalance(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=500))
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {**fallback(upstream(fake, "a"), upstream(fake, "b")), "weight": 1},
            {**upstream(fake, "c"), "weight": 0},
        ],
    }
    raw = chat(sdk(gateway, config))
    assert raw.parse().choices[0].message.content == "echo: route me"
    assert paths(fake) == ["/a", "/b"]
    assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[0].targets[1]"


def test_loadbalance_follows_weights(gateway: RunningGateway, fake: FakeUpstream) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {**upstream(fake, "a"), "weight": 0.75},
            {**upstream(fake, "b"), "weight": 0.25},
            {**upstream(fake, "c"), "weight": 0},
        ],
    }
    client = sdk(gateway, config)
    for _ in range(200):
        chat(client)
    counts = {name: paths(fake).count(name) for name in ("/a", "/b", "/c")}
    assert counts["/c"] == 0
    assert 120 <= counts["/a"] <= 180, counts  # 150 expected; far outside chance otherwise


def test_conditional_routing(gateway: RunningGateway, fake: FakeUpstream) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [
                {"query": {"metadata.tier": {"$gte": 2}}, "then": "premium"},
                {
                    "query": {
                        "$or": [
                            {"params.model": {"$regex": "^o1"}},
                            {"metadata.team": {"$in": ["research", "ml"]}},
                        ]
                    },
                    "then": "reasoning",
                },
            ],
            "default": "basic",
        },
        "targets": [
            {**upstream(fake, "a"), "name": "premium"},
            {**upstream(fake, "b"), "name": "reasoning"},
            {**upstream(fake, "c"), "name": "basic"},
        ],
    }
    for metadata in ({"tier": 3}, {"tier": 1, "team": "ml"}, {"tier": 1}):
        client = sdk(gateway, config, **{"x-portkey-metadata": orjson.dumps(metadata).decode()})
        chat(client)
    assert paths(fake) == ["/a", "/b", "/c"]


def test_conditional_without_match_or_default(gateway: RunningGateway, fake: FakeUpstream) -> None:
    config = {
        "strategy": {
            "mode": "conditional",
            "conditions": [{"query": {"metadata.tier": {"$eq": "gold"}}, "then": "gold"}],
        },
        "targets": [{**upstream(fake, "a"), "name": "gold"}],
    }
    with pytest.raises(openai.BadRequestError) as info:
        chat(sdk(gateway, config))
    assert "no condition matched" in str(info.value.body)
    assert fake.requests == []


# -- retries -------------------------------------------------------------------------------------


def test_429_retry_after_is_honoured(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=429, headers={"retry-after": "1"}))
    client = sdk(gateway, upstream(fake, "a", retry={"attempts": 2}))
    started = time.monotonic()
    raw = chat(client)
    waited = time.monotonic() - started
    assert raw.parse().choices[0].message.content == "echo: route me"
    assert raw.headers["x-portkey-retry-attempt-count"] == "1"
    assert len(fake.requests) == 2
    assert 1.0 <= waited < 2.5, waited


def test_retry_after_is_capped(tmp_path: Path, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=503, headers={"retry-after-ms": "60000"}))
    path = server_file(
        tmp_path, fake, routing={"max_retry_after": 0.2, "circuit_breaker": {"enabled": False}}
    )
    with mounted_gateway(path) as running:
        started = time.monotonic()
        chat(sdk(running, upstream(fake, "a", retry={"attempts": 1})))
        assert time.monotonic() - started < 5


def test_400_is_never_retried(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=400), Reply(status=400))
    config = upstream(fake, "a", retry={"attempts": 3, "on_status_codes": [400, 500]})
    with pytest.raises(openai.BadRequestError):
        chat(sdk(gateway, config))
    assert len(fake.requests) == 1


def test_connection_reset_is_retried(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(drop="before_headers"))
    raw = chat(sdk(gateway, upstream(fake, "a", retry={"attempts": 1})))
    assert raw.parse().choices[0].message.content == "echo: route me"
    assert len(fake.requests) == 2


def test_attempt_budget_caps_nested_retries(tmp_path: Path, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", *[Reply(status=503) for _ in range(20)])
    fake.script(f"/b{CHAT}", *[Reply(status=503) for _ in range(20)])
    path = server_file(
        tmp_path,
        fake,
        routing={
            "max_attempts": 4,
            "retry_base_delay": 0.01,
            "circuit_breaker": {"enabled": False},
        },
    )
    config = fallback(
        upstream(fake, "a", retry={"attempts": 5}), upstream(fake, "b", retry={"attempts": 5})
    )
    with mounted_gateway(path) as running, pytest.raises(openai.InternalServerError):
        chat(sdk(running, config))
    assert len(fake.requests) == 4


def test_client_disconnect_cancels_pending_retries(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(status=429, headers={"retry-after": "2"}))
    config = upstream(fake, "a", retry={"attempts": 3})
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            gateway.base_url + "/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            headers={
                "x-portkey-config": orjson.dumps(config).decode(),
                "authorization": "Bearer k",
            },
            timeout=httpx.Timeout(10, read=0.5),
        )
    # Had the backoff sleep survived the client, the retry would arrive at ~2 s.
    time.sleep(3)
    assert len(fake.requests) == 1


# -- streams -------------------------------------------------------------------------------------


def test_stream_failing_before_first_byte_falls_back(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(stream=[], done=False))  # headers, then nothing
    text = stream_text(sdk(gateway, fallback(upstream(fake, "a"), upstream(fake, "b"))))
    assert text == "echo: route me"
    assert paths(fake) == ["/a", "/b"]


def test_malformed_first_chunk_falls_back(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(stream=[b"data: {not json\n\n"]))
    text = stream_text(sdk(gateway, fallback(upstream(fake, "a"), upstream(fake, "b"))))
    assert text == "echo: route me"
    assert paths(fake) == ["/a", "/b"]


def chunk(content: str, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }


def read_until_error(client: openai.OpenAI) -> tuple[str, openai.APIError]:
    text = ""
    # The context manager closes the response: the SDK leaves it open when it raises.
    with (
        client,
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        ) as stream,
    ):
        try:
            for part in stream:
                text += part.choices[0].delta.content or "" if part.choices else ""
        except openai.APIError as error:
            return text, error
    raise AssertionError(f"the stream ended cleanly after {text!r}")


def test_malformed_chunk_mid_stream_ends_with_an_error_event(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(
        f"/a{CHAT}", Reply(stream=[chunk("hello "), b"data: {oops\n\n", chunk("x", "stop")])
    )
    text, error = read_until_error(sdk(gateway, upstream(fake, "a")))
    assert text == "hello "
    assert "not JSON" in error.message


def test_truncated_stream_ends_with_an_error_event(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(stream=[chunk("hello "), chunk("wor")], done=False))
    text, error = read_until_error(sdk(gateway, upstream(fake, "a")))
    assert text == "hello wor"
    assert "ended without a finish_reason" in error.message


def test_stalled_stream_is_cut(gateway: RunningGateway, fake: FakeUpstream) -> None:
    gate = threading.Event()  # the upstream sends one event, then goes silent
    fake.script(f"/a{CHAT}", Reply(gate=gate))
    try:
        started = time.monotonic()
        _, error = read_until_error(sdk(gateway, upstream(fake, "a")))
        assert "stalled" in error.message
        assert time.monotonic() - started < IDLE_TIMEOUT + 5
        # The gateway let go of the stalled upstream.
        fake.wait_for(lambda: fake.disconnects == 1, timeout=10)
    finally:
        gate.set()


def test_finish_reason_without_done_is_complete(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(stream=[chunk("all "), chunk("here", "stop")], done=False))
    assert stream_text(sdk(gateway, upstream(fake, "a"))) == "all here"


# -- circuit breaking ----------------------------------------------------------------------------


def test_circuit_opens_and_loadbalance_spreads_over_healthy_targets(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", *[Reply(status=500) for _ in range(50)])
    path = server_file(
        tmp_path,
        fake,
        routing={"circuit_breaker": {"enabled": True, "failure_threshold": 2, "cooldown": 60}},
    )
    group = fallback(upstream(fake, "a"), upstream(fake, "b"))
    balanced = {
        "strategy": {"mode": "loadbalance"},
        "targets": [{**upstream(fake, "a"), "weight": 9}, {**upstream(fake, "b"), "weight": 1}],
    }
    with mounted_gateway(path) as running:
        for _ in range(4):
            chat(sdk(running, group))
        # a failed twice, then its circuit opened: later requests went straight to b.
        assert paths(fake) == ["/a", "/b", "/a", "/b", "/b", "/b"]
        circuits = httpx.get(running.base_url + "/admin/circuits", headers=ADMIN).json()["circuits"]
        state = {c["base_url"]: c for c in circuits}
        assert state[f"{fake.host_url}/a/v1"]["state"] == "open"
        assert state[f"{fake.host_url}/a/v1"]["times_opened"] == 1
        assert f"{fake.host_url}/b/v1" not in state  # never failed: nothing to track
        fake.reset()
        for _ in range(20):
            chat(sdk(running, balanced))
        assert paths(fake) == ["/b"] * 20  # weight 9 on a, but a is open


def test_circuit_open_single_target_fails_fast(tmp_path: Path, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", *[Reply(status=502) for _ in range(5)])
    path = server_file(
        tmp_path,
        fake,
        routing={"circuit_breaker": {"enabled": True, "failure_threshold": 2, "cooldown": 60}},
    )
    with mounted_gateway(path) as running:
        client = sdk(running, upstream(fake, "a"))
        for _ in range(2):
            with pytest.raises(openai.APIStatusError):
                chat(client)
        with pytest.raises(openai.InternalServerError) as info:
            chat(client)
        assert info.value.status_code == 503
        assert isinstance(info.value.body, dict) and info.value.body["code"] == "circuit_open"
        assert len(fake.requests) == 2


def test_streams_failing_mid_way_count_against_the_circuit(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    truncated = Reply(stream=[chunk("partial ")], done=False)
    fake.script(f"/a{CHAT}", truncated, truncated)
    path = server_file(
        tmp_path,
        fake,
        routing={"circuit_breaker": {"enabled": True, "failure_threshold": 2, "cooldown": 60}},
    )
    with mounted_gateway(path) as running:
        for _ in range(2):
            _, error = read_until_error(sdk(running, upstream(fake, "a")))
            assert "ended without a finish_reason" in error.message
        with pytest.raises(openai.InternalServerError) as info:
            chat(sdk(running, upstream(fake, "a")))
        assert isinstance(info.value.body, dict) and info.value.body["code"] == "circuit_open"


def breaker_gateway(tmp_path: Path, fake: FakeUpstream) -> Any:
    path = server_file(
        tmp_path,
        fake,
        routing={"circuit_breaker": {"enabled": True, "failure_threshold": 2, "cooldown": 60}},
    )
    return mounted_gateway(path)


def test_header_hosts_have_their_own_circuits(tmp_path: Path, fake: FakeUpstream) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    plain = {"provider": "openai"}
    with breaker_gateway(tmp_path, fake) as running:
        for _ in range(2):
            with pytest.raises((openai.APIConnectionError, openai.APIStatusError)):
                chat(sdk(running, plain, **{"x-portkey-custom-host": dead}))
        # The dead host's circuit is open; the provider's other hosts are not affected.
        raw = chat(sdk(running, plain, **{"x-portkey-custom-host": f"{fake.host_url}/a/v1"}))
        assert raw.parse().choices[0].message.content == "echo: route me"


def test_open_circuit_falls_back_whatever_the_status_list(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(status=500), Reply(status=500))
    with breaker_gateway(tmp_path, fake) as running:
        for _ in range(2):
            with pytest.raises(openai.InternalServerError):
                chat(sdk(running, upstream(fake, "a")))
        config = fallback(upstream(fake, "a"), upstream(fake, "b"), on_status_codes=[429])
        raw = chat(sdk(running, config))
        assert raw.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert paths(fake) == ["/a", "/a", "/b"]


def test_headers_describe_the_failure_returned(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(f"/a{CHAT}", Reply(status=429))
    fake.script(f"/b{CHAT}", Reply(status=503))
    with pytest.raises(openai.RateLimitError) as info:
        chat(sdk(gateway, fallback(upstream(fake, "a"), upstream(fake, "b"))))
    assert info.value.response.headers["x-portkey-last-used-option-index"] == "config.targets[0]"


def test_config_problem_outranks_a_provider_outage(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", Reply(status=503))
    no_key = {"provider": "groq", "custom_host": f"{fake.host_url}/b/v1"}
    with pytest.raises(openai.AuthenticationError) as info:
        chat(sdk(gateway, fallback(upstream(fake, "a", api_key="sk-a"), no_key)))
    assert "no API key for provider 'groq'" in info.value.message


def test_stream_whose_first_data_event_is_late_falls_back(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """Headers and a keep-alive came at once; the first real event would come too late."""
    fake.script(
        f"/a{CHAT}",
        Reply(stream=[b": keep-alive\n\n", chunk("too late", "stop")], chunk_delay=5),
    )
    config = fallback(upstream(fake, "a", request_timeout=500), upstream(fake, "b"))
    started = time.monotonic()
    assert stream_text(sdk(gateway, config)) == "echo: route me"
    assert time.monotonic() - started < 4
    assert paths(fake) == ["/a", "/b"]


def test_circuit_opening_during_retries_returns_the_real_failure(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    fake.script(f"/a{CHAT}", *[Reply(status=500) for _ in range(5)])
    with breaker_gateway(tmp_path, fake) as running:
        with pytest.raises(openai.InternalServerError) as info:
            chat(sdk(running, upstream(fake, "a", retry={"attempts": 4})))
        assert info.value.status_code == 500  # the provider's answer, not circuit_open
        assert info.value.response.headers["x-portkey-retry-attempt-count"] == "1"
        assert len(fake.requests) == 2


def test_model_list_spans_every_provider_of_the_config(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/claude/v1/models", Reply(json={"data": [{"id": "claude-x", "type": "model"}]}))
    config = fallback(
        upstream(fake, "a", api_key="sk-a"),  # several provider ids: each target has its key
        {"provider": "anthropic", "custom_host": f"{fake.host_url}/claude/v1", "api_key": "k"},
        {"provider": "perplexity-ai", "api_key": "k"},  # serves no model list: not asked
        {"provider": "groq", "custom_host": f"http://127.0.0.1:{free_port()}/v1"},  # down
    )
    models = sdk(gateway, config).models.list()
    assert {(m.id, getattr(m, "provider", None)) for m in models} == {
        ("fake-gpt", "openai"),
        ("fake-embed", "openai"),
        ("claude-x", "anthropic"),
    }
    assert sorted(paths(fake)) == ["/a", "/claude"]
