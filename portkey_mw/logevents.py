"""Request log events: built once per request, batched to sinks by a background task.

The hot path only builds a :class:`LogEvent` and puts it on a bounded queue. Parsing usage
out of the response, and every write to a sink, happens in :class:`LogDispatcher`'s task.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
import traceback
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from portkey_mw.context import Attempt, RequestContext
from portkey_mw.errors import GatewayError
from portkey_mw.interfaces import LogSink
from portkey_mw.logbodies import BodyPolicy
from portkey_mw.pricing import PriceTable
from portkey_mw.pricing.usage import openai_token_counts

log = structlog.get_logger("portkey_mw.logevents")

QUEUE_SIZE = 10_000
BATCH_SIZE = 256
#: How long the dispatcher waits to fill a batch once it has one event.
BATCH_WINDOW = 0.05


@dataclass(slots=True)
class LogEvent:
    """Everything recorded about one request. Sinks receive these in batches.

    The pipeline fills the fields from what it already holds (references, no copies);
    :meth:`to_dict` works out the rest (usage, tokens, cost, bodies) when a sink asks.
    """

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
    #: 32 hex characters, the record's id (``x-portkey-request-id``)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    #: ``x-portkey-span-id`` (``None``: derived from the request id)
    span_id: str | None = None
    parent_span_id: str | None = None
    span_name: str | None = None
    #: the gateway API key's id (never the key)
    api_key_id: str | None = None
    #: the slug of the answering target's virtual key
    virtual_key: str | None = None
    #: the saved or server-file config the request was routed by
    config_id: str | None = None
    prompt_id: str | None = None
    prompt_version: int | None = None
    #: the label the prompt call came through (``None``: a version, ``latest`` or the
    #: published one)
    prompt_label: str | None = None
    #: a record sent in through ``POST /v1/logs``, not a request the gateway served
    custom: bool = False
    #: how bodies are rendered; ``None``: this request's record keeps none
    bodies: BodyPolicy | None = field(default=None, repr=False)
    #: the request body as the client sent it (kept only with ``bodies``)
    request_bytes: bytes | None = field(default=None, repr=False)
    #: the response as the client got it: a body, or a stream's events up to the cap (kept
    #: only with ``bodies``)
    sent_bytes: bytes | None = field(default=None, repr=False)
    _usage: Any = field(default=None, repr=False)
    _answered_by: str | None = field(default=None, repr=False)
    _costed: bool = field(default=False, repr=False)
    _cost: float | None = field(default=None, repr=False)
    _record: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def of_request(
        cls,
        ctx: RequestContext,
        *,
        status: int,
        latency_ms: float,
        error: GatewayError | None,
        **fields: Any,
    ) -> LogEvent:
        """The record of a request the gateway served: what its context knows (ids, span,
        route, caller, the attempts), the outcome, and ``fields`` (any other field, or
        ``endpoint`` when the log names another than the one served)."""
        headers, api_key = ctx.headers, ctx.api_key
        return cls(
            **{
                "request_id": ctx.request_id,
                "trace_id": ctx.trace_id,
                "span_id": headers.get("x-portkey-span-id"),
                "parent_span_id": headers.get("x-portkey-parent-span-id"),
                "span_name": headers.get("x-portkey-span-name"),
                "started_at": ctx.started_at,
                "endpoint": ctx.endpoint.value,
                "method": ctx.method,
                "path": ctx.path,
                "status": status,
                "latency_ms": latency_ms,
                "provider": ctx.provider,
                "model": ctx.model,
                "target": ctx.target_index,
                "metadata": ctx.metadata,
                "attempts": ctx.attempts,
                "error_type": error.type if error else None,
                "error_code": error.code if error else None,
                "error_message": error.message if error else None,
                "api_key_id": api_key.id if api_key is not None else None,
                "virtual_key": ctx.virtual_key,
                "config_id": ctx.config_id,
                **fields,
            }
        )

    @property
    def usage(self) -> dict[str, Any] | None:
        """Token usage from the response, parsed on first use (in the sink's task)."""
        if self._usage is None:
            usage, self._answered_by = _find_usage(self.response_bytes)
            self._usage = usage or {}
        return self._usage or None

    @property
    def served_model(self) -> str | None:
        """The model the response names (which may be more precise than the one asked)."""
        if self._usage is None:
            self.usage  # noqa: B018 - parses the response once, model included
        if self._answered_by is None and self.stream and self.response_bytes:
            # A stream without a usage chunk still names its model in every chunk.
            self._answered_by = _stream_model(self.response_bytes)
        return self._answered_by

    @property
    def tokens(self) -> dict[str, int]:
        """The usage's counts, normalised: input, output, cache_read, cache_write,
        reasoning, total (0 for what the provider did not report)."""
        usage = self.usage
        if not usage:
            return dict.fromkeys(TOKEN_KEYS, 0)
        counts = openai_token_counts(usage)
        tokens = {
            "input": counts.get("input_tokens", 0),
            "output": counts.get("output_tokens", 0),
            "cache_read": counts.get("cache_read_tokens", 0),
            "cache_write": counts.get("cache_write_tokens", 0),
            "reasoning": counts.get("output_reasoning_tokens", 0),
        }
        total = usage.get("total_tokens")
        if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
            tokens["total"] = total
        else:
            tokens["total"] = tokens["input"] + tokens["output"]
        return tokens

    @property
    def upstream_ms(self) -> float | None:
        """Time spent in provider calls over every attempt, a committed stream's relay
        included (``None``: no provider was called)."""
        # (an attempt never made -- a circuit refusal, a spent budget -- took no time)
        called = [a.latency_ms + a.stream_ms for a in self.attempts if a.latency_ms]
        return sum(called) if called else None

    @property
    def fallback(self) -> bool:
        """Whether a target other than the first one tried answered (or was tried)."""
        attempts = self.attempts
        if len(attempts) < 2:
            return False
        first = attempts[0].target
        return any(a.target != first for a in attempts)

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
        """The log record: a flat, JSON-ready dict with every key of the record always
        present (``None`` when unknown), as docs/observability.md lists them.

        Built once, however many sinks ask (each gets its own copy of the top level; the
        values inside -- ``attempts``, ``tokens``, ``metadata``, bodies -- are shared, so
        sinks read them and never change them).
        """
        if self._record is None:
            self._record = self._build_record()
        return dict(self._record)

    def _build_record(self) -> dict[str, Any]:
        cost = self.list_cost
        bodies = self.bodies
        status = self.status
        record: dict[str, Any] = {
            "request_id": self.request_id,
            "trace_id": self.trace_id[:TRACE_ID_CHARS],
            "span_id": (self.span_id or self.request_id[:16])[:SPAN_ID_CHARS],
            "parent_span_id": _bounded(self.parent_span_id, SPAN_ID_CHARS),
            "span_name": _bounded(self.span_name, SPAN_NAME_CHARS),
            "started_at": self.started_at,
            "ended_at": self.started_at + self.latency_ms / 1000,
            "endpoint": self.endpoint,
            "method": self.method,
            "path": self.path,
            "status": status,
            "success": 200 <= status < 400,
            "stream": self.stream,
            "stream_complete": self.stream_complete,
            "provider": self.provider,
            "model": self.model,
            "served_model": self.served_model,
            "target": self.target,
            "attempts": [a.summary() for a in self.attempts],
            "retry_count": self.retry_count,
            "fallback": self.fallback,
            "cache_status": self.cache_status,
            "hook_results": None,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "latency_ms": round(self.latency_ms, 3),
            "upstream_ms": _rounded(self.upstream_ms),
            "ttfb_ms": _rounded(self.ttfb_ms),
            "usage": self.usage,
            "tokens": self.tokens,
            "cost_usd": None if cost is None else 0.0 if self.cache_hit else round(cost, 8),
            "cost_saved_usd": round(cost, 8) if cost is not None and self.cache_hit else None,
            "api_key_id": self.api_key_id,
            "virtual_key": self.virtual_key,
            "config_id": self.config_id,
            "metadata": self.metadata,
            "prompt_id": self.prompt_id,
            "prompt_version": self.prompt_version,
            "prompt_label": self.prompt_label,
            "request_body": bodies.render(self.request_bytes) if bodies is not None else None,
            "response_body": bodies.render(self.sent_bytes) if bodies is not None else None,
            "custom": self.custom,
        }
        record.update(self.extra)
        return record


#: the keys of a record's ``tokens``
TOKEN_KEYS = ("input", "output", "cache_read", "cache_write", "reasoning", "total")
#: how long the tracing ids and names in a record may be (the log store's columns)
TRACE_ID_CHARS = 128
SPAN_ID_CHARS = 64
SPAN_NAME_CHARS = 256


def _bounded(value: str | None, limit: int) -> str | None:
    return value[:limit] if value else None


def _rounded(value: float | None) -> float | None:
    return round(value, 3) if value is not None else None


def _stream_model(tail: bytes) -> str | None:
    """The model named by the last chunk of a stream's tail that names one."""
    for line in reversed(tail.split(b"\n")):
        if line.startswith(b"data:") and b'"model"' in line:
            try:
                chunk = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                continue
            model = chunk.get("model") if isinstance(chunk, dict) else None
            if isinstance(model, str):
                return model
    return None


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
    nested = body.get("response")
    if "usage" not in body and isinstance(nested, dict):
        body = nested  # a Responses API stream's last event holds the response, usage included
    usage, model = body.get("usage"), body.get("model")
    return (usage if isinstance(usage, dict) else None), (model if isinstance(model, str) else None)


#: a failed write is tried again after this many seconds, doubling up to :data:`RETRY_MAX`
RETRY_FIRST = 0.1
RETRY_MAX = 5.0
#: seconds shutdown waits for the sinks to take every record they hold
DRAIN_TIMEOUT = 10.0
#: at most one "records dropped" line per sink this often, with the count since the last
DROP_REPORT_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class SinkStats:
    """One sink's delivery figures since start (read by ``/metrics``)."""

    sink: str
    #: records held for the sink: waiting, or in the batch being written (or retried)
    depth: int
    #: records the sink never got: its queue was full, or shutdown's deadline passed
    dropped: int
    #: write attempts that raised
    failures: int
    delivered: int


def failure(exc: BaseException) -> str:
    """An exception as its type and the place it was raised. Never its traceback: a
    renderer that shows a frame's locals (structlog's default) would print the database
    URL with its password, or a record's bodies."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename}:{last.lineno} in {last.name}"


class LogDispatcher:
    """Moves log events to every sink, in batches, losing none silently.

    Each sink has a lane of its own: a queue bounded by ``queue_size`` and a task that
    writes it in batches. A sink that fails keeps its batch and retries it with capped
    exponential backoff until it succeeds, while the other sinks' lanes go on (a database
    that is down does not stop the structlog lines or ``/metrics``). A record stays in a
    sink's queue, and counts against its bound, until that sink has written it.

    :meth:`emit` never waits: when a sink's queue is full, the new record is dropped for
    that sink, counted (:meth:`stats`, ``portkey_mw_log_records_dropped_total``) and
    reported in a warning line at most every :data:`DROP_REPORT_INTERVAL` seconds.
    :meth:`aclose` writes out what is held, waiting at most ``drain_timeout`` seconds, and
    logs what a sink that stayed down lost.
    """

    def __init__(
        self,
        sinks: Sequence[LogSink],
        *,
        queue_size: int = QUEUE_SIZE,
        drain_timeout: float = DRAIN_TIMEOUT,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self.sinks = list(sinks)
        self.queue_size = queue_size
        self.drain_timeout = drain_timeout
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._lanes = [_Lane(sink, queue_size) for sink in self.sinks]
        self._started = False
        self._closed = False

    def start(self) -> None:
        """Start one task per sink (inside the running loop)."""
        if self._started or self._closed or not self._lanes:
            return
        loop = asyncio.get_running_loop()
        for lane in self._lanes:
            lane.task = loop.create_task(
                self._run(lane), name=f"portkey-mw-log-sink-{lane.sink.name}"
            )
        self._started = True

    async def emit(self, event: LogEvent) -> None:
        """Queue one event for every sink. Never waits: a full queue drops and counts."""
        for lane in self._lanes:
            lane.put(event, accept=not self._closed)

    @property
    def depth(self) -> int:
        """Records the furthest-behind sink still holds."""
        return max((len(lane.held) for lane in self._lanes), default=0)

    def stats(self) -> list[SinkStats]:
        """Each sink's figures, in sink order."""
        return [lane.stats() for lane in self._lanes]

    async def flush(self) -> None:
        """Wait until every sink has every record queued so far (no deadline: a sink that
        stays down keeps this waiting)."""
        if self._started:
            await asyncio.gather(*(lane.idle.wait() for lane in self._lanes))

    async def aclose(self) -> None:
        """Write out what is held (at most ``drain_timeout`` seconds), stop the tasks and
        close the sinks. What a sink did not take in time is counted as dropped and logged."""
        if self._closed:
            return
        self.start()  # records emitted before a start are written out too
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_timeout
        for lane in self._lanes:
            lane.draining = True
            lane.full.set()  # end a batch window in progress
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(deadline):
                await self.flush()
        self._closed = True  # from here on, emit drops and counts
        for lane in self._lanes:
            await lane.stop()
            lost = len(lane.held)
            if lost:
                lane.held.clear()
                lane.dropped += lost
                lane.reported += lost  # reported here, not again as a queue-full drop
                log.error(
                    "log records lost at shutdown: the sink did not take them in time",
                    sink=lane.sink.name,
                    lost=lost,
                    drain_timeout=self.drain_timeout,
                )
            lane.report_drops()
        for lane in self._lanes:
            try:
                # A sink whose close hangs must not hang shutdown either.
                async with asyncio.timeout(max(deadline - loop.time(), 1.0)):
                    await lane.sink.aclose()
            except Exception as exc:
                log.error("log sink failed to close", sink=lane.sink.name, error=failure(exc))

    async def _run(self, lane: _Lane) -> None:
        while True:
            if not lane.held:
                lane.idle.set()
                lane.wake.clear()
                await lane.wake.wait()
                continue
            if len(lane.held) < BATCH_SIZE and not lane.draining:
                # Let a burst fill the batch: fewer, larger writes. A backlog of a full
                # batch or more skips this, so the window never caps throughput.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BATCH_WINDOW):
                        await lane.full.wait()
            # The batch stays in the queue (and in the bound) until the sink has it.
            batch = list(itertools.islice(lane.held, BATCH_SIZE))
            await self._write(lane, batch)
            for _ in batch:
                lane.held.popleft()
            lane.delivered += len(batch)
            lane.full.clear()

    async def _write(self, lane: _Lane, batch: list[LogEvent]) -> None:
        """Write ``batch`` to the lane's sink, retrying until it succeeds."""
        delay = self.retry_first
        attempt = 1
        while True:
            try:
                await self._deliver(lane.sink, batch)
            except Exception as exc:
                lane.failures += 1
                fields = {
                    "sink": lane.sink.name,
                    "attempt": attempt,
                    "held": len(lane.held),
                    "retry_in": delay,
                    "error": type(exc).__name__,
                }
                if attempt == 1:  # where it failed once, not every few seconds of an outage
                    fields["error"] = failure(exc)
                    log.error("log sink failed; holding its records and retrying", **fields)
                else:
                    log.warning("log sink failed again; still holding its records", **fields)
            else:
                if attempt > 1:
                    log.info("log sink recovered", sink=lane.sink.name, attempts=attempt)
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)
            attempt += 1

    async def _deliver(self, sink: LogSink, batch: list[LogEvent]) -> None:
        """One write attempt (a seam the test suite's secret scanner wraps)."""
        await sink.write(batch)


class _Lane:
    """One sink's queue, task and figures."""

    def __init__(self, sink: LogSink, limit: int) -> None:
        self.sink = sink
        self.limit = limit
        self.held: deque[LogEvent] = deque()
        self.task: asyncio.Task[None] | None = None
        #: set by emit when the queue stops being empty: there is something to write
        self.wake = asyncio.Event()
        #: set by emit when a whole batch is waiting (ends the batch window early)
        self.full = asyncio.Event()
        #: set by the task when it has written everything
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self.dropped = 0
        self.reported = 0  # drops already in a log line
        self.failures = 0
        self.delivered = 0
        self._last_report = -math.inf
        self._report_timer: asyncio.TimerHandle | None = None

    def put(self, event: LogEvent, *, accept: bool) -> None:
        if not accept or len(self.held) >= self.limit:
            self.dropped += 1
            self._report_soon()
            return
        if not self.held:  # the task waits for this only when it has nothing
            self.idle.clear()
            self.wake.set()
        self.held.append(event)
        if len(self.held) >= BATCH_SIZE:
            self.full.set()

    def _report_soon(self) -> None:
        """A warning now, or when the interval since the last one has passed."""
        if self._report_timer is not None:
            return  # a line is already due; it will include this drop
        wait = self._last_report + DROP_REPORT_INTERVAL - time.monotonic()
        if wait <= 0:
            self.report_drops()
        else:
            self._report_timer = asyncio.get_running_loop().call_later(wait, self.report_drops)

    def report_drops(self) -> None:
        """Log the drops not reported yet, if any."""
        if self._report_timer is not None:
            self._report_timer.cancel()
            self._report_timer = None
        count = self.dropped - self.reported
        if count <= 0:
            return
        self.reported = self.dropped
        self._last_report = time.monotonic()
        log.warning(
            "log records dropped: the sink's queue is full",
            sink=self.sink.name,
            dropped=count,
            dropped_total=self.dropped,
            queue_size=self.limit,
        )

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def stats(self) -> SinkStats:
        return SinkStats(
            sink=self.sink.name,
            depth=len(self.held),
            dropped=self.dropped,
            failures=self.failures,
            delivered=self.delivered,
        )
