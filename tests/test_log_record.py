"""The log record (``LogEvent.to_dict()``), field by field, after real requests through the
gateway to the fake upstream: a plain answer, a stream, a cache hit, a fallback, a circuit
refusal, a guardrail denial, a total failure; bodies kept or not (server, key, header),
redacted, cut; the request id header; the tracing and metadata headers' checks."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import genai_prices
import orjson
import pytest
from genai_prices.types import Usage

from portkey_mw import Gateway, LogEvent, LogSink, hookimpl
from portkey_mw.context import Attempt
from portkey_mw.logbodies import TRUNCATED, BodyPolicy
from portkey_mw.plugin import PluginManager
from tests import planted
from tests.conftest import in_process, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN, OPENAI_KEY

#: every key a record has, whatever the request (docs/observability.md lists them)
RECORD_KEYS = {
    "request_id",
    "trace_id",
    "span_id",
    "parent_span_id",
    "span_name",
    "started_at",
    "ended_at",
    "endpoint",
    "method",
    "path",
    "status",
    "success",
    "stream",
    "stream_complete",
    "provider",
    "model",
    "served_model",
    "target",
    "attempts",
    "retry_count",
    "fallback",
    "cache_status",
    "hook_results",
    "error_type",
    "error_code",
    "error_message",
    "latency_ms",
    "upstream_ms",
    "ttfb_ms",
    "usage",
    "tokens",
    "cost_usd",
    "cost_saved_usd",
    "api_key_id",
    "virtual_key",
    "config_id",
    "metadata",
    "prompt_id",
    "prompt_version",
    "prompt_label",
    "request_body",
    "response_body",
    "custom",
}
HEX32 = re.compile(r"[0-9a-f]{32}")
MESSAGES = [{"role": "user", "content": "hello there"}]
USAGE = {
    "prompt_tokens": 1000,
    "completion_tokens": 100,
    "total_tokens": 1100,
    "prompt_tokens_details": {"cached_tokens": 600},
    "completion_tokens_details": {"reasoning_tokens": 40},
}
SERVED = "gpt-4o-2024-08-06"
REPLY = {
    "id": "chatcmpl-r",
    "object": "chat.completion",
    "created": 1,
    "model": SERVED,
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": USAGE,
}


@pytest.fixture
def keys_optional(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTKEY_MW_AUTH", "optional")  # (the suite turns API keys off)


def price(usage: Usage, model: str = SERVED) -> float:
    return float(genai_prices.calc_price(usage, model_ref=model, provider_id="openai").total_price)


ONE_PRICE = Usage(input_tokens=1000, cache_read_tokens=600, output_tokens=100)


class ListSink(LogSink):
    """Keeps every event; ``records`` are their ``to_dict()``, built as a sink builds them."""

    name = "record-list"

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    async def write(self, events: Sequence[LogEvent]) -> None:
        self.events.extend(events)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [event.to_dict() for event in self.events]


class SinkPlugin:
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink

    @hookimpl
    def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
        register(self.sink)


def gateway(tmp_path: Path, fake: FakeUpstream, sink: ListSink, **extra: Any) -> Gateway:
    manager = PluginManager()
    manager.load_entry_points()
    manager.register(SinkPlugin(sink), "record-sink")
    return Gateway(config_file=server_file(tmp_path, fake, **extra), plugins=manager)


async def settle(gw: Gateway) -> None:
    await gw.settled()
    await gw.logs.flush()


def chat(**body: Any) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": MESSAGES, **body}


def openai(fake: FakeUpstream, **more: Any) -> dict[str, Any]:
    return {"provider": "openai", "api_key": "sk-x", "custom_host": fake.base_url, **more}


def config(value: dict[str, Any]) -> dict[str, str]:
    return {"x-portkey-config": json.dumps(value)}


def only(sink: ListSink) -> dict[str, Any]:
    (record,) = sink.records
    assert set(record) == RECORD_KEYS, set(record) ^ RECORD_KEYS
    orjson.dumps(record)  # JSON-ready, as every sink writes it
    return record


# -- one request at a time -----------------------------------------------------------------


async def test_a_plain_answer(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/chat/completions", Reply(json=REPLY))
    headers = {
        **config(openai(fake)),
        "x-portkey-metadata": '{"user": "u-1", "tier": 2, "beta": true, "none": null}',
        "x-portkey-trace-id": "trace-1",
        "x-portkey-span-id": "span-1",
        "x-portkey-parent-span-id": "parent-1",
        "x-portkey-span-name": "answer the user",
    }
    async with in_process(gw) as client:
        reply = await client.post("/v1/chat/completions", json=chat(), headers=headers)
        assert reply.status_code == 200
        await settle(gw)
    record = only(sink)
    assert HEX32.fullmatch(record["request_id"])
    assert reply.headers["x-portkey-request-id"] == record["request_id"]
    assert record["trace_id"] == "trace-1" and reply.headers["x-portkey-trace-id"] == "trace-1"
    assert (record["span_id"], record["parent_span_id"], record["span_name"]) == (
        "span-1",
        "parent-1",
        "answer the user",
    )
    assert record["endpoint"] == "chat_completions" and record["method"] == "POST"
    assert record["path"] == "/v1/chat/completions"
    assert record["status"] == 200 and record["success"] is True
    assert record["stream"] is False and record["stream_complete"] is None
    assert record["provider"] == "openai" and record["target"] == "config"
    assert record["model"] == "gpt-4o" and record["served_model"] == SERVED
    (attempt,) = record["attempts"]
    assert attempt["target"] == "config" and attempt["status"] == 200
    assert record["retry_count"] == 0 and record["fallback"] is False
    assert record["cache_status"] is None and record["hook_results"] is None
    assert record["error_type"] is record["error_code"] is record["error_message"] is None
    assert record["ended_at"] == pytest.approx(
        record["started_at"] + record["latency_ms"] / 1000, abs=1e-6
    )
    assert 0 < record["upstream_ms"] <= record["latency_ms"]
    assert record["upstream_ms"] == pytest.approx(attempt["latency_ms"], abs=0.01)
    assert record["ttfb_ms"] is None
    assert record["usage"] == USAGE
    assert record["tokens"] == {
        "input": 1000,
        "output": 100,
        "cache_read": 600,
        "cache_write": 0,
        "reasoning": 40,
        "total": 1100,
    }
    assert record["cost_usd"] == pytest.approx(price(ONE_PRICE), rel=1e-6)
    assert record["cost_saved_usd"] is None
    assert record["metadata"] == {"user": "u-1", "tier": 2, "beta": True, "none": None}
    # no key, no virtual key, an inline config (no id), no prompt, no bodies
    for key in (
        "api_key_id",
        "virtual_key",
        "config_id",
        "prompt_id",
        "prompt_version",
        "prompt_label",
    ):
        assert record[key] is None, key
    assert record["request_body"] is None and record["response_body"] is None
    assert record["custom"] is False


async def test_a_stream(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    base = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": SERVED}
    chunks: list[bytes | dict[str, Any]] = [
        {**base, "choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {**base, "choices": [], "usage": USAGE},
    ]
    fake.script("/v1/chat/completions", Reply(stream=chunks, chunk_delay=0.02))
    async with in_process(gw) as client:
        body = chat(stream=True, stream_options={"include_usage": True})
        reply = await client.post(
            "/v1/chat/completions",
            json=body,
            headers={"x-portkey-config": "openai-fake", "authorization": "Bearer sk-x"},
        )
        assert reply.status_code == 200 and reply.text.rstrip().endswith("[DONE]")
        await settle(gw)
    record = only(sink)
    assert record["stream"] is True and record["stream_complete"] is True
    assert record["served_model"] == SERVED and record["tokens"]["total"] == 1100
    assert record["config_id"] == "openai-fake"  # a server-file config, by its name
    assert 0 < record["ttfb_ms"] <= record["latency_ms"]
    (attempt,) = record["attempts"]
    # the upstream's time runs to the stream's end, not only to its first event
    assert record["upstream_ms"] > attempt["latency_ms"] + 30
    assert record["cost_usd"] == pytest.approx(price(ONE_PRICE), rel=1e-6)


async def test_a_cache_hit_costs_nothing_and_saves_the_price(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/chat/completions", Reply(json=REPLY))
    headers = {**config(openai(fake, cache={"mode": "simple"})), "x-portkey-cache-namespace": "rec"}
    async with in_process(gw) as client:
        for status in ("MISS", "HIT"):
            reply = await client.post("/v1/chat/completions", json=chat(), headers=headers)
            assert reply.headers["x-portkey-cache-status"] == status
            await settle(gw)
    miss, hit = sink.records
    assert miss["cache_status"] == "MISS" and hit["cache_status"] == "HIT"
    assert miss["cost_usd"] == pytest.approx(price(ONE_PRICE), rel=1e-6)
    assert miss["cost_saved_usd"] is None
    assert hit["cost_usd"] == 0.0
    assert hit["cost_saved_usd"] == pytest.approx(price(ONE_PRICE), rel=1e-6)
    assert hit["attempts"] == [] and hit["upstream_ms"] is None  # no provider called
    assert hit["tokens"]["total"] == 1100 and hit["served_model"] == SERVED
    assert len(fake.requests) == 1


async def test_a_fallback(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/chat/completions", Reply(status=500), Reply(json=REPLY))
    fallback = {"strategy": {"mode": "fallback"}, "targets": [openai(fake), openai(fake)]}
    async with in_process(gw) as client:
        reply = await client.post("/v1/chat/completions", json=chat(), headers=config(fallback))
        assert reply.status_code == 200
        await settle(gw)
    record = only(sink)
    assert record["status"] == 200 and record["success"] is True
    assert record["fallback"] is True and record["target"] == "config.targets[1]"
    first, second = record["attempts"]
    assert (first["target"], first["status"]) == ("config.targets[0]", 500)
    assert (second["target"], second["status"]) == ("config.targets[1]", 200)
    assert record["upstream_ms"] == pytest.approx(
        first["latency_ms"] + second["latency_ms"], abs=0.01
    )
    assert record["error_type"] is None


async def test_a_circuit_refusal_is_an_attempt(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    breaker = {"circuit_breaker": {"enabled": True, "failure_threshold": 1, "cooldown": 60}}
    gw = gateway(tmp_path, fake, sink, routing=breaker)
    fake.script("/v1/chat/completions", Reply(status=500), Reply(status=500))
    fallback = {
        "strategy": {"mode": "fallback"},
        "targets": [openai(fake), {"provider": "mock"}],
    }
    async with in_process(gw) as client:
        for _ in range(2):
            reply = await client.post(
                "/v1/chat/completions", json=chat(model="mock-gpt"), headers=config(fallback)
            )
            assert reply.status_code == 200
        await settle(gw)
    opened, refused = sink.records
    assert [a["status"] for a in opened["attempts"]] == [500, 200]
    skipped, answered = refused["attempts"]
    assert skipped["error_code"] == "circuit_open" and skipped["target"] == "config.targets[0]"
    assert answered["provider"] == "mock"
    assert refused["fallback"] is True and refused["provider"] == "mock"


async def test_a_guardrail_denial(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    deny = {"default.contains": {"operator": "none", "words": ["secret"]}, "deny": True}
    body = chat(messages=[{"role": "user", "content": "tell me the secret"}])
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/chat/completions", json=body, headers=config(openai(fake, input_guardrails=[deny]))
        )
        assert reply.status_code == 446
        await settle(gw)
    record = only(sink)
    assert record["status"] == 446 and record["success"] is False
    assert record["error_type"] == "hooks_failed"
    hook = record["hook_results"]["before_request_hooks"][0]
    assert hook["verdict"] is False and hook["checks"][0]["id"] == "default.contains"
    assert record["attempts"] == [] and record["upstream_ms"] is None
    assert record["tokens"] == dict.fromkeys(record["tokens"], 0) and record["cost_usd"] is None
    assert len(fake.requests) == 0


async def test_a_failure_of_every_target(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/chat/completions", Reply(status=503), Reply(status=503))
    fallback = {"strategy": {"mode": "fallback"}, "targets": [openai(fake), openai(fake)]}
    async with in_process(gw) as client:
        reply = await client.post("/v1/chat/completions", json=chat(), headers=config(fallback))
        assert reply.status_code == 503
        # an error the gateway raises itself: its type and code are in the record
        refused = await client.post(
            "/v1/chat/completions",
            json=chat(),
            headers={"x-portkey-provider": "openai", "x-portkey-custom-host": "ftp://x"},
        )
        assert refused.status_code == 400
        await settle(gw)
    failed, invalid = sink.records
    assert failed["status"] == 503 and failed["success"] is False
    assert [a["status"] for a in failed["attempts"]] == [503, 503]
    assert failed["fallback"] is True and failed["provider"] == "openai"
    assert failed["upstream_ms"] > 0
    assert invalid["error_type"] == "invalid_request_error"
    assert invalid["error_code"] == "invalid_custom_host"
    assert invalid["error_message"] and invalid["attempts"] == []
    assert invalid["request_id"] == refused.headers["x-portkey-request-id"]
    assert invalid["request_id"] != failed["request_id"]


async def test_api_key_virtual_key_and_saved_config_ids(
    tmp_path: Path, fake: FakeUpstream, keys_optional: None
) -> None:
    sink = ListSink()
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    gw = gateway(tmp_path, fake, sink, store=store)
    fake.script("/v1/chat/completions", Reply(json=REPLY), Reply(json=REPLY))
    async with in_process(gw) as client:
        made = await client.post(
            "/v1/virtual-keys",
            headers=ADMIN,
            json={
                "name": "v",
                "provider": "openai",
                "key": OPENAI_KEY,
                "custom_host": fake.base_url,
            },
        )
        slug = made.json()["slug"]
        saved = await client.post(
            "/v1/configs", headers=ADMIN, json={"name": "c", "config": {"virtual_key": slug}}
        )
        assert saved.status_code == 200, saved.text
        config_slug = saved.json()["slug"]
        key = await client.post(
            "/v1/api-keys/organisation/service",
            headers=ADMIN,
            json={"name": "app", "scopes": ["completions.write"]},
        )
        key_id, secret = key.json()["id"], planted.plant(key.json()["key"])
        as_key = {"x-portkey-api-key": secret}
        by_config = {**as_key, "x-portkey-config": config_slug}
        assert (
            await client.post("/v1/chat/completions", json=chat(), headers=by_config)
        ).status_code == 200
        by_vk = {**as_key, "x-portkey-virtual-key": slug}
        assert (
            await client.post("/v1/chat/completions", json=chat(), headers=by_vk)
        ).status_code == 200
        await settle(gw)
    via_config, via_vk = sink.records
    assert via_config["api_key_id"] == key_id and via_vk["api_key_id"] == key_id
    assert via_config["virtual_key"] == slug and via_vk["virtual_key"] == slug
    assert via_config["config_id"] == config_slug and via_vk["config_id"] is None
    assert secret not in orjson.dumps(sink.records).decode()


async def test_the_prompt_a_request_used(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()

    class PromptPlugin:
        @hookimpl
        def on_request(self, ctx: Any) -> None:
            ctx.state["portkey_mw.prompt"] = {"id": "pp-greeting", "version": 3, "label": "beta"}

    gw = gateway(tmp_path, fake, sink)
    gw.plugins.register(PromptPlugin(), "prompt-test")
    gw.refresh_plugins()
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json=chat(model="mock-gpt"),
            headers={"x-portkey-provider": "mock"},
        )
        assert reply.status_code == 200
        await settle(gw)
    record = only(sink)
    assert (record["prompt_id"], record["prompt_version"]) == ("pp-greeting", 3)
    assert record["prompt_label"] == "beta"


async def test_records_held_when_plugins_are_refreshed_still_arrive(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """refresh_plugins builds a new log dispatcher; the old one still holds records, and
    shutdown drains it too."""

    class SlowSink(ListSink):
        async def write(self, events: Sequence[LogEvent]) -> None:
            await asyncio.sleep(0.2)  # still writing when the gateway shuts down
            await super().write(events)

    sink = SlowSink()
    gw = gateway(tmp_path, fake, sink)
    async with in_process(gw) as client:
        for _ in range(3):
            reply = await client.post(
                "/v1/chat/completions",
                json=chat(model="mock-gpt"),
                headers={"x-portkey-provider": "mock"},
            )
            assert reply.status_code == 200
        await gw.settled()  # the records are in the old dispatcher's lane, not yet written
        gw.refresh_plugins()
    assert len(sink.records) == 3


# -- bodies ----------------------------------------------------------------------------------


async def test_bodies_on_by_the_server_off_by_the_debug_header(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink, logging={"bodies": True})
    fake.script("/v1/chat/completions", Reply(json=REPLY), Reply(json=REPLY))
    headers = config(openai(fake))
    async with in_process(gw) as client:
        await client.post("/v1/chat/completions", json=chat(), headers=headers)
        off = {**headers, "x-portkey-debug": "false"}
        await client.post("/v1/chat/completions", json=chat(), headers=off)
        stream = await client.post(
            "/v1/chat/completions",
            json=chat(model="mock-gpt", stream=True),
            headers={"x-portkey-provider": "mock"},
        )
        await client.post("/v1/chat/completions", content=b"{", headers=headers)
        await settle(gw)
    kept, dropped, streamed, bad = sink.records
    assert kept["request_body"] == chat()
    assert kept["response_body"] == REPLY
    assert dropped["request_body"] is None and dropped["response_body"] is None
    # a stream: the SSE text as the client got it
    assert streamed["response_body"] == stream.text
    assert streamed["response_body"].rstrip().endswith("data: [DONE]")
    # a body that is not JSON is kept as text; the error the client got, as JSON
    assert bad["request_body"] == "{"
    assert bad["response_body"]["error"]["code"] == "invalid_json"


async def test_bodies_on_by_the_api_key(
    tmp_path: Path, fake: FakeUpstream, keys_optional: None
) -> None:
    sink = ListSink()
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    gw = gateway(tmp_path, fake, sink, store=store)  # the server keeps none
    async with in_process(gw) as client:
        made = await client.post(
            "/v1/api-keys/organisation/service",
            headers=ADMIN,
            json={
                "name": "debug",
                "scopes": ["completions.write"],
                "defaults": {"log_bodies": True},
            },
        )
        assert made.status_code == 200, made.text
        key_id, secret = made.json()["id"], planted.plant(made.json()["key"])
        shown = await client.get(f"/v1/api-keys/{key_id}", headers=ADMIN)
        assert shown.json()["defaults"]["log_bodies"] is True
        wrong = await client.post(
            "/v1/api-keys/organisation/service",
            headers=ADMIN,
            json={"name": "x", "defaults": {"log_bodies": "yes"}},
        )
        assert wrong.status_code == 400 and "log_bodies" in wrong.text
        body = chat(model="mock-gpt")
        mock = {"x-portkey-provider": "mock"}
        await client.post(
            "/v1/chat/completions", json=body, headers={**mock, "x-portkey-api-key": secret}
        )
        await client.post("/v1/chat/completions", json=body, headers=mock)
        await settle(gw)
    with_key, without = sink.records
    assert (
        with_key["request_body"] == body
        and with_key["response_body"]["object"] == "chat.completion"
    )
    assert without["request_body"] is None


async def test_redaction_masks_an_email_in_the_stored_bodies(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink, logging={"bodies": True, "redact_pii": True})
    said = "mail me at jane.doe@example.com please"
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json=chat(messages=[{"role": "user", "content": said}]),
            headers={"x-portkey-config": "openai-fake", "authorization": "Bearer sk-x"},
        )
        assert "jane.doe@example.com" in reply.text  # the client's answer is untouched
        await settle(gw)
    record = only(sink)
    assert "jane.doe@example.com" not in orjson.dumps(record).decode()
    assert record["request_body"]["messages"][0]["content"] == "mail me at <EMAIL_ADDRESS> please"
    assert "<EMAIL_ADDRESS>" in record["response_body"]["choices"][0]["message"]["content"]


async def test_a_body_over_the_cap_is_cut(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink, logging={"bodies": True, "max_body_bytes": 200})
    long = chat(model="mock-gpt", messages=[{"role": "user", "content": "é" * 400}])
    async with in_process(gw) as client:
        await client.post("/v1/chat/completions", json=long, headers={"x-portkey-provider": "mock"})
        await settle(gw)
    record = only(sink)
    cut = record["request_body"]
    assert isinstance(cut, str) and cut.endswith(TRUNCATED)
    kept = cut.removesuffix(TRUNCATED)
    assert len(kept.encode()) <= 200 and orjson.dumps(long).decode().startswith(kept)


def test_rendering_bodies() -> None:
    policy = BodyPolicy(keep=True, max_bytes=64, redactor=lambda text: text.replace("x", "*"))
    assert policy.render(None) is None and policy.render(b"") is None
    assert policy.render(b'{"a": ["x", {"b": "x"}], "x": 1}') == {"a": ["*", {"b": "*"}], "x": 1}
    assert policy.render(b"plain x") == "plain *"
    deep = b"[" * 100 + b"]" * 100  # deeper than any JSON the gateway writes out: text
    assert BodyPolicy(max_bytes=1000).render(deep) == deep.decode()


# -- the headers the record takes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-portkey-metadata", '{"user": {"id": 1}}'),
        ("x-portkey-metadata", '{"tags": ["a", "b"]}'),
        ("x-portkey-metadata", '["not", "an", "object"]'),
        ("x-portkey-span-id", "s" * 65),
        ("x-portkey-parent-span-id", "p" * 65),
        ("x-portkey-span-name", "n" * 257),
        ("x-portkey-span-name", "tab\there"),
        ("x-portkey-trace-id", "t" * 129),
    ],
)
async def test_bad_metadata_and_tracing_headers_are_400s(
    tmp_path: Path, fake: FakeUpstream, header: str, value: str
) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/chat/completions",
            json=chat(model="mock-gpt"),
            headers={"x-portkey-provider": "mock", header: value},
        )
        await settle(gw)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == header and header in error["message"]
    assert error["type"] == "invalid_request_error"
    assert reply.headers["x-portkey-request-id"] == only(sink)["request_id"]


async def test_every_response_carries_a_request_id(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    async with in_process(gw) as client:
        replies = [
            await client.get("/health"),
            await client.get("/nowhere"),  # (/v1/… would be a pass-through)
            await client.get("/v1/chat/completions"),
            await client.post(
                "/v1/chat/completions", content=b"{", headers={"x-portkey-provider": "mock"}
            ),
        ]
        await settle(gw)
    ids = [reply.headers["x-portkey-request-id"] for reply in replies]
    assert all(HEX32.fullmatch(i) for i in ids) and len(set(ids)) == len(ids)
    # without a trace id, the request's id starts its trace
    assert replies[3].headers["x-portkey-trace-id"] == ids[3]
    assert only(sink)["span_id"] == ids[3][:16]


def test_a_record_built_outside_the_pipeline_has_every_key() -> None:
    event = LogEvent(
        trace_id="t",
        started_at=1.0,
        endpoint="chat_completions",
        method="POST",
        path="/v1/chat/completions",
        status=502,
        latency_ms=5.0,
        attempts=[
            Attempt(target="config", provider="openai", status=503, error_code="circuit_open")
        ],
    )
    record = event.to_dict()
    assert set(record) == RECORD_KEYS
    assert record["success"] is False and record["upstream_ms"] is None  # never called
    assert record["tokens"] == dict.fromkeys(
        ("input", "output", "cache_read", "cache_write", "reasoning", "total"), 0
    )
