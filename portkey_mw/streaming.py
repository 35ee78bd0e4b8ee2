"""Relaying streamed responses: bytes as they arrive, events only when a hook needs them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from portkey_mw.errors import GatewayError

DONE_EVENT = b"data: [DONE]\n\n"
#: How much of a stream's end the log keeps (the usage chunk and ``[DONE]`` live there).
TAIL_BYTES = 4096


def error_event(error: GatewayError) -> bytes:
    """An SSE event carrying an OpenAI-style error; the openai SDK raises it as APIError."""
    return b"data: " + error.to_bytes() + b"\n\n"


def json_event(data: Any) -> bytes:
    """One SSE ``data:`` event holding ``data`` as JSON."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


class SSEDecoder:
    """Splits a byte stream into whole server-sent events (the blocks between blank lines)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return the events they completed, without their blank-line ending."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        events = buffer.split(b"\n\n")
        self._buffer = events.pop()
        return [event for event in events if event.strip()]

    def flush(self) -> list[bytes]:
        """Whatever remains when the stream ended without a final blank line."""
        rest, self._buffer = self._buffer, b""
        return [rest] if rest.strip() else []


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event, or ``None`` when it has none."""
    data = [
        line[5:].lstrip(b" ") if line.startswith(b"data:") else None for line in event.split(b"\n")
    ]
    present = [d for d in data if d is not None]
    return b"\n".join(present) if present else None


async def split_events(stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Re-chunk a byte stream into one SSE event per item (each ending in a blank line)."""
    decoder = SSEDecoder()
    async for chunk in stream:
        for event in decoder.feed(chunk):
            yield event + b"\n\n"
    for event in decoder.flush():
        yield event + b"\n\n"
