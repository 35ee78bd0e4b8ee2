"""What the store keeps sealed, and where: the vault's own values in ``vault_meta`` and
every virtual key's secrets blob.

``vault_meta`` holds a check value (a known plaintext: a wrong master key is refused at
open, before anything is written) and the API-key pepper (made once, re-sealed but never
changed by rotation, so API-key digests stay valid).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from portkey_mw.auth.vault import WRONG_KEY, Vault, VaultError
from portkey_mw.store.sql.models import vault_meta, virtual_keys

__all__ = [
    "CHECK",
    "PEPPER",
    "PEPPER_SIZE",
    "ROTATED",
    "check_sealing_key",
    "new_meta",
    "read_meta",
    "reseal_all",
    "seal_secrets",
    "unseal_meta",
    "unseal_secrets",
]

CHECK = "check"
PEPPER = "api_key_pepper"
PEPPER_SIZE = 32
_CHECK_PLAINTEXT = b"portkey-mw vault check v1"
#: Said when this process's key no longer is the store's.
ROTATED = "the master key was rotated after this process started: restart it with the new key"


def _meta_aad(name: str) -> bytes:
    return b"vault_meta/" + name.encode()


def _secrets_aad(record_id: str) -> bytes:
    # Bound to the row: a sealed blob copied into another row does not open there.
    return b"virtual_keys/" + record_id.encode()


async def read_meta(connection: AsyncConnection) -> dict[str, bytes]:
    """Every sealed value of ``vault_meta`` by name (empty: the vault is not sealed yet)."""
    rows = await connection.execute(select(vault_meta.c.name, vault_meta.c.value))
    return {row.name: bytes(row.value) for row in rows}


def new_meta(vault: Vault) -> tuple[list[dict[str, Any]], bytes]:
    """The ``vault_meta`` rows of a new vault, and its new pepper."""
    pepper = secrets.token_bytes(PEPPER_SIZE)
    now = datetime.now(UTC)
    rows = [
        {"name": name, "value": vault.encrypt(plaintext, _meta_aad(name)), "updated_at": now}
        for name, plaintext in ((CHECK, _CHECK_PLAINTEXT), (PEPPER, pepper))
    ]
    return rows, pepper


def unseal_meta(vault: Vault, sealed: Mapping[str, bytes]) -> bytes:
    """Check that ``vault`` opens this store's vault; the pepper.

    :raises VaultError: it does not (naming a wrong key), or the values are damaged.
    """
    if CHECK not in sealed or PEPPER not in sealed:
        raise VaultError("this store's vault is incomplete: vault_meta lacks its values")
    if vault.decrypt(sealed[CHECK], _meta_aad(CHECK)) != _CHECK_PLAINTEXT:
        raise VaultError(WRONG_KEY)
    pepper = vault.decrypt(sealed[PEPPER], _meta_aad(PEPPER))
    if len(pepper) != PEPPER_SIZE:
        raise VaultError("this store's API-key pepper is damaged")
    return pepper


async def check_sealing_key(connection: AsyncConnection, vault: Vault) -> None:
    """Refuse to seal under a key the store no longer uses (rotated by another process).

    :raises VaultError: naming the rotation.
    """
    sealed = await connection.scalar(select(vault_meta.c.value).where(vault_meta.c.name == CHECK))
    if sealed is None or not vault.sealed_by_me(bytes(sealed)):
        raise VaultError(ROTATED)


def seal_secrets(vault: Vault, record_id: str, values: Mapping[str, str]) -> bytes:
    """A virtual key's secrets as the blob its row keeps."""
    return vault.encrypt(orjson.dumps(dict(values)), _secrets_aad(record_id))


def unseal_secrets(vault: Vault, record_id: str, slug: str, sealed: bytes) -> dict[str, str]:
    """The secrets in a virtual key's blob.

    :raises VaultError: the blob is damaged, moved, or sealed under another key.
    """
    if not vault.sealed_by_me(sealed):
        # The store opened with this key, so another process rotated it since.
        raise VaultError(f"virtual key {slug!r} is sealed under another key: {ROTATED}")
    opened: dict[str, str] = orjson.loads(vault.decrypt(sealed, _secrets_aad(record_id)))
    return opened


async def reseal_all(connection: AsyncConnection, old: Vault, new: Vault) -> None:
    """Re-seal, inside the caller's transaction, every value ``old`` sealed: the vault's
    own and every virtual key's secrets (tombstones' too: every blob must open under the
    key the store now uses).

    :raises VaultError: something does not open under ``old`` (the caller rolls back).
    """
    sealed = await read_meta(connection)
    unseal_meta(old, sealed)
    now = datetime.now(UTC)
    for name, value in sealed.items():
        plaintext = old.decrypt(value, _meta_aad(name))
        await connection.execute(
            update(vault_meta)
            .where(vault_meta.c.name == name)
            .values(value=new.encrypt(plaintext, _meta_aad(name)), updated_at=now)
        )
    rows = await connection.execute(
        select(virtual_keys.c.id, virtual_keys.c.secrets).with_for_update()
    )
    for row in rows.all():
        aad = _secrets_aad(row.id)
        plaintext = old.decrypt(bytes(row.secrets), aad)
        await connection.execute(
            update(virtual_keys)
            .where(virtual_keys.c.id == row.id)
            .values(secrets=new.encrypt(plaintext, aad))
        )
