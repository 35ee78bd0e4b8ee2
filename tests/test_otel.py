"""The OpenTelemetry sink (``plugins/otel_sink``) against a real OTLP/HTTP receiver.

The collector stand-in is an HTTP server on 127.0.0.1 that decodes what the SDK's exporter
posts to ``/v1/traces`` and ``/v1/metrics`` with ``opentelemetry.proto``. Requests go
through a gateway with the mock provider and the plugin loaded from its entry point, as a
user runs it.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from portkey_mw_plugins.otel_sink import OtelSettings, load_settings, make_sink
from portkey_mw_plugins.otel_sink.attributes import metric_points, span_data

from portkey_mw import Gateway
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import InvalidConfig, PluginMissingDependency
from tests.conftest import free_port, in_process
from tests.planted import OPENAI_KEY

PLUGIN = "portkey-mw.otel"
MESSAGES = [{"role": "user", "content": "hello there"}]
REPLY = "one two three"  # the mock's reply: 3 output tokens; the prompt is 2 input tokens
MOCK = {"x-portkey-provider": "mock"}
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


class Collector:
    """An OTLP/HTTP receiver on loopback that keeps every decoded export request."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.metric_exports: list[list[Metric]] = []
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                with collector.lock:
                    collector.headers.append({k.lower(): v for k, v in self.headers.items()})
                    if self.path == "/v1/traces":
                        traces = ExportTraceServiceRequest.FromString(body)
                        for resource_spans in traces.resource_spans:
                            collector.resources.append(attributes(resource_spans.resource))
                            for scope in resource_spans.scope_spans:
                                collector.spans.extend(scope.spans)
                        answer = ExportTraceServiceResponse().SerializeToString()
                    elif self.path == "/v1/metrics":
                        metrics = ExportMetricsServiceRequest.FromString(body)
                        collector.metric_exports.append(
                            [
                                metric
                                for resource_metrics in metrics.resource_metrics
                                for scope in resource_metrics.scope_metrics
                                for metric in scope.metrics
                            ]
                        )
                        answer = ExportMetricsServiceResponse().SerializeToString()
                    else:
                        self.send_response(404)
                        self.end_headers()
                        return
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def span(self, trace_id: int) -> Span:
        found = [s for s in self.spans if int.from_bytes(s.trace_id, "big") == trace_id]
        assert len(found) == 1, f"{len(found)} spans in trace {trace_id:032x}"
        return found[0]

    def last_metrics(self) -> dict[str, Metric]:
        """The last export's metrics by name (cumulative: the totals so far)."""
        assert self.metric_exports, "no metrics were exported"
        return {metric.name: metric for metric in self.metric_exports[-1]}


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()
    running.thread.join(5)


def value(any_value: AnyValue) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def attributes(item: Any) -> dict[str, Any]:
    pairs: list[KeyValue] = list(item.attributes)
    return {pair.key: value(pair.value) for pair in pairs}


def gateway(**otel: Any) -> Gateway:
    plugins = {"settings": {PLUGIN: otel}} if otel is not None else {}
    return Gateway(ServerSettings.model_validate({"mock": True, "plugins": plugins}))


def chat(model: str = "gpt-4o", **body: Any) -> dict[str, Any]:
    return {"model": model, "messages": MESSAGES, **body}


async def test_spans_and_metrics_reach_the_collector(collector: Collector) -> None:
    gw = gateway(
        endpoint=collector.url + "/",
        service_name="gateway-under-test",
        # a collector credential: it goes to the collector, never into a log line
        headers={"x-collector-key": OPENAI_KEY},
        resource_attributes={"deployment.environment": "test"},
    )
    mock = {"provider": "mock", "mock_reply": REPLY}
    config = {**MOCK, "x-portkey-config": json.dumps(mock)}
    failing = {"x-portkey-config": json.dumps({"provider": "mock", "mock_status": 503})}
    async with in_process(gw) as client:
        traced = {
            **config,
            "x-portkey-trace-id": TRACE_ID,
            "x-portkey-metadata": json.dumps({"team": "search", "_user": "u-1"}),
        }
        answer = await client.post("/v1/chat/completions", headers=traced, json=chat())
        assert answer.status_code == 200
        named = {**config, "x-portkey-trace-id": "my-run-1"}
        streamed = await client.post(
            "/v1/chat/completions",
            headers=named,
            json=chat(stream=True, stream_options={"include_usage": True}),
        )
        assert streamed.status_code == 200
        failed_trace = "ffeeddccbbaa99887766554433221100"
        failed = await client.post(
            "/v1/chat/completions",
            headers={**failing, "x-portkey-trace-id": failed_trace},
            json=chat("gpt-4o-mini"),
        )
        assert failed.status_code == 503
        embedded = await client.post(
            "/v1/embeddings",
            headers={**MOCK, "x-portkey-trace-id": "e" * 32},
            json={"model": "text-embedding-3-small", "input": "hello"},
        )
        assert embedded.status_code == 200
        await gw.settled()
    # The lifespan's end closed the sink, which exported what was left before returning.

    assert len(collector.spans) == 4
    assert collector.resources[0]["service.name"] == "gateway-under-test"
    assert collector.resources[0]["deployment.environment"] == "test"
    assert all(h["x-collector-key"] == OPENAI_KEY for h in collector.headers)
    assert all(h["content-type"] == "application/x-protobuf" for h in collector.headers)

    span = collector.span(int(TRACE_ID, 16))
    assert span.name == "chat gpt-4o"
    assert span.kind == Span.SPAN_KIND_CLIENT
    assert span.status.code != Status.STATUS_CODE_ERROR
    assert span.end_time_unix_nano > span.start_time_unix_nano
    attrs = attributes(span)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "mock" and attrs["gen_ai.system"] == "mock"
    assert attrs["gen_ai.request.model"] == "gpt-4o"
    assert attrs["gen_ai.usage.input_tokens"] == 2
    assert attrs["gen_ai.usage.output_tokens"] == 3
    assert attrs["gen_ai.request.stream"] is False
    assert attrs["http.response.status_code"] == 200
    assert attrs["portkey.metadata.team"] == "search"
    assert attrs["portkey.retry_count"] == 0
    assert "error.type" not in attrs
    # nothing of the bodies leaves
    assert not any("hello there" in str(v) or REPLY in str(v) for v in attrs.values())

    # A trace id that is not 32 hex digits: the OTel trace id is derived from it.
    derived = int.from_bytes(hashlib.sha256(b"my-run-1").digest()[:16], "big")
    stream_span = collector.span(derived)
    stream_attrs = attributes(stream_span)
    assert stream_attrs["portkey.trace_id"] == "my-run-1"
    assert stream_attrs["gen_ai.request.stream"] is True
    assert stream_attrs["gen_ai.usage.output_tokens"] == 3
    assert stream_attrs["gen_ai.response.time_to_first_chunk"] > 0

    failed_span = collector.span(int(failed_trace, 16))
    assert failed_span.name == "chat gpt-4o-mini"
    assert failed_span.status.code == Status.STATUS_CODE_ERROR
    failed_attrs = attributes(failed_span)
    assert failed_attrs["http.response.status_code"] == 503
    assert failed_attrs["error.type"]
    assert failed_span.status.message == failed_attrs["error.type"]

    embed_span = collector.span(int("e" * 32, 16))
    assert embed_span.name == "embeddings text-embedding-3-small"
    assert attributes(embed_span)["gen_ai.operation.name"] == "embeddings"

    metrics = collector.last_metrics()
    tokens = metrics["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    by_type: dict[tuple[str, str], Any] = {}
    for point in tokens.histogram.data_points:
        point_attrs = attributes(point)
        key = (point_attrs["gen_ai.token.type"], point_attrs["gen_ai.request.model"])
        by_type[key] = point
    # the two chats answered with usage: 2 input and 3 output tokens each
    assert by_type["input", "gpt-4o"].count == 2 and by_type["input", "gpt-4o"].sum == 4
    assert by_type["output", "gpt-4o"].count == 2 and by_type["output", "gpt-4o"].sum == 6
    assert list(by_type["input", "gpt-4o"].explicit_bounds) == [4.0**i for i in range(14)]
    duration = metrics["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    assert sum(p.count for p in duration.histogram.data_points) == 4
    assert list(duration.histogram.data_points[0].explicit_bounds) == [
        0.01 * 2**i for i in range(14)
    ]
    errors = [p for p in duration.histogram.data_points if "error.type" in attributes(p)]
    assert len(errors) == 1 and attributes(errors[0])["gen_ai.request.model"] == "gpt-4o-mini"


async def test_a_collector_that_is_down_fails_no_request() -> None:
    gw = gateway(
        endpoint=f"http://127.0.0.1:{free_port()}",  # nobody listens there
        timeout=0.5,
        shutdown_timeout=2,
        metrics_interval=0.2,
    )
    started = time.monotonic()
    async with in_process(gw) as client:
        for _ in range(3):
            answer = await client.post("/v1/chat/completions", headers=MOCK, json=chat())
            assert answer.status_code == 200
        await gw.settled()
    # the shutdown gave up on the collector within its deadline
    assert time.monotonic() - started < 10


async def test_the_standard_endpoint_variable_switches_it_on(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-the-environment")
    gw = Gateway(ServerSettings(mock=True))
    assert [s.name for s in gw.log_sinks if s.plugin_name == PLUGIN] == ["otel"]
    async with in_process(gw) as client:
        headers = {**MOCK, "x-portkey-trace-id": TRACE_ID}
        answer = await client.post("/v1/chat/completions", headers=headers, json=chat())
        assert answer.status_code == 200
        await gw.settled()
    assert collector.span(int(TRACE_ID, 16)).name == "chat gpt-4o"
    assert collector.resources[0]["service.name"] == "from-the-environment"
    assert "gen_ai.client.token.usage" in collector.last_metrics()


def test_not_configured_registers_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not [s for s in Gateway(ServerSettings(mock=True)).log_sinks if s.name == "otel"]
    off = gateway(enabled=False)
    assert not [s for s in off.log_sinks if s.name == "otel"]
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert load_settings({}) is None


def test_configured_without_the_extra_stops_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # What an installation without the extra sees: the SDK's modules cannot be imported.
    monkeypatch.delitem(sys.modules, "portkey_mw_plugins.otel_sink.exporter", raising=False)
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(PluginMissingDependency) as raised:
        gateway(endpoint="http://127.0.0.1:4318")
    assert 'pip install "portkey-mw[otel]"' in str(raised.value)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"endpoint": "ftp://collector"}, "endpoint: Value error, must be an http://"),
        ({"endpoint": "http://user:pw@collector:4318"}, "must not hold credentials"),
        ({"endpont": "http://collector:4318"}, "endpont: Extra inputs are not permitted"),
        ({"metrics_interval": 0}, "metrics_interval"),
    ],
)
def test_bad_settings_stop_the_start(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfig) as raised:
        gateway(**settings)
    assert f"plugins.settings.{PLUGIN}" in str(raised.value)
    assert message in str(raised.value)
    assert "pw@" not in str(raised.value)


#: a record with every key of the full log record (issue 13's contract)
FULL_RECORD: dict[str, Any] = {
    "request_id": "9f" * 16,
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "span_id": "00f067aa0ba902b7",
    "parent_span_id": "a3ce929d0e0e4736",
    "span_name": "retrieve-then-answer",
    "started_at": 1_700_000_000.25,
    "ended_at": 1_700_000_001.75,
    "endpoint": "chat_completions",
    "method": "POST",
    "path": "/v1/chat/completions",
    "status": 200,
    "success": True,
    "stream": False,
    "provider": "azure-openai",
    "model": "gpt-4o",
    "served_model": "gpt-4o-2024-08-06",
    "target": "targets[1]",
    "attempts": [{"target": "targets[0]"}, {"target": "targets[1]"}],
    "retry_count": 1,
    "fallback": True,
    "cache_status": "MISS",
    "latency_ms": 1500.0,
    "upstream_ms": 1400.0,
    "usage": {"prompt_tokens": 120, "completion_tokens": 30},
    "tokens": {
        "input": 120,
        "output": 30,
        "cache_read": 100,
        "cache_write": 0,
        "reasoning": 10,
        "total": 150,
    },
    "cost_usd": 0.00042,
    "api_key_id": "key_123",
    "virtual_key": "azure-prod",
    "config_id": "pc-main",
    "metadata": {"team": "search", "tier": 2},
    "prompt_id": None,
    "request_body": {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "a private question"}],
        "temperature": 0.2,
        "max_completion_tokens": 64,
        "stop": "END",
    },
    "response_body": {"choices": [{"message": {"content": "a private answer"}}]},
}


def test_the_full_record_maps_to_the_conventions() -> None:
    data = span_data(FULL_RECORD)
    assert data.name == "chat gpt-4o"
    assert data.trace_id == int(FULL_RECORD["trace_id"], 16)
    assert data.span_id == int(FULL_RECORD["span_id"], 16)
    assert data.parent_span_id == int(FULL_RECORD["parent_span_id"], 16)
    assert (data.end_ns - data.start_ns) == 1_500_000_000
    assert data.error_type is None
    attrs = data.attributes
    assert attrs["gen_ai.provider.name"] == "azure.ai.openai"
    assert attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attrs["gen_ai.request.temperature"] == 0.2
    assert attrs["gen_ai.request.max_tokens"] == 64
    assert attrs["gen_ai.request.stop_sequences"] == ["END"]
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == 100
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == 10
    assert attrs["portkey.virtual_key"] == "azure-prod"
    assert attrs["portkey.api_key_id"] == "key_123"
    assert attrs["portkey.fallback"] is True and attrs["portkey.retry_count"] == 1
    assert attrs["portkey.cost_usd"] == 0.00042
    assert attrs["portkey.metadata.tier"] == 2
    assert attrs["portkey.attempts"] == 2
    assert attrs["portkey.span_name"] == "retrieve-then-answer"
    assert "portkey.prompt_id" not in attrs  # None is left out
    assert not any("private" in str(v) for v in attrs.values())

    # A spec record's failure, and a cache hit's metrics (no tokens: no provider call).
    failed = span_data(
        {**FULL_RECORD, "status": 429, "success": False, "error_type": "rate_limit_error"}
    )
    assert failed.error_type == "rate_limit_error"
    hit = metric_points({**FULL_RECORD, "cache_status": "HIT"})
    assert hit.input_tokens is None and hit.duration_s == 1.5
    assert metric_points(FULL_RECORD).input_tokens == 120


class _Record:
    """Stands in for a LogEvent carrying the full record (its ``to_dict`` is all a sink reads)."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.record = record

    def to_dict(self) -> dict[str, Any]:
        return self.record


async def test_the_full_record_keeps_its_ids_and_parent(collector: Collector) -> None:
    sink = make_sink(OtelSettings(endpoint=collector.url, metrics=False))
    child_of_nothing = {**FULL_RECORD, "trace_id": "1" * 32, "parent_span_id": None}
    await sink.write([_Record(FULL_RECORD), _Record(child_of_nothing)])  # type: ignore[list-item]
    await sink.aclose()
    span = collector.span(int(FULL_RECORD["trace_id"], 16))
    assert span.span_id.hex() == FULL_RECORD["span_id"]
    assert span.parent_span_id.hex() == FULL_RECORD["parent_span_id"]
    assert span.start_time_unix_nano == 1_700_000_000_250_000_000
    assert span.end_time_unix_nano == 1_700_000_001_750_000_000
    root = collector.span(int("1" * 32, 16))
    assert root.span_id.hex() == FULL_RECORD["span_id"] and not root.parent_span_id
    assert not collector.metric_exports  # metrics: false
