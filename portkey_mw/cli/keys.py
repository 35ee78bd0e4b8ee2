"""``portkey-mw keys``: the gateway's API keys -- created, shown once, stored as a digest."""

from __future__ import annotations

from typing import Any

import click

from portkey_mw.cli._client import AdminClient, Target, call, given, run, segment, target_options
from portkey_mw.cli._inputs import key_values
from portkey_mw.cli._table import (
    Column,
    print_done,
    print_json,
    print_record,
    print_table,
    print_warning,
    warn,
    when,
)
from portkey_mw.cli._usage import show_listing, show_usage

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")
#: Said each time a key is printed: nothing can print it again.
SHOWN_ONCE = (
    "warning: this is the only time this key is shown (portkey-mw keeps only a digest).\n"
    "Store it now, in a secret manager rather than a shell history."
)


def _fields(command: Any) -> Any:
    """What create and update both take."""
    for option in reversed(
        [
            click.option("--description", default=None, help="What the key is for."),
            click.option(
                "--scope",
                "scopes",
                multiple=True,
                help="A scope the key holds (repeat for more), e.g. completions.write, "
                "virtual_keys.read. On update: replaces every scope.",
            ),
            click.option(
                "--config-id",
                default=None,
                help="The saved config (or server file config) its requests use by default.",
            ),
            click.option(
                "--config-override/--no-config-override",
                default=None,
                help="Whether clients may send their own config (default: they may). "
                "--no-config-override makes --config-id and its guardrails mandatory.",
            ),
            click.option(
                "--metadata",
                multiple=True,
                metavar="KEY=VALUE",
                help="Metadata every request with the key carries (repeat for more). On "
                "update: replaces the metadata.",
            ),
            click.option(
                "--expires-at",
                default=None,
                metavar="TIME",
                help="ISO 8601 time after which the key is refused (e.g. 2030-01-31T00:00:00Z).",
            ),
        ]
    ):
        command = option(command)
    return command


def _defaults(kw: dict[str, Any]) -> dict[str, Any]:
    """The ``defaults`` fields the options give (empty: none given)."""
    defaults = given(config_id=kw.pop("config_id"), allow_config_override=kw.pop("config_override"))
    metadata = kw.pop("metadata")
    if metadata:
        defaults["metadata"] = key_values(metadata, "--metadata")
    return defaults


def _body(kw: dict[str, Any]) -> dict[str, Any]:
    scopes = kw.pop("scopes")
    body = given(description=kw.pop("description"), expires_at=kw.pop("expires_at"))
    if scopes:
        body["scopes"] = list(scopes)
    return body


def _show_key(answer: dict[str, Any], as_json: bool, message: str) -> None:
    if as_json:
        print_json(answer)
    else:
        click.echo(message)
        click.echo(f"key: {answer.get('key')}")
        print_warning(answer)
    warn(SHOWN_ONCE)


@click.group("keys")
def keys() -> None:
    """Gateway API keys: what clients send as x-portkey-api-key (or Bearer).

    A key is printed once, when it is created or rotated; afterwards only its hint.
    """


@keys.command("create")
@click.option("--name", required=True, help="What people call it.")
@click.option(
    "--type",
    "type_",
    type=click.Choice(["organisation", "workspace"]),
    default="organisation",
    show_default=True,
)
@click.option(
    "--sub-type",
    type=click.Choice(["service", "user"]),
    default="service",
    show_default=True,
    help="user keys need --user-id and belong to a workspace.",
)
@click.option("--workspace-id", default=None, help="For workspace keys: the workspace.")
@click.option("--user-id", default=None, help="For user keys: the user.")
@_fields
@_JSON
@target_options
def create(
    target: Target,
    name: str,
    type_: str,
    sub_type: str,
    workspace_id: str | None,
    user_id: str | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Create an API key and print it (the only time it is shown)."""
    body: dict[str, Any] = {
        "name": name,
        "type": type_,
        "sub-type": sub_type,
        **given(workspace_id=workspace_id, user_id=user_id),
    }
    defaults = _defaults(kw)
    body.update(_body(kw))
    if defaults:
        body["defaults"] = defaults
    answer = call(target, "POST", f"/api-keys/{type_}/{sub_type}", body)
    _show_key(answer, as_json, f"created API key {answer.get('id')} ({type_} {sub_type})")


@keys.command("list")
@click.option("--workspace-id", default=None, help="Only this workspace's.")
@_JSON
@target_options
def list_command(target: Target, workspace_id: str | None, as_json: bool) -> None:
    """List API keys (their hints, never the keys)."""
    answer = call(target, "GET", "/api-keys", params={"workspace_id": workspace_id})
    if as_json:
        print_json(answer)
        return
    print_table(
        [Column("id"), Column("name"), Column("status"), Column("key")],
        (
            (r.get("id"), r.get("name"), r.get("status"), r.get("key"))
            for r in answer.get("data") or []
        ),
    )


@keys.command("show")
@click.argument("key_id", metavar="ID")
@_JSON
@target_options
def show(target: Target, key_id: str, as_json: bool) -> None:
    """Show one API key: scopes, defaults, limits, status (its hint, not the key)."""
    record = call(target, "GET", f"/api-keys/{segment(key_id)}")
    if as_json:
        print_json(record)
        return
    print_record(
        [
            ("id", record.get("id")),
            ("name", record.get("name")),
            ("key", record.get("key")),
            ("type", record.get("type")),
            ("status", record.get("status")),
            ("description", record.get("description")),
            ("scopes", record.get("scopes")),
            ("defaults", record.get("defaults")),
            ("usage limits", record.get("usage_limits")),
            ("rate limits", record.get("rate_limits")),
            ("workspace", record.get("workspace_id")),
            ("user", record.get("user_id")),
            ("expires", when(record.get("expires_at"))),
            ("created", when(record.get("created_at"))),
            ("updated", when(record.get("last_updated_at"))),
        ]
    )


@keys.command("update")
@click.argument("key_id", metavar="ID")
@click.option("--name", default=None, help="A new name.")
@click.option(
    "--status",
    type=click.Choice(["active", "disabled"]),
    default=None,
    help="disabled: refused until active again (`revoke` is for good).",
)
@_fields
@_JSON
@target_options
def update(
    target: Target, key_id: str, name: str | None, status: str | None, as_json: bool, **kw: Any
) -> None:
    """Change an API key's name, status, scopes, defaults or expiry.

    Defaults not mentioned are kept: --config-id alone leaves the metadata as it was.
    """
    defaults = _defaults(kw)
    body = {**given(name=name, status=status), **_body(kw)}
    if not body and not defaults:
        raise click.UsageError("nothing to change: give at least one option")

    async def work(api: AdminClient) -> dict[str, Any]:
        if defaults:  # the server replaces defaults whole: merge into what is there
            current = await api.call("GET", f"/api-keys/{segment(key_id)}")
            before = current.get("defaults")
            body["defaults"] = {**(before if isinstance(before, dict) else {}), **defaults}
        return await api.call("PUT", f"/api-keys/{segment(key_id)}", body)

    print_done(run(target, work), as_json, f"updated API key {key_id}")


@keys.command("rotate")
@click.argument("key_id", metavar="ID")
@_JSON
@target_options
def rotate(target: Target, key_id: str, as_json: bool) -> None:
    """Give an API key a new secret and print it; the old one stops working."""
    answer = call(target, "POST", f"/api-keys/{segment(key_id)}/rotate", {})
    _show_key(answer, as_json, f"rotated API key {key_id}\nthe old key no longer works")


@keys.command("revoke")
@click.argument("key_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_JSON
@target_options
def revoke(target: Target, key_id: str, yes: bool, as_json: bool) -> None:
    """Revoke an API key for good: it stays listed, and is refused (401)."""
    if not yes:
        click.confirm(f"revoke API key {key_id}? This cannot be undone", abort=True)
    answer = call(target, "PUT", f"/api-keys/{segment(key_id)}", {"status": "revoked"})
    print_done(answer, as_json, f"revoked API key {key_id}")


@keys.command("delete")
@click.argument("key_id", metavar="ID")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_JSON
@target_options
def delete(target: Target, key_id: str, yes: bool, as_json: bool) -> None:
    """Delete an API key: it is refused from then on and no longer listed."""
    if not yes:
        click.confirm(f"delete API key {key_id}? Requests with it will fail", abort=True)
    answer = call(target, "DELETE", f"/api-keys/{segment(key_id)}")
    print_done(answer, as_json, f"deleted API key {key_id}")


@keys.command("usage")
@click.argument("key_id", metavar="[ID]", required=False)
@_JSON
@target_options
def usage(target: Target, key_id: str | None, as_json: bool) -> None:
    """Show an API key's budget usage and rate limits; without ID, every key with limits."""
    if key_id is not None:
        show_usage(target, call(target, "GET", f"/api-keys/{segment(key_id)}/usage"), as_json)
        return
    show_listing(
        target,
        call(target, "GET", "/admin/budgets"),
        as_json,
        kinds=("api_key",),
        label="name",
        empty="no API key has a budget or rate limits",
    )
