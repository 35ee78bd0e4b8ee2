"""``portkey-mw db`` and ``portkey-mw vault``: the control-plane store itself.

These act on the database directly (not through the admin API): run them where the store
and its master key are, with the same environment as the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from portkey_mw.cli._common import load_settings
from portkey_mw.errors import GatewayError

T = TypeVar("T")

_DATABASE_URL = click.option(
    "--database-url",
    envvar="PORTKEY_MW_DATABASE_URL",
    default=None,
    help="The store's database (default: $PORTKEY_MW_DATABASE_URL, the server file's "
    "store.url, else the SQLite file in $PORTKEY_MW_DATA_DIR).",
)
_SERVER_FILE = click.option(
    "--server-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="PORTKEY_MW_CONFIG",
    help="The server file whose store.url to use (default: $PORTKEY_MW_CONFIG).",
)


def _store_url(database_url: str | None, server_file: Path | None) -> str | None:
    """The URL given, else the server file's ``store.url`` (``None``: the store's default)."""
    if database_url:
        return database_url
    if server_file is None:
        return None
    return load_settings(server_file).store.url or None


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except GatewayError as exc:  # store unreachable, wrong master key...: said plainly
        raise click.ClickException(exc.message) from None


def _shown(url: str | None) -> str:
    from portkey_mw.store.sql import resolve_url
    from portkey_mw.store.sql.engine import (
        display_url,
    )

    return str(display_url(resolve_url(url)))


@click.group()
def db() -> None:
    """The control-plane store's database."""


@db.command("upgrade")
@_DATABASE_URL
@_SERVER_FILE
def db_upgrade(database_url: str | None, server_file: Path | None) -> None:
    """Migrate the store to the newest schema (the server does it at start-up too).

    Running it again changes nothing.
    """
    from portkey_mw.store.sql import upgrade

    url = _store_url(database_url, server_file)
    revision = _run(upgrade(url))
    click.echo(f"{_shown(url)} is at schema revision {revision}")


@click.group()
def vault() -> None:
    """The vault that encrypts provider credentials in the store."""


@vault.command("rotate-master-key")
@_DATABASE_URL
@_SERVER_FILE
@click.option(
    "--new-key-file",
    metavar="FILE",
    default=None,
    help="Read the new master key from FILE ('-': stdin; base64url or 64 hex characters). "
    "Default: a new random key, written over the key file. Required when the current key "
    "comes from $PORTKEY_MW_MASTER_KEY.",
)
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
def vault_rotate_master_key(
    database_url: str | None, server_file: Path | None, new_key_file: str | None, yes: bool
) -> None:
    """Re-encrypt every credential under a new master key, in one transaction.

    The current key comes from $PORTKEY_MW_MASTER_KEY or the key file in the data
    directory. A failure changes nothing. Running servers keep the old key in memory:
    restart them afterwards (with the new $PORTKEY_MW_MASTER_KEY, if you use it).
    """
    from portkey_mw.auth.vault import (
        parse_key,
        rotate_master_key,
    )
    from portkey_mw.cli._inputs import read_secret

    url = _store_url(database_url, server_file)
    text = read_secret(new_key_file, what="new master key", prompt=False)
    try:
        new_key = parse_key(text, new_key_file or "the new key") if text else None
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    if not yes:
        click.confirm(
            f"re-encrypt the vault of {_shown(url)} under a new master key? Running "
            "servers must be restarted afterwards",
            abort=True,
        )
    master = _run(rotate_master_key(url, new_key=new_key))
    if master.path is not None:
        click.echo(f"the vault is re-encrypted; the new master key is in {master.path}")
    else:
        click.echo(
            "the vault is re-encrypted: set PORTKEY_MW_MASTER_KEY to the new key everywhere "
            "the store is used"
        )
    click.echo("restart running servers: they still hold the old key")
