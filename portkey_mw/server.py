"""The app ``portkey-mw serve`` runs: a Gateway built from ``PORTKEY_MW_CONFIG`` if set."""

from __future__ import annotations

import os

from portkey_mw.gateway import Gateway


def app() -> Gateway:
    """uvicorn factory (one Gateway per worker process)."""
    config = os.environ.get("PORTKEY_MW_CONFIG")
    return Gateway(config_file=config) if config else Gateway()
