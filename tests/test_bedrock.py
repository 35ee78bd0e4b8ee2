"""The bedrock provider: Converse translations, SigV4, and event-stream streaming.

Fixtures follow the Bedrock runtime API reference (Converse / ConverseStream); stream
frames are encoded in the AWS event-stream format here and decoded by botocore in the
gateway.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from portkey_mw_plugins.bedrock.translate import to_converse, to_openai

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

TOOL = {
    "type": "function",
    "function": {
        "name": "top_song",
        "description": "Most popular song",
        "parameters": {"type": "object"},
    },
}
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
CONVERSE = f"/model/{MODEL}/converse"


def test_request_translation() -> None:
    payload, dropped = to_converse(
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "You are a DJ."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Top song?"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "tooluse_1",
                            "type": "function",
                            "function": {"name": "top_song", "arguments": '{"sign": "WZPZ"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "tooluse_1", "content": "Elemental Hotel"},
            ],
            "tools": [TOOL],
            "tool_choice": "required",
            "max_tokens": 512,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": ["\n\nHuman:"],
            "seed": 1,
        }
    )
    assert payload == {
        "system": [{"text": "You are a DJ."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "Top song?"},
                    {"image": {"format": "jpeg", "source": {"bytes": "/9j/"}}},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "tooluse_1",
                            "name": "top_song",
                            "input": {"sign": "WZPZ"},
                        }
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "toolResult": {
                            "toolUseId": "tooluse_1",
                            "content": [{"text": "Elemental Hotel"}],
                        }
                    }
                ],
            },
        ],
        "inferenceConfig": {
            "maxTokens": 512,
            "temperature": 0.5,
            "topP": 0.9,
            "stopSequences": ["\n\nHuman:"],
        },
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "top_song",
                        "description": "Most popular song",
                        "inputSchema": {"json": {"type": "object"}},
                    }
                }
            ],
            "toolChoice": {"any": {}},
        },
    }
    assert dropped == ["seed"]


RESPONSE = {
    "output": {
        "message": {
            "role": "assistant",
            "content": [
                {"text": "Let me look."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                        "name": "top_song",
                        "input": {"sign": "WZPZ"},
                    }
                },
            ],
        }
    },
    "stopReason": "tool_use",
    "usage": {
        "inputTokens": 375,
        "outputTokens": 54,
        "totalTokens": 429,
        "cacheReadInputTokens": 25,
    },
    "metrics": {"latencyMs": 1500},
}


def test_response_translation() -> None:
    completion = to_openai(RESPONSE, MODEL)
    (choice,) = completion["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
            "type": "function",
            "function": {"name": "top_song", "arguments": '{"sign":"WZPZ"}'},
        }
    ]
    assert completion["usage"]["prompt_tokens"] == 400
    assert completion["usage"]["prompt_tokens_details"]["cached_tokens"] == 25


# -- AWS event-stream frames -------------------------------------------------------------------


def frame(event_type: str, payload: dict[str, Any], message_type: str = "event") -> bytes:
    """One event-stream message: prelude, CRC, string headers, JSON payload, CRC."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", message_type),
    ):
        if message_type == "exception" and name == ":event-type":
            name = ":exception-type"
        headers += (
            bytes([len(name)])
            + name.encode()
            + b"\x07"
            + struct.pack(">H", len(value))
            + value.encode()
        )
    body = orjson.dumps(payload)
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


STREAM = [
    frame("messageStart", {"role": "assistant"}),
    frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Here "}}),
    frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "goes."}}),
    frame("contentBlockStop", {"contentBlockIndex": 0}),
    frame(
        "contentBlockStart",
        {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "tu_1", "name": "top_song"}}},
    ),
    frame(
        "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"sign": '}}}
    ),
    frame(
        "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '"WZPZ"}'}}}
    ),
    frame("contentBlockStop", {"contentBlockIndex": 1}),
    frame("messageStop", {"stopReason": "tool_use"}),
    frame(
        "metadata",
        {
            "usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30},
            "metrics": {"latencyMs": 5},
        },
    ),
]


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    bedrock = {
        "provider": "bedrock",
        "custom_host": upstream_server.host_url,
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        "aws_region": "us-east-1",
    }
    path = server_file(
        tmp_path_factory.mktemp("bedrock"), upstream_server, configs={"bedrock": bedrock}
    )
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="unused",
        max_retries=0,
        default_headers={"x-portkey-config": "bedrock", **headers},
    )


def test_chat_is_signed_with_sigv4(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(CONVERSE, Reply(json=RESPONSE))
    completion = sdk(
        gateway, **{"x-portkey-aws-session-token": "FwoGZXIvYXdzEXAMPLE"}
    ).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Top song?"}],
        tools=[TOOL],  # type: ignore[list-item]
    )
    assert completion.choices[0].finish_reason == "tool_calls"
    (seen,) = fake.requests
    assert seen.path == CONVERSE
    auth = seen.headers["authorization"]
    assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-east-1/bedrock/aws4_request" in auth and "SignedHeaders=" in auth
    assert seen.headers["x-amz-security-token"] == "FwoGZXIvYXdzEXAMPLE"
    assert "x-amz-date" in seen.headers


def test_stream_with_tool_call(gateway: RunningGateway, fake: FakeUpstream) -> None:
    stream_path = CONVERSE.replace("/converse", "/converse-stream")
    fake.script(
        stream_path,
        Reply(stream=STREAM, done=False, content_type="application/vnd.amazon.eventstream"),
    )
    chunks = list(
        sdk(gateway).chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Top song?"}],
            tools=[TOOL],  # type: ignore[list-item]
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    arguments = "".join(
        (call.function.arguments or "") if call.function else ""
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
    )
    assert text == "Here goes."
    assert orjson.loads(arguments) == {"sign": "WZPZ"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 30


def test_missing_credentials_name_what_is_missing(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    config = orjson.dumps({"provider": "bedrock", "aws_region": "us-east-1"}).decode()
    with pytest.raises(
        openai.AuthenticationError, match="aws_access_key_id, aws_secret_access_key"
    ):
        sdk(gateway, **{"x-portkey-config": config}).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}]
        )
    assert fake.requests == []


def test_bedrock_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        CONVERSE,
        Reply(
            status=403, json={"message": "The security token included in the request is invalid."}
        ),
    )
    with pytest.raises(openai.PermissionDeniedError, match="security token"):
        sdk(gateway).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hi"}]
        )


def test_titan_embeddings_one_request_per_text(gateway: RunningGateway, fake: FakeUpstream) -> None:
    path = "/model/amazon.titan-embed-text-v2:0/invoke"
    fake.script(
        path,
        Reply(json={"embedding": [0.1, 0.2], "inputTextTokenCount": 3}),
        Reply(json={"embedding": [0.3, 0.4], "inputTextTokenCount": 4}),
    )
    result = sdk(gateway).embeddings.create(
        model="amazon.titan-embed-text-v2:0", input=["one", "two"], encoding_format="float"
    )
    assert [d.embedding for d in result.data] == [[0.1, 0.2], [0.3, 0.4]]
    assert result.usage.total_tokens == 7
    assert [r.json() for r in fake.requests] == [{"inputText": "one"}, {"inputText": "two"}]
    assert all(r.headers["authorization"].startswith("AWS4-HMAC-SHA256") for r in fake.requests)


def test_cohere_embeddings_on_bedrock(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/model/cohere.embed-english-v3/invoke",
        Reply(json={"embeddings": [[1.0], [2.0]], "id": "x", "texts": ["a", "b"]}),
    )
    result = sdk(gateway).embeddings.create(
        model="cohere.embed-english-v3", input=["a", "b"], encoding_format="float"
    )
    assert [d.embedding for d in result.data] == [[1.0], [2.0]]
    assert fake.requests[0].json() == {"texts": ["a", "b"], "input_type": "search_document"}


def test_json_mode_through_a_forced_tool(gateway: RunningGateway, fake: FakeUpstream) -> None:
    answer = {
        **RESPONSE,
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {
                        "toolUse": {
                            "toolUseId": "t1",
                            "name": "json_response",
                            "input": {"song": "X"},
                        }
                    }
                ],
            }
        },
    }
    fake.script(CONVERSE, Reply(json=answer))
    schema = {"type": "object", "properties": {"song": {"type": "string"}}}
    completion = sdk(gateway).chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Top song, as JSON"}],
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema}},
    )
    assert orjson.loads(completion.choices[0].message.content or "") == {"song": "X"}
    assert completion.choices[0].finish_reason == "stop"
    assert not completion.choices[0].message.tool_calls
    sent = fake.requests[0].json()["toolConfig"]
    assert sent["toolChoice"] == {"tool": {"name": "json_response"}}
    assert sent["tools"][-1]["toolSpec"]["inputSchema"] == {"json": schema}
