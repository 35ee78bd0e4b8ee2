"""Anthropic's streaming events -> OpenAI ``chat.completion.chunk`` events.

``message_start`` opens the assistant turn (and carries the prompt's usage); text deltas
become ``delta.content``; each ``tool_use`` block becomes one entry of ``delta.tool_calls``
(its index counts tool calls, not content blocks), first with its id and name, then with its
argument JSON as it arrives; ``message_delta`` brings the stop reason and output usage.
Events this adapter does not know (``ping`` and future types) are skipped; an ``error``
event fails the stream with the provider's message.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from portkey_mw.errors import GatewayError, UpstreamBadResponse
from portkey_mw.streaming import DONE_EVENT, SSEDecoder, event_data, json_event

from .translate import FINISH_REASONS, JSON_TOOL, usage


class StreamTranslator:
    """Translates one Anthropic stream.

    :param model: the model named in the request (until the stream names its own).
    :param include_usage: send OpenAI's final usage chunk (``stream_options.include_usage``).
    :param json_mode: a ``response_format`` tool was forced: its input is the content.
    """

    def __init__(
        self, *, provider: str, model: str | None, include_usage: bool, json_mode: bool
    ) -> None:
        self.provider = provider
        self.id = "chatcmpl-anthropic"
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.json_mode = json_mode
        self.usage: dict[str, Any] = {}
        self.tool_calls = 0
        self.block_kinds: dict[int, str] = {}
        self.block_tool_index: dict[int, int] = {}
        self.finish: str | None = None

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """OpenAI SSE bytes for the Anthropic SSE bytes in ``chunks``."""
        decoder = SSEDecoder()
        async for chunk in chunks:
            out, failure = self._events(decoder.feed(chunk))
            if out:
                yield out  # what came before a failing event still reaches the client
            if failure is not None:
                raise failure
        out, failure = self._events(decoder.flush())
        if failure is not None:
            if out:
                yield out
            raise failure
        if self.finish is not None:
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
        if not data:
            return b""
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(
                f"{self.provider} sent a stream event that is not JSON: {data[:80]!r}",
                code="malformed_stream_chunk",
                provider=self.provider,
            ) from None
        kind = event.get("type") if isinstance(event, dict) else None
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        return handler(event) if handler is not None else b""  # unknown: skipped

    def _on_message_start(self, event: dict[str, Any]) -> bytes:
        message = event.get("message") or {}
        self.id = message.get("id") or self.id
        self.model = message.get("model") or self.model
        self.usage.update(message.get("usage") or {})
        return self._delta({"role": "assistant", "content": ""})

    def _on_content_block_start(self, event: dict[str, Any]) -> bytes:
        index = int(event.get("index", 0))
        block = event.get("content_block") or {}
        kind = str(block.get("type"))
        self.block_kinds[index] = kind
        if kind == "text" and block.get("text"):
            return self._delta({"content": block["text"]})
        if kind != "tool_use" or (self.json_mode and block.get("name") == JSON_TOOL):
            return b""
        tool_index = self.tool_calls
        self.tool_calls += 1
        self.block_tool_index[index] = tool_index
        call = {
            "index": tool_index,
            "id": block.get("id"),
            "type": "function",
            "function": {"name": block.get("name"), "arguments": ""},
        }
        return self._delta({"tool_calls": [call]})

    def _on_content_block_delta(self, event: dict[str, Any]) -> bytes:
        index = int(event.get("index", 0))
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return self._delta({"content": delta.get("text", "")})
        if delta.get("type") == "input_json_delta":
            piece = delta.get("partial_json", "")
            if index not in self.block_tool_index:  # the response_format tool: its JSON
                return self._delta({"content": piece}) if piece else b""
            call = {"index": self.block_tool_index[index], "function": {"arguments": piece}}
            return self._delta({"tool_calls": [call]})
        return b""  # thinking, signatures, citations: not part of OpenAI's chunk format

    def _on_message_delta(self, event: dict[str, Any]) -> bytes:
        self.usage.update(event.get("usage") or {})
        reason = (event.get("delta") or {}).get("stop_reason")
        if reason is None:
            return b""
        finish = FINISH_REASONS.get(reason, "stop")
        if self.json_mode and finish == "tool_calls" and not self.tool_calls:
            finish = "stop"
        self.finish = finish
        return self._delta({}, finish)

    def _on_error(self, event: dict[str, Any]) -> bytes:
        error = event.get("error") or {}
        raise UpstreamBadResponse(
            f"{self.provider} failed mid-stream: {error.get('message') or error}",
            code="upstream_stream_error",
            provider=self.provider,
        )
