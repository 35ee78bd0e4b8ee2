"""``portkey-mw config``: validate server files and routing configs, print the schema."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click
import orjson

from portkey_mw.cli._common import load_settings
from portkey_mw.errors import GatewayError


@click.group()
def config() -> None:
    """Work with server files and routing configs."""


@config.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--server-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PORTKEY_MW_CONFIG",
    help="For a JSON config: check it against what this server file loads (its "
    "providers, plugins, guardrails). Default: $PORTKEY_MW_CONFIG, else every installed "
    "provider, the mock included.",
)
def config_validate(file: Path, server_file: Path | None) -> None:
    """Validate a YAML server file, or a JSON routing config (as sent in x-portkey-config).

    A routing config is checked as the gateway checks an x-portkey-config header: its
    schema, and that every provider and guardrail it names is registered.
    """
    from portkey_mw.app import Gateway

    try:
        if file.suffix == ".json":
            text = file.read_text(encoding="utf-8")
            try:
                orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise click.ClickException(f"{file} is not valid JSON: {exc}") from None
            settings = load_settings(server_file)
            if server_file is None:  # every provider installed: a server file can turn on mock
                settings = settings.model_copy(update={"mock": True})
            gateway = Gateway(settings)
            # the gateway's own check of a client's config: schema, providers, guardrails
            asyncio.run(gateway.resolver.resolve({"x-portkey-config": text}))
        else:
            Gateway(load_settings(file))  # also checks providers exist
    except GatewayError as exc:
        # a server file's messages name it already; a routing config's name the header
        where = f"{file}: " if file.suffix == ".json" else ""
        click.echo(f"invalid: {where}{exc.message}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        click.echo(f"invalid: {exc.message}", err=True)
        sys.exit(1)
    click.echo(f"{file}: valid")


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the routing config."""
    from portkey_mw.config.jsonschema import config_json_schema

    click.echo(orjson.dumps(config_json_schema(), option=orjson.OPT_INDENT_2).decode())
