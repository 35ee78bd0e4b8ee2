"""Request log events: built once per request, batched to sinks by a background task.

The hot path only builds a :class:`LogEvent` and puts it on a bounded queue. Parsing usage
out of the response, and every write to a sink, happens in :class:`LogDispatcher`'s task.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from portkey_mw.context import Attempt
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
