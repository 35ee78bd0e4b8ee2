"""structlog set-up for the standalone server: configured once, JSON lines via orjson."""

from __future__ import annotations

import logging
import sys
import traceback

import orjson
import structlog

_configured = False


def configure_logging(level: str = "info", *, json: bool = True) -> None:
    """Configure structlog for the process (idempotent).

    Uses a filtering bound logger (below-level calls cost almost nothing), caches loggers on
    first use, and renders JSON with orjson straight to bytes on stdout.
    """
    global _configured
    if _configured:
        return
    # uvicorn's "trace" is finer than debug; structlog's finest level is debug.
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.DEBUG)
    processors: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if json:
        processors.append(structlog.processors.JSONRenderer(serializer=orjson.dumps))
        factory: structlog.typing.WrappedLogger = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        factory = structlog.PrintLoggerFactory(sys.stdout)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    _configured = True


def traceback_text(exc: BaseException) -> str:
    """``exc``'s traceback as plain text: the frames and the message, never the frames'
    local variables. Log it as ``exception=`` rather than with ``log.exception``: a
    renderer that shows locals (structlog's default console one does when ``rich`` is
    installed, in an app that mounts the gateway without :func:`configure_logging`) would
    print the request's headers and the keys in scope."""
    return "".join(traceback.format_exception(exc))
