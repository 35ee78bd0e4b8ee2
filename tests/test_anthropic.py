"""The anthropic provider: golden translations, and the openai SDK end to end.

Fixtures follow Anthropic's published Messages API reference (request body, response body,
streaming event sequence, error shape).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from portkey_mw_plugins.anthropic.translate import to_anthropic, to_openai

from portkey_mw.errors import InvalidRequest
from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


# -- golden: request ------------------------------------------------------------------------------


def test_request_translation() -> None:
    body = {
        "model": "claude-fake-1",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
                    },
                    {
                        "id": "toolu_02",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"location": "Nice"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": "24C"},
            {"role": "user", "content": "Which is warmer?"},
        ],
        "tools": [WEATHER_TOOL],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "max_completion_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "user-42",
        "seed": 7,
        "stream": True,
    }
    payload, dropped = to_anthropic(body)
    assert payload == {
        "model": "claude-fake-1",
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Use tools."},
        ],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather where this photo was taken?"},
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {
                        "type": "image",
                        "source": {"type": "url", "url": "https://example.com/a.jpg"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "get_weather",
                        "input": {"location": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_02",
                        "name": "get_weather",
                        "input": {"location": "Nice"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": "24C"},
                    {"type": "text", "text": "Which is warmer?"},
                ],
            },
        ],
        "max_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "user-42"},
        "stream": True,
        "tools": [
            {
                "name": "get_weather",
                "description": "Get the current weather in a given location",
                "input_schema": WEATHER_TOOL["function"]["parameters"],
            }
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    assert dropped == ["seed"]


def test_json_schema_becomes_a_forced_tool() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    payload, _ = to_anthropic(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "A city?"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "c", "schema": schema},
            },
        }
    )
    assert payload["tools"][-1]["input_schema"] == schema
    assert payload["tool_choice"] == {"type": "tool", "name": "json_response"}
    assert payload["max_tokens"] == 4096  # Anthropic requires it; OpenAI does not


def test_tool_arguments_must_be_json() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
                ],
            }
        ],
    }
    with pytest.raises(InvalidRequest, match="not valid JSON") as info:
        to_anthropic(body)
    assert info.value.code == "invalid_tool_arguments"


# -- golden: response -----------------------------------------------------------------------------

MESSAGE = {
    "id": "msg_01Aq9w938a90dw8q",
    "type": "message",
    "role": "assistant",
    "model": "claude-fake-1",
    "content": [
        {"type": "text", "text": "I'll check the weather."},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 100,
        "output_tokens": 30,
        "cache_creation_input_tokens": 20,
        "cache_read_input_tokens": 50,
    },
}


def test_response_translation() -> None:
    completion = to_openai(MESSAGE, json_mode=False)
    assert completion["id"] == "msg_01Aq9w938a90dw8q"
    assert completion["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "I'll check the weather.",
                "tool_calls": [
                    {
                        "id": "toolu_01A09q90qw90lq917835lq9",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": '{"location":"San Francisco, CA"}',
                        },
                    }
                ],
            },
            "finish_reason": "tool_calls",
            "logprobs": None,
        }
    ]
    assert completion["usage"] == {
        "prompt_tokens": 170,
        "completion_tokens": 30,
        "total_tokens": 200,
        "prompt_tokens_details": {"cached_tokens": 50, "cache_creation_tokens": 20},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop_reason: str, finish: str) -> None:
    message = {**MESSAGE, "content": [{"type": "text", "text": "x"}], "stop_reason": stop_reason}
    assert to_openai(message, json_mode=False)["choices"][0]["finish_reason"] == finish


# -- end to end, through the gateway, with the openai SDK ----------------------------------------


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [
        f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events
    ]


TEXT_AND_TOOL_STREAM = sse(
    {
        "type": "message_start",
        "message": {
            "id": "msg_stream",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-fake-1",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1, "cache_read_input_tokens": 5},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me "}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "check."}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_A", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": ""},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"location": "San Fra'},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": 'ncisco, CA"}'},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "content_block_start",
        "index": 2,
        "content_block": {"type": "tool_use", "id": "toolu_B", "name": "get_weather", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 2,
        "delta": {"type": "input_json_delta", "partial_json": '{"location": "Paris"}'},
    },
    {"type": "content_block_stop", "index": 2},
    {"type": "some_future_event", "payload": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 40},
    },
    {"type": "message_stop"},
)


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("anthropic"),
        upstream_server,
        configs={"claude": {"provider": "anthropic", "custom_host": upstream_server.base_url}},
    )
    with mounted_gateway(path) as running:
        yield running


def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-ant-test",
        max_retries=0,
        default_headers={"x-portkey-config": "claude"},
    )


def test_chat_through_the_openai_sdk(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v1/messages",
        Reply(
            json={
                **MESSAGE,
                "content": [{"type": "text", "text": "Hi!"}],
                "stop_reason": "end_turn",
            }
        ),
    )
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="claude-fake-1",
        messages=[{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hello"}],
        seed=3,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hi!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 170
    assert raw.headers["x-portkey-provider"] == "anthropic"
    assert raw.headers["x-portkey-dropped-params"] == "seed"
    (seen,) = fake.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == "sk-ant-test"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    sent = seen.json()
    assert sent["system"] == [{"type": "text", "text": "Be nice."}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]


def test_tool_calls_through_the_openai_sdk(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/messages", Reply(json=MESSAGE))
    completion = client(gateway).chat.completions.create(
        model="claude-fake-1",
        messages=[{"role": "user", "content": "Weather in SF?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    (call,) = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert orjson.loads(call.function.arguments) == {"location": "San Francisco, CA"}  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


def test_stream_with_parallel_tool_calls_and_usage(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/messages", Reply(stream=TEXT_AND_TOOL_STREAM, done=False))
    stream = client(gateway).chat.completions.create(
        model="claude-fake-1",
        messages=[{"role": "user", "content": "Weather in SF and Paris?"}],
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, calls, finish, usage = "", {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function is not None:
                    entry["name"] = call.function.name or entry["name"]
                    entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    assert text == "Let me check."
    assert calls == {
        0: {
            "id": "toolu_A",
            "name": "get_weather",
            "arguments": '{"location": "San Francisco, CA"}',
        },
        1: {"id": "toolu_B", "name": "get_weather", "arguments": '{"location": "Paris"}'},
    }
    assert finish == "tool_calls"
    assert usage is not None and usage.prompt_tokens == 30 and usage.completion_tokens == 40
    assert fake.requests[0].json()["stream"] is True


def test_json_mode_answers_in_content(gateway: RunningGateway, fake: FakeUpstream) -> None:
    answer = {
        **MESSAGE,
        "content": [
            {"type": "tool_use", "id": "t", "name": "json_response", "input": {"city": "Oslo"}}
        ],
    }
    fake.script("/v1/messages", Reply(json=answer))
    completion = client(gateway).chat.completions.create(
        model="claude-fake-1",
        messages=[{"role": "user", "content": "A city, as JSON"}],
        response_format={"type": "json_object"},
    )
    assert orjson.loads(completion.choices[0].message.content or "") == {"city": "Oslo"}
    assert completion.choices[0].finish_reason == "stop"
    assert not completion.choices[0].message.tool_calls


def test_provider_error_keeps_its_status_and_words(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script(
        "/v1/messages",
        Reply(
            status=529,
            json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
        ),
    )
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(
            model="claude-fake-1", messages=[{"role": "user", "content": "Hi"}]
        )
    assert info.value.status_code == 529
    assert info.value.body == {
        "message": "Overloaded",
        "type": "overloaded_error",
        "param": None,
        "code": None,
    }


def test_error_in_an_unexpected_shape(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v1/messages",
        Reply(status=502, body=b"<html>bad gateway</html>", content_type="text/html"),
    )
    with pytest.raises(openai.APIStatusError) as info:
        client(gateway).chat.completions.create(
            model="claude-fake-1", messages=[{"role": "user", "content": "Hi"}]
        )
    assert info.value.status_code == 502
    assert "anthropic error: <html>bad gateway</html>" in info.value.message


def test_missing_credentials(gateway: RunningGateway, fake: FakeUpstream) -> None:
    sdk = openai.OpenAI(base_url=gateway.base_url, api_key="OPENAI_API_KEY", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="no API key for provider 'anthropic'"):
        sdk.chat.completions.create(
            model="claude-fake-1",
            messages=[{"role": "user", "content": "Hi"}],
            extra_headers={"x-portkey-config": "claude"},
        )
    assert fake.requests == []


def test_invalid_tool_arguments_are_a_400(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError, match="not valid JSON"):
        client(gateway).chat.completions.create(
            model="claude-fake-1",
            messages=[
                {"role": "user", "content": "Hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "t", "content": "x"},
            ],
        )
    assert fake.requests == []


def test_upstream_stream_error_event(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events = TEXT_AND_TOOL_STREAM[:5] + sse(
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    )
    fake.script("/v1/messages", Reply(stream=events, done=False))
    received = ""
    with (
        client(gateway).chat.completions.create(
            model="claude-fake-1", messages=[{"role": "user", "content": "Hi"}], stream=True
        ) as stream,
        pytest.raises(openai.APIError, match="Overloaded"),
    ):
        for chunk in stream:
            received += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert received == "Let me check."


def test_strict_mode_refuses_what_anthropic_cannot_take(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    with pytest.raises(openai.BadRequestError, match="cannot take these parameters: seed") as info:
        client(gateway).chat.completions.create(
            model="claude-fake-1",
            messages=[{"role": "user", "content": "Hi"}],
            seed=1,
            extra_headers={"x-portkey-strict-open-ai-compliance": "true"},
        )
    assert info.value.code == "unsupported_parameter"
    assert fake.requests == []
