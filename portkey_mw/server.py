"""The app ``portkey-mw serve`` runs: a Gateway built from ``PORTKEY_MW_CONFIG`` if set.

Also the uvicorn HTTP protocol options ``serve`` runs it with (see
:mod:`portkey_mw.server_protocol`).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import structlog

from portkey_mw.app import Gateway
from portkey_mw.config.server import ServerOptions
from portkey_mw.logging import configure_logging

log = structlog.get_logger("portkey_mw.server")


def app() -> Gateway:
    """uvicorn factory (one Gateway per worker process).

    Worker processes start fresh, so each configures its own logging here.
    """
    configure_logging(os.environ.get("PORTKEY_MW_LOG_LEVEL", "info"))
    config = os.environ.get("PORTKEY_MW_CONFIG")
    return Gateway(config_file=config) if config else Gateway()


def uvicorn_http_options(options: ServerOptions) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` that bound request heads in time and size.

    With httptools (``uvicorn[standard]``, a dependency), the bounded protocol of
    :mod:`portkey_mw.server_protocol`; it reads its limits in each worker process. Without
    it uvicorn falls back to h11, which can cap the head's size but has no header timeout.
    """
    if importlib.util.find_spec("httptools") is None:
        log.warning(
            "header_timeout_unavailable",
            reason="httptools is not installed; install uvicorn[standard] for the header "
            "timeout (h11 only caps the request head's size)",
        )
        return {"http": "h11", "h11_max_incomplete_event_size": options.max_header_bytes}
    from portkey_mw.server_protocol import BoundedHttpToolsProtocol

    return {"http": BoundedHttpToolsProtocol}
