""":class:`SQLStore`: the control-plane store over SQLite or PostgreSQL.

Every mutation runs in one transaction that first locks the one-row revision counter, so
mutations are serialised on both databases: slug checks cannot race, and revisions are
handed out in commit order (a replica that has seen revision N has seen every change up
to N). The transaction then bumps the counter once and stamps each row it writes with the
new value. Virtual-key secrets are sealed by the vault; everything else is plain JSON.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from sqlalchemy import Row, Select, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from portkey_mw.auth.vault import (
    MASTER_KEY_VARIABLE,
    WRONG_KEY,
    MasterKey,
    Vault,
    VaultError,
    generate_key,
    read_master_key,
    write_key_file,
)
from portkey_mw.store.protocols import Conflict, ControlStore, StoreUnavailable
from portkey_mw.store.records import ApiKey, Changes, ConfigVersion, SavedConfig, VirtualKey
from portkey_mw.store.sql.engine import (
    default_data_dir,
    display_url,
    make_engine,
    resolve_url,
    translate_errors,
)
from portkey_mw.store.sql.migrate import current_revision, head_revision, migrate
from portkey_mw.store.sql.models import (
    api_keys,
    config_versions,
    configs,
    revision,
    vault_meta,
    virtual_keys,
)

__all__ = ["SQLStore", "open_store"]

log = structlog.get_logger("portkey_mw.store")

PEPPER_SIZE = 32
_CHECK = "check"
_PEPPER = "api_key_pepper"
_CHECK_PLAINTEXT = b"portkey-mw vault check v1"
_ROTATED = "the master key was rotated after this process started: restart it with the new key"

# What each update may change (anything else is a programming error, not a client's).
_VIRTUAL_KEY_FIELDS = frozenset(
    {
        "slug",
        "name",
        "provider",
        "secrets",
        "options",
        "custom_host",
        "defaults",
        "note",
        "status",
        "usage_limits",
        "rate_limits",
        "workspace_id",
        "expires_at",
    }
)
_API_KEY_FIELDS = frozenset(
    {
        "name",
        "key_digest",
        "key_hint",
        "type",
        "sub_type",
        "description",
        "user_id",
        "workspace_id",
        "scopes",
        "defaults",
        "status",
        "usage_limits",
        "rate_limits",
        "expires_at",
    }
)
_CONFIG_FIELDS = frozenset(
    {"slug", "name", "config", "version_id", "is_default", "status", "workspace_id"}
)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _meta_aad(name: str) -> bytes:
    return b"vault_meta/" + name.encode()


def _secrets_aad(record_id: str) -> bytes:
    # Bound to the row: a sealed blob copied into another row does not open there.
    return b"virtual_keys/" + record_id.encode()


class _Tx:
    """A writing transaction: its connection, and the revision it stamps rows with."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection
        self._revision: int | None = None

    async def revision(self) -> int:
        """Bump the counter (once per transaction) and return the new value."""
        if self._revision is None:
            result = await self.connection.execute(
                update(revision)
                .where(revision.c.id == 1)
                .values(value=revision.c.value + 1)
                .returning(revision.c.value)
            )
            self._revision = int(result.scalar_one())
        return self._revision


class SQLStore:
    """The control-plane store (:class:`~portkey_mw.store.protocols.ControlStore`) on
    SQLAlchemy 2 async: SQLite through aiosqlite, PostgreSQL through asyncpg.

    :param url: the database URL; else ``PORTKEY_MW_DATABASE_URL``, else ``control.db`` in
        the data directory. ``postgresql://`` and ``sqlite://`` URLs are accepted as such.
    :param master_key: the vault's master key; else ``PORTKEY_MW_MASTER_KEY``, else the key
        file in the data directory (created on first start).
    :param data_dir: the data directory; else ``PORTKEY_MW_DATA_DIR``, else the platform's.
    :param migrate: run the migrations at :meth:`open`; without it a store behind the
        shipped schema is refused.
    :param environ: the environment to read (``os.environ`` by default).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        master_key: bytes | None = None,
        data_dir: Path | None = None,
        migrate: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self._data_dir = data_dir or default_data_dir(self._environ)
        self._url = resolve_url(url, data_dir=self._data_dir, environ=self._environ)
        self._given_key = master_key
        self._migrate = migrate
        self._engine: AsyncEngine | None = None
        self._master: MasterKey | None = None
        self._vault: Vault | None = None
        self._pepper: bytes | None = None

    def __repr__(self) -> str:
        return f"SQLStore({self.url_for_display!r})"

    @property
    def url_for_display(self) -> str:
        """The database URL without user, password or query: safe to log and show."""
        return display_url(self._url)

    @property
    def data_dir(self) -> Path:
        """The data directory (the default database and the key file live there)."""
        return self._data_dir

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return "postgresql" if self._url.startswith("postgresql") else "sqlite"

    @property
    def api_key_pepper(self) -> bytes:
        """The 32-byte key of gateway API-key digests (HMAC-SHA256), after :meth:`open`.

        It is made once per store, kept sealed in the vault, and survives master-key
        rotation unchanged, so digests stay valid.
        """
        if self._pepper is None:
            raise RuntimeError("the store is not open")
        return self._pepper

    @property
    def master_key(self) -> MasterKey:
        """The master key in use and where it came from, after :meth:`open`."""
        if self._master is None:
            raise RuntimeError("the store is not open")
        return self._master

    @property
    def _db(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the store is not open")
        return self._engine

    @property
    def _sealer(self) -> Vault:
        if self._vault is None:
            raise RuntimeError("the store is not open")
        return self._vault

    # -- life cycle ----------------------------------------------------------------------
    async def open(self) -> None:
        """Connect, migrate (if asked to) and open the vault.

        :raises StoreUnavailable: the database cannot be reached, or its schema is behind
            and ``migrate`` is false.
        :raises VaultError: the master key is missing, malformed or does not open this
            store's vault. Nothing is written then.
        """
        if self._engine is not None:
            return
        engine = make_engine(self._url)
        try:
            if self._migrate:
                await migrate(engine, self._url)
            else:
                await self._check_schema(engine)
            self._engine = engine
            await self._open_vault()
        except BaseException:
            self._engine = None
            await engine.dispose()
            raise
        if self.master_key.created:
            log.warning(
                "vault.master_key_created",
                path=str(self.master_key.path),
                message="created a new master key file for the vault: back it up, "
                "the stored credentials cannot be read without it",
            )

    async def aclose(self) -> None:
        """Close every connection (the store can be opened again)."""
        engine, self._engine = self._engine, None
        self._vault = self._pepper = None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> SQLStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _check_schema(self, engine: AsyncEngine) -> None:
        async with translate_errors(self._url), engine.connect() as connection:
            found = await connection.run_sync(current_revision)
        if found != head_revision():
            raise StoreUnavailable(
                f"the control-plane store {self.url_for_display} is at schema revision "
                f"{found or 'none'}, this portkey-mw needs {head_revision()}: "
                "run `portkey-mw db upgrade`"
            )

    async def _open_vault(self) -> None:
        async with self._read() as connection:
            sealed = await self._meta(connection)
        if self._given_key is not None:
            master = MasterKey(self._given_key)
        else:
            # A store whose vault is sealed never gets a fresh key file: that key could
            # not open it, and would only hide the missing one.
            master = read_master_key(self._data_dir, self._environ, create=not sealed)
        vault = Vault(master.key)
        if sealed:
            pepper = self._unseal_meta(vault, sealed)
        else:
            pepper = secrets.token_bytes(PEPPER_SIZE)
            try:
                async with self._write() as tx:
                    now = _now()
                    await tx.connection.execute(
                        vault_meta.insert(),
                        [
                            {
                                "name": _CHECK,
                                "value": vault.encrypt(_CHECK_PLAINTEXT, _meta_aad(_CHECK)),
                                "updated_at": now,
                            },
                            {
                                "name": _PEPPER,
                                "value": vault.encrypt(pepper, _meta_aad(_PEPPER)),
                                "updated_at": now,
                            },
                        ],
                    )
            except Conflict:
                # Another process sealed it first: open what it wrote.
                async with self._read() as connection:
                    pepper = self._unseal_meta(vault, await self._meta(connection))
        self._master, self._vault, self._pepper = master, vault, pepper

    @staticmethod
    async def _meta(connection: AsyncConnection) -> dict[str, bytes]:
        rows = await connection.execute(select(vault_meta.c.name, vault_meta.c.value))
        return {row.name: bytes(row.value) for row in rows}

    @staticmethod
    def _unseal_meta(vault: Vault, sealed: Mapping[str, bytes]) -> bytes:
        if _CHECK not in sealed or _PEPPER not in sealed:
            raise VaultError("this store's vault is incomplete: vault_meta lacks its values")
        check = vault.decrypt(sealed[_CHECK], _meta_aad(_CHECK))
        if check != _CHECK_PLAINTEXT:
            raise VaultError(WRONG_KEY)
        pepper = vault.decrypt(sealed[_PEPPER], _meta_aad(_PEPPER))
        if len(pepper) != PEPPER_SIZE:
            raise VaultError("this store's API-key pepper is damaged")
        return pepper

    # -- transactions ----------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with translate_errors(self._url), self._db.connect() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[_Tx]:
        async with translate_errors(self._url), self._db.connect() as connection:
            connection = await connection.execution_options(write=True)
            async with connection.begin():
                # The lock every mutation takes first (SQLite: BEGIN IMMEDIATE already
                # holds the database's write lock; FOR UPDATE renders nothing there).
                await connection.execute(
                    select(revision.c.value).where(revision.c.id == 1).with_for_update()
                )
                yield _Tx(connection)

    async def _check_sealing_key(self, tx: _Tx) -> None:
        """Refuse to seal under a key the store no longer uses (rotated meanwhile)."""
        sealed = await tx.connection.scalar(
            select(vault_meta.c.value).where(vault_meta.c.name == _CHECK)
        )
        if sealed is None or not self._sealer.sealed_by_me(bytes(sealed)):
            raise VaultError(_ROTATED)

    async def revision(self) -> int:
        """The latest revision (0 for an empty store)."""
        async with self._read() as connection:
            value = await connection.scalar(select(revision.c.value).where(revision.c.id == 1))
        return int(value or 0)

    async def changes(self, since: int) -> Changes:
        """Every record stamped after ``since`` up to the current revision, tombstones
        included; ``Changes.revision`` is where the next call starts."""
        async with self._read() as connection:
            latest = await connection.scalar(select(revision.c.value).where(revision.c.id == 1))
            latest = int(latest or 0)

            def window(table: Table) -> Any:
                # Bounded above: rows stamped later belong to the next call.
                return (table.c.revision > since) & (table.c.revision <= latest)

            vks = await connection.execute(
                select(virtual_keys).where(window(virtual_keys)).order_by(virtual_keys.c.revision)
            )
            aks = await connection.execute(
                select(api_keys).where(window(api_keys)).order_by(api_keys.c.revision)
            )
            cfgs = await connection.execute(
                self._config_query().where(window(configs)).order_by(configs.c.revision)
            )
            return Changes(
                revision=latest,
                virtual_keys=tuple(self._virtual_key(row) for row in vks),
                api_keys=tuple(self._api_key(row) for row in aks),
                configs=tuple(self._config(row) for row in cfgs),
            )

    # -- virtual keys --------------------------------------------------------------------------
    def _seal_secrets(self, record_id: str, values: Mapping[str, str]) -> bytes:
        return self._sealer.encrypt(orjson.dumps(dict(values)), _secrets_aad(record_id))

    def _virtual_key(self, row: Row[Any]) -> VirtualKey:
        opened = orjson.loads(self._sealer.decrypt(bytes(row.secrets), _secrets_aad(row.id)))
        return VirtualKey(
            id=row.id,
            slug=row.slug,
            name=row.name,
            provider=row.provider,
            secrets=opened,
            options=row.options or {},
            custom_host=row.custom_host,
            defaults=row.defaults or {},
            note=row.note,
            status=row.status,
            usage_limits=row.usage_limits,
            rate_limits=tuple(row.rate_limits or ()),
            workspace_id=row.workspace_id,
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted=bool(row.deleted),
            revision=int(row.revision),
        )

    @staticmethod
    async def _slug_taken(
        tx: _Tx, table: Table, slug: str, kind: str, *, other_than: str | None = None
    ) -> None:
        query = select(table.c.id).where((table.c.slug == slug) & ~table.c.deleted)
        if other_than is not None:
            query = query.where(table.c.id != other_than)
        if await tx.connection.scalar(query.limit(1)) is not None:
            raise Conflict(f"a {kind} with slug {slug!r} already exists", param="slug")

    async def create_virtual_key(self, record: VirtualKey) -> VirtualKey:
        """Insert ``record``; the store sets its revision and timestamps (and an id if it
        has none).

        :raises Conflict: the slug (or the id) is taken.
        """
        record_id = record.id or _new_id()
        async with self._write() as tx:
            await self._check_sealing_key(tx)
            await self._slug_taken(tx, virtual_keys, record.slug, "virtual key")
            now = _now()
            await tx.connection.execute(
                virtual_keys.insert().values(
                    id=record_id,
                    slug=record.slug,
                    name=record.name,
                    provider=record.provider,
                    secrets=self._seal_secrets(record_id, record.secrets),
                    options=dict(record.options),
                    custom_host=record.custom_host,
                    defaults=dict(record.defaults),
                    note=record.note,
                    status=record.status,
                    usage_limits=_plain(record.usage_limits),
                    rate_limits=[dict(limit) for limit in record.rate_limits],
                    workspace_id=record.workspace_id,
                    expires_at=record.expires_at,
                    created_at=now,
                    updated_at=now,
                    deleted=False,
                    revision=await tx.revision(),
                )
            )
            return await self._one_virtual_key(tx.connection, virtual_keys.c.id == record_id)

    async def _one_virtual_key(self, connection: AsyncConnection, where: Any) -> VirtualKey:
        row = (await connection.execute(select(virtual_keys).where(where))).one()
        return self._virtual_key(row)

    async def get_virtual_key(self, slug: str) -> VirtualKey | None:
        """The virtual key with this slug (not deleted), its secrets decrypted."""
        async with self._read() as connection:
            row = (
                await connection.execute(select(virtual_keys).where(_live_slug(virtual_keys, slug)))
            ).first()
        return None if row is None else self._virtual_key(row)

    async def list_virtual_keys(self, workspace_id: str | None = None) -> Sequence[VirtualKey]:
        """Every virtual key not deleted (in ``workspace_id``, if given), oldest first."""
        async with self._read() as connection:
            rows = await connection.execute(_listing(virtual_keys, workspace_id))
            return [self._virtual_key(row) for row in rows]

    async def update_virtual_key(self, slug: str, changes: Mapping[str, Any]) -> VirtualKey | None:
        """Apply ``changes`` (``secrets`` replaces every secret); ``None``: no such key.

        :raises Conflict: a new slug is taken.
        :raises ValueError: a field that cannot change.
        """
        _check_fields(changes, _VIRTUAL_KEY_FIELDS, "virtual key")
        async with self._write() as tx:
            record_id = await tx.connection.scalar(
                select(virtual_keys.c.id).where(_live_slug(virtual_keys, slug))
            )
            if record_id is None:
                return None
            values = {name: _plain(value) for name, value in changes.items()}
            if "secrets" in changes:
                await self._check_sealing_key(tx)
                values["secrets"] = self._seal_secrets(record_id, changes["secrets"])
            if "slug" in changes:
                await self._slug_taken(
                    tx, virtual_keys, changes["slug"], "virtual key", other_than=record_id
                )
            await tx.connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == record_id)
                .values(**values, updated_at=_now(), revision=await tx.revision())
            )
            return await self._one_virtual_key(tx.connection, virtual_keys.c.id == record_id)

    async def delete_virtual_key(self, slug: str) -> bool:
        """Mark the virtual key deleted; its secrets are erased (the tombstone keeps none)."""
        async with self._write() as tx:
            record_id = await tx.connection.scalar(
                select(virtual_keys.c.id).where(_live_slug(virtual_keys, slug))
            )
            if record_id is None:
                return False
            await self._check_sealing_key(tx)
            await tx.connection.execute(
                update(virtual_keys)
                .where(virtual_keys.c.id == record_id)
                .values(
                    deleted=True,
                    secrets=self._seal_secrets(record_id, {}),
                    updated_at=_now(),
                    revision=await tx.revision(),
                )
            )
            return True

    # -- API keys ------------------------------------------------------------------------------
    @staticmethod
    def _api_key(row: Row[Any]) -> ApiKey:
        return ApiKey(
            id=row.id,
            name=row.name,
            key_digest=row.key_digest,
            key_hint=row.key_hint,
            type=row.type,
            sub_type=row.sub_type,
            description=row.description,
            user_id=row.user_id,
            workspace_id=row.workspace_id,
            scopes=tuple(row.scopes or ()),
            defaults=row.defaults or {},
            status=row.status,
            usage_limits=row.usage_limits,
            rate_limits=tuple(row.rate_limits or ()),
            expires_at=row.expires_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted=bool(row.deleted),
            revision=int(row.revision),
        )

    async def _one_api_key(self, connection: AsyncConnection, where: Any) -> ApiKey | None:
        row = (await connection.execute(select(api_keys).where(where))).first()
        return None if row is None else self._api_key(row)

    async def create_api_key(self, record: ApiKey) -> ApiKey:
        """Insert ``record`` (its digest, never the key).

        :raises Conflict: the digest (or the id) is taken.
        """
        record_id = record.id or _new_id()
        async with self._write() as tx:
            now = _now()
            await tx.connection.execute(
                api_keys.insert().values(
                    id=record_id,
                    name=record.name,
                    key_digest=record.key_digest,
                    key_hint=record.key_hint,
                    type=record.type,
                    sub_type=record.sub_type,
                    description=record.description,
                    user_id=record.user_id,
                    workspace_id=record.workspace_id,
                    scopes=list(record.scopes),
                    defaults=dict(record.defaults),
                    status=record.status,
                    usage_limits=_plain(record.usage_limits),
                    rate_limits=[dict(limit) for limit in record.rate_limits],
                    expires_at=record.expires_at,
                    created_at=now,
                    updated_at=now,
                    deleted=False,
                    revision=await tx.revision(),
                )
            )
            created = await self._one_api_key(tx.connection, api_keys.c.id == record_id)
        assert created is not None
        return created

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The API key with this id (not deleted)."""
        async with self._read() as connection:
            return await self._one_api_key(
                connection, (api_keys.c.id == key_id) & ~api_keys.c.deleted
            )

    async def find_api_key(self, key_digest: str) -> ApiKey | None:
        """The API key whose digest this is (not deleted)."""
        async with self._read() as connection:
            return await self._one_api_key(
                connection, (api_keys.c.key_digest == key_digest) & ~api_keys.c.deleted
            )

    async def list_api_keys(self, workspace_id: str | None = None) -> Sequence[ApiKey]:
        """Every API key not deleted (in ``workspace_id``, if given), oldest first."""
        async with self._read() as connection:
            rows = await connection.execute(_listing(api_keys, workspace_id))
            return [self._api_key(row) for row in rows]

    async def update_api_key(self, key_id: str, changes: Mapping[str, Any]) -> ApiKey | None:
        """Apply ``changes`` (rotation changes ``key_digest`` and ``key_hint``).

        :raises Conflict: a new digest is taken.
        :raises ValueError: a field that cannot change.
        """
        _check_fields(changes, _API_KEY_FIELDS, "API key")
        live = (api_keys.c.id == key_id) & ~api_keys.c.deleted
        async with self._write() as tx:
            if await tx.connection.scalar(select(api_keys.c.id).where(live)) is None:
                return None
            values = {name: _plain(value) for name, value in changes.items()}
            await tx.connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(**values, updated_at=_now(), revision=await tx.revision())
            )
            return await self._one_api_key(tx.connection, api_keys.c.id == key_id)

    async def delete_api_key(self, key_id: str) -> bool:
        """Mark the API key deleted (a tombstone)."""
        live = (api_keys.c.id == key_id) & ~api_keys.c.deleted
        async with self._write() as tx:
            if await tx.connection.scalar(select(api_keys.c.id).where(live)) is None:
                return False
            await tx.connection.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(deleted=True, updated_at=_now(), revision=await tx.revision())
            )
            return True

    # -- saved configs -------------------------------------------------------------------------
    @staticmethod
    def _config_query() -> Select[Any]:
        return select(configs, config_versions.c.config).join(
            config_versions, config_versions.c.id == configs.c.version_id
        )

    @staticmethod
    def _config(row: Row[Any]) -> SavedConfig:
        return SavedConfig(
            id=row.id,
            slug=row.slug,
            name=row.name,
            config=row.config,
            version_id=row.version_id,
            is_default=bool(row.is_default),
            status=row.status,
            workspace_id=row.workspace_id,
            created_at=row.created_at,
            updated_at=row.updated_at,
            deleted=bool(row.deleted),
            revision=int(row.revision),
        )

    async def _one_config(self, connection: AsyncConnection, record_id: str) -> SavedConfig:
        row = (
            await connection.execute(self._config_query().where(configs.c.id == record_id))
        ).one()
        return self._config(row)

    async def _live_config_id(self, connection: AsyncConnection, slug: str) -> str | None:
        """The id of the live config whose slug, else whose id, is ``slug``."""
        rows = (
            await connection.execute(
                select(configs.c.id, configs.c.slug).where(
                    ((configs.c.slug == slug) | (configs.c.id == slug)) & ~configs.c.deleted
                )
            )
        ).all()
        for row in sorted(rows, key=lambda row: row.slug != slug):
            return str(row.id)
        return None

    async def _add_version(
        self, tx: _Tx, config_id: str, version_id: str, config: Mapping[str, Any], now: datetime
    ) -> None:
        number = await tx.connection.scalar(
            select(func.coalesce(func.max(config_versions.c.number), 0)).where(
                config_versions.c.config_id == config_id
            )
        )
        await tx.connection.execute(
            config_versions.insert().values(
                id=version_id,
                config_id=config_id,
                number=int(number or 0) + 1,
                config=dict(config),
                created_at=now,
            )
        )

    async def create_config(self, record: SavedConfig) -> SavedConfig:
        """Insert ``record`` and its first version (``record.version_id``, or a new id).

        :raises Conflict: the slug (or an id) is taken.
        """
        record_id = record.id or _new_id()
        version_id = record.version_id or _new_id()
        async with self._write() as tx:
            await self._slug_taken(tx, configs, record.slug, "config")
            now = _now()
            await tx.connection.execute(
                configs.insert().values(
                    id=record_id,
                    slug=record.slug,
                    name=record.name,
                    version_id=version_id,
                    is_default=record.is_default,
                    status=record.status,
                    workspace_id=record.workspace_id,
                    created_at=now,
                    updated_at=now,
                    deleted=False,
                    revision=await tx.revision(),
                )
            )
            await self._add_version(tx, record_id, version_id, record.config, now)
            return await self._one_config(tx.connection, record_id)

    async def get_config(self, slug: str) -> SavedConfig | None:
        """The saved config with this slug or id (not deleted)."""
        async with self._read() as connection:
            record_id = await self._live_config_id(connection, slug)
            return None if record_id is None else await self._one_config(connection, record_id)

    async def list_configs(self, workspace_id: str | None = None) -> Sequence[SavedConfig]:
        """Every saved config not deleted (in ``workspace_id``, if given), oldest first."""
        query = self._config_query().where(~configs.c.deleted)
        if workspace_id is not None:
            query = query.where(configs.c.workspace_id == workspace_id)
        async with self._read() as connection:
            rows = await connection.execute(query.order_by(configs.c.created_at, configs.c.id))
            return [self._config(row) for row in rows]

    async def update_config(self, slug: str, changes: Mapping[str, Any]) -> SavedConfig | None:
        """Apply ``changes``; a ``config`` makes a new version (``version_id`` or a new id)
        and that version becomes the current one.

        :raises Conflict: a new slug is taken.
        :raises ValueError: a field that cannot change, or ``version_id`` without
            ``config``.
        """
        _check_fields(changes, _CONFIG_FIELDS, "config")
        if "version_id" in changes and "config" not in changes:
            raise ValueError("a config's version_id changes only with a new config")
        async with self._write() as tx:
            record_id = await self._live_config_id(tx.connection, slug)
            if record_id is None:
                return None
            now = _now()
            values = {
                name: _plain(value)
                for name, value in changes.items()
                if name not in ("config", "version_id")
            }
            if "slug" in changes:
                await self._slug_taken(tx, configs, changes["slug"], "config", other_than=record_id)
            if "config" in changes:
                version_id = changes.get("version_id") or _new_id()
                await self._add_version(tx, record_id, version_id, changes["config"], now)
                values["version_id"] = version_id
            await tx.connection.execute(
                update(configs)
                .where(configs.c.id == record_id)
                .values(**values, updated_at=now, revision=await tx.revision())
            )
            return await self._one_config(tx.connection, record_id)

    async def config_versions(self, slug: str) -> Sequence[ConfigVersion] | None:
        """Every version of a saved config, newest first (``None``: no such config)."""
        async with self._read() as connection:
            record_id = await self._live_config_id(connection, slug)
            if record_id is None:
                return None
            rows = await connection.execute(
                select(config_versions)
                .where(config_versions.c.config_id == record_id)
                .order_by(config_versions.c.number.desc())
            )
            return [
                ConfigVersion(
                    id=row.id, config_id=row.config_id, config=row.config, created_at=row.created_at
                )
                for row in rows
            ]

    async def delete_config(self, slug: str) -> bool:
        """Mark the saved config deleted (its versions stay)."""
        async with self._write() as tx:
            record_id = await self._live_config_id(tx.connection, slug)
            if record_id is None:
                return False
            await tx.connection.execute(
                update(configs)
                .where(configs.c.id == record_id)
                .values(deleted=True, updated_at=_now(), revision=await tx.revision())
            )
            return True

    # -- the vault -----------------------------------------------------------------------------
    async def rotate_master_key(self, new_key: bytes | None = None) -> MasterKey:
        """Re-encrypt every sealed value under a new master key, in one transaction.

        With a key file, the new key (``new_key`` or a fresh one) is staged beside it
        before the commit and renamed over it after; with a key from the environment or the
        caller, ``new_key`` is required and nothing is written but the database. On any
        failure the database, the key file and this store are as they were.

        :returns: the new key and the file it is in (if any).
        :raises VaultError: ``new_key`` is needed, or equal to the old key, or a sealed
            value does not open under the old key.
        """
        old = self.master_key
        if new_key is None:
            if old.path is None:
                raise VaultError(
                    f"the master key comes from {MASTER_KEY_VARIABLE} (or the caller): "
                    "give the new key, then set the variable to it"
                )
            new_key = generate_key()
        if new_key == old.key:
            raise VaultError("the new master key is the current one")
        old_vault, new_vault = self._sealer, Vault(new_key)
        staged = write_key_file(old.path, new_key) if old.path is not None else None
        try:
            async with self._write() as tx:
                connection = tx.connection
                sealed = await self._meta(connection)
                self._unseal_meta(old_vault, sealed)  # the old key opens this vault
                for name, value in sealed.items():
                    plaintext = old_vault.decrypt(value, _meta_aad(name))
                    await connection.execute(
                        update(vault_meta)
                        .where(vault_meta.c.name == name)
                        .values(
                            value=new_vault.encrypt(plaintext, _meta_aad(name)), updated_at=_now()
                        )
                    )
                rows = await connection.execute(
                    select(virtual_keys.c.id, virtual_keys.c.secrets).with_for_update()
                )
                # Tombstones too: every blob must open under the key the store now uses.
                for row in rows.all():
                    aad = _secrets_aad(row.id)
                    plaintext = old_vault.decrypt(bytes(row.secrets), aad)
                    await connection.execute(
                        update(virtual_keys)
                        .where(virtual_keys.c.id == row.id)
                        .values(secrets=new_vault.encrypt(plaintext, aad))
                    )
        except BaseException:
            if staged is not None:
                staged.unlink(missing_ok=True)
            raise
        rotated = MasterKey(new_key, old.path)
        self._master, self._vault = rotated, new_vault
        if staged is not None and old.path is not None:
            try:
                os.replace(staged, old.path)
                _sync_dir(old.path.parent)
            except OSError as exc:
                raise VaultError(
                    f"the vault is now sealed under the new master key, but it could not "
                    f"replace {old.path} ({exc.strerror}): move {staged} there"
                ) from None
        log.warning("vault.master_key_rotated", path=str(old.path) if old.path else None)
        return rotated


async def open_store(settings_url: str | None = None, **options: Any) -> SQLStore:
    """A :class:`SQLStore` for ``settings_url`` (the server file's ``store.url``), opened."""
    store = SQLStore(settings_url, **options)
    await store.open()
    return store


def _live_slug(table: Table, slug: str) -> Any:
    return (table.c.slug == slug) & ~table.c.deleted


def _listing(table: Table, workspace_id: str | None) -> Select[Any]:
    query = select(table).where(~table.c.deleted)
    if workspace_id is not None:
        query = query.where(table.c.workspace_id == workspace_id)
    return query.order_by(table.c.created_at, table.c.id)


def _check_fields(changes: Mapping[str, Any], allowed: frozenset[str], kind: str) -> None:
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"cannot change {', '.join(unknown)} of a {kind}")


def _plain(value: Any) -> Any:
    """``value`` as a JSON column takes it: mappings as dicts, tuples as lists."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    return value


def _sync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


if TYPE_CHECKING:  # mypy proves SQLStore is a ControlStore

    def _is_control_store(store: SQLStore) -> ControlStore:
        return store
