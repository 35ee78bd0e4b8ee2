"""OpenAI chat completions and embeddings <-> Cohere v2 (``/v2/chat``, ``/v2/embed``).

Cohere's v2 chat messages are close to OpenAI's, so requests mostly keep their shape:
``top_p`` is ``p``, ``stop`` is ``stop_sequences``, ``tool_choice`` is ``REQUIRED`` or
``NONE``. Responses carry content blocks, tool calls and ``finish_reason`` in Cohere's
words, and usage under ``usage.tokens``.
"""

from __future__ import annotations

import time
from typing import Any

from portkey_mw.errors import InvalidRequest
from portkey_mw.translation import dropped_params, embedding_texts, reads_answer

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
    "ERROR": "stop",
}
UNSUPPORTED = (
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "n",
    "user",
    "service_tier",
    "parallel_tool_calls",
)
_RENAMED = {"top_p": "p", "stop": "stop_sequences"}
_KEPT = ("model", "temperature", "seed", "frequency_penalty", "presence_penalty", "stream")


def to_cohere(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The ``/v2/chat`` request for an OpenAI chat request, and the parameters dropped."""
    messages = []
    for index, message in enumerate(body.get("messages") or []):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{index}] must be an object", param=f"messages.{index}")
        role = "system" if message.get("role") == "developer" else message.get("role")
        kept = {k: v for k, v in message.items() if k in ("content", "tool_calls", "tool_call_id")}
        if role == "assistant" and kept.get("content") is None:
            kept.pop("content", None)
        messages.append({"role": role, **kept})
    payload: dict[str, Any] = {k: body[k] for k in _KEPT if body.get(k) is not None}
    payload["messages"] = messages
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit:
        payload["max_tokens"] = limit
    for name, target in _RENAMED.items():
        value = body.get(name)
        if value is not None:
            payload[target] = [value] if name == "stop" and isinstance(value, str) else value
    if body.get("tools"):
        payload["tools"] = body["tools"]
    choice = body.get("tool_choice")
    if choice == "required" or isinstance(choice, dict):
        payload["tool_choice"] = "REQUIRED"
    elif choice == "none":
        payload["tool_choice"] = "NONE"
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") in (
        "json_object",
        "json_schema",
    ):
        converted: dict[str, Any] = {"type": "json_object"}
        schema = (response_format.get("json_schema") or {}).get("schema")
        if schema:
            converted["json_schema"] = schema
        payload["response_format"] = converted
    known = {
        *UNSUPPORTED,
        *_RENAMED,
        *_KEPT,
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "tools",
        "tool_choice",
        "response_format",
        "stream_options",
    }
    dropped = dropped_params(body, known, UNSUPPORTED)
    return payload, dropped


def usage(raw: dict[str, Any]) -> dict[str, int]:
    tokens = raw.get("tokens") or raw.get("billed_units") or {}
    prompt = int(tokens.get("input_tokens") or 0)
    completion = int(tokens.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


@reads_answer("cohere")
def to_openai(response: dict[str, Any], model: str | None) -> dict[str, Any]:
    """The OpenAI chat completion for a ``/v2/chat`` response."""
    message = response.get("message") or {}
    text = "".join(
        block.get("text", "")
        for block in message.get("content") or []
        if block.get("type") == "text"
    )
    reply: dict[str, Any] = {"role": "assistant", "content": text or None}
    if message.get("tool_calls"):
        reply["tool_calls"] = [
            {"id": call.get("id"), "type": "function", "function": call.get("function") or {}}
            for call in message["tool_calls"]
        ]
    return {
        "id": response.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": reply,
                "finish_reason": FINISH_REASONS.get(response.get("finish_reason") or "", "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage(response.get("usage") or {}),
    }


def embed_request(body: dict[str, Any]) -> dict[str, Any]:
    """The ``/v2/embed`` request for an OpenAI embeddings request."""
    return {
        "model": body.get("model"),
        "texts": embedding_texts(body, "cohere"),
        "input_type": body.get("input_type") or "search_document",
        "embedding_types": ["float"],
        **({"output_dimension": body["dimensions"]} if body.get("dimensions") else {}),
    }


@reads_answer("cohere")
def embed_vectors(response: dict[str, Any]) -> tuple[list[Any], int]:
    """The float vectors of a ``/v2/embed`` response, and the input tokens billed."""
    vectors = (response.get("embeddings") or {}).get("float") or []
    tokens = int(((response.get("meta") or {}).get("billed_units") or {}).get("input_tokens") or 0)
    return vectors, tokens
