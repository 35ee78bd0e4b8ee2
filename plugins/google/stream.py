"""Gemini ``streamGenerateContent?alt=sse`` events -> OpenAI ``chat.completion.chunk`` events.

Each Gemini event is a partial ``GenerateContentResponse``: its text parts become content
deltas, each function call becomes one whole tool call (Gemini does not split arguments),
the finish reason closes the choice, and the last ``usageMetadata`` becomes the usage chunk.
Gemini sends no ``[DONE]``; the translation adds it.
"""

from __future__ import annotations

from typing import Any

from portkey_mw.errors import UpstreamBadResponse
from portkey_mw.translation import ChunkTranslator

from .translate import candidate_delta, finish_reason, usage


class StreamTranslator(ChunkTranslator):
    """Translates one Gemini stream."""

    def __init__(self, *, model: str | None, include_usage: bool) -> None:
        super().__init__(provider="google", model=model, include_usage=include_usage, usage=usage)
        self.started = False
        self.tool_calls = 0

    def event(self, data: bytes) -> bytes:
        response = self.parse(data)
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
                out += self.delta(delta, finish)
        return out
