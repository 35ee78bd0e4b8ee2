"""A request's log record as an OpenTelemetry GenAI client span and metric points.

Pure functions over ``LogEvent.to_dict()`` (no OpenTelemetry import), so the mapping is read
and tested on its own. Keys are read with ``.get()``: records written before the full record
(issue 13) lack some of them. Nothing secret and no body goes in: never a key, a prompt or a
completion; the request's sampling parameters are the only thing read from a kept body.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

AttributeValue = str | bool | int | float | list[str]

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")
_HEX16 = re.compile(r"[0-9a-fA-F]{16}")

#: the gateway's endpoints as GenAI operations; others keep their own name (the
#: conventions allow a custom value where no well-known one applies)
OPERATIONS = {
    "chat_completions": "chat",
    "chat/completions": "chat",
    "messages": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}

#: portkey-mw provider ids as the conventions' well-known gen_ai.provider.name values
PROVIDERS = {
    "azure-openai": "azure.ai.openai",
    "bedrock": "aws.bedrock",
    "google": "gcp.gemini",
    "vertex-ai": "gcp.vertex_ai",
    "mistral-ai": "mistral_ai",
    "perplexity-ai": "perplexity",
    "x-ai": "x_ai",
}

#: request parameters, as the client named them, and their gen_ai.request.* attribute
REQUEST_PARAMS = {
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "n": "gen_ai.request.choice.count",
    "stop": "gen_ai.request.stop_sequences",
}

#: the record's own fields exported under ``portkey.`` as they are
PORTKEY_FIELDS = (
    "request_id",
    "endpoint",
    "target",
    "cache_status",
    "cost_usd",
    "cost_saved_usd",
    "virtual_key",
    "api_key_id",
    "config_id",
    "prompt_id",
    "prompt_version",
    "retry_count",
    "fallback",
    "upstream_ms",
    "error_code",
    "span_name",
    "custom",
)


@dataclass(slots=True)
class SpanData:
    """What one span is made of, in OpenTelemetry's units (ids as ints, times in ns)."""

    name: str
    trace_id: int
    span_id: int | None
    parent_span_id: int | None
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error_type: str | None = None


@dataclass(slots=True)
class MetricPoints:
    """The values one request adds to the GenAI client metrics."""

    duration_s: float
    attributes: dict[str, AttributeValue]
    #: ``None`` when the answer reported no usage (the conventions ask for no point then)
    input_tokens: int | None = None
    output_tokens: int | None = None
    token_attributes: dict[str, AttributeValue] = field(default_factory=dict)


def operation_name(record: Mapping[str, Any]) -> str:
    """``gen_ai.operation.name`` for the record's endpoint."""
    endpoint = str(record.get("endpoint") or "unknown")
    return OPERATIONS.get(endpoint, endpoint)


def provider_name(provider: str | None) -> str | None:
    """``gen_ai.provider.name`` for a portkey-mw provider id."""
    if not provider:
        return None
    return PROVIDERS.get(provider, provider)


def trace_id_of(record: Mapping[str, Any]) -> int:
    """The OTel trace id: the record's ``trace_id`` when it is 32 hex digits, else one
    derived from it, so requests sharing a Portkey trace id (``x-portkey-trace-id:
    my-run-1``) share an OTel trace too."""
    raw = str(record.get("trace_id") or "")
    if _HEX32.fullmatch(raw) and int(raw, 16):
        return int(raw, 16)
    return _derived(raw or str(record.get("request_id") or ""), 16) or 1


def span_id_of(record: Mapping[str, Any]) -> int | None:
    """The record's ``span_id`` when it is 16 hex digits, else one derived from the
    ``request_id``, else ``None`` (a random one)."""
    raw = str(record.get("span_id") or "")
    if _HEX16.fullmatch(raw) and int(raw, 16):
        return int(raw, 16)
    request_id = record.get("request_id")
    return (_derived(str(request_id), 8) or 1) if request_id else None


def parent_span_id_of(record: Mapping[str, Any]) -> int | None:
    """The client's parent span (``x-portkey-parent-span-id``) when it is 16 hex digits."""
    raw = str(record.get("parent_span_id") or "")
    if _HEX16.fullmatch(raw) and int(raw, 16):
        return int(raw, 16)
    return None


def _derived(text: str, size: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:size], "big")


def times_ns(record: Mapping[str, Any]) -> tuple[int, int]:
    """Start and end of the request in epoch nanoseconds: ``started_at`` and ``ended_at``,
    or ``started_at`` plus the latency the client saw."""
    started = float(record.get("started_at") or 0.0)
    ended = record.get("ended_at")
    if not isinstance(ended, int | float) or ended < started:
        ended = started + float(record.get("latency_ms") or 0.0) / 1000
    # microseconds first: a float of epoch nanoseconds is off by hundreds of them
    return round(started * 1e6) * 1000, round(float(ended) * 1e6) * 1000


def tokens_of(record: Mapping[str, Any]) -> dict[str, int] | None:
    """``{"input", "output", "cache_read", "cache_write", "reasoning"}``, from the record's
    ``tokens`` or, for older records, its raw ``usage``; ``None`` when nothing was reported."""
    usage = record.get("usage")
    tokens = record.get("tokens")
    if isinstance(tokens, Mapping) and (usage or any(tokens.values())):
        return {
            k: _int(tokens.get(k))
            for k in ("input", "output", "cache_read", "cache_write", "reasoning")
        }
    if not isinstance(usage, Mapping) or not usage:
        return None
    details = usage.get("prompt_tokens_details") or {}
    output_details = usage.get("completion_tokens_details") or {}
    return {
        "input": _int(usage.get("prompt_tokens", usage.get("input_tokens"))),
        "output": _int(usage.get("completion_tokens", usage.get("output_tokens"))),
        "cache_read": _int(details.get("cached_tokens") if isinstance(details, Mapping) else None)
        or _int(usage.get("cache_read_input_tokens")),
        "cache_write": _int(usage.get("cache_creation_input_tokens")),
        "reasoning": _int(
            output_details.get("reasoning_tokens") if isinstance(output_details, Mapping) else None
        ),
    }


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def error_type_of(record: Mapping[str, Any]) -> str | None:
    """``error.type`` for a failed request: the gateway's error type (``rate_limit_error``,
    ``provider_error``...), else the status code; ``None`` for a success."""
    status = int(record.get("status") or 0)
    success = record.get("success")
    failed = (not success) if isinstance(success, bool) else status >= 400
    if not failed:
        return None
    return str(record.get("error_type") or status or "error")


def _scalar(value: Any) -> AttributeValue | None:
    if isinstance(value, str | bool | int | float):
        return value
    return None


def _request_params(record: Mapping[str, Any]) -> dict[str, AttributeValue]:
    # Only present when bodies were kept for this request; only the scalar parameters leave.
    body = record.get("request_body")
    if not isinstance(body, Mapping):
        return {}
    found: dict[str, AttributeValue] = {}
    for name, attribute in REQUEST_PARAMS.items():
        value = body.get(name)
        if name == "stop":
            stops = [value] if isinstance(value, str) else value
            if isinstance(stops, list) and all(isinstance(s, str) for s in stops):
                found[attribute] = [str(s) for s in stops]
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            found.setdefault(attribute, value)
    return found


def gen_ai_attributes(record: Mapping[str, Any]) -> dict[str, AttributeValue]:
    """The attributes spans and metrics share: operation, provider, models, error type."""
    attributes: dict[str, AttributeValue] = {"gen_ai.operation.name": operation_name(record)}
    provider = provider_name(record.get("provider"))
    if provider:
        attributes["gen_ai.provider.name"] = provider
    if record.get("model"):
        attributes["gen_ai.request.model"] = str(record["model"])
    if record.get("served_model"):
        attributes["gen_ai.response.model"] = str(record["served_model"])
    error = error_type_of(record)
    if error:
        attributes["error.type"] = error
    return attributes


def span_data(record: Mapping[str, Any]) -> SpanData:
    """The span for one request record."""
    attributes = gen_ai_attributes(record)
    if "gen_ai.provider.name" in attributes:
        # the name the conventions used before gen_ai.provider.name (v1.36 and earlier)
        attributes["gen_ai.system"] = attributes["gen_ai.provider.name"]
    attributes["gen_ai.request.stream"] = bool(record.get("stream"))
    attributes.update(_request_params(record))
    tokens = tokens_of(record)
    if tokens is not None:
        attributes["gen_ai.usage.input_tokens"] = tokens["input"]
        attributes["gen_ai.usage.output_tokens"] = tokens["output"]
        if tokens["cache_read"]:
            attributes["gen_ai.usage.cache_read.input_tokens"] = tokens["cache_read"]
        if tokens["cache_write"]:
            attributes["gen_ai.usage.cache_creation.input_tokens"] = tokens["cache_write"]
        if tokens["reasoning"]:
            attributes["gen_ai.usage.reasoning.output_tokens"] = tokens["reasoning"]
    ttfb = record.get("ttfb_ms")
    if record.get("stream") and isinstance(ttfb, int | float):
        attributes["gen_ai.response.time_to_first_chunk"] = float(ttfb) / 1000
    if record.get("status") is not None:
        attributes["http.response.status_code"] = int(record["status"])
    if record.get("method"):
        attributes["http.request.method"] = str(record["method"])
    if record.get("path"):
        attributes["url.path"] = str(record["path"])
    for name in PORTKEY_FIELDS:
        value = _scalar(record.get(name))
        if value is not None:
            attributes[f"portkey.{name}"] = value
    attempts = record.get("attempts")
    if isinstance(attempts, list):
        attributes["portkey.attempts"] = len(attempts)
    raw_trace = record.get("trace_id")
    if raw_trace and not _HEX32.fullmatch(str(raw_trace)):
        attributes["portkey.trace_id"] = str(raw_trace)
    metadata = record.get("metadata")
    if isinstance(metadata, Mapping):
        for key, value in metadata.items():
            scalar = _scalar(value)
            if scalar is not None:
                attributes[f"portkey.metadata.{key}"] = scalar
    start_ns, end_ns = times_ns(record)
    operation = str(attributes["gen_ai.operation.name"])
    model = attributes.get("gen_ai.request.model")
    return SpanData(
        name=f"{operation} {model}" if model else operation,
        trace_id=trace_id_of(record),
        span_id=span_id_of(record),
        parent_span_id=parent_span_id_of(record),
        start_ns=start_ns,
        end_ns=end_ns,
        attributes=attributes,
        error_type=error_type_of(record),
    )


def metric_points(record: Mapping[str, Any]) -> MetricPoints:
    """What the request adds to ``gen_ai.client.operation.duration`` and
    ``gen_ai.client.token.usage``. A cache hit adds no tokens: no provider was called."""
    attributes = gen_ai_attributes(record)
    start_ns, end_ns = times_ns(record)
    points = MetricPoints(duration_s=(end_ns - start_ns) / 1e9, attributes=attributes)
    tokens = tokens_of(record)
    if tokens is not None and record.get("cache_status") not in ("HIT", "SEMANTIC_HIT"):
        points.input_tokens = tokens["input"]
        points.output_tokens = tokens["output"]
        # error.type is not one of the token metric's attributes
        points.token_attributes = {k: v for k, v in attributes.items() if k != "error.type"}
    return points
