"""``otel``: each request as an OpenTelemetry GenAI client span, plus the GenAI client
metrics, exported over OTLP/HTTP (protobuf) to a collector.

Needs ``pip install "portkey-mw[otel]"``. Switched on by a ``plugins.settings
["portkey-mw.otel"]`` entry in the server file (see :class:`OtelSettings` and
docs/observability.md) or by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` variable; otherwise
the plugin registers nothing. Switched on without the extra, the gateway does not start and
says which extra to install.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import metadata

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import PluginMissingDependency
from portkey_mw.interfaces import LogSink

from .settings import PLUGIN_NAME, OtelSettings, load_settings

__all__ = ["PLUGIN_NAME", "OtelSettings", "load_settings", "make_sink"]


def make_sink(settings: OtelSettings) -> LogSink:
    """The OpenTelemetry sink for ``settings``.

    :raises PluginMissingDependency: the ``otel`` extra is not installed.
    """
    try:
        from .exporter import OtelSink
    except ImportError as exc:
        raise PluginMissingDependency("otel", "otel", exc) from exc
    try:
        version = metadata.version("portkey-mw")
    except metadata.PackageNotFoundError:  # running from a source tree
        version = ""
    return OtelSink(settings, version=version)


@hookimpl
def register_log_sinks(register: Callable[[LogSink], None], settings: ServerSettings) -> None:
    """Register the OpenTelemetry sink when it is configured."""
    options = load_settings(settings.plugins.settings)
    if options is not None and (options.traces or options.metrics):
        register(make_sink(options))
