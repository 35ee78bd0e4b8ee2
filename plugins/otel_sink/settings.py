"""The OpenTelemetry sink's settings: ``plugins.settings["portkey-mw.otel"]`` in the server
file, or nothing but the standard ``OTEL_EXPORTER_OTLP_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from portkey_mw.errors import InvalidConfig

PLUGIN_NAME = "portkey-mw.otel"
#: the standard variables that switch the exporter on without a server file entry
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
DEFAULT_SERVICE_NAME = "portkey-mw"


class OtelSettings(BaseModel):
    """Where and how the OTLP/HTTP exporter sends spans and metrics."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="false: register nothing")
    endpoint: str | None = Field(
        default=None,
        description="the collector's base URL (http://collector:4318); /v1/traces and "
        "/v1/metrics are appended. Default: OTEL_EXPORTER_OTLP_ENDPOINT (and the SDK's other "
        "OTEL_EXPORTER_OTLP_* variables), else http://localhost:4318",
    )
    # Collector credentials: never logged, never shown (repr=False keeps them out of reprs).
    headers: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="sent with every export, e.g. an API key (default: OTEL_EXPORTER_OTLP_HEADERS)",
    )
    service_name: str | None = Field(
        default=None,
        min_length=1,
        description="the resource's service.name (default: OTEL_SERVICE_NAME, else portkey-mw)",
    )
    resource_attributes: dict[str, str] = Field(
        default_factory=dict, description="more resource attributes (deployment.environment...)"
    )
    traces: bool = Field(default=True, description="export one span per request")
    metrics: bool = Field(
        default=True,
        description="export gen_ai.client.token.usage and gen_ai.client.operation.duration",
    )
    metrics_interval: float = Field(
        default=60.0, gt=0, le=86_400, description="seconds between metric exports"
    )
    timeout: float = Field(
        default=10.0, gt=0, le=300, description="seconds per export request (retries included)"
    )
    shutdown_timeout: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="seconds the gateway waits at shutdown for the last spans and metrics",
    )

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. http://collector:4318")
        if parts.username or parts.password:
            # userinfo would end up in the SDK's log lines; headers are the place for it
            raise ValueError("must not hold credentials: put them in 'headers'")
        return value.rstrip("/")

    def signal_endpoint(self, signal: str) -> str | None:
        """The full URL for ``signal`` (``traces`` or ``metrics``), or ``None`` to let the
        SDK resolve it from the environment."""
        return f"{self.endpoint}/v1/{signal}" if self.endpoint else None

    def resolved_service_name(self) -> str:
        """``service_name``, else ``OTEL_SERVICE_NAME``, else ``portkey-mw``."""
        return self.service_name or os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME


def load_settings(
    plugin_settings: Mapping[str, Mapping[str, Any]], environ: Mapping[str, str] | None = None
) -> OtelSettings | None:
    """The sink's settings when it is switched on, else ``None``.

    On: the server file has a ``portkey-mw.otel`` entry (without ``enabled: false``), or a
    standard OTLP endpoint variable is set. ``OTEL_SDK_DISABLED=true`` turns it off.

    :raises InvalidConfig: the entry does not validate (the message names the field).
    """
    environ = os.environ if environ is None else environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    raw = plugin_settings.get(PLUGIN_NAME)
    if raw is None:
        if not any(environ.get(name) for name in ENDPOINT_VARIABLES):
            return None
        raw = {}
    try:
        settings = OtelSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(settings)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidConfig(f"plugins.settings.{PLUGIN_NAME}: {problems}") from None
    return settings if settings.enabled else None
