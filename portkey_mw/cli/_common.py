"""What several command modules share: reading the server file, building a gateway."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import GatewayError

if TYPE_CHECKING:
    from portkey_mw.app import Gateway


def load_settings(path: Path | None) -> ServerSettings:
    """The server file at ``path`` (or the defaults), a bad one as a one-line error."""
    try:
        return ServerSettings.from_file(path) if path else ServerSettings()
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


def build_gateway(settings: ServerSettings) -> Gateway:
    """A gateway with every plugin registered (not started), a bad config as an error."""
    from portkey_mw.app import Gateway

    try:
        return Gateway(settings)
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


#: ``--config FILE``: the server file of the commands that load plugins.
server_file_option = click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PORTKEY_MW_CONFIG",
    help="YAML server file (default: $PORTKEY_MW_CONFIG, else the built-in defaults).",
)
