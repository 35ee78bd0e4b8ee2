"""Bedrock ConverseStream (AWS event-stream frames) -> OpenAI ``chat.completion.chunk``s.

Frames are decoded with botocore's event-stream parser. ``messageStart`` opens the turn;
``contentBlockStart`` with a ``toolUse`` opens a tool call (id and name), whose
``contentBlockDelta`` inputs carry its argument JSON piece by piece; text deltas become
content; ``messageStop`` brings the stop reason and ``metadata`` the usage. An
``exception`` frame fails the stream with the provider's message; unknown events are
skipped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from portkey_mw.errors import SHAPE_ERRORS, GatewayError, UpstreamBadResponse
from portkey_mw.translation import ChunkTranslator

from .translate import FINISH_REASONS, JSON_TOOL, usage


class StreamTranslator(ChunkTranslator):
    """Translates one ConverseStream response (binary frames, not SSE)."""

    def __init__(self, *, model: str | None, include_usage: bool, json: bool = False) -> None:
        from botocore.eventstream import EventStreamBuffer  # the plugin's extra

        super().__init__(provider="bedrock", model=model, include_usage=include_usage, usage=usage)
        self._buffer = EventStreamBuffer()
        self._headers: dict[str, Any] = {}
        self.tool_blocks: dict[int, int] = {}  # content block index -> tool call index
        self.json = json  # the JSON tool's input is the content
        self.json_block: int | None = None

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            self._buffer.add_data(chunk)
            out, failure = b"", None
            try:
                for message in self._buffer:
                    self._headers = message.headers
                    out += self.event(message.payload)
            except GatewayError as error:
                failure = error
            except SHAPE_ERRORS as exc:  # a frame that decodes, holding the wrong JSON
                failure = self.malformed(str(exc))
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
        ending = self.ending()
        if ending:
            yield ending

    def event(self, data: bytes) -> bytes:
        headers = self._headers
        event = self.parse(data) if data else {}
        if headers.get(":message-type") == "exception":
            raise UpstreamBadResponse(
                f"bedrock failed mid-stream ({headers.get(':exception-type')}): "
                f"{event.get('message') or event.get('Message')}",
                code="upstream_stream_error",
                provider="bedrock",
            )
        kind = headers.get(":event-type")
        if kind == "messageStart":
            return self.delta({"role": "assistant", "content": ""})
        if kind == "contentBlockStart":
            use = (event.get("start") or {}).get("toolUse")
            if not use:
                return b""
            if self.json and use.get("name") == JSON_TOOL:
                self.json_block = int(event.get("contentBlockIndex", 0))
                return b""
            index = len(self.tool_blocks)
            self.tool_blocks[int(event.get("contentBlockIndex", 0))] = index
            call = {
                "index": index,
                "id": use.get("toolUseId"),
                "type": "function",
                "function": {"name": use.get("name"), "arguments": ""},
            }
            return self.delta({"tool_calls": [call]})
        if kind == "contentBlockDelta":
            delta = event.get("delta") or {}
            if "text" in delta:
                return self.delta({"content": delta["text"]})
            if "toolUse" in delta:
                block = int(event.get("contentBlockIndex", 0))
                if block == self.json_block:
                    return self.delta({"content": delta["toolUse"].get("input", "")})
                piece = {
                    "index": self.tool_blocks.get(block, 0),
                    "function": {"arguments": delta["toolUse"].get("input", "")},
                }
                return self.delta({"tool_calls": [piece]})
            return b""
        if kind == "messageStop":
            self.finished = True
            finish = FINISH_REASONS.get(event.get("stopReason") or "", "stop")
            if self.json_block is not None and not self.tool_blocks:
                finish = "stop"
            return self.delta({}, finish)
        if kind == "metadata":
            self.usage = event.get("usage") or {}
        return b""
