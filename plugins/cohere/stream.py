"""Cohere v2 chat stream events -> OpenAI ``chat.completion.chunk`` events.

``message-start`` opens the turn; ``content-delta`` carries text; ``tool-call-start`` and
``tool-call-delta`` carry a tool call's id, name and argument pieces; ``message-end`` brings
the finish reason and usage. ``tool-plan-delta`` (Cohere's reasoning before tool calls) and
unknown events are skipped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from portkey_mw.errors import GatewayError, UpstreamBadResponse
from portkey_mw.streaming import DONE_EVENT, SSEDecoder, event_data, json_event

from .translate import FINISH_REASONS, usage


class StreamTranslator:
    """Translates one Cohere chat stream."""

    def __init__(self, *, model: str | None, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-cohere"
        self.created = int(time.time())
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

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return json_event(self._chunk([choice]))

    def _event(self, raw: bytes) -> bytes:
        data = event_data(raw)
        if not data or data == b"[DONE]":
            return b""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(
                f"cohere sent a stream event that is not JSON: {data[:80]!r}",
                code="malformed_stream_chunk",
                provider="cohere",
            ) from None
        kind = event.get("type") if isinstance(event, dict) else None
        message = (
            ((event.get("delta") or {}).get("message") or {}) if isinstance(event, dict) else {}
        )
        if kind == "message-start":
            self.id = event.get("id") or self.id
            return self._delta({"role": "assistant", "content": ""})
        if kind == "content-delta":
            return self._delta({"content": (message.get("content") or {}).get("text", "")})
        if kind in ("tool-call-start", "tool-call-delta"):
            call = dict(message.get("tool_calls") or {})
            call["index"] = int(event.get("index", 0))
            if kind == "tool-call-start":
                call.setdefault("type", "function")
            return self._delta({"tool_calls": [call]})
        if kind == "message-end":
            delta = event.get("delta") or {}
            self.usage = delta.get("usage") or {}
            self.finished = True
            return self._delta({}, FINISH_REASONS.get(delta.get("finish_reason") or "", "stop"))
        return b""
