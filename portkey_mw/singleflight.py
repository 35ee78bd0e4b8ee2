"""Single-flight for cache misses: identical cacheable requests that miss together make one
upstream call.

The first miss for a cache key *leads* a :class:`Flight`; the identical misses that arrive
while it is in flight *follow* it and are answered with the leader's answer -- as soon as
it completes, or, when both stream, event by event as it streams (a follower that joins
mid-stream gets the whole stream from its start). The key is the exact cache key, so a
flight never crosses what a cache entry never crosses (namespace, route, credentials,
answer-shaping headers). Everything is per process.

Bounds:

* a follower waits at most its own deadline (its request timeout); past it, it gets a 408
  whatever the leader is doing;
* a streamed flight keeps at most ``max_stream_bytes`` of the leader's events for replay.
  Once more went by, the start is gone: nobody joins any more (later identical misses go
  upstream on their own), and a follower that fell that far behind ends with an error event.

When the leader's answer fails (an error status, an exception, a stream that broke off),
followers do not inherit it: those that have not sent anything yet go upstream on their
own, as if coalescing were off (a failing upstream never has a queue of requests serialised
behind it). When the leader's client leaves, nothing failed upstream: the flight is handed
over, and the next waiting follower leads a new one.
"""

from __future__ import annotations

import asyncio
import enum
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import islice

import orjson

from portkey_mw.caching import replay
from portkey_mw.context import GatewayResponse
from portkey_mw.errors import GatewayError, UpstreamTimeout

__all__ = ["DEFAULT_MAX_STREAM_BYTES", "HANDOVER", "Flight", "Flights", "StreamBrokeOff"]

#: bytes of a streamed answer a flight keeps for replay, unless the server file says
DEFAULT_MAX_STREAM_BYTES = 2 * 1024 * 1024


class StreamBrokeOff(GatewayError):
    """The leader's stream a follower was replaying ended without its answer (502)."""

    status = 502
    type = "api_error"
    code = "coalesced_stream_failed"


class _State(enum.Enum):
    FLYING = "flying"
    DONE = "done"
    FAILED = "failed"
    ABANDONED = "abandoned"


class _Handover:
    """The leader left: follow (or lead) the next flight for the key."""


#: what :meth:`Flight.follow` returns when the leader's client left
HANDOVER = _Handover()


class Flight:
    """One in-flight cache miss: the leader's answer, as it arrives, for its followers.

    :param key: the cache key.
    :param max_stream_bytes: the most of a streamed answer kept for replay.
    """

    def __init__(self, key: str, max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES) -> None:
        self.key = key
        self._max = max_stream_bytes
        self._state = _State.FLYING
        #: ``None`` until the leader has its response; then whether it streams
        self._streaming: bool | None = None
        #: the complete answer (a streamed one added up), once done
        self._body: bytes | None = None
        self._chunks: deque[bytes] = deque()
        #: the index in the whole stream of ``_chunks[0]``: above 0 once the start is gone
        self._base = 0
        self._size = 0
        #: each replaying follower's next chunk index (trimming never passes them)
        self._readers: dict[object, int] = {}
        self._changed = asyncio.Event()
        #: followers awaiting ``_changed`` now: with none, a change wakes nobody
        self._waiting = 0
        self.followers = 0

    @property
    def joinable(self) -> bool:
        """Whether a new follower can still get the whole answer from this flight."""
        return self._state is _State.DONE or (self._state is _State.FLYING and self._base == 0)

    # -- the leader's side ---------------------------------------------------------------

    def tee(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The leader's stream, unchanged, each chunk also kept for the followers."""
        self._streaming = True
        self._pulse()
        return self._tee(stream)

    async def _tee(self, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        async for chunk in stream:
            if self._state is _State.FLYING:
                self._append(chunk)
            yield chunk

    def complete(self, body: bytes) -> None:
        """The leader has its whole answer (``body``: complete JSON): followers get it."""
        if self._state is not _State.FLYING:
            return
        if self._streaming is None:
            self._streaming = False
        self._body = body
        self._state = _State.DONE
        self._pulse()

    def fail(self) -> None:
        """The leader's answer failed: followers go upstream on their own."""
        self._end(_State.FAILED)

    def abandon(self) -> None:
        """The leader's client left before the answer was complete: hand the flight over."""
        self._end(_State.ABANDONED)

    @property
    def settled(self) -> bool:
        """Whether the flight has an outcome (done, failed or abandoned)."""
        return self._state is not _State.FLYING

    def _end(self, state: _State) -> None:
        if self._state is _State.FLYING:
            self._state = state
            self._chunks, self._size = deque(), 0  # nobody replays a failed stream further
            self._pulse()

    def _append(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        if self._size > self._max:
            # Drop what every reader already has; past the bound, also what laggards lack.
            end = self._base + len(self._chunks)
            self._drop_until(min(self._readers.values(), default=end))
            while self._size > self._max and self._chunks:
                self._drop_until(self._base + 1)
        self._pulse()

    def _drop_until(self, index: int) -> None:
        while self._base < index and self._chunks:
            self._size -= len(self._chunks.popleft())
            self._base += 1

    def _pulse(self) -> None:
        # Called for every chunk of the leader's stream: only when a follower waits is an
        # event set (and a fresh one made for the next change).
        if self._waiting:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    # -- a follower's side ---------------------------------------------------------------

    async def _wait(self, deadline: float | None, timeout_ms: int | None) -> None:
        changed = self._changed
        self._waiting += 1
        try:
            async with asyncio.timeout_at(deadline):
                await changed.wait()
        except TimeoutError:
            raise UpstreamTimeout(
                f"the provider did not answer within {timeout_ms} ms "
                "(this request was waiting for an identical one in flight)"
            ) from None
        finally:
            self._waiting -= 1

    async def follow(
        self,
        *,
        stream: bool,
        include_usage: bool,
        deadline: float | None = None,
        timeout_ms: int | None = None,
    ) -> GatewayResponse | _Handover | None:
        """Wait for the leader's answer, shaped for this follower.

        :param stream: the follower asked for a stream (an SSE replay).
        :param include_usage: a streamed follower asked for the final usage chunk.
        :param deadline: the event-loop time past which the follower stops waiting.
        :param timeout_ms: the follower's timeout, for the error's message.
        :returns: the response; :data:`HANDOVER` when the leader's client left (follow or
            lead again); ``None`` when the leader failed (go upstream alone).
        :raises UpstreamTimeout: the deadline passed first.
        """
        reader: object | None = object()
        if stream and self._state is _State.FLYING:
            self._readers[reader] = self._base  # joinable: the base is still 0
        self.followers += 1
        try:
            while True:
                if self._state is _State.DONE and (not stream or not self._streaming):
                    return self._complete_response(stream, include_usage)
                if self._state is _State.FAILED:
                    return None
                if self._state is _State.ABANDONED:
                    return HANDOVER
                if stream and self._streaming and (self._chunks or self._state is _State.DONE):
                    behind = self._readers.get(reader, -1) < self._base
                    if self._state is _State.DONE and behind:
                        return self._complete_response(stream, include_usage)
                    if behind:  # the start went by before this follower sent anything
                        return None
                    response = GatewayResponse(
                        200,
                        headers={"content-type": "text/event-stream"},
                        stream=self._replay(reader, deadline, timeout_ms),
                        close=self._detach(reader),
                    )
                    reader = None  # the replay owns it now
                    return response
                await self._wait(deadline, timeout_ms)
        finally:
            if reader is not None:
                self._readers.pop(reader, None)

    def _complete_response(self, stream: bool, include_usage: bool) -> GatewayResponse:
        assert self._body is not None
        if stream:
            completion = orjson.loads(self._body)
            return GatewayResponse(
                200,
                headers={"content-type": "text/event-stream"},
                stream=replay(completion, include_usage=include_usage),
            )
        return GatewayResponse(200, self._body, headers={"content-type": "application/json"})

    def _detach(self, reader: object) -> Callable[[], Awaitable[None]]:
        async def close() -> None:
            self._readers.pop(reader, None)

        return close

    async def _replay(
        self, reader: object, deadline: float | None, timeout_ms: int | None
    ) -> AsyncIterator[bytes]:
        try:
            while True:
                position = self._readers.get(reader, -1)
                if position < self._base:
                    raise StreamBrokeOff(
                        "this request fell too far behind the identical one it was sharing"
                    )
                end = self._base + len(self._chunks)
                if position < end:
                    batch = b"".join(islice(self._chunks, position - self._base, None))
                    self._readers[reader] = end
                    yield batch
                    continue
                if self._state is _State.DONE:
                    return
                if self._state is not _State.FLYING:
                    raise StreamBrokeOff(
                        "the identical request this stream was shared from ended early"
                    )
                await self._wait(deadline, timeout_ms)
        finally:
            self._readers.pop(reader, None)


class Flights:
    """The flights in progress, by cache key (one registry per gateway).

    :param max_stream_bytes: the most of a streamed answer each flight keeps for replay.
    """

    def __init__(self, max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES) -> None:
        self._max = max_stream_bytes
        self._flights: dict[str, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    @property
    def followers(self) -> int:
        """How many requests have followed the flights now in progress."""
        return sum(flight.followers for flight in self._flights.values())

    def join(self, key: str) -> tuple[Flight | None, bool]:
        """The flight for ``key`` and whether the caller leads it; ``(None, False)`` when
        one is in flight that can no longer be joined (the caller goes alone)."""
        flight = self._flights.get(key)
        if flight is not None and flight.settled and not flight.joinable:
            del self._flights[key]  # failed or abandoned: the next miss leads anew
            flight = None
        if flight is None:
            flight = self._flights[key] = Flight(key, self._max)
            return flight, True
        if not flight.joinable:
            return None, False
        return flight, False

    def land(self, flight: Flight) -> None:
        """The leader is done with ``flight`` (its answer stored, or not to be)."""
        if not flight.settled:
            flight.fail()
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]
