"""A :class:`~portkey_mw.store.protocols.ControlStore` in a dict, for the CLI's tests
until the SQL store (branch ``store``) is merged; then the tests use that instead."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from portkey_mw.store.protocols import Conflict
from portkey_mw.store.records import ApiKey, Changes, ConfigVersion, SavedConfig, VirtualKey

R = TypeVar("R", VirtualKey, ApiKey, SavedConfig)


class MemoryStore:
    """Records in memory, with the protocol's revisions, tombstones and versions."""

    def __init__(self) -> None:
        self._revision = 0
        self.virtual_keys: dict[str, VirtualKey] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.configs: dict[str, SavedConfig] = {}
        self.versions: dict[str, list[ConfigVersion]] = {}

    async def open(self) -> None:
        """Nothing to connect to."""

    async def aclose(self) -> None:
        """Nothing to close."""

    async def revision(self) -> int:
        """The latest revision."""
        return self._revision

    async def changes(self, since: int) -> Changes:
        """Every record changed after ``since``."""
        return Changes(
            self._revision,
            tuple(r for r in self.virtual_keys.values() if r.revision > since),
            tuple(r for r in self.api_keys.values() if r.revision > since),
            tuple(r for r in self.configs.values() if r.revision > since),
        )

    def _stamp(self, record: R, **changes: Any) -> R:
        self._revision += 1
        now = datetime.now(UTC)
        created = getattr(record, "created_at", None) or now
        return replace(
            record, revision=self._revision, created_at=created, updated_at=now, **changes
        )

    # -- virtual keys ------------------------------------------------------------------
    async def create_virtual_key(self, record: VirtualKey) -> VirtualKey:
        """Insert, refusing a slug taken."""
        if record.slug in self.virtual_keys and not self.virtual_keys[record.slug].deleted:
            raise Conflict(f"slug {record.slug!r} is taken")
        self.virtual_keys[record.slug] = self._stamp(record)
        return self.virtual_keys[record.slug]

    async def get_virtual_key(self, slug: str) -> VirtualKey | None:
        """By slug, not deleted."""
        record = self.virtual_keys.get(slug)
        return None if record is None or record.deleted else record

    async def list_virtual_keys(self, workspace_id: str | None = None) -> Sequence[VirtualKey]:
        """Not deleted, oldest first."""
        return [
            r
            for r in self.virtual_keys.values()
            if not r.deleted and (workspace_id is None or r.workspace_id == workspace_id)
        ]

    async def update_virtual_key(self, slug: str, changes: Mapping[str, Any]) -> VirtualKey | None:
        """Apply ``changes``."""
        record = await self.get_virtual_key(slug)
        if record is None:
            return None
        self.virtual_keys[slug] = self._stamp(record, **changes)
        return self.virtual_keys[slug]

    async def delete_virtual_key(self, slug: str) -> bool:
        """Leave a tombstone."""
        record = await self.get_virtual_key(slug)
        if record is None:
            return False
        self.virtual_keys[slug] = self._stamp(record, deleted=True)
        return True

    # -- API keys ----------------------------------------------------------------------
    async def create_api_key(self, record: ApiKey) -> ApiKey:
        """Insert."""
        self.api_keys[record.id] = self._stamp(record)
        return self.api_keys[record.id]

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """By id, not deleted."""
        record = self.api_keys.get(key_id)
        return None if record is None or record.deleted else record

    async def find_api_key(self, key_digest: str) -> ApiKey | None:
        """By digest, not deleted."""
        return next(
            (r for r in self.api_keys.values() if r.key_digest == key_digest and not r.deleted),
            None,
        )

    async def list_api_keys(self, workspace_id: str | None = None) -> Sequence[ApiKey]:
        """Not deleted, oldest first."""
        return [
            r
            for r in self.api_keys.values()
            if not r.deleted and (workspace_id is None or r.workspace_id == workspace_id)
        ]

    async def update_api_key(self, key_id: str, changes: Mapping[str, Any]) -> ApiKey | None:
        """Apply ``changes``."""
        record = await self.get_api_key(key_id)
        if record is None:
            return None
        self.api_keys[key_id] = self._stamp(record, **changes)
        return self.api_keys[key_id]

    async def delete_api_key(self, key_id: str) -> bool:
        """Leave a tombstone."""
        record = await self.get_api_key(key_id)
        if record is None:
            return False
        self.api_keys[key_id] = self._stamp(record, deleted=True)
        return True

    # -- saved configs -----------------------------------------------------------------
    async def create_config(self, record: SavedConfig) -> SavedConfig:
        """Insert with its first version."""
        if record.slug in self.configs and not self.configs[record.slug].deleted:
            raise Conflict(f"slug {record.slug!r} is taken")
        saved = self._stamp(record)
        self.configs[record.slug] = saved
        self.versions[record.slug] = [
            ConfigVersion(saved.version_id, saved.id, saved.config, saved.created_at)
        ]
        return saved

    async def get_config(self, slug: str) -> SavedConfig | None:
        """By slug or id, not deleted."""
        for record in self.configs.values():
            if slug in (record.slug, record.id) and not record.deleted:
                return record
        return None

    async def list_configs(self, workspace_id: str | None = None) -> Sequence[SavedConfig]:
        """Not deleted, oldest first."""
        return [
            r
            for r in self.configs.values()
            if not r.deleted and (workspace_id is None or r.workspace_id == workspace_id)
        ]

    async def update_config(self, slug: str, changes: Mapping[str, Any]) -> SavedConfig | None:
        """Apply ``changes``; a new config makes a new version."""
        record = await self.get_config(slug)
        if record is None:
            return None
        extra: dict[str, Any] = dict(changes)
        if "config" in changes:
            extra["version_id"] = str(uuid.uuid4())
        saved = self._stamp(record, **extra)
        self.configs[record.slug] = saved
        if "config" in changes:
            version = ConfigVersion(saved.version_id, saved.id, saved.config, saved.updated_at)
            self.versions[record.slug].insert(0, version)
        return saved

    async def config_versions(self, slug: str) -> Sequence[ConfigVersion] | None:
        """Newest first."""
        record = await self.get_config(slug)
        return None if record is None else list(self.versions[record.slug])

    async def delete_config(self, slug: str) -> bool:
        """Leave a tombstone."""
        record = await self.get_config(slug)
        if record is None:
            return False
        self.configs[record.slug] = self._stamp(record, deleted=True)
        return True
