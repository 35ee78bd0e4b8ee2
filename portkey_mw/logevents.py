"""Request log events: built once per request, batched to sinks by a background task.

The hot path only builds a :class:`LogEvent` and puts it on a bounded queue. Parsing usage
out of the response, and every write to a sink, happens in :class:`LogDispatcher`'s task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from portkey_mw.context import Attempt
from portkey_mw.interfaces import LogSink
from portkey_mw.pricing import PriceTable

log = structlog.get_logger("portkey_mw.logevents")

QUEUE_SIZE = 10_000
BATCH_SIZE = 256
#: How long the dispatcher waits to fill a batch once it has one event.
BATCH_WINDOW = 0.05


@dataclass(slots=True)
class LogEvent:
    """Everything recorded about one request. Sinks receive these in batches."""

    trace_id: str
    started_at: float
    endpoint: str
    method: str
    path: str
    status: int
    latency_ms: float
    stream: bool = False
    provider: str | None = None
    model: str | None = None
    target: str | None = None
    cache_status: str | None = None
    retry_count: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    error_type: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    #: milliseconds to the first byte sent to the client (streams)
    ttfb_ms: float | None = None
    stream_complete: bool | None = None
    #: the response body (complete responses) or its last bytes (streams), for usage
    response_bytes: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)
    #: the price list the cost is worked out with
    prices: PriceTable | None = field(default=None, repr=False)
    _usage: Any = field(default=None, repr=False)
    _answered_by: str | None = field(default=None, repr=False)
    _costed: bool = field(default=False, repr=False)
    _cost: float | None = field(default=None, repr=False)

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage from the response, parsed on first use (in the sink's task)."""
        if self._usage is None:
            usage, self._answered_by = _find_usage(self.response_bytes)
            self._usage = usage or {}
        return self._usage or None

    @property
    def cache_hit(self) -> bool:
        """Whether the answer came from the cache (exact or semantic)."""
        return self.cache_status in ("HIT", "SEMANTIC_HIT")

    @property
    def list_cost(self) -> float | None:
        """What the answer costs at the provider's price for the model (``None``: no usage,
        or no price). Worked out once, however many sinks ask."""
        if not self._costed and self.prices is not None:
            usage = self.usage
            self._cost = self.prices.cost(
                usage,
                provider=self.provider,
                model=self.model,
                answered_by=self._answered_by,
                at=self.started_at,
            )
            self._costed = True
        return self._cost

    @property
    def cost_usd(self) -> float | None:
        """What this request cost: nothing for a cache hit."""
        return 0.0 if self.cache_hit else self.list_cost

    @property
    def cost_saved_usd(self) -> float | None:
        """For a cache hit, what the provider would have charged for the answer."""
        return self.list_cost if self.cache_hit else None

    def to_dict(self) -> dict[str, Any]:
        """A flat, JSON-ready view for sinks that write records."""
        record: dict[str, Any] = {
            "trace_id": self.trace_id,
            "started_at": self.started_at,
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "latency_ms": round(self.latency_ms, 3),
            "stream": self.stream,
            "provider": self.provider,
            "model": self.model,
            "target": self.target,
            "cache_status": self.cache_status,
            "retry_count": self.retry_count,
        }
        if self.metadata:
            record["metadata"] = self.metadata
        if len(self.attempts) > 1 or self.error_type:
            record["attempts"] = [a.summary() for a in self.attempts]
        if self.error_type:
            record["error_type"] = self.error_type
            record["error_message"] = self.error_message
        if self.ttfb_ms is not None:
            record["ttfb_ms"] = round(self.ttfb_ms, 3)
        if self.stream_complete is not None:
            record["stream_complete"] = self.stream_complete
        usage = self.usage
        if usage:
            record["usage"] = usage
        cost = self.list_cost
        if cost is not None:
            record["cost_usd"] = 0.0 if self.cache_hit else round(cost, 8)
            if self.cache_hit:
                record["cost_saved_usd"] = round(cost, 8)
        record.update(self.extra)
        return record


def _find_usage(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """The usage in a response body or a stream's tail, and the model the response names."""
    if not data:
        return None, None
    if data.lstrip().startswith(b"{"):
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None, None
        return _usage_and_model(body)
    # A stream's tail: the usage chunk is the last data event before [DONE].
    for line in reversed(data.split(b"\n")):
        if line.startswith(b"data:") and b'"usage"' in line:
            try:
                chunk = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            usage, model = _usage_and_model(chunk)
            if usage is not None:
                return usage, model
    return None, None


def _usage_and_model(body: Any) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    usage, model = body.get("usage"), body.get("model")
    return (usage if isinstance(usage, dict) else None), (model if isinstance(model, str) else None)


class LogDispatcher:
    """Moves log events from a bounded queue to every sink, in batches.

    When the queue is full, :meth:`emit` waits for room rather than drop a record: a
    log that falls behind slows requests down, it never loses them silently.
    """

    def __init__(self, sinks: Sequence[LogSink]) -> None:
        self.sinks = list(sinks)
        self._queue: asyncio.Queue[LogEvent] = asyncio.Queue(QUEUE_SIZE)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background task (inside the running loop)."""
        if self._task is None and self.sinks:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="portkey-mw-log-dispatcher"
            )

    async def emit(self, event: LogEvent) -> None:
        """Queue one event; cheap unless the queue is full."""
        if not self.sinks:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            await self._queue.put(event)

    @property
    def depth(self) -> int:
        """Events waiting for the sinks."""
        return self._queue.qsize()

    async def flush(self) -> None:
        """Wait until every queued event reached the sinks."""
        if self._task is not None:
            await self._queue.join()

    async def aclose(self) -> None:
        """Drain the queue, stop the task and close the sinks."""
        await self.flush()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for sink in self.sinks:
            try:
                await sink.aclose()
            except Exception:
                log.exception("log sink failed to close", sink=sink.name)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + BATCH_WINDOW
            while len(batch) < BATCH_SIZE:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0 and self._queue.empty():
                    break
                try:
                    batch.append(
                        self._queue.get_nowait()
                        if not self._queue.empty()
                        else await asyncio.wait_for(self._queue.get(), remaining)
                    )
                except TimeoutError:
                    break
            await self._deliver(batch)
            for _ in batch:
                self._queue.task_done()

    async def _deliver(self, batch: list[LogEvent]) -> None:
        for sink in self.sinks:
            for attempt in (1, 2):
                try:
                    await sink.write(batch)
                    break
                except Exception:
                    log.exception(
                        "log sink failed", sink=sink.name, events=len(batch), attempt=attempt
                    )
