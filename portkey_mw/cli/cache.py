"""``portkey-mw cache`` (a running gateway's response cache) and ``portkey-mw admin``."""

from __future__ import annotations

from typing import Any

import click

from portkey_mw.cli._table import print_json
from portkey_mw.config.server import DEFAULT_PORT


@click.group()
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
    print_json(_admin_call("GET", url, admin_key))


@click.group()
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
