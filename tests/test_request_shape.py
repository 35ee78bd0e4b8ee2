"""check_body: the shape of each field the gateway reads, refused with a 400 naming it."""

from __future__ import annotations

from typing import Any

import pytest

from portkey_mw.context import Endpoint
from portkey_mw.errors import InvalidRequest
from portkey_mw.request_shape import check_body

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def refusal(endpoint: Endpoint, body: dict[str, Any]) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check_body(endpoint, body)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "m"}, "messages", "missing_param"),
        ({"model": "m", "messages": None}, "messages", "invalid_type"),
        ({"model": "m", "messages": []}, "messages", "invalid_value"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages.0.role", "missing_param"),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
            "messages.0.content.0.image_url",
            "missing_param",
        ),
        (
            {
                **CHAT,
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]},
                ],
            },
            "messages.1.tool_calls.0.function.name",
            "missing_param",
        ),
        (
            {**CHAT, "tools": [{"type": "function", "function": {"name": 1}}]},
            "tools.0.function.name",
            "invalid_type",
        ),
        (
            {**CHAT, "response_format": {"type": "json_schema", "json_schema": []}},
            "response_format.json_schema",
            "invalid_type",
        ),
        ({**CHAT, "stream_options": []}, "stream_options", "invalid_type"),
        ({**CHAT, "top_p": "1"}, "top_p", "invalid_type"),
        ({**CHAT, "max_tokens": 1.5}, "max_tokens", "invalid_type"),
        ({**CHAT, "n": 0}, "n", "invalid_value"),
        ({**CHAT, "stop": ["a", 1]}, "stop.1", "invalid_type"),
    ],
)
def test_chat_misfits_are_named_by_their_path(body: dict[str, Any], param: str, code: str) -> None:
    error = refusal(Endpoint.CHAT_COMPLETIONS, body)
    assert (error.param, error.code) == (param, code)
    assert f"'{param}'" in error.message


def test_what_fits_passes() -> None:
    check_body(
        Endpoint.CHAT_COMPLETIONS,
        {
            **CHAT,
            "messages": [
                {"role": "system", "content": None},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": "https://example.com/a.png"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}},
                        {"type": "input_audio", "input_audio": {"data": "..."}},
                    ],
                },
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": "done"},
            ],
            "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "web_search"}],
            "max_tokens": 2.0,  # a whole number, as JSON Schema counts them
            "temperature": None,  # null is an absent field
            "provider_specific": {"anything": [1, "goes"]},  # unknown fields pass
        },
    )


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        (Endpoint.EMBEDDINGS, {"input": 5}, "input"),
        (Endpoint.EMBEDDINGS, {"input": []}, "input"),
        (Endpoint.EMBEDDINGS, {"input": ["a", 1]}, "input.1"),
        (Endpoint.EMBEDDINGS, {"input": [[1, 2], [-1]]}, "input.1.0"),
        (Endpoint.EMBEDDINGS, {"input": "a", "dimensions": 0}, "dimensions"),
        (Endpoint.COMPLETIONS, {"prompt": {"text": "a"}}, "prompt"),
        (Endpoint.COMPLETIONS, {"prompt": "a", "logprobs": True}, "logprobs"),
        (Endpoint.IMAGES, {"prompt": 5}, "prompt"),
        (Endpoint.IMAGES, {"prompt": "a cat", "n": 11}, "n"),
        (Endpoint.IMAGES, {"prompt": "a cat", "size": 1024}, "size"),
        (Endpoint.MODERATIONS, {"input": [{"type": "text"}]}, "input.0.text"),
    ],
)
def test_other_endpoints(endpoint: Endpoint, body: dict[str, Any], param: str) -> None:
    assert refusal(endpoint, body).param == param


def test_the_same_name_can_mean_another_shape_per_endpoint() -> None:
    check_body(Endpoint.COMPLETIONS, {"prompt": [[1, 2], [3]], "logprobs": 2})
    check_body(Endpoint.CHAT_COMPLETIONS, {**CHAT, "logprobs": True})
    check_body(Endpoint.IMAGES, {"prompt": "a cat", "response_format": "b64_json"})
    check_body(Endpoint.CHAT_COMPLETIONS, {**CHAT, "response_format": {"type": "text"}})
