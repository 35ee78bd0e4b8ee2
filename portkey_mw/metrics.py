"""``/metrics``: the gateway's figures in Prometheus' text format (``prometheus-client``).

Two kinds of series, neither costing the request path anything:

* per-request counters and histograms (requests, errors, latency, time to first token,
  tokens, cost, fallbacks, retries, budget and rate-limit refusals) are updated by
  :class:`MetricsSink`, a log sink: it runs in the log dispatcher's task, from the log
  event every request already emits;
* state (cache outcomes, guardrail verdicts, circuit states, each log sink's queue, drops
  and failed writes, the limits backend, unpriced models) is read from the objects that
  keep it when Prometheus scrapes (:class:`StateCollector`).

Each gateway has a registry of its own, so that two gateways in one process (tests, an app
mounting two) do not mix their figures. Label values that come from clients (the model
name) are bounded: past :data:`MAX_MODELS` distinct names, new ones are counted as
``other``, so a client sending random model names cannot grow the series without limit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from portkey_mw.interfaces import LogSink
from portkey_mw.logevents import LogEvent
from portkey_mw.spend import total_tokens

if TYPE_CHECKING:
    from portkey_mw.caching import CacheStats
    from portkey_mw.guardrails.runner import GuardrailStats
    from portkey_mw.logevents import LogDispatcher
    from portkey_mw.pricing import PriceTable
    from portkey_mw.routing.breaker import CircuitBreakers
    from portkey_mw.spend import SpendControl

#: where prometheus-client's worker processes keep their values (its own variable)
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: the text format's content type
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: distinct model names labelled; the rest are ``other``
MAX_MODELS = 500
#: seconds: from a cache hit's milliseconds to a slow upstream's minutes
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: token counts read from a response's usage, by the ``kind`` label
TOKEN_KINDS = (
    ("input", ("prompt_tokens",), ("input_tokens",)),
    ("output", ("completion_tokens",), ("output_tokens",)),
    ("cache_read", ("prompt_tokens_details", "cached_tokens"), ()),
    ("cache_write", ("prompt_tokens_details", "cache_creation_tokens"), ()),
    ("reasoning", ("completion_tokens_details", "reasoning_tokens"), ()),
)
CIRCUIT_STATES = ("closed", "open", "half_open")


def _count(usage: dict[str, Any], *paths: tuple[str, ...]) -> int:
    for path in paths:
        value: Any = usage
        for step in path:
            value = value.get(step) if isinstance(value, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


class _Models:
    """Bounds the ``model`` label (see the module's docstring)."""

    def __init__(self, limit: int = MAX_MODELS) -> None:
        self.limit = limit
        self.seen: set[str] = set()

    def __call__(self, model: str | None) -> str:
        if not model:
            return ""
        if model in self.seen:
            return model
        if len(self.seen) >= self.limit:
            return "other"
        self.seen.add(model)
        return model


@contextlib.contextmanager
def shared_metrics(workers: int) -> Iterator[None]:
    """Around ``serve`` with several workers: give them one directory to keep their values
    in (prometheus-client's multiprocess mode), so that a scrape, answered by any worker,
    adds up every worker's series; removed at exit. An operator's own
    ``PROMETHEUS_MULTIPROC_DIR`` is used as it is (and kept)."""
    if workers <= 1 or os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="portkey-mw-metrics-")
    os.environ[MULTIPROCESS_ENV] = directory  # inherited by the workers, read at import
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_ENV]
        shutil.rmtree(directory, ignore_errors=True)


class GatewayMetrics:
    """The series of one gateway, in a registry of its own.

    Under ``PROMETHEUS_MULTIPROC_DIR`` (``serve --workers N``) the counters and histograms
    live in that directory's files, one per worker, and :meth:`render` adds up every
    worker's; the state series are the answering worker's.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess = bool(os.environ.get(MULTIPROCESS_ENV))
        self._state: list[Collector] = []
        self.model = _Models()
        registry = self.registry
        self.requests = Counter(
            "portkey_mw_requests",
            "API requests answered, by endpoint, provider, model and HTTP status",
            ("endpoint", "provider", "model", "status"),
            registry=registry,
        )
        self.errors = Counter(
            "portkey_mw_errors",
            "requests answered with an error, by endpoint, provider and error type",
            ("endpoint", "provider", "error_type"),
            registry=registry,
        )
        self.latency = Histogram(
            "portkey_mw_request_duration_seconds",
            "time from the request's arrival to its last byte, as the client saw it",
            ("endpoint", "provider"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "portkey_mw_time_to_first_token_seconds",
            "streams: time from the request's arrival to the first byte sent",
            ("provider",),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "portkey_mw_tokens",
            "tokens the providers reported, by kind (input, output, cache_read, cache_write, "
            "reasoning)",
            ("provider", "model", "kind"),
            registry=registry,
        )
        self.cost = Counter(
            "portkey_mw_cost_usd",
            "what the answers cost at the providers' prices (cache hits cost nothing)",
            ("provider", "model"),
            registry=registry,
        )
        self.fallbacks = Counter(
            "portkey_mw_fallbacks",
            "requests answered by another target than the first one tried",
            ("endpoint",),
            registry=registry,
        )
        self.retries = Counter(
            "portkey_mw_retries",
            "retries made (attempts after the first at the answering target)",
            ("provider",),
            registry=registry,
        )
        self.refusals = Counter(
            "portkey_mw_limit_refusals",
            "requests refused by spend control: kind budget (412) or rate_limit (429)",
            ("kind",),
            registry=registry,
        )

    def observe(self, event: LogEvent) -> None:
        """Count one request (called from the log dispatcher's task)."""
        endpoint, provider = event.endpoint, event.provider or ""
        model = self.model(event.model)
        self.requests.labels(endpoint, provider, model, str(event.status)).inc()
        self.latency.labels(endpoint, provider).observe(event.latency_ms / 1000)
        if event.ttfb_ms is not None:
            self.ttft.labels(provider).observe(event.ttfb_ms / 1000)
        if event.status >= 400:
            self.errors.labels(endpoint, provider, event.error_type or "provider_error").inc()
            if event.status == 412 and event.error_type == "budget_exceeded":
                self.refusals.labels("budget").inc()
            elif event.status == 429 and event.error_code == "rate_limit_exceeded":
                self.refusals.labels("rate_limit").inc()
        if event.retry_count:
            self.retries.labels(provider).inc(event.retry_count)
        if len({attempt.target for attempt in event.attempts}) > 1 and event.status < 400:
            self.fallbacks.labels(endpoint).inc()
        usage = event.usage
        if usage and not event.cache_hit and total_tokens(usage):
            for kind, *paths in TOKEN_KINDS:
                count = _count(usage, *paths)
                if count:
                    self.tokens.labels(provider, model, kind).inc(count)
            cost = event.cost_usd
            if cost:
                self.cost.labels(provider, model).inc(cost)

    def render(self) -> bytes:
        """The text format, for a scrape."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
        for collector in self._state:
            combined.register(collector)
        return generate_latest(combined)

    def add_state(self, collector: Collector) -> None:
        """Series read at scrape time (not kept in the multiprocess files)."""
        self._state.append(collector)
        self.registry.register(collector)


class MetricsSink(LogSink):
    """Feeds :class:`GatewayMetrics` from the log events (off the request path)."""

    name = "metrics"

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    async def write(self, events: Sequence[LogEvent]) -> None:
        for event in events:
            self.metrics.observe(event)


class StateCollector(Collector):
    """The gateway's state, read when Prometheus scrapes.

    :param sources: returns what to read; a callable, so that a gateway whose plugins are
        re-collected (its dispatcher and stats replaced) is read as it is now.
    """

    def __init__(self, sources: Callable[[], StateSources]) -> None:
        self.sources = sources

    def describe(self) -> list[Any]:
        """Nothing ahead of time: the registry must not read the sources while the gateway
        is still being built."""
        return []

    def collect(self) -> Iterator[Any]:
        state = self.sources()
        cache = CounterMetricFamily(
            "portkey_mw_cache_lookups", "cache lookups by outcome", labels=("status",)
        )
        stats = state.cache
        for status, count in (
            ("HIT", stats.hits),
            ("SEMANTIC_HIT", stats.semantic_hits),
            ("MISS", stats.misses),
            ("REFRESH", stats.refreshes),
        ):
            cache.add_metric((status,), count)
        yield cache
        saved = CounterMetricFamily(
            "portkey_mw_cache_saved_usd", "what cache hits saved at the providers' prices"
        )
        saved.add_metric((), stats.cost_saved_usd)
        yield saved
        verdicts = CounterMetricFamily(
            "portkey_mw_guardrail_checks",
            "guardrail check results by check and outcome (passed, failed, errored)",
            labels=("check", "outcome"),
        )
        for check, counted in sorted(state.guardrails.checks.items()):
            verdicts.add_metric((check, "passed"), counted.passed)
            verdicts.add_metric((check, "failed"), counted.failed)
            verdicts.add_metric((check, "errored"), counted.errored)
        yield verdicts
        circuits = GaugeMetricFamily(
            "portkey_mw_circuit_state",
            "1 for each upstream's current circuit state (closed, open, half_open)",
            labels=("provider", "state"),
        )
        opened = CounterMetricFamily(
            "portkey_mw_circuit_opened",
            "times each upstream's circuit opened",
            labels=("provider",),
        )
        per_provider: dict[tuple[str, str], float] = {}
        opened_by: dict[str, float] = {}
        for row in state.breakers.snapshot():
            for name in CIRCUIT_STATES:
                key = (row["provider"], name)
                per_provider[key] = per_provider.get(key, 0) + (row["state"] == name)
            opened_by[row["provider"]] = opened_by.get(row["provider"], 0) + row["times_opened"]
        for (provider, name), value in sorted(per_provider.items()):
            circuits.add_metric((provider, name), value)
        for provider, value in sorted(opened_by.items()):
            opened.add_metric((provider,), value)
        yield circuits
        yield opened
        yield from _log_delivery(state.logs)
        limits = state.spend.backend
        degraded = GaugeMetricFamily(
            "portkey_mw_limits_degraded",
            "1 while budgets and rate limits are counted per process because Redis is down",
            labels=("backend",),
        )
        degraded.add_metric((limits.name,), float(limits.degraded))
        yield degraded
        unpriced = CounterMetricFamily(
            "portkey_mw_unpriced_responses",
            "responses whose model has no price (costed 0), by provider and model",
            labels=("provider", "model"),
        )
        for (provider, model), entry in sorted(state.prices.unpriced.items()):
            unpriced.add_metric((provider, model), entry.requests)
        if state.prices.unpriced_other:
            unpriced.add_metric(("", "other"), state.prices.unpriced_other)
        yield unpriced


def _log_delivery(logs: LogDispatcher) -> Iterator[Any]:
    """Each log sink's queue, drops and failed writes (sinks of one name added up)."""
    queue = GaugeMetricFamily(
        "portkey_mw_log_queue_depth",
        "log records held for each sink (waiting, or being retried while it is down)",
        labels=("sink",),
    )
    dropped = CounterMetricFamily(
        "portkey_mw_log_records_dropped",
        "log records a sink never got: its queue was full, or shutdown's deadline passed",
        labels=("sink",),
    )
    failures = CounterMetricFamily(
        "portkey_mw_log_sink_failures",
        "failed write attempts to each log sink (each is retried)",
        labels=("sink",),
    )
    totals: dict[str, list[int]] = {}
    for row in logs.stats():
        figures = totals.setdefault(row.sink, [0, 0, 0])
        figures[0] += row.depth
        figures[1] += row.dropped
        figures[2] += row.failures
    for sink, (depth, drops, failed) in sorted(totals.items()):
        queue.add_metric((sink,), depth)
        dropped.add_metric((sink,), drops)
        failures.add_metric((sink,), failed)
    yield queue
    yield dropped
    yield failures


class StateSources:
    """What :class:`StateCollector` reads."""

    def __init__(
        self,
        cache: CacheStats,
        guardrails: GuardrailStats,
        breakers: CircuitBreakers,
        logs: LogDispatcher,
        spend: SpendControl,
        prices: PriceTable,
    ) -> None:
        self.cache = cache
        self.guardrails = guardrails
        self.breakers = breakers
        self.logs = logs
        self.spend = spend
        self.prices = prices
