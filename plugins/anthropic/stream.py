"""Anthropic's streaming events -> OpenAI ``chat.completion.chunk`` events.

``message_start`` opens the assistant turn (and carries the prompt's usage); text deltas
become ``delta.content``; each ``tool_use`` block becomes one entry of ``delta.tool_calls``
(its index counts tool calls, not content blocks), first with its id and name, then with its
argument JSON as it arrives; ``message_delta`` brings the stop reason and output usage.
Events this adapter does not know (``ping`` and future types) are skipped; an ``error``
event fails the stream with the provider's message.
"""

from __future__ import annotations

from typing import Any

from portkey_mw.errors import UpstreamBadResponse
from portkey_mw.translation import ChunkTranslator

from .translate import FINISH_REASONS, JSON_TOOL, usage


class StreamTranslator(ChunkTranslator):
    """Translates one Anthropic stream.

    :param json_mode: a ``response_format`` tool was forced: its input is the content.
    """

    def __init__(
        self, *, provider: str, model: str | None, include_usage: bool, json_mode: bool
    ) -> None:
        super().__init__(provider=provider, model=model, include_usage=include_usage, usage=usage)
        self.json_mode = json_mode
        self.tool_calls = 0
        self.block_tool_index: dict[int, int] = {}

    def event(self, data: bytes) -> bytes:
        event = self.parse(data)
        kind = event.get("type") if isinstance(event, dict) else None
        handler = getattr(self, f"_on_{kind}", None) if isinstance(kind, str) else None
        return handler(event) if handler is not None else b""  # unknown: skipped

    def _on_message_start(self, event: dict[str, Any]) -> bytes:
        message = event.get("message") or {}
        self.id = message.get("id") or self.id
        self.model = message.get("model") or self.model
        self.usage.update(message.get("usage") or {})
        return self.delta({"role": "assistant", "content": ""})

    def _on_content_block_start(self, event: dict[str, Any]) -> bytes:
        index = int(event.get("index", 0))
        block = event.get("content_block") or {}
        kind = str(block.get("type"))
        if kind == "text" and block.get("text"):
            return self.delta({"content": block["text"]})
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
        return self.delta({"tool_calls": [call]})

    def _on_content_block_delta(self, event: dict[str, Any]) -> bytes:
        index = int(event.get("index", 0))
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return self.delta({"content": delta.get("text", "")})
        if delta.get("type") == "input_json_delta":
            piece = delta.get("partial_json", "")
            if index not in self.block_tool_index:  # the response_format tool: its JSON
                return self.delta({"content": piece}) if piece else b""
            call = {"index": self.block_tool_index[index], "function": {"arguments": piece}}
            return self.delta({"tool_calls": [call]})
        return b""  # thinking, signatures, citations: not part of OpenAI's chunk format

    def _on_message_delta(self, event: dict[str, Any]) -> bytes:
        self.usage.update(event.get("usage") or {})
        reason = (event.get("delta") or {}).get("stop_reason")
        if reason is None:
            return b""
        finish = FINISH_REASONS.get(reason, "stop")
        if self.json_mode and finish == "tool_calls" and not self.tool_calls:
            finish = "stop"
        self.finished = True
        return self.delta({}, finish)

    def _on_error(self, event: dict[str, Any]) -> bytes:
        error = event.get("error") or {}
        raise UpstreamBadResponse(
            f"{self.provider} failed mid-stream: {error.get('message') or error}",
            code="upstream_stream_error",
            provider=self.provider,
        )
