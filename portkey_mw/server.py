"""The app ``portkey-mw serve`` runs: a Gateway built from ``PORTKEY_MW_CONFIG`` if set."""

from __future__ import annotations

import os

from portkey_mw.gateway import Gateway
from portkey_mw.logging import configure_logging


def app() -> Gateway:
    """uvicorn factory (one Gateway per worker process).

    Worker processes start fresh, so each configures its own logging here.
    """
    configure_logging(os.environ.get("PORTKEY_MW_LOG_LEVEL", "info"))
    config = os.environ.get("PORTKEY_MW_CONFIG")
    return Gateway(config_file=config) if config else Gateway()
