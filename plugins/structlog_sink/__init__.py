"""A log sink that writes one structlog line per request.

It runs in the log dispatcher's task, so formatting and writing never touch the request's
hot path. ``portkey-mw serve`` configures structlog to render JSON with orjson; an app that
mounts the gateway keeps its own structlog configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import structlog

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import LogSink
from portkey_mw.logevents import LogEvent

LOGGER_NAME = "portkey_mw.requests"


class StructlogSink(LogSink):
    """Logs each request as one ``request`` event with its fields."""

    name = "structlog"

    def __init__(self) -> None:
        self._log = structlog.get_logger(LOGGER_NAME)

    async def write(self, events: Sequence[LogEvent]) -> None:
        for event in events:
            record = event.to_dict()
            if event.status >= 500 or event.status == 499:
                self._log.warning("request", **record)
            else:
                self._log.info("request", **record)


@hookimpl
def register_log_sinks(register: Callable[[LogSink], None], settings: ServerSettings) -> None:
    """Register the structlog sink."""
    register(StructlogSink())
