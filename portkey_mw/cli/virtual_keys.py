"""``portkey-mw virtual-keys``: provider credentials in the vault, behind a slug.

Portkey calls these "virtual keys" and, in its newer Model Catalog, "providers"; both
APIs reach the same records. The command is ``virtual-keys`` because ``portkey-mw
providers`` lists the provider *plugins* (``openai``, ``bedrock``...) a virtual key names.
Credentials are read from files, stdin or a hidden prompt -- never from an option's value
-- and no answer ever shows them again.
"""

from __future__ import annotations

from typing import Any

import click

from portkey_mw.cli._client import Target, call, given, segment, target_options
from portkey_mw.cli._inputs import read_secret
from portkey_mw.cli._table import (
    Column,
    print_done,
    print_json,
    print_record,
    print_table,
    print_warning,
    when,
)
from portkey_mw.cli._usage import show_listing, show_usage

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")


def _options(command: Any) -> Any:
    """The non-secret fields of a virtual key, as create and update take them."""
    for option in reversed(
        [
            click.option("--note", default=None, help="A note for people (shown in listings)."),
            click.option(
                "--custom-host",
                default=None,
                help="Send this key's requests to this base URL instead of the provider's "
                "(self-hosted and OpenAI-compatible servers). Admins only.",
            ),
            click.option("--model", default=None, help="Model used when a request names none."),
            click.option("--resource-name", default=None, help="Azure OpenAI: the resource."),
            click.option("--deployment-name", default=None, help="Azure OpenAI: the deployment."),
            click.option("--api-version", default=None, help="Azure OpenAI: the API version."),
            click.option("--aws-region", default=None, help="Bedrock: the AWS region."),
            click.option("--vertex-project-id", default=None, help="Vertex AI: the project."),
            click.option("--vertex-region", default=None, help="Vertex AI: the region."),
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


def _secrets(command: Any) -> Any:
    """The credential options: each a file (``-`` for stdin), never a value."""
    for option in reversed(
        [
            click.option(
                "--key-file",
                metavar="FILE",
                default=None,
                help="Read the provider's API key from FILE ('-': stdin). Without it, and "
                "without --no-key, the key is asked for at a hidden prompt.",
            ),
            click.option("--no-key", is_flag=True, help="No API key (Bedrock, local servers)."),
            click.option("--aws-access-key-id", default=None, help="Bedrock: the access key id."),
            click.option(
                "--aws-secret-access-key-file",
                metavar="FILE",
                default=None,
                help="Bedrock: read the secret access key from FILE ('-': stdin).",
            ),
            click.option(
                "--aws-session-token-file",
                metavar="FILE",
                default=None,
                help="Bedrock: read a session token from FILE ('-': stdin).",
            ),
            click.option(
                "--vertex-service-account-file",
                metavar="FILE",
                default=None,
                help="Vertex AI: the service account key file (JSON).",
            ),
        ]
    ):
        command = option(command)
    return command


def _option_fields(kw: dict[str, Any]) -> dict[str, Any]:
    """The SDK's body fields for the non-secret options given."""
    fields = given(
        note=kw.pop("note"),
        custom_host=kw.pop("custom_host"),
        resourceName=kw.pop("resource_name"),
        deploymentName=kw.pop("deployment_name"),
        apiVersion=kw.pop("api_version"),
        awsRegion=kw.pop("aws_region"),
        vertexProjectId=kw.pop("vertex_project_id"),
        vertexRegion=kw.pop("vertex_region"),
        expires_at=kw.pop("expires_at"),
    )
    model = kw.pop("model")
    if model is not None:
        fields["defaults"] = {"model": model}
    return fields


def _secret_fields(kw: dict[str, Any], *, required: bool) -> dict[str, str]:
    """The SDK's body fields for the credentials given (read from files or a prompt)."""
    fields = given(
        awsAccessKeyId=kw.pop("aws_access_key_id"),
        awsSecretAccessKey=read_secret(
            kw.pop("aws_secret_access_key_file"), what="AWS secret access key", prompt=False
        ),
        awsSessionToken=read_secret(
            kw.pop("aws_session_token_file"), what="AWS session token", prompt=False
        ),
        vertexServiceAccountJson=read_secret(
            kw.pop("vertex_service_account_file"), what="service account key", prompt=False
        ),
    )
    key_file, no_key = kw.pop("key_file"), kw.pop("no_key")
    if no_key and key_file:
        raise click.UsageError("give --key-file or --no-key, not both")
    # ask for the API key when no other credential says what authenticates this provider
    key = None if no_key else read_secret(key_file, what="provider API key", prompt=not fields)
    if key is not None:
        fields["key"] = key
    if required and not fields and not no_key:
        raise click.UsageError(
            "no credential given: use --key-file FILE (or '-' for stdin), answer the prompt "
            "in a terminal, or say --no-key"
        )
    return fields


def _secret_values(fields: dict[str, Any]) -> tuple[str | None, ...]:
    return tuple(
        str(fields[name])
        for name in ("key", "awsSecretAccessKey", "awsSessionToken", "vertexServiceAccountJson")
        if name in fields
    )


@click.group("virtual-keys")
def virtual_keys() -> None:
    """Provider credentials in the vault, used by slug (Portkey's virtual keys/providers).

    A client sends the slug as x-portkey-virtual-key, as a config target's virtual_key,
    or in the model name ("@slug/gpt-4o-mini"). `portkey-mw providers` lists the provider
    ids a virtual key can name.
    """


@virtual_keys.command("create")
@click.option("--name", required=True, help="What people call it.")
@click.option("--provider", required=True, help="The provider id (see `portkey-mw providers`).")
@click.option("--slug", default=None, help="The slug clients send (default: from the name).")
@click.option("--workspace-id", default=None, help="The workspace it belongs to.")
@_secrets
@_options
@_JSON
@target_options
def create(
    target: Target,
    name: str,
    provider: str,
    slug: str | None,
    workspace_id: str | None,
    as_json: bool,
    **kw: Any,
) -> None:
    """Put a provider's credentials in the vault under a new slug."""
    secrets = _secret_fields(kw, required=True)
    body = {
        "name": name,
        "provider": provider,
        **given(slug=slug, workspace_id=workspace_id),
        **_option_fields(kw),
        **secrets,
    }
    answer = call(target, "POST", "/virtual-keys", body, secrets=_secret_values(secrets))
    if as_json:
        print_json(answer)
        return
    slug = answer.get("slug")
    click.echo(f"created virtual key {slug} ({provider})")
    click.echo(f"clients send x-portkey-virtual-key: {slug}")
    click.echo(f'or a model name "@{slug}/<model>"')
    print_warning(answer)


@virtual_keys.command("list")
@click.option("--workspace-id", default=None, help="Only this workspace's.")
@_JSON
@target_options
def list_command(target: Target, workspace_id: str | None, as_json: bool) -> None:
    """List virtual keys (never their credentials)."""
    answer = call(target, "GET", "/virtual-keys", params={"workspace_id": workspace_id})
    if as_json:
        print_json(answer)
        return
    rows = answer.get("data") or []
    print_table(
        [
            Column("slug"),
            Column("name"),
            Column("provider"),
            Column("status"),
            Column("credentials"),
            Column("updated", whole=True),
        ],
        (
            (
                r.get("slug"),
                r.get("name"),
                r.get("provider"),
                r.get("status"),
                r.get("credentials"),
                when(r.get("last_updated_at")),
            )
            for r in rows
        ),
    )


@virtual_keys.command("show")
@click.argument("slug")
@_JSON
@target_options
def show(target: Target, slug: str, as_json: bool) -> None:
    """Show one virtual key: which credentials are set, never their values."""
    record = call(target, "GET", f"/virtual-keys/{segment(slug)}")
    if as_json:
        print_json(record)
        return
    print_record(
        [
            ("slug", record.get("slug")),
            ("id", record.get("id")),
            ("name", record.get("name")),
            ("provider", record.get("provider")),
            ("status", record.get("status")),
            ("note", record.get("note")),
            ("custom host", record.get("custom_host")),
            ("options", record.get("model_config")),
            ("defaults", record.get("defaults")),
            ("credentials", record.get("credentials")),
            ("usage limits", record.get("usage_limits")),
            ("rate limits", [_rate(r) for r in record.get("rate_limits") or []]),
            ("workspace", record.get("workspace_id")),
            ("expires", when(record.get("expires_at"))),
            ("created", when(record.get("created_at"))),
            ("updated", when(record.get("last_updated_at"))),
        ]
    )


@virtual_keys.command("update")
@click.argument("slug")
@click.option("--name", default=None, help="A new name.")
@click.option(
    "--status",
    type=click.Choice(["active", "disabled"]),
    default=None,
    help="disabled: requests naming the slug are refused until it is active again.",
)
@_options
@_JSON
@target_options
def update(
    target: Target, slug: str, name: str | None, status: str | None, as_json: bool, **kw: Any
) -> None:
    """Change a virtual key's name, status, options or custom host (`rotate` changes its key)."""
    body = {**given(name=name, status=status), **_option_fields(kw)}
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    answer = call(target, "PUT", f"/virtual-keys/{segment(slug)}", body)
    print_done(answer, as_json, f"updated virtual key {slug}")


@virtual_keys.command("rotate")
@click.argument("slug")
@_secrets
@_JSON
@target_options
def rotate(target: Target, slug: str, as_json: bool, **kw: Any) -> None:
    """Replace the credentials behind a slug; clients keep sending the same slug.

    Every gateway process picks up the new key within the catalog's refresh interval,
    without a restart.
    """
    secrets = _secret_fields(kw, required=True)
    if not secrets:
        raise click.UsageError("rotate needs a new credential (--key-file, or the prompt)")
    answer = call(
        target, "PUT", f"/virtual-keys/{segment(slug)}", secrets, secrets=_secret_values(secrets)
    )
    print_done(answer, as_json, f"rotated the credentials of virtual key {slug}")


@virtual_keys.command("delete")
@click.argument("slug")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_JSON
@target_options
def delete(target: Target, slug: str, yes: bool, as_json: bool) -> None:
    """Delete a virtual key: requests naming its slug are refused from then on."""
    if not yes:
        click.confirm(f"delete virtual key {slug}? Requests naming it will fail", abort=True)
    answer = call(target, "DELETE", f"/virtual-keys/{segment(slug)}")
    print_done(answer, as_json, f"deleted virtual key {slug}")


@virtual_keys.command("usage")
@click.argument("slug", metavar="[SLUG]", required=False)
@_JSON
@target_options
def usage(target: Target, slug: str | None, as_json: bool) -> None:
    """Show a virtual key's budget usage and rate limits; without SLUG, every one with
    limits."""
    if slug is not None:
        show_usage(target, call(target, "GET", f"/virtual-keys/{segment(slug)}/usage"), as_json)
        return
    show_listing(
        target,
        call(target, "GET", "/admin/budgets"),
        as_json,
        kinds=("virtual_key",),
        label="slug",
        empty="no virtual key has a budget or rate limits",
    )


def _rate(limit: Any) -> str:
    if not isinstance(limit, dict):
        return str(limit)
    return f"{limit.get('value')} {limit.get('type', 'requests')}/{limit.get('unit')}"
