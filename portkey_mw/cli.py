"""The ``portkey-mw`` command: serve, plugins, providers, config, cache, admin, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from portkey_mw.config.server import DEFAULT_PORT, ServerSettings
from portkey_mw.errors import GatewayError


def _load_settings(config: Path | None) -> ServerSettings:
    try:
        return ServerSettings.from_file(config) if config else ServerSettings()
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None


@click.group()
@click.version_option(package_name="portkey-mw")
def main() -> None:
    """portkey-mw: a self-hosted AI gateway (OpenAI- and Portkey-compatible)."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help=f"Port (default {DEFAULT_PORT}).")
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PORTKEY_MW_CONFIG",
    help="YAML server file (named configs, defaults, plugin settings).",
)
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
    import os

    import uvicorn

    from portkey_mw.app import Gateway
    from portkey_mw.logging import configure_logging
    from portkey_mw.server import uvicorn_http_options

    settings = _load_settings(config)  # validate before forking workers
    try:
        Gateway(settings)  # every provider a config names must be registered
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    options = settings.server
    configure_logging(log_level)
    os.environ["PORTKEY_MW_LOG_LEVEL"] = log_level  # for worker processes
    if config:
        os.environ["PORTKEY_MW_CONFIG"] = str(config.resolve())
    uvicorn.run(
        "portkey_mw.server:app",
        factory=True,
        host=host or options.host,
        port=options.port if port is None else port,
        workers=workers or options.workers,
        log_level=log_level,
        access_log=False,  # the gateway logs each request itself, with more to say
        lifespan="on",
        **uvicorn_http_options(options),  # request heads bounded in time and size
    )


@main.command("plugins")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(config: Path | None, as_json: bool) -> None:
    """List loaded plugins with their distribution, version and hooks."""
    from portkey_mw.app import Gateway

    gateway = Gateway(_load_settings(config))
    rows: list[dict[str, Any]] = []
    for info in gateway.plugins.plugins():
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": list(info.hooks),
                "providers": sorted(
                    p.id for p in gateway.providers.values() if p.plugin_name == info.name
                ),
            }
        )
    if as_json:
        click.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("plugin", "distribution", "version", "hooks", "provides")
    for row in rows:
        table.add_row(
            row["name"],
            row["distribution"] or "-",
            row["version"] or "-",
            ", ".join(row["hooks"]),
            ", ".join(row["providers"]) or "-",
        )
    Console().print(table)


@main.command("providers")
@click.option("--config", "config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--markdown", is_flag=True, help="Print the table docs/providers.md embeds.")
def providers_command(config: Path | None, markdown: bool) -> None:
    """List provider ids with their endpoints and chat features."""
    from portkey_mw.app import Gateway
    from portkey_mw.capabilities import markdown_table

    # Every provider there is, the mock included (a server file turns it on with mock: true).
    settings = _load_settings(config).model_copy(update={"mock": True})
    table = markdown_table(Gateway(settings).providers.values())
    if markdown:
        click.echo(table, nl=False)
        return
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(table))


@main.group()
def config() -> None:
    """Work with server files and routing configs."""


@config.command("validate")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def config_validate(file: Path) -> None:
    """Validate a YAML server file, or a JSON routing config (as sent in x-portkey-config)."""
    from portkey_mw.app import Gateway
    from portkey_mw.config.resolve import validate_config

    try:
        if file.suffix == ".json":
            try:
                raw = orjson.loads(file.read_bytes())
            except orjson.JSONDecodeError as exc:
                raise click.ClickException(f"{file} is not valid JSON: {exc}") from None
            validate_config(raw, str(file))
        else:
            Gateway(ServerSettings.from_file(file))  # also checks providers exist
    except GatewayError as exc:
        click.echo(f"invalid: {exc.message}", err=True)
        sys.exit(1)
    click.echo(f"{file}: valid")


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the routing config."""
    from portkey_mw.config.jsonschema import config_json_schema

    click.echo(orjson.dumps(config_json_schema(), option=orjson.OPT_INDENT_2).decode())


@main.group()
def cache() -> None:
    """Inspect or purge the response cache of a running gateway."""


_GATEWAY_URL = click.option(
    "--url",
    default=f"http://127.0.0.1:{DEFAULT_PORT}",
    show_default=True,
    help="Where the gateway listens (with its mount prefix, if mounted).",
)
_ADMIN_KEY = click.option(
    "--admin-key",
    envvar="PORTKEY_MW_ADMIN_KEY",
    required=True,
    help="The gateway's admin key (default: $PORTKEY_MW_ADMIN_KEY).",
)


def _admin_call(method: str, url: str, admin_key: str, params: dict[str, str] | None = None) -> Any:
    import httpx

    # The memory cache lives inside the serving process, so the purge has to go there.
    try:
        reply = httpx.request(
            method,
            f"{url.rstrip('/')}/v1/admin/cache",
            params=params,
            headers={"x-portkey-api-key": admin_key},
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach the gateway at {url}: {exc}") from None
    try:
        body = reply.json()
    except ValueError:
        body = None
    if reply.status_code != 200 or not isinstance(body, dict):
        message = (body or {}).get("error", {}).get("message") if isinstance(body, dict) else None
        raise click.ClickException(
            f"the gateway answered {reply.status_code}: {message or reply.text[:200]}"
        )
    return body


@cache.command("purge")
@_GATEWAY_URL
@_ADMIN_KEY
@click.option("--namespace", default=None, help="Purge one namespace only (default: all).")
def cache_purge(url: str, admin_key: str, namespace: str | None) -> None:
    """Remove cached responses, exact and semantic: all, or one namespace."""
    params = {"namespace": namespace} if namespace else None
    body = _admin_call("DELETE", url, admin_key, params)
    where = f"namespace {namespace!r}" if namespace else "all namespaces"
    click.echo(f"purged {body.get('purged', 0)} entries from {where}")


@cache.command("stats")
@_GATEWAY_URL
@_ADMIN_KEY
def cache_stats(url: str, admin_key: str) -> None:
    """Print hits, misses and the cost saved since the gateway started (JSON)."""
    body = _admin_call("GET", url, admin_key)
    click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


@main.group()
def admin() -> None:
    """Set up the admin API."""


@admin.command("hash-key")
@click.option(
    "--key",
    prompt="admin key",
    hide_input=True,
    help="The admin key to hash (prompted for when not given, so it stays out of history).",
)
def admin_hash_key(key: str) -> None:
    """Print the SHA-256 of an admin key, for admin.key_sha256 in the server file."""
    from portkey_mw.auth.admin import MIN_ADMIN_KEY_LENGTH, hash_key

    if len(key) < MIN_ADMIN_KEY_LENGTH:
        raise click.ClickException(f"an admin key needs at least {MIN_ADMIN_KEY_LENGTH} characters")
    click.echo(hash_key(key))


@main.command()
@click.option("--port", type=int, default=DEFAULT_PORT, show_default=True)
@click.option("--keep-serving", is_flag=True, help="Keep the gateway up after the tour.")
def demo(port: int, keep_serving: bool) -> None:
    """Start the gateway on embedded defaults with the mock provider and show requests."""
    from portkey_mw.demo import run_demo

    sys.exit(run_demo(port=port, keep_serving=keep_serving))
