"""``portkey-mw budgets``: every budget and rate limit the gateway enforces, and resets.

API keys, virtual keys and the server file's metadata budgets, through the operator's
``/v1/admin/budgets`` routes (the admin key; without ``--url``, the local store).
"""

from __future__ import annotations

import click

from portkey_mw.cli._client import Target, call, target_options
from portkey_mw.cli._table import print_json
from portkey_mw.cli._usage import budget_text, next_reset, note_local, show_listing

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")


@click.group("budgets")
def budgets() -> None:
    """Budgets and rate limits: API keys', virtual keys' and metadata budgets' usage."""


@budgets.command("list")
@_JSON
@target_options
def list_command(target: Target, as_json: bool) -> None:
    """Every API key, virtual key and metadata budget with limits, and its usage."""
    answer = call(target, "GET", "/admin/budgets")
    show_listing(
        target,
        answer,
        as_json,
        kinds=None,
        empty="no API key, virtual key or metadata budget has a budget or rate limits",
    )


@budgets.command("reset")
@click.option("--api-key", "api_key", metavar="ID", default=None, help="An API key's id.")
@click.option("--virtual-key", metavar="SLUG", default=None, help="A virtual key's slug.")
@click.option(
    "--metadata", metavar="NAME", default=None, help="A metadata budget's name (server file)."
)
@_JSON
@target_options
def reset(
    target: Target,
    api_key: str | None,
    virtual_key: str | None,
    metadata: str | None,
    as_json: bool,
) -> None:
    """Start one budget's current period over from zero."""
    chosen = [
        (kind, ref)
        for kind, ref in (
            ("api_key", api_key),
            ("virtual_key", virtual_key),
            ("metadata", metadata),
        )
        if ref is not None
    ]
    if len(chosen) != 1:
        raise click.UsageError("give one of --api-key ID, --virtual-key SLUG, --metadata NAME")
    kind, ref = chosen[0]
    answer = call(target, "POST", "/admin/budgets/reset", {"kind": kind, "ref": ref})
    if as_json:
        print_json(answer)
        return
    click.echo(f"reset the budget of {answer.get('owner')}: {budget_text(answer.get('budget'))}")
    click.echo(f"next reset: {next_reset(answer.get('budget'))}")
    note_local(target, answer, reset=True)
