"""``POST /v1/messages``: the official anthropic SDK, served by any provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import orjson
import pytest

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.test_anthropic import MESSAGE, TEXT_AND_TOOL_STREAM

WEATHER = {
    "name": "get_weather",
    "description": "Get the weather",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("messages"),
        upstream_server,
        configs={"claude": {"provider": "anthropic", "custom_host": upstream_server.base_url}},
    )
    with mounted_gateway(path) as running:
        yield running


def client(gateway: RunningGateway, config: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=gateway.root,
        api_key="sk-client",
        max_retries=0,
        default_headers={"x-portkey-config": config},
    )


# -- served by an OpenAI-format upstream ----------------------------------------------------------


def test_message_from_an_openai_upstream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    message = client(gateway, "openai-fake").messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}],
        stop_sequences=["END"],
    )
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "echo: hello there"
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = fake.requests[0].json()
    assert fake.requests[0].path == "/v1/chat/completions"
    assert fake.requests[0].headers["authorization"] == "Bearer sk-client"  # from x-api-key
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
    ]
    assert sent["max_tokens"] == 100 and sent["stop"] == ["END"]


def test_stream_from_an_openai_upstream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with client(gateway, "openai-fake").messages.stream(
        model="gpt-4o-mini",
        max_tokens=100,
        messages=[{"role": "user", "content": "stream this please"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: stream this please"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    assert fake.requests[0].json()["stream_options"] == {"include_usage": True}


def openai_tool_reply(arguments: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": arguments},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
    }


def test_tools_round_trip(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/chat/completions", Reply(json=openai_tool_reply('{"location": "Oslo"}')))
    sdk = client(gateway, "openai-fake")
    first = sdk.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
    )
    assert first.stop_reason == "tool_use"
    (use,) = first.content
    assert use.type == "tool_use" and use.name == "get_weather"
    assert use.input == {"location": "Oslo"}
    sent = fake.requests[0].json()
    assert sent["tools"][0]["function"]["parameters"] == WEATHER["input_schema"]
    assert sent["tool_choice"] == "required" and sent["parallel_tool_calls"] is False

    sdk.messages.create(
        model="gpt-4o-mini",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": [use.model_dump()]},  # type: ignore[list-item]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": use.id, "content": "-3C"},
                    {"type": "text", "text": "Thanks, and?"},
                ],
            },
        ],
    )
    history = fake.requests[1].json()["messages"]
    assert history[1]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"location":"Oslo"}',
    }
    assert history[2] == {"role": "tool", "tool_call_id": use.id, "content": "-3C"}
    assert history[3] == {"role": "user", "content": [{"type": "text", "text": "Thanks, and?"}]}


def test_image_blocks_become_image_parts(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client(gateway, "openai-fake").messages.create(
        model="gpt-4o-mini",
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {
                            "type": "base64",
                            "media_type": "image/png",
                            "data": "iVBORw0KGgo=",
                        },
                    },
                    {"type": "text", "text": "What is it?"},
                ],
            }
        ],
    )
    parts = fake.requests[0].json()["messages"][0]["content"]
    assert parts[0] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
    }


def test_errors_come_back_in_anthropic_shape(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/chat/completions", Reply(status=429))
    with pytest.raises(anthropic.RateLimitError) as info:
        client(gateway, "openai-fake").messages.create(
            model="gpt-4o-mini", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="x-portkey-config is not valid JSON"):
        client(gateway, "{").messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )


# -- served by an Anthropic-format upstream (through the anthropic provider) ---------------------


def test_message_from_an_anthropic_upstream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/messages", Reply(json=MESSAGE))
    message = client(gateway, "claude").messages.create(
        model="claude-fake-1",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in SF?"}],
    )
    assert [block.type for block in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"location": "San Francisco, CA"}  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    assert message.usage.cache_read_input_tokens == 50
    assert message.usage.input_tokens == 100
    assert fake.requests[0].headers["x-api-key"] == "sk-client"


def test_stream_from_an_anthropic_upstream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/messages", Reply(stream=TEXT_AND_TOOL_STREAM, done=False))
    with client(gateway, "claude").messages.stream(
        model="claude-fake-1",
        max_tokens=100,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Weather in SF and Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    kinds = [block.type for block in final.content]
    assert kinds == ["text", "tool_use", "tool_use"]
    assert final.content[0].text == "Let me check."  # type: ignore[union-attr]
    assert [b.input for b in final.content[1:]] == [  # type: ignore[union-attr]
        {"location": "San Francisco, CA"},
        {"location": "Paris"},
    ]
    assert final.stop_reason == "tool_use"
    assert orjson.loads(fake.requests[0].body)["stream"] is True


def test_count_tokens_through_anthropic(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/messages/count_tokens", Reply(json={"input_tokens": 14}))
    count = client(gateway, "claude").messages.count_tokens(
        model="claude-fake-1",
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello, Claude"}],
    )
    assert count.input_tokens == 14
    sent = fake.requests[0].json()
    assert set(sent) == {"model", "messages", "system"}  # no max_tokens, no sampling


def test_count_tokens_where_no_provider_counts(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError, match="does not serve count_tokens"):
        client(gateway, "openai-fake").messages.count_tokens(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello"}]
        )
    assert fake.requests == []


def test_count_tokens_with_the_mock(gateway: RunningGateway) -> None:
    sdk = anthropic.Anthropic(
        base_url=gateway.root,
        api_key="x",
        max_retries=0,
        default_headers={"x-portkey-provider": "mock"},
    )
    count = sdk.messages.count_tokens(
        model="mock-gpt", messages=[{"role": "user", "content": "three words here"}]
    )
    assert count.input_tokens == 3


def test_messages_are_cached_and_replayed_as_anthropic_events(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    config = orjson.dumps(
        {"provider": "openai", "custom_host": fake.base_url, "cache": {"mode": "simple"}}
    ).decode()
    sdk = client(gateway, config)
    request: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "cache this message"}],
    }
    first = sdk.messages.with_raw_response.create(**request)
    assert first.headers["x-portkey-cache-status"] == "MISS"
    with sdk.messages.stream(**request) as stream:
        text = "".join(stream.text_stream)
    assert text == "echo: cache this message"
    assert len(fake.requests) == 1  # the stream was replayed from the cache
