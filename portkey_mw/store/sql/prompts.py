"""The prompt library's part of :class:`~portkey_mw.store.sql.store.SQLStore`: prompts and
partials with their versions, labels and collections.

A prompt row and its versions travel together: every read hands out the prompt with all
its versions (oldest first), and adding a version stamps the prompt row, so the changes
feed carries the new version to every replica's catalog. Versions are never changed or
deleted; deleting a prompt leaves a tombstone row (its versions stay, unread).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import ColumnElement, Row, Select, Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from portkey_mw.store.protocols import Conflict
from portkey_mw.store.records import Collection, Label, Prompt, PromptVersion
from portkey_mw.store.sql.models import (
    prompt_collections,
    prompt_labels,
    prompt_versions,
    prompts,
)
from portkey_mw.store.sql.rows import check_fields, from_row, plain, to_row

if TYPE_CHECKING:
    from portkey_mw.store.sql.store import _Tx

__all__ = ["PromptTables", "read_prompt_changes"]

#: What an update may change, per kind.
PROMPT_FIELDS = frozenset(
    {"name", "collection_id", "status", "default_version", "labels", "workspace_id"}
)
LABEL_FIELDS = frozenset({"name", "description", "color_code"})
COLLECTION_FIELDS = frozenset({"name", "parent_collection_id"})
#: prompt ids per ``IN (...)`` when reading versions
_CHUNK = 500


class _Transactions(Protocol):
    def _read(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection]: ...

    def _write(self) -> contextlib.AbstractAsyncContextManager[_Tx]: ...


def _live(table: Table) -> ColumnElement[bool]:
    return ~table.c.deleted


def _by_slug_or_id(table: Table, name: str) -> ColumnElement[bool]:
    return ((table.c.slug == name) | (table.c.id == name)) & _live(table)


def _version(row: Row[Any]) -> PromptVersion:
    return PromptVersion(
        id=row.id,
        prompt_id=row.prompt_id,
        version=int(row.version),
        template=row.template,
        definition=row.definition or {},
        description=row.description,
        created_at=row.created_at,
    )


async def _with_versions(connection: AsyncConnection, rows: Iterable[Row[Any]]) -> list[Prompt]:
    """The prompts of ``rows``, each with every version it has."""
    found = [from_row(Prompt, row, versions=(), labels=row.labels or {}) for row in rows]
    versions: dict[str, list[PromptVersion]] = {p.id: [] for p in found}
    ids = list(versions)
    for start in range(0, len(ids), _CHUNK):
        query = (
            select(prompt_versions)
            .where(prompt_versions.c.prompt_id.in_(ids[start : start + _CHUNK]))
            .order_by(prompt_versions.c.prompt_id, prompt_versions.c.version)
        )
        for row in await connection.execute(query):
            versions[row.prompt_id].append(_version(row))
    return [replace(p, versions=tuple(versions[p.id])) for p in found]


async def read_prompt_changes(
    connection: AsyncConnection, since: int, latest: int
) -> tuple[tuple[Prompt, ...], tuple[Label, ...]]:
    """Prompts (with their versions) and labels stamped in ``(since, latest]``."""

    def window(table: Table) -> Select[Any]:
        where = (table.c.revision > since) & (table.c.revision <= latest)
        return select(table).where(where).order_by(table.c.revision)

    changed = await _with_versions(connection, await connection.execute(window(prompts)))
    labels = tuple(from_row(Label, row) for row in await connection.execute(window(prompt_labels)))
    return tuple(changed), labels


class PromptTables:
    """The prompt-library methods of the SQL store (mixed into ``SQLStore``)."""

    # -- prompts and partials -----------------------------------------------------------
    @staticmethod
    async def _slug_free(tx: _Tx, table: Table, slug: str, kind: str) -> None:
        taken = await tx.connection.scalar(
            select(table.c.id).where((table.c.slug == slug) & _live(table)).limit(1)
        )
        if taken is not None:
            raise Conflict(f"a {kind} with slug {slug!r} already exists", param="slug")

    @staticmethod
    async def _add_prompt_version(tx: _Tx, prompt_id: str, version: PromptVersion) -> int:
        number = await tx.connection.scalar(
            select(func.coalesce(func.max(prompt_versions.c.version), 0)).where(
                prompt_versions.c.prompt_id == prompt_id
            )
        )
        new = int(number or 0) + 1
        await tx.connection.execute(
            prompt_versions.insert().values(
                id=version.id or uuid.uuid4().hex,
                prompt_id=prompt_id,
                version=new,
                template=version.template,
                definition=plain(version.definition),
                description=version.description,
                created_at=datetime.now(UTC),
            )
        )
        return new

    @staticmethod
    async def _one_prompt(connection: AsyncConnection, where: Any) -> Prompt | None:
        rows = list(await connection.execute(select(prompts).where(where)))
        found = await _with_versions(connection, rows)
        return found[0] if found else None

    async def create_prompt(self: _Transactions, record: Prompt, first: PromptVersion) -> Prompt:
        """Insert a prompt (or partial) and its version 1.

        :raises Conflict: the slug is taken by a live prompt or partial.
        """
        record_id = record.id or uuid.uuid4().hex
        async with self._write() as tx:
            await PromptTables._slug_free(tx, prompts, record.slug, record.kind)
            row = to_row(prompts, record, id=record_id, default_version=1, **await tx.stamps())
            await tx.connection.execute(prompts.insert().values(row))
            await PromptTables._add_prompt_version(tx, record_id, first)
            created = await PromptTables._one_prompt(tx.connection, prompts.c.id == record_id)
        assert created is not None
        return created

    async def get_prompt(self: _Transactions, name: str, kind: str | None = None) -> Prompt | None:
        """The live prompt or partial whose slug, else whose id, is ``name``."""
        where = _by_slug_or_id(prompts, name)
        if kind is not None:
            where = where & (prompts.c.kind == kind)
        async with self._read() as connection:
            return await PromptTables._one_prompt(connection, where)

    async def list_prompts(
        self: _Transactions,
        kind: str,
        workspace_id: str | None = None,
        collection_id: str | None = None,
    ) -> Sequence[Prompt]:
        """Every live prompt (or partial) in the workspace and collection given, oldest
        first."""
        query = select(prompts).where((prompts.c.kind == kind) & _live(prompts))
        if workspace_id is not None:
            query = query.where(prompts.c.workspace_id == workspace_id)
        if collection_id is not None:
            query = query.where(prompts.c.collection_id == collection_id)
        async with self._read() as connection:
            rows = await connection.execute(query.order_by(prompts.c.created_at, prompts.c.id))
            return await _with_versions(connection, rows)

    async def update_prompt(
        self: _Transactions,
        name: str,
        changes: Mapping[str, Any],
        new_version: PromptVersion | None = None,
        *,
        moved_labels: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> Prompt | None:
        """Apply ``changes`` and add ``new_version`` (numbered next), in one transaction.

        ``None``: no such live prompt. A ``default_version`` or label naming a version the
        prompt does not have is the caller's to refuse (it knows the versions).

        :param moved_labels: label id -> where it points now (``None``: taken off), merged
            into the labels read under the write lock: label moves made at once all stay.
        """
        check_fields(changes, PROMPT_FIELDS, "prompt")
        async with self._write() as tx:
            found = (
                await tx.connection.execute(
                    select(prompts.c.id, prompts.c.labels).where(_by_slug_or_id(prompts, name))
                )
            ).first()
            if found is None:
                return None
            record_id = found.id
            if moved_labels:
                labels = dict(found.labels or {})
                for label, deployed in moved_labels.items():
                    if deployed is None:
                        labels.pop(label, None)
                    else:
                        labels[label] = dict(deployed)
                changes = {**changes, "labels": labels}
            if new_version is not None:
                await PromptTables._add_prompt_version(tx, record_id, new_version)
            await tx.change(prompts, record_id, **{k: plain(v) for k, v in changes.items()})
            return await PromptTables._one_prompt(tx.connection, prompts.c.id == record_id)

    async def delete_prompt(self: _Transactions, name: str) -> bool:
        """Mark the prompt (or partial) deleted; ``False`` if there was none."""
        async with self._write() as tx:
            record_id = await tx.connection.scalar(
                select(prompts.c.id).where(_by_slug_or_id(prompts, name))
            )
            if record_id is None:
                return False
            await tx.change(prompts, record_id, deleted=True)
            return True

    # -- labels and collections -----------------------------------------------------------
    async def create_label(self: _Transactions, record: Label) -> Label:
        """Insert a custom label.

        :raises Conflict: a live label of that name in the workspace.
        """
        async with _writing(self, prompt_labels, record) as tx:
            taken = await tx.connection.scalar(
                select(prompt_labels.c.id).where(
                    (func.lower(prompt_labels.c.name) == record.name.lower())
                    & _same_workspace(prompt_labels, record.workspace_id)
                    & _live(prompt_labels)
                )
            )
            if taken is not None:
                raise Conflict(f"a label named {record.name!r} already exists", param="name")
        return await _read_one(self, prompt_labels, Label, record.id)  # type: ignore[return-value]

    async def get_label(self: _Transactions, label_id: str) -> Label | None:
        """The live custom label with this id."""
        return await _read_one(self, prompt_labels, Label, label_id)  # type: ignore[return-value]

    async def list_labels(self: _Transactions, workspace_id: str | None = None) -> Sequence[Label]:
        """Every live custom label (in the workspace given), oldest first."""
        return await _read_all(self, prompt_labels, Label, workspace_id)  # type: ignore[return-value]

    async def update_label(
        self: _Transactions, label_id: str, changes: Mapping[str, Any]
    ) -> Label | None:
        """Apply ``changes`` to a custom label."""
        check_fields(changes, LABEL_FIELDS, "label")
        return await _change(self, prompt_labels, Label, label_id, changes)  # type: ignore[return-value]

    async def delete_label(self: _Transactions, label_id: str) -> bool:
        """Mark a custom label deleted."""
        return await _change(self, prompt_labels, Label, label_id, {"deleted": True}) is not None

    async def create_collection(self: _Transactions, record: Collection) -> Collection:
        """Insert a collection.

        :raises Conflict: its slug is taken.
        """
        async with _writing(self, prompt_collections, record) as tx:
            await PromptTables._slug_free(tx, prompt_collections, record.slug, "collection")
        return await _read_one(self, prompt_collections, Collection, record.id)  # type: ignore[return-value]

    async def get_collection(self: _Transactions, name: str) -> Collection | None:
        """The live collection whose id, else whose slug, is ``name``."""
        return await _read_one(self, prompt_collections, Collection, name)  # type: ignore[return-value]

    async def list_collections(
        self: _Transactions, workspace_id: str | None = None
    ) -> Sequence[Collection]:
        """Every live collection (in the workspace given), oldest first."""
        return await _read_all(self, prompt_collections, Collection, workspace_id)  # type: ignore[return-value]

    async def update_collection(
        self: _Transactions, name: str, changes: Mapping[str, Any]
    ) -> Collection | None:
        """Apply ``changes`` to a collection."""
        check_fields(changes, COLLECTION_FIELDS, "collection")
        return await _change(self, prompt_collections, Collection, name, changes)  # type: ignore[return-value]

    async def delete_collection(self: _Transactions, name: str) -> bool:
        """Mark a collection deleted (its prompts stay, outside any collection)."""
        found = await _change(self, prompt_collections, Collection, name, {"deleted": True})
        return found is not None


def _same_workspace(table: Table, workspace_id: str | None) -> ColumnElement[bool]:
    column = table.c.workspace_id
    return column.is_(None) if workspace_id is None else column == workspace_id


def _where_named(table: Table, name: str) -> ColumnElement[bool]:
    if "slug" in table.c:
        return _by_slug_or_id(table, name)
    return (table.c.id == name) & _live(table)


@contextlib.asynccontextmanager
async def _writing(store: _Transactions, table: Table, record: Any) -> AsyncIterator[_Tx]:
    """A transaction that inserts ``record`` once the body's checks passed."""
    async with store._write() as tx:
        yield tx
        row = to_row(table, record, **await tx.stamps())
        await tx.connection.execute(table.insert().values(row))


async def _read_one(store: _Transactions, table: Table, cls: type, name: str) -> object | None:
    async with store._read() as connection:
        row = (await connection.execute(select(table).where(_where_named(table, name)))).first()
    return None if row is None else from_row(cls, row)


async def _read_all(
    store: _Transactions, table: Table, cls: type, workspace_id: str | None
) -> list[object]:
    query = select(table).where(_live(table))
    if workspace_id is not None:
        query = query.where(table.c.workspace_id == workspace_id)
    async with store._read() as connection:
        rows = await connection.execute(query.order_by(table.c.created_at, table.c.id))
        return [from_row(cls, row) for row in rows]


async def _change(
    store: _Transactions, table: Table, cls: type, name: str, changes: Mapping[str, Any]
) -> object | None:
    async with store._write() as tx:
        record_id = await tx.connection.scalar(select(table.c.id).where(_where_named(table, name)))
        if record_id is None:
            return None
        await tx.change(table, record_id, **{k: plain(v) for k, v in changes.items()})
        row = (await tx.connection.execute(select(table).where(table.c.id == record_id))).one()
        return from_row(cls, row)
