"""An in-process upstream (an ``httpx.MockTransport`` handler) that answers every provider
in its own wire format, and the routing headers that send a request to each provider.

The answers are well formed and fixed: whatever the gateway does with a client's body, the
upstream never gives it a reason to fail, so any 5xx is the gateway's own.
"""

from __future__ import annotations

import binascii
import struct
from typing import Any

import httpx
import orjson

HOST = "http://upstream.test"

#: per provider: the headers that route a request there (inline config, credentials)
PROVIDER_HEADERS: dict[str, dict[str, str]] = {}


def _route(provider: str, config: dict[str, Any], **headers: str) -> None:
    config = {"provider": provider, **config}
    PROVIDER_HEADERS[provider] = {"x-portkey-config": orjson.dumps(config).decode(), **headers}


_route("openai", {"api_key": "sk-test", "custom_host": f"{HOST}/v1"})
# renames max_completion_tokens, rewrites the developer role: a body the adapter edits
_route("together-ai", {"api_key": "sk-test", "custom_host": HOST})
_route("azure-openai", {"api_key": "k", "custom_host": f"{HOST}/openai", "deployment_id": "d"})
_route("anthropic", {"api_key": "k", "custom_host": f"{HOST}/v1"})
_route("google", {"api_key": "k", "custom_host": f"{HOST}/v1beta"})
_route(
    "vertex-ai",
    {"custom_host": f"{HOST}/v1", "vertex_project_id": "proj"},
    authorization="Bearer ya29.client-token",  # the client's own access token
)
_route(
    "bedrock",
    {"custom_host": HOST},
    **{
        "x-portkey-aws-access-key-id": "AKIDEXAMPLE",
        "x-portkey-aws-secret-access-key": "secret",
        "x-portkey-aws-region": "us-east-1",
    },
)
_route("cohere", {"api_key": "k", "custom_host": HOST})
_route("stability-ai", {"api_key": "k", "custom_host": HOST})

PROVIDERS = tuple(PROVIDER_HEADERS)

# -- answers ---------------------------------------------------------------------------------

SSE = "text/event-stream"


def _sse(events: list[Any], *, done: bool = True, named: bool = False) -> bytes:
    out = b""
    for event in events:
        if named:
            out += f"event: {event['type']}\n".encode()
        out += b"data: " + orjson.dumps(event) + b"\n\n"
    return out + (b"data: [DONE]\n\n" if done else b"")


def _openai_chat(stream: bool) -> tuple[bytes, str]:
    if stream:
        base = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
        ]
        return _sse(chunks), SSE
    message = {"role": "assistant", "content": "hi"}
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    return orjson.dumps(completion), "application/json"


def _openai_text(stream: bool) -> tuple[bytes, str]:
    base = {"id": "t1", "object": "text_completion", "created": 1, "model": "m"}
    if stream:
        chunks = [{**base, "choices": [{"index": 0, "text": "hi", "finish_reason": "stop"}]}]
        return _sse(chunks), SSE
    return orjson.dumps({**base, "choices": [{"index": 0, "text": "hi"}]}), "application/json"


_ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude",
    "content": [
        {"type": "text", "text": "hi"},
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}},
    ],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
_ANTHROPIC_STREAM = [
    {"type": "message_start", "message": {**_ANTHROPIC_MESSAGE, "content": []}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 1}},
    {"type": "message_stop"},
]
_GEMINI_RESPONSE = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [{"text": "hi"}, {"functionCall": {"name": "f"}}],
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1},
}
_CONVERSE = {
    "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 1, "outputTokens": 1},
}
_COHERE_CHAT = {
    "id": "co1",
    "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
    "finish_reason": "COMPLETE",
    "usage": {"tokens": {"input_tokens": 1, "output_tokens": 1}},
}
_COHERE_STREAM = [
    {"type": "message-start", "id": "co1"},
    {"type": "content-delta", "delta": {"message": {"content": {"text": "hi"}}}},
    {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {"tokens": {}}}},
]


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    """One AWS event-stream message (Bedrock's ConverseStream framing)."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", "event"),
    ):
        encoded = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07"
        headers += struct.pack(">H", len(encoded)) + encoded
    body = orjson.dumps(payload)
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


_CONVERSE_STREAM = b"".join(
    [
        event_frame("messageStart", {"role": "assistant"}),
        event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "hi"}}),
        event_frame("messageStop", {"stopReason": "end_turn"}),
        event_frame("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1}}),
    ]
)


def _answer(path: str, query: str, payload: Any) -> tuple[bytes, str]:
    """The body and content type a provider answers ``path`` with."""
    streamed = isinstance(payload, dict) and payload.get("stream") is True
    json = "application/json"
    if path.endswith("/chat/completions"):
        return _openai_chat(streamed)
    if path.endswith("/completions"):
        return _openai_text(streamed)
    if path.endswith("/embeddings"):
        data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
        return orjson.dumps({"object": "list", "data": data, "model": "m"}), json
    if path.endswith("/images/generations"):
        return orjson.dumps({"created": 1, "data": [{"b64_json": "aGk="}]}), json
    if path.endswith("/moderations"):
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        return orjson.dumps({"id": "modr", "model": "m", "results": [result]}), json
    if path.endswith("/messages/count_tokens"):
        return orjson.dumps({"input_tokens": 3}), json
    if path.endswith("/messages") or path.endswith(":rawPredict"):
        if streamed:
            return _sse(_ANTHROPIC_STREAM, done=False, named=True), SSE
        return orjson.dumps(_ANTHROPIC_MESSAGE), json
    if path.endswith(":streamRawPredict"):
        return _sse(_ANTHROPIC_STREAM, done=False, named=True), SSE
    if path.endswith(":generateContent"):
        return orjson.dumps(_GEMINI_RESPONSE), json
    if path.endswith(":streamGenerateContent"):
        return _sse([_GEMINI_RESPONSE], done=False), SSE
    if path.endswith(":batchEmbedContents"):
        return orjson.dumps({"embeddings": [{"values": [0.1, 0.2]}]}), json
    if path.endswith(":countTokens"):
        return orjson.dumps({"totalTokens": 3}), json
    if path.endswith("/converse"):
        return orjson.dumps(_CONVERSE), json
    if path.endswith("/converse-stream"):
        return _CONVERSE_STREAM, "application/vnd.amazon.eventstream"
    if path.endswith("/invoke"):  # Bedrock embeddings: Titan's shape, then Cohere's
        if isinstance(payload, dict) and "texts" in payload:
            return orjson.dumps({"embeddings": [[0.1, 0.2]]}), json
        return orjson.dumps({"embedding": [0.1, 0.2], "inputTextTokenCount": 2}), json
    if path == "/v2/chat":
        if streamed:
            return _sse(_COHERE_STREAM, done=False), SSE
        return orjson.dumps(_COHERE_CHAT), json
    if path == "/v2/embed":
        embedded = {"embeddings": {"float": [[0.1, 0.2]]}, "meta": {"billed_units": {}}}
        return orjson.dumps(embedded), json
    if path.startswith("/v2beta/stable-image/generate/"):
        return orjson.dumps({"image": "aGk=", "finish_reason": "SUCCESS"}), json
    raise AssertionError(f"the gateway called an unexpected upstream path: {path}?{query}")


def handler(request: httpx.Request) -> httpx.Response:
    """Answer one upstream request in the wire format its path belongs to."""
    try:
        payload = orjson.loads(request.content) if request.content else None
    except orjson.JSONDecodeError:
        payload = None  # multipart (stability-ai)
    body, content_type = _answer(request.url.path, request.url.query.decode(), payload)
    return httpx.Response(200, content=body, headers={"content-type": content_type})
