"""The sink itself, on the OpenTelemetry SDK: a private tracer and meter provider (the host
app's global providers are left alone), exporting over OTLP/HTTP with protobuf.

Imported only when the sink is switched on: without the ``otel`` extra this module fails to
import, and the plugin says which extra to install.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

from portkey_mw.interfaces import LogSink
from portkey_mw.logevents import failure

from .attributes import metric_points, span_data
from .settings import OtelSettings

if TYPE_CHECKING:
    from portkey_mw.logevents import LogEvent

log = structlog.get_logger("portkey_mw.otel")

SCOPE = "portkey_mw"
TOKEN_USAGE = "gen_ai.client.token.usage"
OPERATION_DURATION = "gen_ai.client.operation.duration"
#: the bucket boundaries the GenAI metric conventions recommend
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip


class _RecordIds(IdGenerator):
    """Hands the SDK the ids a record asks for.

    The SDK takes a new span's ids from its id generator; the sink sets the record's ids
    just before starting its span (in the same synchronous step, so no other span can come
    between), and anything else gets random ids.
    """

    def __init__(self) -> None:
        self.trace_id: int | None = None
        self.span_id: int | None = None

    def generate_trace_id(self) -> int:
        value, self.trace_id = self.trace_id, None
        return value or random.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        value, self.span_id = self.span_id, None
        return value or random.getrandbits(64) or 1


class OtelSink(LogSink):
    """One CLIENT span per request and the GenAI client metrics, exported over OTLP/HTTP.

    :meth:`write` only creates and ends spans and records metric points (in memory); the
    SDK's batch span processor and periodic metric reader export from their own threads, so
    a slow or absent collector never holds up the event loop or a request.
    """

    name = "otel"

    def __init__(self, settings: OtelSettings, version: str = "") -> None:
        self.settings = settings
        resource = Resource.create(
            {
                **settings.resource_attributes,
                "service.name": settings.resolved_service_name(),
                **({"service.version": version} if version else {}),
            }
        )
        self._ids = _RecordIds()
        self._tracer_provider: TracerProvider | None = None
        self._meter_provider: MeterProvider | None = None
        self._span_exporter: OTLPSpanExporter | None = None
        self._metric_exporter: OTLPMetricExporter | None = None
        headers = dict(settings.headers) or None
        if settings.traces:
            self._span_exporter = OTLPSpanExporter(
                endpoint=settings.signal_endpoint("traces"),
                headers=headers,
                timeout=settings.timeout,
            )
            # shutdown_on_exit=False: the gateway's shutdown closes it, within a deadline
            self._tracer_provider = TracerProvider(
                resource=resource, id_generator=self._ids, shutdown_on_exit=False
            )
            self._tracer_provider.add_span_processor(BatchSpanProcessor(self._span_exporter))
            self._tracer = self._tracer_provider.get_tracer(SCOPE, version)
        if settings.metrics:
            self._metric_exporter = OTLPMetricExporter(
                endpoint=settings.signal_endpoint("metrics"),
                headers=headers,
                timeout=settings.timeout,
            )
            reader = PeriodicExportingMetricReader(
                self._metric_exporter,
                export_interval_millis=settings.metrics_interval * 1000,
                export_timeout_millis=settings.timeout * 1000,
            )
            self._meter_provider = MeterProvider(
                metric_readers=[reader],
                resource=resource,
                shutdown_on_exit=False,
                views=[
                    _buckets(TOKEN_USAGE, TOKEN_BUCKETS),
                    _buckets(OPERATION_DURATION, DURATION_BUCKETS),
                ],
            )
            meter = self._meter_provider.get_meter(SCOPE, version)
            self._tokens = meter.create_histogram(
                TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used."
            )
            self._duration = meter.create_histogram(
                OPERATION_DURATION, unit="s", description="GenAI operation duration."
            )

    async def write(self, events: Sequence[LogEvent]) -> None:
        for event in events:
            # One bad record must not make the dispatcher retry (and duplicate) the batch.
            try:
                record = event.to_dict()
                if self._tracer_provider is not None:
                    self._span(record)
                if self._meter_provider is not None:
                    self._measure(record)
            except Exception as exc:
                # (no traceback: its locals hold the record, bodies included)
                log.error("the OpenTelemetry sink could not export a record", error=failure(exc))

    def _span(self, record: dict[str, object]) -> None:
        data = span_data(record)
        parent = Context()  # never the dispatcher task's own current span
        if data.parent_span_id is not None:
            remote = SpanContext(
                trace_id=data.trace_id,
                span_id=data.parent_span_id,
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            parent = trace.set_span_in_context(NonRecordingSpan(remote), parent)
        else:
            self._ids.trace_id = data.trace_id
        self._ids.span_id = data.span_id
        try:
            span = self._tracer.start_span(
                data.name,
                context=parent,
                kind=SpanKind.CLIENT,
                attributes=data.attributes,
                start_time=data.start_ns,
            )
        finally:
            # ids the SDK did not ask for (a sampled-out span) must not reach the next one
            self._ids.trace_id = self._ids.span_id = None
        if data.error_type is not None:
            span.set_status(Status(StatusCode.ERROR, data.error_type))
        span.end(end_time=data.end_ns)

    def _measure(self, record: dict[str, object]) -> None:
        points = metric_points(record)
        self._duration.record(points.duration_s, points.attributes)
        if points.input_tokens is not None:
            input_attributes = {**points.token_attributes, "gen_ai.token.type": "input"}
            self._tokens.record(points.input_tokens, input_attributes)
        if points.output_tokens is not None:
            output_attributes = {**points.token_attributes, "gen_ai.token.type": "output"}
            self._tokens.record(points.output_tokens, output_attributes)

    async def aclose(self) -> None:
        """Export what is left, off the event loop, within ``shutdown_timeout`` seconds."""
        deadline = self.settings.shutdown_timeout
        try:
            await asyncio.wait_for(asyncio.to_thread(self._shutdown, deadline), deadline + 1)
        except TimeoutError:
            # The collector is slow or down: stop retrying rather than hold up the shutdown.
            for exporter in (self._span_exporter, self._metric_exporter):
                if exporter is not None:
                    exporter.shutdown()
            log.warning(
                "OpenTelemetry export did not finish before the shutdown deadline",
                seconds=deadline,
            )

    def _shutdown(self, seconds: float) -> None:
        # In a worker thread: both calls block until the last export answered (or failed).
        if self._meter_provider is not None:
            self._meter_provider.shutdown(timeout_millis=seconds * 1000)
        if self._tracer_provider is not None:
            self._tracer_provider.shutdown()


def _buckets(instrument: str, boundaries: Sequence[float]) -> View:
    return View(
        instrument_type=Histogram,
        instrument_name=instrument,
        aggregation=ExplicitBucketHistogramAggregation(boundaries=boundaries),
    )
