"""What every inbound stream translation does the same way: read the provider's OpenAI chunk
stream as SSE events, translate each, and end the client's stream once."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator

from portkey_mw.errors import SHAPE_ERRORS, GatewayError, UpstreamBadResponse
from portkey_mw.streaming import SSEDecoder


class ChunkTranslator(ABC):
    """OpenAI chat completion chunks (SSE bytes) -> another API's stream events.

    A subclass says what one chunk becomes (:meth:`_chunk`) and how the stream ends
    (:meth:`finish`); this class feeds it the events in order and stops at the first that is
    not an OpenAI chunk, after what came before it reached the client.
    """

    @abstractmethod
    def _chunk(self, raw: bytes) -> bytes:
        """The client's events for one SSE event of the provider's stream."""

    @abstractmethod
    def finish(self) -> bytes:
        """The events that end the client's stream (once; later calls return nothing)."""

    async def translate(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The client's stream for a chat completion stream; a malformed chunk raises after
        what came before it was yielded."""
        decoder = SSEDecoder()
        async for raw in chunks:
            out, failure = self.feed(decoder.feed(raw))
            if out:
                yield out
            if failure is not None:
                raise failure
        out, failure = self.feed(decoder.flush())
        if failure is None:
            out += self.finish()
        if out:
            yield out
        if failure is not None:
            raise failure

    def feed(self, events: list[bytes]) -> tuple[bytes, GatewayError | None]:
        """Translate whole SSE events in order; stop at the first that is not a chunk."""
        out = b""
        for raw in events:
            try:
                out += self._chunk(raw)
            except SHAPE_ERRORS as exc:
                # The router checked that each event is JSON, not what the JSON holds.
                return out, UpstreamBadResponse(
                    f"the provider sent a stream event that is not an OpenAI chunk ({exc}): "
                    f"{raw[:80]!r}",
                    code="malformed_stream_chunk",
                )
        return out, None
