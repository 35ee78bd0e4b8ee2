"""A provider that answers in process, deterministically, in OpenAI's wire format."""

from __future__ import annotations

import asyncio
import hashlib
import struct
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.streaming import DONE_EVENT, json_event
from portkey_mw.transport import Transport

MODELS = ("mock-gpt", "mock-embed")
#: A 1x1 transparent PNG: what the mock "generates" for every image prompt.
TINY_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
    "YPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)
DEFAULT_DIMENSIONS = 8
_OPTION_KEYS = ("mock_reply", "mock_latency_ms", "mock_chunk_delay_ms", "mock_status")
# Bounds on what a request may make the mock do: it answers in process, so an unbounded
# vector size or delay would block the event loop or hold a request open for any client.
MAX_DIMENSIONS = 4096
MAX_EMBEDDING_VALUES = 1_000_000
MAX_IMAGES = 10
MAX_LATENCY_MS = 60_000
MAX_CHUNK_DELAY_MS = 10_000


class MockProvider(Provider):
    """Deterministic replies with configurable latency, errors and streaming."""

    id = "mock"
    #: what it answers itself; /v1/responses reaches it through chat completions, the rest
    #: (audio, files, rerank, realtime, pass-through) is refused naming it
    endpoints = frozenset(
        {
            Endpoint.CHAT_COMPLETIONS,
            Endpoint.COMPLETIONS,
            Endpoint.EMBEDDINGS,
            Endpoint.MODELS,
            Endpoint.IMAGES,
            Endpoint.MODERATIONS,
            Endpoint.COUNT_TOKENS,
        }
    )
    features = frozenset({"stream"})

    def __init__(self, defaults: Mapping[str, Any] | None = None) -> None:
        self.defaults = {k: v for k, v in (defaults or {}).items() if k in _OPTION_KEYS}

    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        options = {**self.defaults, **(call.target.options or {})}
        latency = _number(options, "mock_latency_ms", 0, MAX_LATENCY_MS) / 1000
        if latency:
            await asyncio.sleep(latency)
        status = int(_number(options, "mock_status", 200, 599))
        if status != 200 and status < 400:
            raise InvalidRequest("mock_status must be 200 or 400-599", param="mock_status")
        if status >= 400:
            return GatewayResponse.from_json(
                {
                    "error": {
                        "message": f"mock provider configured to fail with {status}",
                        "type": "upstream_error",
                        "param": None,
                        "code": str(status),
                    },
                    "provider": self.id,
                },
                status,
            )
        body = call.body or {}
        model = str(body.get("model") or MODELS[0])
        if call.endpoint is Endpoint.MODELS:
            return GatewayResponse.from_json(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "mock"}
                        for m in MODELS
                    ],
                }
            )
        if call.endpoint is Endpoint.COUNT_TOKENS:
            prompt = _prompt_text(Endpoint.CHAT_COMPLETIONS, body)
            return GatewayResponse.from_json({"input_tokens": _usage(prompt, "")["prompt_tokens"]})
        if call.endpoint is Endpoint.IMAGES:
            count = int(_number(body, "n", 1, MAX_IMAGES, minimum=1))
            image = {"b64_json": TINY_PNG, "revised_prompt": str(body.get("prompt", ""))}
            return GatewayResponse.from_json({"created": int(time.time()), "data": [image] * count})
        if call.endpoint is Endpoint.EMBEDDINGS:
            return GatewayResponse.from_json(_embeddings(body, model))
        if call.endpoint is Endpoint.MODERATIONS:
            return GatewayResponse.from_json(_moderation(body, model))
        prompt = _prompt_text(call.endpoint, body)
        reply = str(options.get("mock_reply") or f"Mock reply to: {prompt}")
        usage = _usage(prompt, reply)
        if call.stream:
            delay = _number(options, "mock_chunk_delay_ms", 0, MAX_CHUNK_DELAY_MS) / 1000
            include_usage = call.include_usage
            stream = _stream(call.endpoint, model, reply, usage if include_usage else None, delay)
            return GatewayResponse(
                200, headers={"content-type": "text/event-stream"}, stream=stream
            )
        return GatewayResponse.from_json(_completion(call.endpoint, model, reply, usage))


#: words the mock moderation model flags, by OpenAI moderation category
FLAGGED_WORDS = {
    "violence": ("kill", "attack", "bomb"),
    "harassment": ("idiot", "stupid"),
    "hate": ("hate",),
}


def _moderation(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    """OpenAI's moderation answer: a category is flagged when one of its words appears."""
    raw = body.get("input")
    inputs = raw if isinstance(raw, list) else [raw]
    results = []
    for item in inputs:
        text = str(item or "").lower()
        categories = {
            name: any(word in text for word in words) for name, words in FLAGGED_WORDS.items()
        }
        scores = {name: 0.99 if hit else 0.001 for name, hit in categories.items()}
        results.append(
            {
                "flagged": any(categories.values()),
                "categories": categories,
                "category_scores": scores,
            }
        )
    model_name = model if model != "mock-gpt" else "mock-moderation"
    return {"id": f"modr-{uuid.uuid4().hex[:12]}", "model": model_name, "results": results}


def _prompt_text(endpoint: Endpoint, body: Mapping[str, Any]) -> str:
    if endpoint is Endpoint.COMPLETIONS:
        prompt = body.get("prompt")
        return prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _usage(prompt: str, reply: str) -> dict[str, int]:
    prompt_tokens, completion_tokens = len(prompt.split()), len(reply.split())
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _completion_id(model: str, reply: str) -> str:
    return "mock-" + hashlib.sha256(f"{model}\0{reply}".encode()).hexdigest()[:24]


def _completion(
    endpoint: Endpoint, model: str, reply: str, usage: dict[str, int]
) -> dict[str, Any]:
    created = int(time.time())
    if endpoint is Endpoint.COMPLETIONS:
        return {
            "id": _completion_id(model, reply),
            "object": "text_completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "text": reply, "logprobs": None, "finish_reason": "stop"}],
            "usage": usage,
        }
    return {
        "id": _completion_id(model, reply),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }


async def _stream(
    endpoint: Endpoint,
    model: str,
    reply: str,
    usage: dict[str, int] | None,
    delay: float,
) -> AsyncIterator[bytes]:
    completion_id, created = _completion_id(model, reply), int(time.time())
    chat = endpoint is Endpoint.CHAT_COMPLETIONS
    obj = "chat.completion.chunk" if chat else "text_completion"

    def chunk(delta: dict[str, Any] | str, finish: str | None = None) -> bytes:
        choice: dict[str, Any] = (
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            if chat
            else {"index": 0, "text": delta, "logprobs": None, "finish_reason": finish}
        )
        return json_event(
            {
                "id": completion_id,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [choice],
            }
        )

    if chat:
        yield chunk({"role": "assistant", "content": ""})
    words = reply.split(" ")
    for i, word in enumerate(words):
        if delay:
            await asyncio.sleep(delay)
        piece = word if i == len(words) - 1 else word + " "
        yield chunk({"content": piece} if chat else piece)
    yield chunk({} if chat else "", "stop")
    if usage is not None:
        yield json_event(
            {
                "id": completion_id,
                "object": obj,
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
        )
    yield DONE_EVENT


def _vector(text: str, dimensions: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    while len(digest) < dimensions * 4:
        digest += hashlib.sha256(digest).digest()
    raw = struct.unpack(f"<{dimensions}I", digest[: dimensions * 4])
    return [round(v / 2**32 * 2 - 1, 6) for v in raw]


def _embeddings(body: Mapping[str, Any], model: str) -> dict[str, Any]:
    inputs = body.get("input")
    texts = [inputs] if isinstance(inputs, str) else [str(i) for i in inputs or []]
    dimensions = int(_number(body, "dimensions", DEFAULT_DIMENSIONS, MAX_DIMENSIONS, minimum=1))
    if dimensions * len(texts) > MAX_EMBEDDING_VALUES:
        raise InvalidRequest(
            f"the mock makes at most {MAX_EMBEDDING_VALUES} embedding values per request",
            param="input",
        )
    data: list[dict[str, Any]] = []
    for index, text in enumerate(texts):
        vector = _vector(text, dimensions)
        embedding: Any = vector
        if body.get("encoding_format") == "base64":
            import base64

            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    tokens = sum(len(t.split()) for t in texts)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _number(
    source: Mapping[str, Any], name: str, default: float, maximum: float, *, minimum: float = 0
) -> float:
    """A numeric option or parameter within its bounds (a 400 naming it otherwise)."""
    value = source.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"{name} must be a number", param=name)
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"{name} must be between {minimum:g} and {maximum:g}", param=name)
    return float(value)
