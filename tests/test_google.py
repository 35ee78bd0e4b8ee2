"""The google (Gemini API) provider: golden translations, and the openai SDK end to end.

Fixtures follow the Gemini API reference for ``generateContent`` and
``streamGenerateContent?alt=sse``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest
from portkey_mw_plugins.google.translate import to_gemini, to_openai

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def test_request_translation() -> None:
    payload, dropped = to_gemini(
        {
            "model": "gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather here?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "call_7",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_7", "content": '{"celsius": 21}'},
                {"role": "tool", "tool_call_id": "call_7", "content": "sunny"},
            ],
            "tools": [TOOL],
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            "temperature": 0.3,
            "top_p": 0.8,
            "max_completion_tokens": 256,
            "stop": ["END"],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "w", "schema": {"type": "object"}},
            },
            "user": "u1",
        }
    )
    assert payload == {
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Weather here?"},
                    {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
                ],
            },
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}}],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"celsius": 21}}},
                    {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                ],
            },
        ],
        "generationConfig": {
            "temperature": 0.3,
            "topP": 0.8,
            "maxOutputTokens": 256,
            "stopSequences": ["END"],
            "responseMimeType": "application/json",
            "responseJsonSchema": {"type": "object"},
        },
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "description": "Weather for a city",
                        "parameters": TOOL["function"]["parameters"],
                    }
                ]
            }
        ],
        "toolConfig": {
            "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
        },
    }
    assert dropped == ["user"]


RESPONSE = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Checking."},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                    {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 12,
        "candidatesTokenCount": 8,
        "thoughtsTokenCount": 4,
        "totalTokenCount": 24,
        "cachedContentTokenCount": 6,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "resp-1",
}


def test_response_translation() -> None:
    completion = to_openai(RESPONSE, "gemini-2.5-flash")
    (choice,) = completion["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Checking."
    assert [c["function"] for c in choice["message"]["tool_calls"]] == [
        {"name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
    ]
    assert len({c["id"] for c in choice["message"]["tool_calls"]}) == 2
    assert completion["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 12,
        "total_tokens": 24,
        "prompt_tokens_details": {"cached_tokens": 6},
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("OTHER", "stop")],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    response = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert to_openai(response, "m")["choices"][0]["finish_reason"] == finish


# -- end to end ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("google"),
        upstream_server,
        configs={
            "gemini": {"provider": "google", "custom_host": f"{upstream_server.host_url}/v1beta"}
        },
        outbound={"allow": ["127.0.0.1"]},  # the images are on the fake upstream
    )
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str = "gemini") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="AIza-test",
        max_retries=0,
        default_headers={"x-portkey-config": config},
    )


GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def test_chat_with_tools(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(GENERATE, Reply(json=RESPONSE))
    completion = sdk(gateway).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Weather?"}],
        tools=[TOOL],  # type: ignore[list-item]
    )
    calls = completion.choices[0].message.tool_calls or []
    assert [orjson.loads(c.function.arguments) for c in calls] == [
        {"city": "Rome"},
        {"city": "Oslo"},
    ]  # type: ignore[union-attr]
    (seen,) = fake.requests
    assert seen.headers["x-goog-api-key"] == "AIza-test"
    assert seen.json()["contents"] == [{"role": "user", "parts": [{"text": "Weather?"}]}]


def sse(*responses: dict[str, Any]) -> list[bytes]:
    return [b"data: " + orjson.dumps(r) + b"\r\n\r\n" for r in responses]


def test_stream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    def part(text: str) -> dict[str, Any]:
        return {
            "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}]
        }

    final = {
        "candidates": [
            {
                "content": {"role": "model", "parts": [{"text": "!"}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8},
    }
    fake.script(STREAM, Reply(stream=sse(part("Hel"), part("lo"), final), done=False))
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 8
    assert fake.requests[0].query == "alt=sse"


def test_image_url_is_fetched_for_gemini(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/img/cat.png", Reply(body=PNG, content_type="image/png"))
    fake.script(GENERATE, Reply(json=RESPONSE))
    sdk(gateway).chat.completions.create(
        model="gemini-2.5-flash",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": f"{fake.host_url}/img/cat.png"}}
                ],
            }
        ],
    )
    sent = fake.requests[1].json()["contents"][0]["parts"][0]
    assert sent == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}}


def test_private_image_url_is_refused(tmp_path: Any, fake: FakeUpstream) -> None:
    path = server_file(
        tmp_path,
        fake,
        configs={"gemini": {"provider": "google", "custom_host": f"{fake.host_url}/v1beta"}},
    )
    with (
        mounted_gateway(path) as running,
        pytest.raises(openai.PermissionDeniedError, match="loopback address") as info,
    ):
        sdk(running).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": f"{fake.host_url}/img/cat.png"},
                        }
                    ],
                }
            ],
        )
    assert info.value.code == "destination_not_allowed"
    assert fake.requests == []  # neither the image nor Gemini was called


def test_gemini_error_keeps_its_status(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        GENERATE,
        Reply(
            status=400,
            json={
                "error": {
                    "code": 400,
                    "message": "API key not valid.",
                    "status": "INVALID_ARGUMENT",
                }
            },
        ),
    )
    with pytest.raises(openai.BadRequestError, match=r"API key not valid\."):
        sdk(gateway).chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}]
        )


def test_unknown_tool_result_is_a_400(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError, match="matches no earlier tool call"):
        sdk(gateway).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "tool", "tool_call_id": "nope", "content": "x"},
            ],
        )
    assert fake.requests == []


def test_embeddings(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v1beta/models/gemini-embedding-001:batchEmbedContents",
        Reply(json={"embeddings": [{"values": [0.1, 0.2]}, {"values": [0.3, 0.4]}]}),
    )
    result = sdk(gateway).embeddings.create(
        model="gemini-embedding-001", input=["a", "b"], encoding_format="float", dimensions=2
    )
    assert [d.embedding for d in result.data] == [[0.1, 0.2], [0.3, 0.4]]
    sent = fake.requests[0].json()["requests"]
    assert sent[0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "a"}]},
        "outputDimensionality": 2,
    }


def test_stream_with_tool_calls(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events = sse(
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Checking"}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [
                            {"functionCall": {"name": "get_weather", "args": {"city": "Rome"}}},
                            {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}},
                        ],
                    },
                    "finishReason": "STOP",
                }
            ]
        },
    )
    fake.script(STREAM, Reply(stream=events, done=False))
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Weather?"}],
            tools=[TOOL],  # type: ignore[list-item]
            stream=True,
        )
    )
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]
    assert [call.index for call in calls] == [0, 1]
    assert [orjson.loads(call.function.arguments or "") for call in calls if call.function] == [
        {"city": "Rome"},
        {"city": "Oslo"},
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_count_tokens_for_the_anthropic_endpoint(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    import anthropic

    fake.script("/v1beta/models/gemini-2.5-flash:countTokens", Reply(json={"totalTokens": 31}))
    client = anthropic.Anthropic(
        base_url=gateway.root,
        api_key="AIza-test",
        max_retries=0,
        default_headers={"x-portkey-config": "gemini"},
    )
    count = client.messages.count_tokens(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "How many tokens?"}]
    )
    assert count.input_tokens == 31
    sent = fake.requests[0].json()["generateContentRequest"]
    assert sent["model"] == "models/gemini-2.5-flash"
    assert sent["contents"] == [{"role": "user", "parts": [{"text": "How many tokens?"}]}]
