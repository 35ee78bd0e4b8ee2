"""``/v1/responses`` goes through the chat pipeline: log records name it, the cache and the
guardrails apply to translated requests, usage is read from native answers and streams;
Azure OpenAI serves it natively; the translation functions work on their own."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from portkey_mw import Gateway, LogEvent, LogSink, hookimpl
from portkey_mw.errors import UpstreamBadResponse
from portkey_mw.inbound.responses_translate import (
    ResponseStreamTranslator,
    chat_request,
    input_items,
    response_object,
)
from portkey_mw.plugin import PluginManager
from portkey_mw.streaming import TAIL_BYTES
from tests.conftest import in_process, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.planted import ADMIN_KEY, OPENAI_KEY
from tests.test_responses import NATIVE_RESPONSE, anthropic_text


class ListSink(LogSink):
    name = "responses-list"

    def __init__(self) -> None:
        self.events: list[LogEvent] = []

    async def write(self, events: Sequence[LogEvent]) -> None:
        self.events.extend(events)


class SinkPlugin:
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink

    @hookimpl
    def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
        register(self.sink)


def gateway(tmp_path: Path, fake: FakeUpstream, sink: ListSink) -> Gateway:
    manager = PluginManager()
    manager.load_entry_points()
    manager.register(SinkPlugin(sink), "responses-sink")
    path = server_file(tmp_path, fake, responses={"store": "memory"})
    return Gateway(config_file=path, plugins=manager)


def config(fake: FakeUpstream, provider: str = "anthropic", **more: Any) -> dict[str, str]:
    target = {"provider": provider, "api_key": "k", "custom_host": fake.base_url, **more}
    return {"x-portkey-config": orjson.dumps(target).decode()}


async def settle(gw: Gateway) -> None:
    await gw.settled()
    await gw.logs.flush()


async def test_log_records_name_the_responses_endpoint(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/messages", Reply(json=anthropic_text("hi")))
    fake.script("/v1/responses", Reply(json=NATIVE_RESPONSE))
    async with in_process(gw) as client:
        body = {"model": "claude-fake-1", "input": "hello"}
        translated = await client.post("/v1/responses", json=body, headers=config(fake))
        assert translated.status_code == 200, translated.text
        native = await client.post(
            "/v1/responses", json={**body, "model": "gpt-4.1"}, headers=config(fake, "openai")
        )
        assert native.status_code == 200, native.text
        await settle(gw)
    first, second = sink.events
    assert first.endpoint == second.endpoint == "responses"
    assert (first.provider, second.provider) == ("anthropic", "openai")
    assert first.tokens["input"] == 12 and first.tokens["output"] == 3
    assert second.tokens["input"] == 3 and second.tokens["output"] == 2


async def test_native_stream_usage_is_logged(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    small = {**NATIVE_RESPONSE, "output": []}
    completed = orjson.dumps(
        {"type": "response.completed", "sequence_number": 1, "response": small}
    )
    fake.script(
        "/v1/responses",
        Reply(stream=[b"event: response.completed\ndata: " + completed + b"\n\n"], done=False),
    )
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/responses",
            json={"model": "gpt-4.1", "input": "hi", "stream": True},
            headers=config(fake, "openai"),
        )
        assert reply.status_code == 200
        assert b"event: response.completed" in reply.content
        await settle(gw)
    (event,) = sink.events
    assert event.stream_complete is True
    assert event.tokens["total"] == 5 and not event.extra.get("usage_estimated")


async def test_native_stream_usage_is_logged_when_its_last_event_is_large(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    # response.completed carries the whole response: a long answer puts its usage far from
    # the stream's end, beyond the tail the log keeps.
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    text = "word " * 4000
    message = {**NATIVE_RESPONSE["output"][0], "content": [{"type": "output_text", "text": text}]}
    large = {**NATIVE_RESPONSE, "output": [message]}
    assert len(orjson.dumps(large)) > 4 * TAIL_BYTES
    completed = orjson.dumps(
        {"type": "response.completed", "sequence_number": 1, "response": large}
    )
    delta = orjson.dumps(
        {"type": "response.output_text.delta", "sequence_number": 0, "delta": text}
    )
    fake.script(
        "/v1/responses",
        Reply(
            stream=[
                b"event: response.output_text.delta\ndata: " + delta + b"\n\n",
                b"event: response.completed\ndata: " + completed + b"\n\n",
            ],
            done=False,
        ),
    )
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/responses",
            json={"model": "gpt-4.1", "input": "hi", "stream": True},
            headers=config(fake, "openai"),
        )
        assert reply.status_code == 200
        await settle(gw)
    (event,) = sink.events
    assert event.tokens["input"] == 3 and event.tokens["output"] == 2
    assert not event.extra.get("usage_estimated")


async def test_the_cache_serves_translated_requests(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/messages", Reply(json=anthropic_text("cached answer")))
    headers = config(fake, cache={"mode": "simple", "max_age": 60})
    body = {"model": "claude-fake-1", "input": "same question"}
    async with in_process(gw) as client:
        first = await client.post("/v1/responses", json=body, headers=headers)
        await gw.settled()
        second = await client.post("/v1/responses", json=body, headers=headers)
        assert second.headers["x-portkey-cache-status"] == "HIT"
        one, two = first.json(), second.json()
        assert one["output"][0]["content"][0]["text"] == "cached answer"
        assert two["output"][0]["content"] == one["output"][0]["content"]
        assert one["id"] != two["id"]  # a hit is a response of its own, stored on its own
        for made in (one, two):
            assert (await client.get(f"/v1/responses/{made['id']}")).status_code == 200
    assert len(fake.requests) == 1


async def test_input_guardrails_apply(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    deny = {"default.contains": {"operator": "none", "words": ["secret"]}, "deny": True}
    headers = config(fake, input_guardrails=[deny])
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/responses",
            json={"model": "claude-fake-1", "input": "tell me the secret"},
            headers=headers,
        )
        assert reply.status_code == 446, reply.text
        native = await client.post(
            "/v1/responses",
            json={"model": "gpt-4.1", "input": "tell me the secret"},
            headers=config(fake, "openai", input_guardrails=[deny]),
        )
        assert native.status_code == 446, native.text
    assert not fake.requests


async def test_azure_openai_serves_responses_natively(tmp_path: Path, fake: FakeUpstream) -> None:
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/openai/responses", Reply(json=NATIVE_RESPONSE))
    target = {
        "provider": "azure-openai",
        "api_key": "az",
        "custom_host": f"{fake.host_url}/openai",
        "deployment_id": "dep",
    }
    headers = {"x-portkey-config": orjson.dumps(target).decode()}
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/responses", json={"model": "my-deployment", "input": "hi"}, headers=headers
        )
        assert reply.status_code == 200, reply.text
    (seen,) = fake.requests
    assert seen.path == "/openai/responses"
    assert seen.query == "api-version=2025-04-01-preview"
    assert seen.headers["api-key"] == "az"
    assert seen.json() == {"model": "my-deployment", "input": "hi"}


async def test_a_mixed_route_is_translated_for_every_target(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """openai falling back to anthropic: both get chat completions (the gateway keeps state)."""
    sink = ListSink()
    gw = gateway(tmp_path, fake, sink)
    fake.script("/v1/chat/completions", Reply(status=503))
    fake.script("/v1/messages", Reply(json=anthropic_text("from claude")))
    plan = {
        "strategy": {"mode": "fallback"},
        "targets": [
            {"provider": "openai", "api_key": "o", "custom_host": fake.base_url},
            {"provider": "anthropic", "api_key": "a", "custom_host": fake.base_url},
        ],
    }
    async with in_process(gw) as client:
        reply = await client.post(
            "/v1/responses",
            json={"model": "m", "input": "hi"},
            headers={"x-portkey-config": orjson.dumps(plan).decode()},
        )
        assert reply.status_code == 200, reply.text
        assert reply.json()["output"][0]["content"][0]["text"] == "from claude"
    assert [r.path for r in fake.requests] == ["/v1/chat/completions", "/v1/messages"]


# -- the translation on its own ---------------------------------------------------------------


def test_request_translation_golden() -> None:
    body = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Look"}]},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"}
                ],
            },
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
            {"type": "function_call", "call_id": "c2", "name": "f", "arguments": '{"a":1}'},
            {"type": "function_call_output", "call_id": "c1", "output": "one"},
            {"type": "function_call_output", "call_id": "c2", "output": "two"},
            {"type": "reasoning", "id": "rs_1", "summary": []},
        ],
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_object"}},
        "max_output_tokens": 9,
        "top_p": 0.5,
        "parallel_tool_calls": False,
        "stream": True,
    }
    items = input_items(body)
    assert all(item["id"] for item in items)
    assert chat_request(body, items) == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Look"}]},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": "two"},
        ],
        "max_completion_tokens": 9,
        "top_p": 0.5,
        "parallel_tool_calls": False,
        "response_format": {"type": "json_object"},
        "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
        ],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_response_translation_golden() -> None:
    completion = {
        "id": "chatcmpl-1",
        "model": "served-model",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Sure.",
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 2},
        },
    }
    response = response_object(completion, {"model": "m", "input": "x"}, "resp_1")
    assert response["id"] == "resp_1" and response["object"] == "response"
    assert response["model"] == "served-model"
    assert response["status"] == "incomplete"
    assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    message, call = response["output"]
    assert message["content"] == [{"type": "output_text", "text": "Sure.", "annotations": []}]
    assert (call["type"], call["call_id"], call["name"]) == ("function_call", "call_1", "f")
    assert response["usage"] == {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 4},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 2},
        "total_tokens": 15,
    }
    # junk from a provider is left out, never a crash
    assert response_object({"choices": "no"}, {}, "resp_2")["output"] == []


async def _events(chunks: list[bytes]) -> list[dict[str, Any]]:
    async def source() -> Any:
        for chunk in chunks:
            yield chunk

    translator = ResponseStreamTranslator({"model": "m"}, "resp_s")
    out = b"".join([piece async for piece in translator.translate(source())])
    return [orjson.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]


async def test_stream_translation_over_split_chunks() -> None:
    data = (
        b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"stop"}]}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n"
    )
    events = await _events([data[i : i + 7] for i in range(0, len(data), 7)])
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta") == "ab"
    final = events[-1]
    assert final["type"] == "response.completed"
    assert final["response"]["output"][0]["content"][0]["text"] == "ab"
    assert final["response"]["usage"]["total_tokens"] == 3


async def test_stream_translation_names_a_malformed_chunk() -> None:
    with pytest.raises(UpstreamBadResponse):
        await _events([b'data: {"choices": 5}\n\n'])


async def test_a_model_naming_a_virtual_key_stays_native(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """``@slug/model`` rewrites the body: a native request is still forwarded as itself."""
    manager = PluginManager()
    manager.load_entry_points()
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    path = server_file(tmp_path, fake, store=store)
    gw = Gateway(config_file=path, plugins=manager)
    fake.script("/v1/responses", Reply(json=NATIVE_RESPONSE))
    async with in_process(gw) as client:
        made = await client.post(
            "/v1/virtual-keys",
            headers={"x-portkey-api-key": ADMIN_KEY},
            json={
                "name": "v",
                "provider": "openai",
                "key": OPENAI_KEY,
                "custom_host": fake.base_url,
            },
        )
        assert made.status_code == 200, made.text
        slug = made.json()["slug"]
        reply = await client.post(
            "/v1/responses", json={"model": f"@{slug}/gpt-4.1", "input": "hi"}
        )
        assert reply.status_code == 200, reply.text
    (seen,) = fake.requests
    assert seen.path == "/v1/responses"
    assert seen.json() == {"model": "gpt-4.1", "input": "hi"}
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
