"""``portkey-mw demo``: a guided tour of the gateway on embedded defaults."""

from __future__ import annotations

import sys

import click

from portkey_mw.config.server import DEFAULT_PORT


@click.command()
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--keep-serving", is_flag=True, help="Keep the gateway up after the tour.")
def demo(port: int, keep_serving: bool) -> None:
    """Start the gateway on embedded defaults with the mock provider and show requests."""
    from portkey_mw.demo import run_demo

    sys.exit(run_demo(port=port, keep_serving=keep_serving))
