"""The cohere provider: v2 chat and embed, following Cohere's API reference."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from portkey_mw_plugins.cohere.translate import to_cohere, to_openai

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

TOOL = {"type": "function", "function": {"name": "query_db", "parameters": {"type": "object"}}}


def test_request_translation() -> None:
    payload, dropped = to_cohere(
        {
            "model": "command-a-03-2025",
            "messages": [
                {"role": "developer", "content": "Be exact."},
                {"role": "user", "content": "Sales?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "query_db", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
            "tools": [TOOL],
            "tool_choice": "required",
            "top_p": 0.7,
            "stop": "END",
            "max_completion_tokens": 100,
            "seed": 3,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {"type": "object"}},
            },
            "logprobs": True,
        }
    )
    assert payload == {
        "model": "command-a-03-2025",
        "seed": 3,
        "messages": [
            {"role": "system", "content": "Be exact."},
            {"role": "user", "content": "Sales?"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "query_db", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "content": "42", "tool_call_id": "c1"},
        ],
        "max_tokens": 100,
        "p": 0.7,
        "stop_sequences": ["END"],
        "tools": [TOOL],
        "tool_choice": "REQUIRED",
        "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
    }
    assert dropped == ["logprobs"]


RESPONSE = {
    "id": "c14c80c3-18eb-4519-9460-6c92edd8cfb4",
    "finish_reason": "TOOL_CALL",
    "message": {
        "role": "assistant",
        "tool_plan": "I will query the database.",
        "tool_calls": [
            {
                "id": "query_db_1",
                "type": "function",
                "function": {"name": "query_db", "arguments": '{"q": "sales"}'},
            }
        ],
    },
    "usage": {
        "billed_units": {"input_tokens": 20, "output_tokens": 10},
        "tokens": {"input_tokens": 500, "output_tokens": 30},
    },
}


def test_response_translation() -> None:
    completion = to_openai(RESPONSE, "command-a-03-2025")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {
        "name": "query_db",
        "arguments": '{"q": "sales"}',
    }
    assert completion["usage"] == {
        "prompt_tokens": 500,
        "completion_tokens": 30,
        "total_tokens": 530,
    }


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("cohere"),
        upstream_server,
        configs={"cohere": {"provider": "cohere", "custom_host": upstream_server.host_url}},
    )
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="co-key",
        max_retries=0,
        default_headers={"x-portkey-config": "cohere"},
    )


def sse(*events: dict[str, Any]) -> list[bytes]:
    return [
        f"event: {e['type']}\n".encode() + b"data: " + orjson.dumps(e) + b"\n\n" for e in events
    ]


def test_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {
        **RESPONSE,
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "Hello!"}]},
    }
    fake.script("/v2/chat", Reply(json=reply))
    completion = sdk(gateway).chat.completions.create(
        model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content == "Hello!"
    assert fake.requests[0].headers["authorization"] == "Bearer co-key"


def test_stream_with_tool_call(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events = sse(
        {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
        {"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will look it up"}}},
        {
            "type": "tool-call-start",
            "index": 0,
            "delta": {
                "message": {
                    "tool_calls": {
                        "id": "query_db_1",
                        "type": "function",
                        "function": {"name": "query_db", "arguments": ""},
                    }
                }
            },
        },
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": '{"q": '}}}},
        },
        {
            "type": "tool-call-delta",
            "index": 0,
            "delta": {"message": {"tool_calls": {"function": {"arguments": '"sales"}'}}}},
        },
        {"type": "tool-call-end", "index": 0},
        {
            "type": "message-end",
            "delta": {
                "finish_reason": "TOOL_CALL",
                "usage": {"tokens": {"input_tokens": 9, "output_tokens": 4}},
            },
        },
    )
    fake.script("/v2/chat", Reply(stream=events, done=False))
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="command-a-03-2025",
            messages=[{"role": "user", "content": "Sales?"}],
            tools=[TOOL],  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert (
        calls[0].id == "query_db_1"
        and calls[0].function is not None
        and calls[0].function.name == "query_db"
    )
    arguments = "".join(call.function.arguments or "" for call in calls if call.function)
    assert orjson.loads(arguments) == {"q": "sales"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 13


def test_embeddings(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v2/embed",
        Reply(
            json={
                "id": "e1",
                "embeddings": {"float": [[0.1, 0.2], [0.3, 0.4]]},
                "texts": ["a", "b"],
                "meta": {"billed_units": {"input_tokens": 2}},
            }
        ),
    )
    result = sdk(gateway).embeddings.create(
        model="embed-v4.0", input=["a", "b"], encoding_format="float"
    )
    assert [d.embedding for d in result.data] == [[0.1, 0.2], [0.3, 0.4]]
    assert fake.requests[0].json() == {
        "model": "embed-v4.0",
        "texts": ["a", "b"],
        "input_type": "search_document",
        "embedding_types": ["float"],
    }


def test_cohere_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v2/chat",
        Reply(status=429, json={"message": "You are using a Trial key, which is limited"}),
    )
    with pytest.raises(openai.RateLimitError, match="Trial key"):
        sdk(gateway).chat.completions.create(
            model="command-a-03-2025", messages=[{"role": "user", "content": "Hi"}]
        )
