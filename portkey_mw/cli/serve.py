"""``portkey-mw serve``: the gateway standalone, under uvicorn."""

from __future__ import annotations

import os
from pathlib import Path

import click

from portkey_mw.cli._common import build_gateway, load_settings, server_file_option
from portkey_mw.config.server import DEFAULT_PORT


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help=f"Port (default {DEFAULT_PORT}).")
@server_file_option
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug", "trace"]),
    default="info",
    show_default=True,
)
def serve(
    host: str | None, port: int | None, config: Path | None, workers: int | None, log_level: str
) -> None:
    """Run the gateway standalone with uvicorn."""
    import uvicorn

    from portkey_mw.logging import configure_logging
    from portkey_mw.metrics import shared_metrics
    from portkey_mw.server import uvicorn_http_options

    settings = load_settings(config)  # validate before forking workers
    build_gateway(settings)  # every provider a config names must be registered
    options = settings.server
    configure_logging(log_level)
    os.environ["PORTKEY_MW_LOG_LEVEL"] = log_level  # for worker processes
    if config:
        os.environ["PORTKEY_MW_CONFIG"] = str(config.resolve())
    count = workers or options.workers
    with shared_metrics(count):
        uvicorn.run(
            "portkey_mw.server:app",
            factory=True,
            host=host or options.host,
            port=options.port if port is None else port,
            workers=count,
            log_level=log_level,
            access_log=False,  # the gateway logs each request itself, with more to say
            lifespan="on",
            **uvicorn_http_options(options),  # request heads bounded in time and size
            # the server's WebSocket message limit is the gateway's (/v1/realtime)
            ws_max_size=settings.realtime.max_frame_bytes,
        )
