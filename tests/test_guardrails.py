"""Guardrails end to end: deny (446), warn (246), transforms, async hooks, streams, configs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import httpx
import orjson
import pytest

from portkey_mw import Gateway, LogEvent, LogSink, ServerSettings, hookimpl
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.plugin import PluginManager
from tests.conftest import in_process
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}


class ListSink(LogSink):
    name = "guardrail-test-sink"

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    async def write(self, events: Sequence[LogEvent]) -> None:
        self.events.extend(events)


class Slow(Guardrail):
    """Sleeps, then records that it ran: for async hooks and timeouts."""

    id: ClassVar[str] = "test.slow"
    ran: ClassVar[list[str]] = []

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        await asyncio.sleep(float(params.get("seconds", 0.2)))
        Slow.ran.append(subject.text)
        return GuardrailVerdict(bool(params.get("pass", False)), "slept")


class Broken(Guardrail):
    """Raises or answers garbage."""

    id: ClassVar[str] = "test.broken"

    async def check(self, subject: GuardrailInput, params: Mapping[str, Any]) -> GuardrailVerdict:
        if params.get("garbage"):
            return "yes"  # type: ignore[return-value]
        raise RuntimeError("the check's backend is down")


class ChecksPlugin:
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink

    @hookimpl
    def register_guardrails(self, register: Callable[[Guardrail], None]) -> None:
        register(Slow())
        register(Broken())

    @hookimpl
    def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
        register(self.sink)


def run(
    fake: FakeUpstream,
    requests: Callable[[httpx.AsyncClient, Callable[..., dict[str, str]]], Any],
    **server: Any,
) -> ListSink:
    """Serve in process with the fake upstream behind openai; ``requests`` gets a client
    and a function building the headers for a config of given hooks."""
    sink = ListSink()

    def headers(**hooks: Any) -> dict[str, str]:
        config = {"provider": "openai", "api_key": "sk-x", "custom_host": fake.base_url, **hooks}
        return {"x-portkey-config": orjson.dumps(config).decode()}

    async def scenario() -> None:
        manager = PluginManager()
        manager.load_entry_points()
        manager.register(ChecksPlugin(sink), "guardrail-test")
        gateway = Gateway(ServerSettings.from_mapping({**server, "mock": True}), plugins=manager)
        async with in_process(gateway) as client:
            await requests(client, headers)

    asyncio.run(scenario())
    return sink


DENY_SECRET = {"default.contains": {"operator": "none", "words": ["secret"]}, "deny": True}


def test_a_failed_deny_hook_answers_446_and_the_provider_is_never_called(
    fake: FakeUpstream,
) -> None:
    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": "tell me the secret"}]}
        reply = await client.post(
            "/v1/chat/completions", json=body, headers=headers(input_guardrails=[DENY_SECRET])
        )
        assert reply.status_code == 446
        payload = reply.json()
        assert payload["error"]["type"] == "hooks_failed"
        hook = payload["hook_results"]["before_request_hooks"][0]
        assert hook["verdict"] is False and hook["deny"] is True
        assert hook["checks"][0]["id"] == "default.contains"
        assert hook["checks"][0]["data"]["foundWords"] == ["secret"]
        assert payload["hook_results"]["after_request_hooks"] == []
        ok = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(input_guardrails=[DENY_SECRET])
        )
        assert ok.status_code == 200
        assert ok.json()["hook_results"]["before_request_hooks"][0]["verdict"] is True

    sink = run(fake, requests)
    assert len(fake.requests) == 1  # only the clean request reached the provider
    assert sink.events[0].status == 446
    assert sink.events[0].extra["hook_results"]["before_request_hooks"][0]["verdict"] is False


def test_a_failed_warn_hook_turns_200_into_246_and_keeps_the_body(fake: FakeUpstream) -> None:
    warn = {"default.wordCount": {"maxWords": 1}}  # no deny: a warning

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(output_guardrails=[warn])
        )
        assert reply.status_code == 246
        body = reply.json()
        assert body["choices"][0]["message"]["content"] == "echo: hello there"
        after = body["hook_results"]["after_request_hooks"][0]
        assert after["verdict"] is False and after["deny"] is False

    run(fake, requests)


def test_an_output_deny_hook_replaces_the_answer_with_446(fake: FakeUpstream) -> None:
    deny_echo = {"default.regexMatch": {"rule": "^echo", "not": True}, "deny": True}

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(output_guardrails=[deny_echo])
        )
        assert reply.status_code == 446
        assert "choices" not in reply.json()
        assert reply.json()["hook_results"]["after_request_hooks"][0]["deny"] is True

    run(fake, requests)
    assert len(fake.requests) == 1


def test_transforms_rewrite_the_request_and_the_response(fake: FakeUpstream) -> None:
    redact_in = {"default.pii": {"redact": True}}
    redact_out = {"default.regexReplace": {"rule": "echo", "redactText": "ECHO"}}

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": "mail jane@example.com"}]}
        reply = await client.post(
            "/v1/chat/completions",
            json=body,
            headers=headers(input_guardrails=[redact_in], output_guardrails=[redact_out]),
        )
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "ECHO: mail <EMAIL_ADDRESS>"
        assert reply.json()["hook_results"]["before_request_hooks"][0]["transformed"] is True

    run(fake, requests)
    sent = fake.requests[0].json()
    assert sent["messages"][-1]["content"] == "mail <EMAIL_ADDRESS>"  # the provider saw it redacted


def test_sequential_checks_feed_their_rewrites_to_the_next(fake: FakeUpstream) -> None:
    hook = {
        "id": "chain",
        "type": "guardrail",
        "sequential": True,
        "checks": [
            {"id": "default.regexReplace", "parameters": {"rule": "hello", "redactText": "bye"}},
            {"id": "default.contains", "parameters": {"operator": "none", "words": ["hello"]}},
        ],
        "deny": True,
    }

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(before_request_hooks=[hook])
        )
        assert reply.status_code == 200  # the second check saw "bye there"

    run(fake, requests)
    assert fake.requests[0].json()["messages"][-1]["content"] == "bye there"


def test_async_hooks_run_without_delaying_the_response_and_are_logged(fake: FakeUpstream) -> None:
    from tests.conftest import ThreadedServer

    Slow.ran.clear()
    slow = {"test.slow": {"seconds": 1.0}, "async": True, "deny": True}
    config = {"provider": "openai", "api_key": "sk-x", "custom_host": fake.base_url}
    sink = ListSink()
    manager = PluginManager()
    manager.load_entry_points()
    manager.register(ChecksPlugin(sink), "guardrail-test")
    gateway = Gateway(ServerSettings(mock=True), plugins=manager)
    headers = {"x-portkey-config": orjson.dumps({**config, "input_guardrails": [slow]}).decode()}
    # Over a real socket: the client has its answer while the hook still runs.
    with ThreadedServer(gateway) as server:
        started = time.monotonic()
        reply = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=headers)
        took = time.monotonic() - started
        assert reply.status_code == 200  # an async deny hook cannot deny
        assert reply.json()["hook_results"]["before_request_hooks"] == []
        assert took < 1.0
        assert Slow.ran == []  # still sleeping
        deadline = time.monotonic() + 10
        while not sink.events:
            assert time.monotonic() < deadline, "the request was never logged"
            time.sleep(0.05)
    assert Slow.ran == ["hello there"]  # it really ran
    logged = sink.events[0].extra["hook_results"]["async_hooks"]
    assert logged[0]["async"] is True and logged[0]["verdict"] is False


def test_errored_checks_pass_unless_fail_on_error(fake: FakeUpstream) -> None:
    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        for params in ({}, {"garbage": True}):
            hook = {"test.broken": params, "deny": True}
            reply = await client.post(
                "/v1/chat/completions", json=CHAT, headers=headers(input_guardrails=[hook])
            )
            assert reply.status_code == 200
            check = reply.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
            assert check["error"]["name"] in ("RuntimeError", "InvalidVerdict")
        strict = {"test.broken": {}, "deny": True, "fail_on_error": True}
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(input_guardrails=[strict])
        )
        assert reply.status_code == 446
        slow = {"test.slow": {"seconds": 2, "pass": True}, "deny": True, "timeout": 100}
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(input_guardrails=[slow])
        )
        check = reply.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
        assert check["error"]["name"] == "TimeoutError"

    run(fake, requests)


def test_a_streamed_answer_is_stopped_by_an_output_guardrail(fake: FakeUpstream) -> None:
    stop_word = {"default.contains": {"operator": "none", "words": ["there"]}, "deny": True}

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {**CHAT, "stream": True}
        async with client.stream(
            "POST",
            "/v1/chat/completions",
            json=body,
            headers=headers(output_guardrails=[stop_word]),
        ) as reply:
            assert reply.status_code == 200
            text = (await reply.aread()).decode()
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        error = orjson.loads(events[-1])
        assert error["error"]["type"] == "hooks_failed"
        assert "[DONE]" not in events
        content = "".join(
            orjson.loads(e)["choices"][0]["delta"].get("content") or ""
            for e in events[:-1]
            if orjson.loads(e).get("choices")
        )
        assert "there" not in content  # stopped before the word reached the client
        clean = {"default.contains": {"operator": "none", "words": ["zebra"]}, "deny": True}
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=headers(output_guardrails=[clean])
        ) as reply:
            assert (await reply.aread()).decode().rstrip().endswith("data: [DONE]")

    run(fake, requests)


def test_named_guardrails_are_referenced_by_id(fake: FakeUpstream) -> None:
    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": "my key is sk-proj-" + "a" * 30}]}
        reply = await client.post(
            "/v1/chat/completions", json=body, headers=headers(input_guardrails=["no-secrets"])
        )
        assert reply.status_code == 446
        assert reply.json()["hook_results"]["before_request_hooks"][0]["id"] == "no-secrets"

    run(
        fake,
        requests,
        guardrails={"no-secrets": {"default.pii": {"categories": ["API_KEY"]}, "deny": True}},
    )
    assert fake.requests == []


@pytest.mark.parametrize(
    ("hooks", "message"),
    [
        ({"input_guardrails": [{"default.regexMatch": {"rule": "(oops"}}]}, "regexMatch"),
        (
            {"output_guardrails": [{"default.jsonSchema": {"schema": {"type": 5}}}]},
            "not a valid JSON schema",
        ),
        ({"input_guardrails": [{"nope.check": {}}]}, "unknown check 'nope.check'"),
        ({"input_guardrails": ["undefined-id"]}, "no guardrail 'undefined-id'"),
        ({"before_request_hooks": [{"id": "h", "checks": []}]}, "no (enabled) checks"),
        ({"input_guardrails": [{"default.contains": {"words": ["x"]}, "deny": "yes"}]}, "deny"),
        (
            {"output_guardrails": [{"default.requiredMetadataKeys": {"metadataKeys": ["a"]}}]},
            "runs only before",
        ),
    ],
)
def test_bad_guardrail_configs_are_a_400_naming_the_check(
    fake: FakeUpstream, hooks: dict[str, Any], message: str
) -> None:
    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        reply = await client.post("/v1/chat/completions", json=CHAT, headers=headers(**hooks))
        assert reply.status_code == 400
        assert message in reply.json()["error"]["message"]

    run(fake, requests)
    assert fake.requests == []


def test_input_guardrails_run_before_the_cache(fake: FakeUpstream) -> None:
    deny = {"default.contains": {"operator": "none", "words": ["blocked"]}, "deny": True}

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {**CHAT, "messages": [{"role": "user", "content": "blocked words"}]}
        cached = headers(cache={"mode": "simple"})
        assert (
            await client.post("/v1/chat/completions", json=body, headers=cached)
        ).status_code == 200
        guarded = headers(cache={"mode": "simple"}, input_guardrails=[deny])
        reply = await client.post("/v1/chat/completions", json=body, headers=guarded)
        assert reply.status_code == 446  # the cached answer is not served past the guardrail

    run(fake, requests)


def test_per_target_guardrails_run_before_their_target(fake: FakeUpstream) -> None:
    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        config = {
            "strategy": {"mode": "fallback", "on_status_codes": [446]},
            "targets": [
                {
                    "provider": "openai",
                    "api_key": "sk-a",
                    "custom_host": fake.base_url,
                    "input_guardrails": [{"default.wordCount": {"maxWords": 1}, "deny": True}],
                },
                {"provider": "openai", "api_key": "sk-b", "custom_host": fake.base_url},
            ],
        }
        reply = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={"x-portkey-config": orjson.dumps(config).decode()},
        )
        assert reply.status_code == 200
        assert reply.headers["x-portkey-last-used-option-index"] == "config.targets[1]"

    run(fake, requests)
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer sk-b"]


def test_guardrail_totals_per_check(fake: FakeUpstream) -> None:
    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        hooks = headers(input_guardrails=[DENY_SECRET])
        await client.post("/v1/chat/completions", json=CHAT, headers=hooks)
        secret = {**CHAT, "messages": [{"role": "user", "content": "secret"}]}
        await client.post("/v1/chat/completions", json=secret, headers=hooks)
        stats = (await client.get("/v1/admin/guardrails", headers=ADMIN)).json()["checks"][
            "default.contains"
        ]
        assert (stats["passed"], stats["failed"], stats["errored"]) == (1, 1, 0)
        assert stats["mean_ms"] is not None

    run(fake, requests)


def test_feedback_names_the_checks_that_passed_failed_and_errored(fake: FakeUpstream) -> None:
    hook = {
        "id": "graded",
        "type": "guardrail",
        "on_fail": {"feedback": {"value": -1, "weight": 0.5, "metadata": {"team": "a"}}},
        "on_success": {"feedback": {"value": 1, "weight": 1}},
        "checks": [
            {"id": "default.contains", "parameters": {"words": ["hello"], "operator": "any"}},
            {"id": "default.wordCount", "parameters": {"maxWords": 1}},
            {"id": "test.broken", "parameters": {}},
        ],
    }

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers=headers(before_request_hooks=[hook])
        )
        assert reply.status_code == 246
        feedback = reply.json()["hook_results"]["before_request_hooks"][0]["feedback"]
        assert feedback["value"] == -1 and feedback["weight"] == 0.5
        assert feedback["metadata"] == {
            "team": "a",
            "successfulChecks": "default.contains",
            "failedChecks": "default.wordCount",
            "erroredChecks": "test.broken",
        }

    run(fake, requests)


def test_a_check_on_the_complete_text_stops_a_stream_before_done(fake: FakeUpstream) -> None:
    too_long = {"default.wordCount": {"maxWords": 2}, "deny": True}  # judged on the whole text

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {**CHAT, "stream": True}
        async with client.stream(
            "POST", "/v1/chat/completions", json=body, headers=headers(output_guardrails=[too_long])
        ) as reply:
            text = (await reply.aread()).decode()
        events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
        assert "[DONE]" not in events
        last = orjson.loads(events[-1])
        assert last["error"]["type"] == "hooks_failed"
        assert last["hook_results"]["after_request_hooks"][0]["checks"][0]["data"]["wordCount"] == 3

    run(fake, requests)


def test_cached_answers_do_not_keep_old_verdicts(fake: FakeUpstream) -> None:
    passes = {"default.wordCount": {"maxWords": 50}}

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        guarded = headers(cache={"mode": "simple"}, output_guardrails=[passes])
        first = await client.post("/v1/chat/completions", json=CHAT, headers=guarded)
        assert first.status_code == 200 and "hook_results" in first.json()
        # The same route without guardrails shares the cache entry: it has no verdicts.
        plain = headers(cache={"mode": "simple"})
        hit = await client.post("/v1/chat/completions", json=CHAT, headers=plain)
        assert hit.headers["x-portkey-cache-status"] == "HIT"
        assert "hook_results" not in hit.json()

    run(fake, requests)


def test_anthropic_messages_keep_hook_results(fake: FakeUpstream) -> None:
    deny = {"default.contains": {"operator": "none", "words": ["secret"]}, "deny": True}
    stop = {"default.contains": {"operator": "none", "words": ["there"]}, "deny": True}

    async def requests(client: httpx.AsyncClient, headers: Any) -> None:
        body = {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "secret"}]}
        reply = await client.post(
            "/v1/messages", json=body, headers=headers(input_guardrails=[deny])
        )
        assert reply.status_code == 446
        assert reply.json()["type"] == "error"
        assert reply.json()["hook_results"]["before_request_hooks"][0]["deny"] is True
        streamed = {
            **body,
            "stream": True,
            "messages": [{"role": "user", "content": "hello there"}],
        }
        async with client.stream(
            "POST", "/v1/messages", json=streamed, headers=headers(output_guardrails=[stop])
        ) as reply:
            text = (await reply.aread()).decode()
        error = orjson.loads(text.rstrip().splitlines()[-1][len("data: ") :])
        assert error["type"] == "error" and error["hook_results"]["after_request_hooks"]

    run(fake, requests)
