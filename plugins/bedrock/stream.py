"""Bedrock ConverseStream (AWS event-stream frames) -> OpenAI ``chat.completion.chunk``s.

Frames are decoded with botocore's event-stream parser. ``messageStart`` opens the turn;
``contentBlockStart`` with a ``toolUse`` opens a tool call (id and name), whose
``contentBlockDelta`` inputs carry its argument JSON piece by piece; text deltas become
content; ``messageStop`` brings the stop reason and ``metadata`` the usage. An
``exception`` frame fails the stream with the provider's message; unknown events are
skipped.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from portkey_mw.errors import GatewayError, UpstreamBadResponse
from portkey_mw.streaming import DONE_EVENT, json_event

from .translate import FINISH_REASONS, usage


class StreamTranslator:
    """Translates one ConverseStream response."""

    def __init__(self, *, model: str | None, include_usage: bool) -> None:
        from botocore.eventstream import EventStreamBuffer  # the plugin's extra

        self._buffer = EventStreamBuffer()
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())
        self.tool_blocks: dict[int, int] = {}  # content block index -> tool call index
        self.finish: str | None = None
        self.usage: dict[str, Any] = {}

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self._buffer.add_data(chunk)
            out, failure = b"", None
            try:
                for message in self._buffer:
                    out += self._frame(message.headers, message.payload)
            except GatewayError as error:
                failure = error
            except Exception as exc:  # botocore's parser: a corrupt frame
                failure = UpstreamBadResponse(
                    f"bedrock sent a stream frame that does not decode: {exc}",
                    code="malformed_stream_chunk",
                    provider="bedrock",
                )
            if out:
                yield out
            if failure is not None:
                raise failure
        if self.finish is not None:
            tail = b""
            if self.include_usage and self.usage:
                tail += json_event(self._chunk([], usage=usage(self.usage)))
            yield tail + DONE_EVENT

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": "chatcmpl-bedrock",
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def _delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return json_event(self._chunk([choice]))

    def _frame(self, headers: dict[str, Any], payload: bytes) -> bytes:
        try:
            event = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(
                "bedrock sent a stream event that is not JSON",
                code="malformed_stream_chunk",
                provider="bedrock",
            ) from None
        if headers.get(":message-type") == "exception":
            raise UpstreamBadResponse(
                f"bedrock failed mid-stream ({headers.get(':exception-type')}): "
                f"{event.get('message') or event.get('Message')}",
                code="upstream_stream_error",
                provider="bedrock",
            )
        kind = headers.get(":event-type")
        if kind == "messageStart":
            return self._delta({"role": "assistant", "content": ""})
        if kind == "contentBlockStart":
            use = (event.get("start") or {}).get("toolUse")
            if not use:
                return b""
            index = len(self.tool_blocks)
            self.tool_blocks[int(event.get("contentBlockIndex", 0))] = index
            call = {
                "index": index,
                "id": use.get("toolUseId"),
                "type": "function",
                "function": {"name": use.get("name"), "arguments": ""},
            }
            return self._delta({"tool_calls": [call]})
        if kind == "contentBlockDelta":
            delta = event.get("delta") or {}
            if "text" in delta:
                return self._delta({"content": delta["text"]})
            if "toolUse" in delta:
                block = int(event.get("contentBlockIndex", 0))
                piece = {
                    "index": self.tool_blocks.get(block, 0),
                    "function": {"arguments": delta["toolUse"].get("input", "")},
                }
                return self._delta({"tool_calls": [piece]})
            return b""
        if kind == "messageStop":
            self.finish = FINISH_REASONS.get(event.get("stopReason") or "", "stop")
            return self._delta({}, self.finish)
        if kind == "metadata":
            self.usage = event.get("usage") or {}
        return b""
