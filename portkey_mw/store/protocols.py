"""What the rest of the gateway asks of the control-plane store.

One implementation ships (``portkey_mw.store.sql``: SQLAlchemy 2 over SQLite or
PostgreSQL); the admin API, the CLI and the catalog are written against this protocol.
Every mutation of a record bumps the store-wide revision in the same transaction and stamps
the record with it, so :meth:`ControlStore.changes` can feed every replica's in-process
catalog. Budget usage (:meth:`ControlStore.save_usage`) is kept beside the records but
outside the revision: it is written every few seconds, and no catalog reloads for it.

Errors: a store that cannot be reached raises :class:`StoreUnavailable`; a unique slug or
name taken raises :class:`Conflict`. ``get``/``update``/``delete`` of something missing
return ``None``/``False`` (the caller words the 404).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from portkey_mw.errors import GatewayError
from portkey_mw.limits.results import UsageEntry
from portkey_mw.store.records import (
    ApiKey,
    Changes,
    Collection,
    ConfigVersion,
    Label,
    Prompt,
    PromptVersion,
    SavedConfig,
    VirtualKey,
)


class StoreUnavailable(GatewayError):
    """The store is down, locked or timed out (503 on the control plane)."""

    status = 503
    type = "api_error"
    code = "store_unavailable"


class Conflict(GatewayError):
    """A slug or other unique value is already taken (409)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class ControlStore(Protocol):
    """The control-plane store: virtual keys, API keys, saved configs and budget usage."""

    async def open(self) -> None:
        """Connect, run migrations if asked to, and check the vault's master key."""

    async def aclose(self) -> None:
        """Close every connection."""

    async def revision(self) -> int:
        """The latest revision (0 for an empty store). One cheap query."""

    async def changes(self, since: int) -> Changes:
        """Every record changed after revision ``since`` (tombstones included)."""

    # -- virtual keys (slug unique among records not deleted) --------------------------
    async def create_virtual_key(self, record: VirtualKey) -> VirtualKey:
        """Insert ``record`` (its ``revision``/timestamps are set by the store)."""

    async def get_virtual_key(self, slug: str) -> VirtualKey | None:
        """The virtual key with this slug (not deleted), decrypted."""

    async def list_virtual_keys(self, workspace_id: str | None = None) -> Sequence[VirtualKey]:
        """Every virtual key not deleted, oldest first."""

    async def update_virtual_key(self, slug: str, changes: Mapping[str, Any]) -> VirtualKey | None:
        """Apply ``changes`` (field name -> new value; ``secrets`` replaces all secrets)."""

    async def delete_virtual_key(self, slug: str) -> bool:
        """Mark the virtual key deleted (a tombstone); ``False`` if there was none."""

    # -- API keys -------------------------------------------------------------------------
    async def create_api_key(self, record: ApiKey) -> ApiKey:
        """Insert ``record``."""

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The API key with this id (not deleted)."""

    async def find_api_key(self, key_digest: str) -> ApiKey | None:
        """The API key whose digest this is (not deleted)."""

    async def list_api_keys(self, workspace_id: str | None = None) -> Sequence[ApiKey]:
        """Every API key not deleted, oldest first."""

    async def update_api_key(self, key_id: str, changes: Mapping[str, Any]) -> ApiKey | None:
        """Apply ``changes`` (``key_digest``/``key_hint`` change on rotation)."""

    async def delete_api_key(self, key_id: str) -> bool:
        """Mark the API key deleted."""

    # -- saved configs ----------------------------------------------------------------------
    async def create_config(self, record: SavedConfig) -> SavedConfig:
        """Insert ``record`` and its first version (``record.version_id``)."""

    async def get_config(self, slug: str) -> SavedConfig | None:
        """The saved config with this slug or id (not deleted)."""

    async def list_configs(self, workspace_id: str | None = None) -> Sequence[SavedConfig]:
        """Every saved config not deleted, oldest first."""

    async def update_config(self, slug: str, changes: Mapping[str, Any]) -> SavedConfig | None:
        """Apply ``changes``; a new ``config`` makes a new version (new ``version_id``)."""

    async def config_versions(self, slug: str) -> Sequence[ConfigVersion] | None:
        """Every version of a saved config, newest first (``None``: no such config)."""

    async def delete_config(self, slug: str) -> bool:
        """Mark the saved config deleted."""

    # -- prompts and partials (slugs unique among both) ---------------------------------
    async def create_prompt(self, record: Prompt, first: PromptVersion) -> Prompt:
        """Insert a prompt (``record.kind``: prompt or partial) and its version 1."""

    async def get_prompt(self, name: str, kind: str | None = None) -> Prompt | None:
        """The live prompt or partial whose slug, else whose id, is ``name``."""

    async def list_prompts(
        self, kind: str, workspace_id: str | None = None, collection_id: str | None = None
    ) -> Sequence[Prompt]:
        """Every live prompt (or partial), oldest first."""

    async def update_prompt(
        self,
        name: str,
        changes: Mapping[str, Any],
        new_version: PromptVersion | None = None,
        *,
        moved_labels: Mapping[str, Mapping[str, Any] | None] | None = None,
    ) -> Prompt | None:
        """Apply ``changes`` (name, collection, status, default version, labels) and add
        ``new_version`` (the store numbers it), in one transaction.

        :param moved_labels: label id -> where it now points (``None``: taken off), merged
            into the labels as they are inside the transaction, so two label moves at
            once both stay."""

    async def delete_prompt(self, name: str) -> bool:
        """Mark the prompt or partial deleted."""

    # -- labels and collections -----------------------------------------------------------
    async def create_label(self, record: Label) -> Label:
        """Insert a custom label (its name unique in its workspace)."""

    async def get_label(self, label_id: str) -> Label | None:
        """The live custom label with this id."""

    async def list_labels(self, workspace_id: str | None = None) -> Sequence[Label]:
        """Every live custom label, oldest first."""

    async def update_label(self, label_id: str, changes: Mapping[str, Any]) -> Label | None:
        """Apply ``changes`` (name, description, color_code)."""

    async def delete_label(self, label_id: str) -> bool:
        """Mark the custom label deleted."""

    async def create_collection(self, record: Collection) -> Collection:
        """Insert a collection."""

    async def get_collection(self, name: str) -> Collection | None:
        """The live collection whose slug or id is ``name``."""

    async def list_collections(self, workspace_id: str | None = None) -> Sequence[Collection]:
        """Every live collection, oldest first."""

    async def update_collection(self, name: str, changes: Mapping[str, Any]) -> Collection | None:
        """Apply ``changes`` (name, parent_collection_id)."""

    async def delete_collection(self, name: str) -> bool:
        """Mark the collection deleted."""

    # -- budget usage (no revision: writing it reloads no catalog) ------------------------
    async def save_usage(self, entries: Sequence[UsageEntry], *, now: float | None = None) -> None:
        """Write ``entries`` (``LimitBackend.usage_snapshot()``) in one transaction.

        One row per (``subject``, ``type``), and the last write wins: an entry replaces the
        row whatever it held, so an entry of a newer period replaces the old period's, and
        an admin reset (``used`` 0) overwrites the usage before it. Of several entries for
        one budget in ``entries``, the last wins. Rows whose period ended (``expires_at``
        at or before ``now``, default the current time) are deleted in the same
        transaction. An entry the store cannot hold (a subject over 300 characters, a
        ``used`` that is not finite) is skipped, with a warning. No entries: nothing is
        written (ended rows wait for the next save; they are never loaded). The revision
        does not move.

        :param now: the current time in epoch seconds (the limits backend's clock).
        """

    async def load_usage(self, now: float) -> list[UsageEntry]:
        """Every saved usage entry whose period has not ended at ``now`` (epoch seconds):
        ``expires_at`` null or after ``now``; for ``LimitBackend.load_usage`` at start-up.
        """
