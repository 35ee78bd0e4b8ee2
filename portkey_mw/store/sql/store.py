""":class:`SQLStore`: the control-plane store over SQLite or PostgreSQL.

Every mutation runs in one transaction that first locks the one-row revision counter, so
mutations are serialised on both databases: slug checks cannot race, and revisions are
handed out in commit order (a replica that has seen revision N has seen every change up
to N). The transaction bumps the counter once and stamps each row it writes with the new
value; a mutation that finds nothing to change bumps nothing. Virtual-key secrets are
sealed by the vault (``sealing.py``); the rest is plain JSON (``rows.py``).

Budget usage is no record: :meth:`SQLStore.save_usage` neither takes the revision lock nor
bumps the counter (``usage.py`` holds its statements).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import ColumnElement, Row, Select, Table, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from portkey_mw.auth.vault import (
    MASTER_KEY_VARIABLE,
    MasterKey,
    Vault,
    VaultError,
    generate_key,
    read_master_key,
    write_key_file,
)
from portkey_mw.limits.results import UsageEntry
from portkey_mw.response_store import StoredResponse
from portkey_mw.store.protocols import Conflict, ControlStore, StoreUnavailable
from portkey_mw.store.records import ApiKey, Changes, ConfigVersion, SavedConfig, VirtualKey
from portkey_mw.store.sql import responses, sealing, usage
from portkey_mw.store.sql.engine import (
    default_data_dir,
    display_url,
    make_engine,
    resolve_url,
    translate_errors,
)
from portkey_mw.store.sql.migrate import current_revision, head_revision, migrate
from portkey_mw.store.sql.models import (
    MAX_USAGE_SUBJECT,
    api_keys,
    config_versions,
    configs,
    revision,
    vault_meta,
    virtual_keys,
)
from portkey_mw.store.sql.prompts import PromptTables, read_prompt_changes
from portkey_mw.store.sql.rows import (
    API_KEY_FIELDS,
    CONFIG_FIELDS,
    VIRTUAL_KEY_FIELDS,
    check_fields,
    from_row,
    plain,
    to_row,
)

__all__ = ["SQLStore", "open_store"]

log = structlog.get_logger("portkey_mw.store")


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _live(table: Table) -> ColumnElement[bool]:
    return ~table.c.deleted


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

    async def stamps(self) -> dict[str, Any]:
        """The columns every new row gets."""
        now = _now()
        return {
            "created_at": now,
            "updated_at": now,
            "deleted": False,
            "revision": await self.revision(),
        }

    async def change(self, table: Table, record_id: str, **values: Any) -> None:
        """Update one row, stamping it."""
        await self.connection.execute(
            update(table)
            .where(table.c.id == record_id)
            .values(**values, updated_at=_now(), revision=await self.revision())
        )


class SQLStore(PromptTables):
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

    # -- life cycle --------------------------------------------------------------------------
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
            sealed = await sealing.read_meta(connection)
        if self._given_key is not None:
            master = MasterKey(self._given_key)
        else:
            # A store whose vault is sealed never gets a fresh key file: that key could
            # not open it, and would only hide the missing one.
            master = read_master_key(self._data_dir, self._environ, create=not sealed)
        vault = Vault(master.key)
        if sealed:
            pepper = sealing.unseal_meta(vault, sealed)
        else:
            rows, pepper = sealing.new_meta(vault)
            try:
                async with self._write() as tx:
                    await tx.connection.execute(vault_meta.insert(), rows)
            except Conflict:
                # Another process sealed it first: open what it wrote.
                async with self._read() as connection:
                    pepper = sealing.unseal_meta(vault, await sealing.read_meta(connection))
        self._master, self._vault, self._pepper = master, vault, pepper

    # -- transactions ------------------------------------------------------------------------
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

            def window(query: Select[Any], table: Table) -> Select[Any]:
                # Bounded above: rows stamped later belong to the next call.
                where = (table.c.revision > since) & (table.c.revision <= latest)
                return query.where(where).order_by(table.c.revision)

            vks = await connection.execute(window(select(virtual_keys), virtual_keys))
            aks = await connection.execute(window(select(api_keys), api_keys))
            cfgs = await connection.execute(window(_config_query(), configs))
            changed_prompts, labels = await read_prompt_changes(connection, since, latest)
            return Changes(
                revision=latest,
                virtual_keys=tuple(self._virtual_key(row) for row in vks),
                api_keys=tuple(from_row(ApiKey, row) for row in aks),
                configs=tuple(from_row(SavedConfig, row) for row in cfgs),
                prompts=changed_prompts,
                labels=labels,
            )

    @staticmethod
    async def _slug_taken(
        tx: _Tx, table: Table, slug: str, kind: str, *, other_than: str | None = None
    ) -> None:
        query = select(table.c.id).where((table.c.slug == slug) & _live(table))
        if other_than is not None:
            query = query.where(table.c.id != other_than)
        if await tx.connection.scalar(query.limit(1)) is not None:
            raise Conflict(f"a {kind} with slug {slug!r} already exists", param="slug")

    @staticmethod
    async def _live_id(connection: AsyncConnection, table: Table, where: Any) -> str | None:
        found = await connection.scalar(select(table.c.id).where(where & _live(table)))
        return None if found is None else str(found)

    # -- virtual keys ------------------------------------------------------------------------
    def _seal(self, record_id: str, values: Mapping[str, str]) -> bytes:
        return sealing.seal_secrets(self._sealer, record_id, values)

    def _virtual_key(self, row: Row[Any]) -> VirtualKey:
        opened = sealing.unseal_secrets(self._sealer, row.id, row.slug, bytes(row.secrets))
        return from_row(VirtualKey, row, secrets=opened)

    async def _one_virtual_key(self, connection: AsyncConnection, record_id: str) -> VirtualKey:
        query = select(virtual_keys).where(virtual_keys.c.id == record_id)
        return self._virtual_key((await connection.execute(query)).one())

    async def create_virtual_key(self, record: VirtualKey) -> VirtualKey:
        """Insert ``record``; the store sets its revision and timestamps (and an id if it
        has none).

        :raises Conflict: the slug (or the id) is taken.
        """
        record_id = record.id or _new_id()
        async with self._write() as tx:
            await sealing.check_sealing_key(tx.connection, self._sealer)
            await self._slug_taken(tx, virtual_keys, record.slug, "virtual key")
            row = to_row(
                virtual_keys,
                record,
                id=record_id,
                secrets=self._seal(record_id, record.secrets),
                **await tx.stamps(),
            )
            await tx.connection.execute(virtual_keys.insert().values(row))
            return await self._one_virtual_key(tx.connection, record_id)

    async def get_virtual_key(self, slug: str) -> VirtualKey | None:
        """The virtual key with this slug (not deleted), its secrets decrypted."""
        query = select(virtual_keys).where((virtual_keys.c.slug == slug) & _live(virtual_keys))
        async with self._read() as connection:
            row = (await connection.execute(query)).first()
        return None if row is None else self._virtual_key(row)

    async def list_virtual_keys(self, workspace_id: str | None = None) -> Sequence[VirtualKey]:
        """Every virtual key not deleted (in ``workspace_id``, if given), oldest first."""
        async with self._read() as connection:
            rows = await connection.execute(
                _listing(select(virtual_keys), virtual_keys, workspace_id)
            )
            return [self._virtual_key(row) for row in rows]

    async def update_virtual_key(self, slug: str, changes: Mapping[str, Any]) -> VirtualKey | None:
        """Apply ``changes`` (``secrets`` replaces every secret); ``None``: no such key.

        :raises Conflict: a new slug is taken.
        :raises ValueError: a field that cannot change.
        """
        check_fields(changes, VIRTUAL_KEY_FIELDS, "virtual key")
        async with self._write() as tx:
            record_id = await self._live_id(
                tx.connection, virtual_keys, virtual_keys.c.slug == slug
            )
            if record_id is None:
                return None
            values = {name: plain(value) for name, value in changes.items()}
            if "secrets" in changes:
                await sealing.check_sealing_key(tx.connection, self._sealer)
                values["secrets"] = self._seal(record_id, changes["secrets"])
            if "slug" in changes:
                await self._slug_taken(
                    tx, virtual_keys, changes["slug"], "virtual key", other_than=record_id
                )
            await tx.change(virtual_keys, record_id, **values)
            return await self._one_virtual_key(tx.connection, record_id)

    async def delete_virtual_key(self, slug: str) -> bool:
        """Mark the virtual key deleted; its secrets are erased (the tombstone keeps none)."""
        async with self._write() as tx:
            record_id = await self._live_id(
                tx.connection, virtual_keys, virtual_keys.c.slug == slug
            )
            if record_id is None:
                return False
            await sealing.check_sealing_key(tx.connection, self._sealer)
            await tx.change(
                virtual_keys, record_id, deleted=True, secrets=self._seal(record_id, {})
            )
            return True

    # -- API keys ----------------------------------------------------------------------------
    @staticmethod
    async def _one_api_key(connection: AsyncConnection, where: Any) -> ApiKey | None:
        row = (await connection.execute(select(api_keys).where(where))).first()
        return None if row is None else from_row(ApiKey, row)

    async def create_api_key(self, record: ApiKey) -> ApiKey:
        """Insert ``record`` (its digest, never the key).

        :raises Conflict: the digest (or the id) is taken.
        """
        record_id = record.id or _new_id()
        async with self._write() as tx:
            row = to_row(api_keys, record, id=record_id, **await tx.stamps())
            await tx.connection.execute(api_keys.insert().values(row))
            created = await self._one_api_key(tx.connection, api_keys.c.id == record_id)
        assert created is not None
        return created

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The API key with this id (not deleted)."""
        async with self._read() as connection:
            return await self._one_api_key(connection, (api_keys.c.id == key_id) & _live(api_keys))

    async def find_api_key(self, key_digest: str) -> ApiKey | None:
        """The API key whose digest this is (not deleted)."""
        where = (api_keys.c.key_digest == key_digest) & _live(api_keys)
        async with self._read() as connection:
            return await self._one_api_key(connection, where)

    async def list_api_keys(self, workspace_id: str | None = None) -> Sequence[ApiKey]:
        """Every API key not deleted (in ``workspace_id``, if given), oldest first."""
        async with self._read() as connection:
            rows = await connection.execute(_listing(select(api_keys), api_keys, workspace_id))
            return [from_row(ApiKey, row) for row in rows]

    async def update_api_key(self, key_id: str, changes: Mapping[str, Any]) -> ApiKey | None:
        """Apply ``changes`` (rotation changes ``key_digest`` and ``key_hint``).

        :raises Conflict: a new digest is taken.
        :raises ValueError: a field that cannot change.
        """
        check_fields(changes, API_KEY_FIELDS, "API key")
        async with self._write() as tx:
            if await self._live_id(tx.connection, api_keys, api_keys.c.id == key_id) is None:
                return None
            await tx.change(api_keys, key_id, **{k: plain(v) for k, v in changes.items()})
            return await self._one_api_key(tx.connection, api_keys.c.id == key_id)

    async def delete_api_key(self, key_id: str) -> bool:
        """Mark the API key deleted (a tombstone)."""
        async with self._write() as tx:
            if await self._live_id(tx.connection, api_keys, api_keys.c.id == key_id) is None:
                return False
            await tx.change(api_keys, key_id, deleted=True)
            return True

    # -- saved configs -----------------------------------------------------------------------
    @staticmethod
    async def _one_config(connection: AsyncConnection, record_id: str) -> SavedConfig:
        query = _config_query().where(configs.c.id == record_id)
        return from_row(SavedConfig, (await connection.execute(query)).one())

    @staticmethod
    async def _live_config_id(connection: AsyncConnection, slug: str) -> str | None:
        """The id of the live config whose slug, else whose id, is ``slug``."""
        query = select(configs.c.id, configs.c.slug).where(
            ((configs.c.slug == slug) | (configs.c.id == slug)) & _live(configs)
        )
        rows = sorted((await connection.execute(query)).all(), key=lambda row: row.slug != slug)
        return str(rows[0].id) if rows else None

    @staticmethod
    async def _add_version(
        tx: _Tx, config_id: str, version_id: str, config: Mapping[str, Any]
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
                config=plain(config),
                created_at=_now(),
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
            row = to_row(configs, record, id=record_id, version_id=version_id, **await tx.stamps())
            await tx.connection.execute(configs.insert().values(row))
            await self._add_version(tx, record_id, version_id, record.config)
            return await self._one_config(tx.connection, record_id)

    async def get_config(self, slug: str) -> SavedConfig | None:
        """The saved config with this slug or id (not deleted)."""
        async with self._read() as connection:
            record_id = await self._live_config_id(connection, slug)
            return None if record_id is None else await self._one_config(connection, record_id)

    async def list_configs(self, workspace_id: str | None = None) -> Sequence[SavedConfig]:
        """Every saved config not deleted (in ``workspace_id``, if given), oldest first."""
        async with self._read() as connection:
            rows = await connection.execute(_listing(_config_query(), configs, workspace_id))
            return [from_row(SavedConfig, row) for row in rows]

    async def update_config(self, slug: str, changes: Mapping[str, Any]) -> SavedConfig | None:
        """Apply ``changes``; a ``config`` makes a new version (``version_id`` or a new id)
        and that version becomes the current one.

        :raises Conflict: a new slug is taken.
        :raises ValueError: a field that cannot change, or ``version_id`` without
            ``config``.
        """
        check_fields(changes, CONFIG_FIELDS, "config")
        if "version_id" in changes and "config" not in changes:
            raise ValueError("a config's version_id changes only with a new config")
        async with self._write() as tx:
            record_id = await self._live_config_id(tx.connection, slug)
            if record_id is None:
                return None
            values = {
                name: plain(value)
                for name, value in changes.items()
                if name not in ("config", "version_id")
            }
            if "slug" in changes:
                await self._slug_taken(tx, configs, changes["slug"], "config", other_than=record_id)
            if "config" in changes:
                values["version_id"] = changes.get("version_id") or _new_id()
                await self._add_version(tx, record_id, values["version_id"], changes["config"])
            await tx.change(configs, record_id, **values)
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
            return [from_row(ConfigVersion, row) for row in rows]

    async def delete_config(self, slug: str) -> bool:
        """Mark the saved config deleted (its versions stay)."""
        async with self._write() as tx:
            record_id = await self._live_config_id(tx.connection, slug)
            if record_id is None:
                return False
            await tx.change(configs, record_id, deleted=True)
            return True

    # -- budget usage ------------------------------------------------------------------------
    async def save_usage(self, entries: Sequence[UsageEntry], *, now: float | None = None) -> None:
        """Upsert ``entries`` and delete the rows of ended periods, in one transaction.

        One row per (subject, type), the last write winning (a newer period, or a reset to
        0, replaces what the row held); one batched statement for all entries. The revision
        does not move: no catalog reloads for usage. Entries the table cannot hold (a
        subject over 300 characters, a ``used`` that is not finite) are skipped, with one
        warning per call. With nothing to write, nothing is (ended rows wait for the next
        save; they are never loaded).

        :param now: epoch seconds; rows whose ``expires_at`` is at or before it are
            deleted (default: the current time).
        :raises StoreUnavailable: the database is down, locked or timed out.
        """
        moment = time.time() if now is None else now
        rows, skipped = usage.rows(entries, _now())
        if skipped:
            log.warning(
                "store.usage_skipped",
                entries=skipped,
                reason=f"subject over {MAX_USAGE_SUBJECT} characters or used not finite",
            )
        if not rows:
            return  # an idle gateway takes no write lock every few seconds
        async with translate_errors(self._url), self._db.connect() as connection:
            connection = await connection.execution_options(write=True)
            async with connection.begin():
                await usage.save(connection, rows, moment)

    async def load_usage(self, now: float) -> list[UsageEntry]:
        """Every saved usage entry whose period has not ended at ``now`` (epoch seconds).

        :raises StoreUnavailable: the database is down or timed out.
        """
        async with self._read() as connection:
            return await usage.load(connection, now)

    # -- stored responses (/v1/responses) ----------------------------------------------------
    async def get_response(self, scope: str, response_id: str) -> StoredResponse | None:
        """The live stored response ``response_id`` of ``scope`` (see
        :mod:`portkey_mw.response_store`).

        :raises StoreUnavailable: the database is down or timed out.
        """
        async with self._read() as connection:
            return await responses.get(connection, scope, response_id)

    async def put_response(self, record: StoredResponse) -> None:
        """Store ``record``; expired rows go in the same transaction.

        :raises StoreUnavailable: the database is down, locked or timed out.
        """
        async with translate_errors(self._url), self._db.connect() as connection:
            connection = await connection.execution_options(write=True)
            async with connection.begin():
                await responses.put(connection, record)

    async def delete_response(self, scope: str, response_id: str) -> bool:
        """Delete a stored response of ``scope``; whether there was one.

        :raises StoreUnavailable: the database is down, locked or timed out.
        """
        async with translate_errors(self._url), self._db.connect() as connection:
            connection = await connection.execution_options(write=True)
            async with connection.begin():
                return await responses.remove(connection, scope, response_id)

    # -- the vault ---------------------------------------------------------------------------
    async def rotate_master_key(self, new_key: bytes | None = None) -> MasterKey:
        """Re-encrypt every sealed value under a new master key, in one transaction.

        With a key file, the new key (``new_key`` or a fresh one) is staged beside it
        before the commit and renamed over it after; with a key from the environment or the
        caller, ``new_key`` is required and nothing is written but the database. On any
        failure the database, the key file and this store are as they were. The pepper
        and every revision stay as they were: nothing a replica must reload.

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
                await sealing.reseal_all(tx.connection, old_vault, new_vault)
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
    """A :class:`SQLStore` for ``settings_url`` (the server file's ``store.url``), opened.

    :param options: :class:`SQLStore`'s keyword arguments.
    """
    store = SQLStore(settings_url, **options)
    await store.open()
    return store


def _config_query() -> Select[Any]:
    """Saved configs with their current version's config."""
    return select(configs, config_versions.c.config).join(
        config_versions, config_versions.c.id == configs.c.version_id
    )


def _listing(query: Select[Any], table: Table, workspace_id: str | None) -> Select[Any]:
    query = query.where(_live(table))
    if workspace_id is not None:
        query = query.where(table.c.workspace_id == workspace_id)
    return query.order_by(table.c.created_at, table.c.id)


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
