"""Relaying streamed responses: bytes as they arrive, events only when a hook needs them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from portkey_mw.bounds import MAX_SSE_EVENT_BYTES
from portkey_mw.errors import GatewayError, UpstreamBadResponse, UpstreamTimeout

if TYPE_CHECKING:
    from portkey_mw.context import GatewayResponse

#: receives each parsed data chunk of a stream (a JSON object), in order
ChunkListener = Callable[[dict[str, Any]], None]

DONE_EVENT = b"data: [DONE]\n\n"
#: the ``type`` of the events that end the streams which have no ``[DONE]`` or
#: ``finish_reason``: a native Responses API stream, a streamed transcription, speech as
#: server-sent events
FINAL_EVENT_TYPES = frozenset(
    {
        "response.completed",
        "response.incomplete",
        "response.failed",
        "transcript.text.done",
        "speech.audio.done",
    }
)
#: How much of a stream's end the log keeps (the usage chunk and ``[DONE]`` live there).
TAIL_BYTES = 4096


def is_event_stream(response: GatewayResponse) -> bool:
    """Whether a streamed response is a stream of server-sent events (a stream that names
    no content type is); speech audio (``/v1/audio/speech``) is a stream of bytes instead,
    relayed without being parsed."""
    kind = response.headers.get("content-type")
    return kind is None or kind.split(";", 1)[0].strip().lower() == "text/event-stream"


def error_event(error: GatewayError) -> bytes:
    """An SSE event carrying an OpenAI-style error; the openai SDK raises it as APIError."""
    return b"data: " + error.to_bytes() + b"\n\n"


def json_event(data: Any) -> bytes:
    """One SSE ``data:`` event holding ``data`` as JSON."""
    return b"data: " + orjson.dumps(data) + b"\n\n"


class SSEDecoder:
    """Splits a byte stream into whole server-sent events (the blocks between blank lines).

    An event may not grow past ``max_event_bytes``: an upstream that never ends one would
    otherwise make the gateway buffer without limit. The pieces of an event still open are
    kept in a list and joined once, when a chunk can end it, so a large event arriving in
    small chunks costs linear time, not quadratic.

    :param max_event_bytes: the largest event accepted; a longer one raises
        :class:`~portkey_mw.errors.UpstreamBadResponse`.
    """

    __slots__ = ("_buffer", "_limit", "_pending", "_pending_size")

    def __init__(self, max_event_bytes: int = MAX_SSE_EVENT_BYTES) -> None:
        self._buffer = b""
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._limit = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add bytes; return the events they completed, without their blank-line ending."""
        if self._buffer and not _may_end_event(chunk):
            # Cannot complete an event (no blank line, none across the boundary): keep it.
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            self._check(len(self._buffer) + self._pending_size)
            return []
        if self._pending:
            buffer = b"".join((self._buffer, *self._pending, chunk))
            self._pending.clear()
            self._pending_size = 0
        else:
            buffer = self._buffer + chunk
        held = b""
        if b"\r" in buffer:
            # CRLF, CR and LF all end a line. A CR at the very end may be the first half of
            # a CRLF split across chunks: it waits for the next chunk.
            if buffer.endswith(b"\r"):
                buffer, held = buffer[:-1], b"\r"
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = buffer.split(b"\n\n")
        self._buffer = events.pop() + held
        if len(buffer) > self._limit:  # only then can one of its events be too large
            for event in (*events, self._buffer):
                self._check(len(event))
        return [event for event in events if event.strip()]

    def flush(self) -> list[bytes]:
        """Whatever remains when the stream ended without a final blank line."""
        rest = b"".join((self._buffer, *self._pending))
        self._buffer, self._pending, self._pending_size = b"", [], 0
        if b"\r" in rest:
            rest = rest.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = [event for event in rest.split(b"\n\n") if event.strip()]
        return events

    def _check(self, size: int) -> None:
        if size > self._limit:
            raise UpstreamBadResponse(
                f"the upstream sent a stream event larger than {self._limit} bytes",
                code="upstream_event_too_large",
            )


def _may_end_event(chunk: bytes) -> bool:
    """Whether ``chunk``, appended to an unfinished event, may complete it: it holds a blank
    line, starts one (after a newline that ended the buffer), or has a CR to normalise."""
    return b"\n\n" in chunk or chunk.startswith(b"\n") or b"\r" in chunk


def event_data(event: bytes) -> bytes | None:
    """The joined ``data:`` lines of one event, or ``None`` when it has none."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]  # the usual one-line event, without splitting
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


class _Watchdog:
    """A read timeout that costs one timer per quiet period, not one per chunk.

    ``asyncio.timeout`` arms and cancels a timer around every read; on a stream of many small
    chunks that is a large share of the relay's cost. Here a single timer stays armed: when
    it fires and data came in the meantime, it re-arms itself for the current deadline.
    Only the time spent waiting for the upstream counts, never the time the client takes.
    """

    __slots__ = ("_deadline", "_fired", "_handle", "_loop", "_task")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._deadline = math.inf
        self._fired = False

    async def wait(self, read: Awaitable[bytes], limit: float) -> bytes:
        """Await ``read``; raise ``TimeoutError`` when it takes longer than ``limit`` s."""
        self._task = asyncio.current_task()
        self._deadline = self._loop.time() + limit
        handle = self._handle
        if handle is None or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(self._deadline, self._expire)
        try:
            return await read
        except asyncio.CancelledError:
            task = self._task
            if self._fired and task is not None and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            self._deadline = math.inf
            self._fired = False

    def _expire(self) -> None:
        self._handle = None
        if self._deadline == math.inf:
            return  # not waiting now; the next read arms a new timer
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._expire)
            return
        if self._task is not None:
            self._fired = True
            self._task.cancel()

    def close(self) -> None:
        """Disarm (the stream ended or was abandoned)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class StreamGuard:
    """Checks an upstream OpenAI-format stream as it is relayed, event by event.

    A stream counts as failed -- never as a success that happens to be short -- when it:

    * stays silent longer than ``idle_timeout`` between chunks (a stalled upstream);
    * sends an event whose data is not JSON, or an ``{"error": ...}`` event;
    * ends without a ``finish_reason`` or ``[DONE]`` (a truncated stream).

    Failures are raised as :class:`~portkey_mw.errors.GatewayError`. The router reads the
    first event before it commits to a target, so a stream that fails that early falls
    back; later failures reach the client as an SSE error event.

    Whole events are yielded, never a partial one, so a malformed event is never relayed.
    When the upstream ended properly but without ``[DONE]``, one is added.

    :param stream: the upstream body, in chunks as they arrive.
    :param provider: the provider id, for error messages.
    :param idle_timeout: seconds allowed between two chunks.
    :param first_timeout: seconds allowed before the first chunk (default: ``idle_timeout``).
    """

    def __init__(
        self,
        stream: AsyncIterator[bytes],
        *,
        provider: str,
        idle_timeout: float,
        first_timeout: float | None = None,
    ) -> None:
        self._chunks = stream.__aiter__()
        self._provider = provider
        self._idle = idle_timeout
        self._first = first_timeout if first_timeout is not None else idle_timeout
        self._decoder = SSEDecoder()
        self.finished = False
        self.done = False
        self.events = 0
        #: events that carried data (not comments or keep-alives)
        self.data_events = 0
        #: every chunk this guard parses, published so nothing downstream parses it again
        self.chunks = ChunkFeed()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        timeout = self._first
        watchdog = _Watchdog()
        try:
            while True:
                try:
                    chunk = await watchdog.wait(anext(self._chunks), timeout)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise UpstreamTimeout(
                        f"{self._provider} stream stalled: nothing received for {timeout:g} s",
                        code="stream_idle_timeout",
                        provider=self._provider,
                    ) from None
                timeout = self._idle
                out, failure = self._check(self._decoder.feed(chunk))
                if out:
                    yield out  # the good events before a bad one still reach the client
                if failure is not None:
                    raise failure
        finally:
            watchdog.close()
        out, failure = self._check(self._decoder.flush())
        if out and (failure is not None or not (self.done or self.finished)):
            yield out
            out = b""
        if failure is not None:
            raise failure
        if not (self.done or self.finished):
            raise UpstreamBadResponse(
                f"{self._provider} stream ended without a finish_reason or [DONE] "
                f"after {self.events} event(s)",
                code="truncated_stream",
                provider=self._provider,
            )
        if not self.done:
            out += DONE_EVENT
        if out:
            yield out

    def _check(self, events: list[bytes]) -> tuple[bytes, GatewayError | None]:
        """The events that passed, re-joined, and the failure that stopped them, if any."""
        out = b""
        for event in events:
            data = event_data(event)
            if data == b"[DONE]":
                self.done = True
            elif data and data.strip():  # an empty data line is a keep-alive
                try:
                    self._check_data(data)
                except GatewayError as failure:
                    return out, failure
                self.data_events += 1
            self.events += 1
            out += event + b"\n\n"
        return out, None

    def _check_data(self, data: bytes) -> None:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(
                f"{self._provider} sent a stream event that is not JSON: {data[:80]!r}",
                code="malformed_stream_chunk",
                provider=self._provider,
            ) from None
        if not isinstance(chunk, dict):
            return
        error = chunk.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise UpstreamBadResponse(
                f"{self._provider} failed mid-stream: {message}",
                code="upstream_stream_error",
                provider=self._provider,
            )
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict) and choice.get("finish_reason"):
                self.finished = True
        if chunk.get("type") in FINAL_EVENT_TYPES:
            self.finished = True
        self.chunks.publish(chunk)


class ChunkFeed:
    """The parsed chunks of one stream, handed to whoever listens, so that one parse serves
    the stream check, caching and guardrails alike.

    The router reads a stream's first event before anyone can listen (to know the target
    answered); chunks published until :meth:`seal` are kept and replayed to each listener
    as it joins. Once the stream is relayed, it is sealed and the backlog dropped.
    """

    __slots__ = ("_early", "_listeners")

    def __init__(self) -> None:
        self._listeners: list[ChunkListener] = []
        self._early: list[dict[str, Any]] | None = []

    def add(self, listener: ChunkListener) -> None:
        """Start handing chunks to ``listener`` (the backlog first, if not sealed)."""
        for chunk in self._early or ():
            listener(chunk)
        self._listeners.append(listener)

    def publish(self, chunk: dict[str, Any]) -> None:
        """Hand one parsed chunk to every listener."""
        if self._early is not None:
            self._early.append(chunk)
        for listener in self._listeners:
            listener(chunk)

    def seal(self) -> None:
        """The stream is being relayed: nobody joins late, the backlog can go."""
        self._early = None


def listen(response: GatewayResponse, listener: ChunkListener) -> None:
    """Have ``listener`` see every parsed chunk of ``response``'s stream.

    A provider's stream comes through the router's :class:`StreamGuard`, which parses each
    chunk and publishes it; any other stream (a plugin's, a cache replay) is wrapped once,
    so it too is parsed in one place. Events are relayed whole and unchanged.
    """
    if response.chunks is None:
        assert response.stream is not None
        feed = response.chunks = ChunkFeed()
        feed.seal()  # parsed only as it is relayed: no backlog to keep
        response.stream = _observed(response.stream, feed)
    response.chunks.add(listener)


async def _observed(stream: AsyncIterator[bytes], feed: ChunkFeed) -> AsyncIterator[bytes]:
    decoder = SSEDecoder()

    def relay(events: list[bytes]) -> bytes:
        out = b""
        for event in events:
            data = event_data(event)
            if data and data != b"[DONE]":
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    chunk = None
                if isinstance(chunk, dict):
                    feed.publish(chunk)
            out += event + b"\n\n"
        return out

    async for raw in stream:
        out = relay(decoder.feed(raw))
        if out:
            yield out
    out = relay(decoder.flush())
    if out:
        yield out


def split_done(chunk: bytes) -> tuple[bytes, bool]:
    """``chunk`` (whole events) without a final ``[DONE]`` event, and whether it had one."""
    if not chunk.endswith(b"\n\n"):
        return chunk, False
    start = chunk.rfind(b"\n\n", 0, len(chunk) - 2)
    start = 0 if start < 0 else start + 2
    if event_data(chunk[start:-2]) == b"[DONE]":
        return chunk[:start], True
    return chunk, False
