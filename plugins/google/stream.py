"""Gemini ``streamGenerateContent?alt=sse`` events -> OpenAI ``chat.completion.chunk`` events.

Each Gemini event is a partial ``GenerateContentResponse``: its text parts become content
deltas, each function call becomes one whole tool call (Gemini does not split arguments),
the finish reason closes the choice, and the last ``usageMetadata`` becomes the usage chunk.
Gemini sends no ``[DONE]``; the translation adds it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from portkey_mw.errors import GatewayError, UpstreamBadResponse
from portkey_mw.streaming import DONE_EVENT, SSEDecoder, event_data, json_event

from .translate import candidate_delta, finish_reason, usage


class StreamTranslator:
    """Translates one Gemini stream."""

    def __init__(self, *, model: str | None, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-google"
        self.created = int(time.time())
        self.started = False
        self.tool_calls = 0
        self.finished = False
        self.usage: dict[str, Any] = {}

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        async for chunk in chunks:
            out, failure = self._events(decoder.feed(chunk))
            if out:
                yield out
            if failure is not None:
                raise failure
        out, failure = self._events(decoder.flush())
        if failure is not None:
            if out:
                yield out
            raise failure
        if self.finished:
            if self.include_usage and self.usage:
                out += json_event(self._chunk([], usage=usage(self.usage)))
            out += DONE_EVENT
        if out:
            yield out

    def _events(self, events: list[bytes]) -> tuple[bytes, GatewayError | None]:
        out = b""
        for event in events:
            try:
                out += self._event(event)
            except GatewayError as failure:
                return out, failure
        return out, None

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def _event(self, raw: bytes) -> bytes:
        data = event_data(raw)
        if not data:
            return b""
        try:
            response = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(
                f"google sent a stream event that is not JSON: {data[:80]!r}",
                code="malformed_stream_chunk",
                provider="google",
            ) from None
        if not isinstance(response, dict):
            return b""
        if isinstance(response.get("error"), dict):
            raise UpstreamBadResponse(
                f"google failed mid-stream: {response['error'].get('message')}",
                code="upstream_stream_error",
                provider="google",
            )
        self.id = response.get("responseId") or self.id
        self.model = response.get("modelVersion") or self.model
        if response.get("usageMetadata"):
            self.usage = response["usageMetadata"]
        out = b""
        for candidate in response.get("candidates") or []:
            text, calls = candidate_delta(candidate, self.tool_calls)
            self.tool_calls += len(calls)
            delta: dict[str, Any] = {}
            if not self.started:
                self.started = True
                delta["role"] = "assistant"
            if text:
                delta["content"] = text
            if calls:
                delta["tool_calls"] = calls
            finish = finish_reason(candidate, self.tool_calls > 0)
            if finish:
                self.finished = True
            if delta or finish:
                choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
                out += json_event(self._chunk([choice]))
        return out
