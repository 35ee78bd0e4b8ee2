"""Attacks found by an outside review of the trust boundary, each now refused (through
``portkey-mw serve`` unless the attack needs a hand-made transport).

* a client's own short timeout opened the circuit every tenant shares;
* a server-file provider's ``option_headers`` token followed ``x-portkey-custom-host``;
* credentials echoed in a stream's error events and in passed-through headers;
* slow custom hosts a client named took the connections the operator's upstreams need;
* one config fanned out into thousands of validUrls probes and webhook calls;
* a custom host with a query string let a client pick any path on a loopback service;
* webhook ``headers`` could set ``Host`` and ``Content-Length``;
* a webhook's deeply nested answer, a deep upstream answer under guardrails, and
  ``override_params`` of the wrong type were 500s;
* failing service accounts left their locks behind.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.detector import Detector
from tests.fake_upstream import FakeUpstream, Reply

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
OPTION_TOKEN = planted.plant("planted-option-header-token-7Yh3Kq")


@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    with Detector() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("redteam"),
        upstream_server,
        providers={
            "tokened": {
                "base_url": upstream_server.base_url,
                "auth": "none",
                "option_headers": {"upstream_token": "X-Upstream-Token"},
            }
        },
        configs={
            "tokened": {"provider": "tokened", "upstream_token": OPTION_TOKEN},
            "bound": {
                "provider": "openai",
                "api_key": planted.OPENAI_KEY,
                "custom_host": upstream_server.base_url,
            },
        },
        outbound={"allow": ["127.0.0.1"], "max_fetches_per_request": 5},
    )
    with standalone_gateway(path) as running:
        yield running


def post(gateway: RunningGateway, headers: dict[str, str], body: Any = None) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT if body is None else body,
        headers=headers,
        timeout=30,
    )


def inline(config: dict[str, Any]) -> dict[str, str]:
    return {"x-portkey-config": orjson.dumps(config).decode()}


def test_a_clients_timeout_does_not_open_the_shared_circuit(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    path = server_file(
        tmp_path,
        fake,
        routing={"circuit_breaker": {"enabled": True, "failure_threshold": 1, "cooldown": 60}},
        configs={"bound": {"provider": "openai", "api_key": "sk-op", "custom_host": fake.base_url}},
    )
    with standalone_gateway(path) as running:
        fake.script("/v1/chat/completions", Reply(delay=0.5))
        own = inline({"provider": "openai", "api_key": "sk-junk", "custom_host": fake.base_url})
        assert post(running, {**own, "x-portkey-request-timeout": "1"}).status_code == 408
        short = inline({**orjson.loads(own["x-portkey-config"]), "request_timeout": 1})
        fake.script("/v1/chat/completions", Reply(delay=0.5))
        assert post(running, short).status_code == 408
        # The same upstream, through the operator's config: its circuit is still closed.
        assert post(running, {"x-portkey-config": "bound"}).status_code == 200


def test_an_option_header_token_stays_with_its_host(
    gateway: RunningGateway, fake: FakeUpstream, detector: Detector
) -> None:
    steered = post(
        gateway, {"x-portkey-config": "tokened", "x-portkey-custom-host": f"{detector.url}/v1"}
    )
    assert (
        steered.status_code == 400 and steered.json()["error"]["code"] == "custom_host_not_allowed"
    )
    assert detector.hits == 0
    fake.script(
        "/v1/chat/completions",
        Reply(status=401, json={"error": {"message": f"bad token {OPTION_TOKEN}"}}),
    )
    echoed = post(gateway, {"x-portkey-config": "tokened"})
    assert echoed.status_code == 401 and OPTION_TOKEN not in echoed.text
    assert fake.requests[-1].headers["x-upstream-token"] == OPTION_TOKEN


@pytest.mark.parametrize(
    "events",
    [
        [{"error": {"message": f"Incorrect API key provided: Bearer {planted.OPENAI_KEY}"}}],
        [b"data: key=Bearer " + planted.OPENAI_KEY.encode() + b"\n\n"],
    ],
)
def test_a_stream_that_echoes_the_key_gets_it_masked(
    gateway: RunningGateway, fake: FakeUpstream, events: list[Any]
) -> None:
    fake.script("/v1/chat/completions", Reply(stream=events, done=False))
    reply = post(gateway, {"x-portkey-config": "bound"}, {**CHAT, "stream": True})
    assert reply.status_code == 502
    assert planted.OPENAI_KEY not in reply.text and "[redacted]" in reply.text


def test_a_stream_that_echoes_the_key_later_gets_it_masked(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    first = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    late = {"error": {"message": f"key {planted.OPENAI_KEY} revoked"}}
    fake.script("/v1/chat/completions", Reply(stream=[first, late], done=False))
    reply = post(gateway, {"x-portkey-config": "bound"}, {**CHAT, "stream": True})
    assert reply.status_code == 200  # the stream had started: it ends with an error event
    assert planted.OPENAI_KEY not in reply.text and "[redacted]" in reply.text


def test_passed_through_headers_do_not_echo_the_key(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/chat/completions", Reply(headers={"x-request-id": planted.OPENAI_KEY}))
    reply = post(gateway, {"x-portkey-config": "bound"})
    assert reply.status_code == 200
    assert reply.headers["x-request-id"] == "[redacted]"


def test_client_chosen_hosts_cannot_take_the_operators_pool(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    with FakeUpstream() as slow_a, FakeUpstream() as slow_b:
        path = server_file(
            tmp_path,
            fake,
            server={"max_connections": 4, "max_connections_per_host": 2, "connect_timeout": 2},
        )
        gate = threading.Event()
        with standalone_gateway(path) as running:
            held: list[threading.Thread] = []
            for slow in (slow_a, slow_b):
                for _ in range(2):
                    slow.script("/v1/chat/completions", Reply(gate=gate))
                    headers = {
                        "x-portkey-provider": "openai",
                        "authorization": "Bearer sk-attacker",
                        "x-portkey-custom-host": slow.base_url,
                    }
                    thread = threading.Thread(
                        target=post, args=(running, headers, {**CHAT, "stream": True})
                    )
                    thread.start()
                    held.append(thread)
            try:
                slow_a.wait_for(lambda: len(slow_a.requests) == 2)
                slow_b.wait_for(lambda: len(slow_b.requests) == 2)
                # Every connection the client-chosen hosts may have is taken ...
                started = time.monotonic()
                reply = post(
                    running,
                    {"x-portkey-config": "openai-fake", "authorization": "Bearer sk-tenant"},
                )
                # ... and the operator's upstream still answers at once.
                assert reply.status_code == 200, reply.text
                assert time.monotonic() - started < 1.5
            finally:
                gate.set()
                for thread in held:
                    thread.join(20)


def test_a_requests_checks_share_one_outbound_budget(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    urls = " ".join(f"{fake.host_url}/page/{i}" for i in range(10))
    hooks = [{"default.validUrls": {}} for _ in range(4)]
    config = {"provider": "openai", "custom_host": fake.base_url, "input_guardrails": hooks}
    reply = post(
        gateway,
        {**inline(config), "authorization": "Bearer sk-client"},
        {"model": "m", "messages": [{"role": "user", "content": urls}]},
    )
    assert reply.status_code == 246  # the URLs past the budget could not be vouched for
    probes = [r for r in fake.requests if r.path.startswith("/page/")]
    assert len(probes) == 5  # outbound.max_fetches_per_request, for all four checks


@pytest.mark.parametrize(
    "host", ["http://127.0.0.1:2375/containers/create?name=x&y=", "http://127.0.0.1:9/secret#"]
)
def test_a_client_custom_host_is_a_base_url(gateway: RunningGateway, host: str) -> None:
    key = {"authorization": "Bearer sk-client"}
    by_header = post(
        gateway, {"x-portkey-provider": "openai", "x-portkey-custom-host": host, **key}
    )
    in_config = post(gateway, {**inline({"provider": "openai", "custom_host": host}), **key})
    for reply in (by_header, in_config):
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["code"] == "invalid_custom_host"
        assert "without a query string or fragment" in reply.json()["error"]["message"]


def test_webhook_headers_cannot_readdress_the_call(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    hook = {
        "default.webhook": {
            "webhookURL": f"{fake.host_url}/hook",
            "headers": {"Host": "internal.example", "Content-Length": "5"},
        }
    }
    config = {"provider": "openai", "custom_host": fake.base_url, "input_guardrails": [hook]}
    reply = post(gateway, {**inline(config), "authorization": "Bearer k"})
    assert reply.status_code == 400 and "may not set content-length, host" in reply.text


def test_deep_answers_are_not_500s(gateway: RunningGateway, fake: FakeUpstream) -> None:
    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    deep_json = b'{"verdict": true, "data": ' + b"[" * 300 + b"1" + b"]" * 300 + b"}"
    fake.script("/hook", Reply(body=deep_json))
    hook = {"default.webhook": {"webhookURL": f"{fake.host_url}/hook"}}
    config = {"provider": "openai", "custom_host": fake.base_url, "input_guardrails": [hook]}
    reply = post(gateway, {**inline(config), "authorization": "Bearer k"})
    assert reply.status_code == 200, reply.text
    check = reply.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
    assert "deeper than 64" in check["error"]["message"]
    # A provider whose answer is that deep, under an output guardrail.
    deep_answer = b'{"choices": [], "x": ' + b"[" * 300 + b"1" + b"]" * 300 + b"}"
    fake.script("/v1/chat/completions", Reply(body=deep_answer))
    guarded = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "output_guardrails": [{"default.notNull": {}}],
    }
    answered = post(gateway, {**inline(guarded), "authorization": "Bearer k"})
    assert answered.status_code < 500, answered.text


def test_override_params_are_body_fields_like_any_other(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    config = {
        "provider": "anthropic",
        "api_key": "k",
        "custom_host": fake.base_url,
        "override_params": {"messages": 5},
    }
    reply = post(gateway, inline(config))
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "messages"


def test_failing_service_accounts_leave_nothing_behind() -> None:
    from portkey_mw_plugins.vertex_ai.auth import TokenSource

    from portkey_mw.errors import GatewayError
    from portkey_mw.transport import AiohttpTransport

    async def scenario() -> TokenSource:
        tokens, transport = TokenSource(), AiohttpTransport()
        try:
            for index in range(50):
                account = {
                    "type": "service_account",
                    "client_email": f"x{index}",
                    "token_uri": "https://oauth2.googleapis.com/token",
                }
                with pytest.raises(GatewayError):
                    await tokens.token(account, transport, from_client=True)
        finally:
            await transport.aclose()
        return tokens

    tokens = asyncio.run(scenario())
    assert tokens._locks == {} and len(tokens._credentials) == 0
