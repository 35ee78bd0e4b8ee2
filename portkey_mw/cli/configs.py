"""``portkey-mw configs``: routing configs saved in the store, versioned on every change."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import click
import orjson

from portkey_mw.cli._client import Target, call, given, segment, target_options
from portkey_mw.cli._inputs import read_config
from portkey_mw.cli._table import (
    Column,
    print_done,
    print_json,
    print_record,
    print_table,
    print_warning,
    when,
)

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")
_CONFIG_FILE = click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The routing config: a JSON or YAML file (`portkey-mw config validate` checks one).",
)


@click.group("configs")
def configs() -> None:
    """Routing configs saved in the store: clients send the slug as x-portkey-config."""


@configs.command("create")
@click.option("--name", required=True, help="What people call it.")
@_CONFIG_FILE
@click.option("--default", "is_default", is_flag=True, help="Mark it the default config.")
@click.option("--workspace-id", default=None, help="The workspace it belongs to.")
@_JSON
@target_options
def create(
    target: Target,
    name: str,
    config_file: Path | None,
    is_default: bool,
    workspace_id: str | None,
    as_json: bool,
) -> None:
    """Save a routing config (checked by the server first); print its slug."""
    if config_file is None:
        raise click.UsageError("Missing option '--config' (a JSON or YAML file)")
    body: dict[str, Any] = {
        "name": name,
        "config": read_config(config_file),
        "is_default": int(is_default),  # the SDK's type
        **given(workspace_id=workspace_id),
    }
    answer = call(target, "POST", "/configs", body)
    if as_json:
        print_json(answer)
        return
    slug = answer.get("slug")
    click.echo(f"saved config {slug}, version {answer.get('version_id')}")
    click.echo(f"clients use it as x-portkey-config: {slug}")
    print_warning(answer)


@configs.command("list")
@click.option("--workspace-id", default=None, help="Only this workspace's.")
@_JSON
@target_options
def list_command(target: Target, workspace_id: str | None, as_json: bool) -> None:
    """List saved configs."""
    answer = call(target, "GET", "/configs", params={"workspace_id": workspace_id})
    if as_json:
        print_json(answer)
        return
    print_table(
        [
            Column("slug"),
            Column("name"),
            Column("status"),
            Column("default"),
            Column("updated", whole=True),
        ],
        (
            (
                r.get("slug"),
                r.get("name"),
                r.get("status"),
                bool(r.get("is_default")),
                when(r.get("last_updated_at")),
            )
            for r in answer.get("data") or []
        ),
    )


@configs.command("show")
@click.argument("slug")
@_JSON
@target_options
def show(target: Target, slug: str, as_json: bool) -> None:
    """Show a saved config and its current version's routing config (JSON)."""
    record = call(target, "GET", f"/configs/{segment(slug)}")
    if as_json:
        print_json(record)
        return
    print_record(
        [
            ("slug", record.get("slug")),
            ("id", record.get("id")),
            ("name", record.get("name")),
            ("status", record.get("status")),
            ("default", bool(record.get("is_default"))),
            ("version", record.get("version_id")),
            ("workspace", record.get("workspace_id")),
            ("created", when(record.get("created_at"))),
            ("updated", when(record.get("last_updated_at"))),
        ]
    )
    config = record.get("config")
    if isinstance(config, str):  # Portkey's API may hand it back as text
        with contextlib.suppress(orjson.JSONDecodeError):
            config = orjson.loads(config)
    click.echo()
    print_json(config)


@configs.command("update")
@click.argument("slug")
@click.option("--name", default=None, help="A new name.")
@_CONFIG_FILE
@click.option(
    "--status",
    type=click.Choice(["active", "disabled"]),
    default=None,
    help="disabled: requests naming the slug are refused until it is active again.",
)
@_JSON
@target_options
def update(
    target: Target,
    slug: str,
    name: str | None,
    config_file: Path | None,
    status: str | None,
    as_json: bool,
) -> None:
    """Rename a saved config, change its status, or give it a new version (--config)."""
    body = given(name=name, status=status)
    if config_file is not None:
        body["config"] = read_config(config_file)
    if not body:
        raise click.UsageError("nothing to change: give --name, --config or --status")
    answer = call(target, "PUT", f"/configs/{segment(slug)}", body)
    version = f"\nnow at version {answer['version_id']}" if "config" in body else ""
    print_done(answer, as_json, f"updated config {slug}{version}")


@configs.command("versions")
@click.argument("slug")
@_JSON
@target_options
def versions(target: Target, slug: str, as_json: bool) -> None:
    """List a saved config's versions, newest first."""
    answer = call(target, "GET", f"/configs/{segment(slug)}/versions")
    if as_json:
        print_json(answer)
        return
    print_table(
        [Column("version"), Column("created", whole=True)],
        ((v.get("version_id") or v.get("id"), when(v.get("created_at"))) for v in answer["data"]),
    )


@configs.command("delete")
@click.argument("slug")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_JSON
@target_options
def delete(target: Target, slug: str, yes: bool, as_json: bool) -> None:
    """Delete a saved config: requests naming its slug are refused from then on."""
    if not yes:
        click.confirm(f"delete config {slug}? Requests naming it will fail", abort=True)
    answer = call(target, "DELETE", f"/configs/{segment(slug)}")
    print_done(answer, as_json, f"deleted config {slug}")
