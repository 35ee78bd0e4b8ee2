"""Cohere v2 chat stream events -> OpenAI ``chat.completion.chunk`` events.

``message-start`` opens the turn; ``content-delta`` carries text; ``tool-call-start`` and
``tool-call-delta`` carry a tool call's id, name and argument pieces; ``message-end`` brings
the finish reason and usage. ``tool-plan-delta`` (Cohere's reasoning before tool calls) and
unknown events are skipped.
"""

from __future__ import annotations

from portkey_mw.translation import ChunkTranslator

from .translate import FINISH_REASONS, usage


class StreamTranslator(ChunkTranslator):
    """Translates one Cohere chat stream."""

    def __init__(self, *, model: str | None, include_usage: bool) -> None:
        super().__init__(provider="cohere", model=model, include_usage=include_usage, usage=usage)

    def event(self, data: bytes) -> bytes:
        event = self.parse(data)
        if not isinstance(event, dict):
            return b""
        kind = event.get("type")
        message = (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            self.id = event.get("id") or self.id
            return self.delta({"role": "assistant", "content": ""})
        if kind == "content-delta":
            return self.delta({"content": (message.get("content") or {}).get("text", "")})
        if kind in ("tool-call-start", "tool-call-delta"):
            call = dict(message.get("tool_calls") or {})
            call["index"] = int(event.get("index", 0))
            if kind == "tool-call-start":
                call.setdefault("type", "function")
            return self.delta({"tool_calls": [call]})
        if kind == "message-end":
            delta = event.get("delta") or {}
            self.usage = delta.get("usage") or {}
            self.finished = True
            return self.delta({}, FINISH_REASONS.get(delta.get("finish_reason") or "", "stop"))
        return b""
