"""Exact response caching: keys over what changes the answer, replay, and stream recording.

A config turns caching on (``cache: {mode: simple, max_age: <seconds>}``); the server file
names the backend (``cache.backend``, the in-process ``memory`` one by default). The key
covers the endpoint and the request body except what cannot change the answer (``user``,
``metadata``, streaming options); a namespace (``x-portkey-cache-namespace``) partitions
it. Only successful responses are stored; a streamed one only once it completed. A cached
answer to a streamed request is replayed as a proper SSE stream, usage included.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import structlog

from portkey_mw.context import Endpoint, GatewayResponse, RequestContext
from portkey_mw.interfaces import CacheBackend
from portkey_mw.streaming import DONE_EVENT, SSEDecoder, event_data, json_event

log = structlog.get_logger("portkey_mw.cache")

NAMESPACE_HEADER = "x-portkey-cache-namespace"
REFRESH_HEADER = "x-portkey-cache-force-refresh"
CACHEABLE = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS})
#: body parameters that do not change the answer, so they are not part of the key
IGNORED = frozenset({"user", "metadata", "stream", "stream_options", "store", "service_tier"})


def cache_key(ctx: RequestContext) -> str:
    """``<namespace>:<sha256>`` over the endpoint and the answer-shaping request body."""
    body = {k: v for k, v in (ctx.body or {}).items() if k not in IGNORED}
    canonical = orjson.dumps([ctx.endpoint.value, body], option=orjson.OPT_SORT_KEYS)
    namespace = ctx.headers.get(NAMESPACE_HEADER, "default")
    return f"{namespace}:{hashlib.sha256(canonical).hexdigest()}"


def force_refresh(ctx: RequestContext) -> bool:
    """Whether the client asked to bypass the cache and refresh the entry."""
    return ctx.headers.get(REFRESH_HEADER, "").lower() == "true"


async def replay(completion: dict[str, Any], *, include_usage: bool) -> AsyncIterator[bytes]:
    """A stored chat or text completion as the SSE stream a streamed request expects."""
    chat = completion.get("object") == "chat.completion"
    base = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model"),
    }
    out = b""
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
            if message.get("tool_calls"):
                delta["tool_calls"] = [
                    {**call, "index": i} for i, call in enumerate(message["tool_calls"])
                ]
            parts = [{"index": index, "delta": delta, "finish_reason": None}]
            parts.append(
                {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
            )
        else:
            parts = [
                {"index": index, "text": choice.get("text", ""), "finish_reason": None},
                {"index": index, "text": "", "finish_reason": choice.get("finish_reason")},
            ]
        for part in parts:
            out += json_event({**base, "choices": [part]})
    if include_usage and completion.get("usage"):
        out += json_event({**base, "choices": [], "usage": completion["usage"]})
    yield out + DONE_EVENT


class StreamRecorder:
    """Rebuilds the complete chat completion from the OpenAI chunks of a stream.

    Fed the bytes the client received; :meth:`completion` gives what to cache.
    """

    def __init__(self) -> None:
        self._decoder = SSEDecoder()
        self._base: dict[str, Any] = {}
        self._content: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}
        self._finish: dict[int, str | None] = {}
        self._usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream."""
        for event in self._decoder.feed(chunk):
            data = event_data(event)
            if not data or data == b"[DONE]":
                continue
            try:
                parsed = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if isinstance(parsed, dict):
                self._take(parsed)

    def _take(self, chunk: dict[str, Any]) -> None:
        if not self._base:
            self._base = {k: chunk.get(k) for k in ("id", "created", "model")}
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = int(choice.get("index", 0))
            delta = choice.get("delta") or {}
            if delta.get("content"):
                self._content.setdefault(index, []).append(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = self._calls.setdefault(index, {}).setdefault(
                    int(call.get("index", 0)),
                    {"id": None, "type": "function", "function": {"name": None, "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] = function.get("name") or slot["function"]["name"]
                slot["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
            else:
                self._finish.setdefault(index, None)

    def completion(self) -> dict[str, Any]:
        """The chat completion the stream added up to."""
        choices = []
        for index in sorted(self._finish):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(self._content.get(index, [])) or None,
            }
            calls = self._calls.get(index)
            if calls:
                message["tool_calls"] = [calls[i] for i in sorted(calls)]
            choices.append(
                {"index": index, "message": message, "finish_reason": self._finish[index]}
            )
        completion = {**self._base, "object": "chat.completion", "choices": choices}
        if self._usage:
            completion["usage"] = self._usage
        return completion


class CacheUse:
    """Caching for one request: where to look, under which key, for how long to keep.

    A cache fault never fails a request: a backend error is a logged miss.
    """

    __slots__ = ("backend", "key", "refresh", "ttl")

    def __init__(self, backend: CacheBackend, ctx: RequestContext, ttl: float | None) -> None:
        self.backend = backend
        self.key = cache_key(ctx)
        self.ttl = ttl
        self.refresh = force_refresh(ctx)

    async def lookup(self, ctx: RequestContext) -> GatewayResponse | None:
        """The cached answer, shaped for this request (replayed as a stream if streamed)."""
        if self.refresh:
            ctx.cache_status = "REFRESH"
            return None
        ctx.cache_status = "MISS"
        try:
            stored = await self.backend.get(self.key)
        except Exception as exc:
            log.warning(
                "cache lookup failed; treated as a miss", backend=self.backend.name, error=str(exc)
            )
            return None
        if stored is None:
            return None
        ctx.cache_status = "HIT"
        if ctx.stream and ctx.endpoint is not Endpoint.EMBEDDINGS:
            include_usage = bool(
                ((ctx.body or {}).get("stream_options") or {}).get("include_usage")
            )
            stream = replay(orjson.loads(stored), include_usage=include_usage)
            return GatewayResponse(
                200, headers={"content-type": "text/event-stream"}, stream=stream
            )
        return GatewayResponse(200, stored, headers={"content-type": "application/json"})

    async def store(self, body: bytes) -> None:
        """Keep a successful answer (the complete JSON body) for ``ttl`` seconds."""
        try:
            await self.backend.set(self.key, body, self.ttl)
        except Exception as exc:
            log.warning("cache store failed", backend=self.backend.name, error=str(exc))
