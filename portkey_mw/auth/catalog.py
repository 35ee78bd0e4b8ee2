"""The data plane's copy of the control plane: virtual keys, API keys and saved configs in
memory, so that no request waits on the store.

At start-up the catalog loads every record; then a background task asks the store for its
revision every ``store.refresh_interval`` seconds (one cheap query) and, when it moved,
reads only what changed (tombstones included). A change made through this process's own
admin API is applied at once; one made elsewhere (another replica, the CLI) within the
interval. When the store is down the catalog keeps serving what it has and says so once.

A name the catalog does not know may be a record created elsewhere since the last refresh,
so the first request for it may read the store -- within a process-wide budget of reads per
second (``store.miss_reads_per_second``), and each unknown name is remembered as unknown
for one interval: random keys or slugs sent in a loop cannot hammer the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from portkey_mw.store.protocols import ControlStore
from portkey_mw.store.records import ApiKey, Changes, Label, Prompt, SavedConfig, VirtualKey
from portkey_mw.unknown_names import UnknownNames

log = structlog.get_logger("portkey_mw.catalog")

#: unknown names remembered at most (the oldest are forgotten first)
NEGATIVE_ENTRIES = 10_000
#: the longest name worth a store read: slugs, ids and key digests are far shorter, and
#: remembering client-chosen header values of any length would let them fill memory
MAX_NAME_LENGTH = 128
#: seconds a request may wait for the store to answer about a name it does not know
MISS_READ_TIMEOUT = 0.5

T = TypeVar("T")


class ReadBudget:
    """A token bucket: at most ``rate`` reads per second, bursts of up to ``rate``."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._tokens = rate
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        """Spend one read if the budget allows it."""
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class Catalog:
    """Virtual keys by slug, API keys by digest, saved configs by slug and id, prompts and
    partials by slug and id (with every version), custom labels by id.

    :param store: the control-plane store.
    :param refresh_interval: seconds between revision checks.
    :param miss_reads_per_second: the budget for store reads on unknown names.
    """

    def __init__(
        self,
        store: ControlStore,
        *,
        refresh_interval: float = 2.0,
        miss_reads_per_second: float = 20.0,
    ) -> None:
        self.store = store
        self.refresh_interval = refresh_interval
        self.revision = 0
        self.virtual_keys: dict[str, VirtualKey] = {}
        self.api_keys: dict[str, ApiKey] = {}
        self.configs: dict[str, SavedConfig] = {}
        self._config_ids: dict[str, str] = {}
        #: prompts and partials by slug (their versions are immutable: kept whole)
        self.prompts: dict[str, Prompt] = {}
        self._prompt_ids: dict[str, str] = {}
        self.labels: dict[str, Label] = {}
        self._key_digests: dict[str, str] = {}
        #: slugs deleted since start: a request naming one hears "deleted", not "unknown"
        self.deleted_slugs: set[str] = set()
        self._unknown = UnknownNames(NEGATIVE_ENTRIES)
        self._budget = ReadBudget(miss_reads_per_second)
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        #: store reads spent on unknown names (for tests and the benchmark)
        self.miss_reads = 0

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change applied (compiled plans are dropped)."""
        self._listeners.append(listener)

    # -- loading -----------------------------------------------------------------

    async def load(self) -> None:
        """Read every record (at start-up) and start the refresh task."""
        self.apply(await self.store.changes(0))
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def aclose(self) -> None:
        """Stop the refresh task."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        """Apply what changed in the store since the last refresh."""
        revision = await self.store.revision()
        if revision != self.revision:
            self.apply(await self.store.changes(self.revision))

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception as exc:
                if not self._failing:
                    # Said once per outage; requests go on with what the catalog holds.
                    log.warning(
                        "control-plane store unreachable; serving cached records",
                        error=type(exc).__name__,
                    )
                    self._failing = True
                continue
            if self._failing:
                log.info("control-plane store reachable again")
                self._failing = False

    def apply(self, changes: Changes) -> None:
        """Take in changed records (from the store, or from this process's admin API)."""
        for vk in changes.virtual_keys:
            self._put_virtual_key(vk)
        for key in changes.api_keys:
            self._put_api_key(key)
        for config in changes.configs:
            self._put_config(config)
        for prompt in changes.prompts:
            self._put_prompt(prompt)
        for label in changes.labels:
            self._put_label(label)
        self.revision = max(self.revision, changes.revision)
        if changes.virtual_keys or changes.api_keys or changes.configs or changes.prompts:
            self._unknown.clear()
            for listener in self._listeners:
                listener()

    def _put_virtual_key(self, vk: VirtualKey) -> None:
        current = self.virtual_keys.get(vk.slug)
        if current is not None and current.revision > vk.revision:
            return  # an older copy (a slow miss read) never replaces a newer one
        if vk.deleted:
            if current is None or current.id == vk.id:
                self.virtual_keys.pop(vk.slug, None)
                self.deleted_slugs.add(vk.slug)
            return
        self.virtual_keys[vk.slug] = vk
        self.deleted_slugs.discard(vk.slug)

    def _put_api_key(self, key: ApiKey) -> None:
        current = self.api_keys.get(self._key_digests.get(key.id, key.key_digest))
        if current is not None and current.revision > key.revision:
            return  # an older copy (a slow miss read) never replaces a newer one
        # Rotation changes a key's digest: the entry under the old one goes.
        old_digest = self._key_digests.pop(key.id, None)
        if old_digest is not None:
            self.api_keys.pop(old_digest, None)
        if not key.deleted:
            self.api_keys[key.key_digest] = key
            self._key_digests[key.id] = key.key_digest

    def _put_config(self, config: SavedConfig) -> None:
        current = self.configs.get(config.slug)
        if current is not None and current.revision > config.revision:
            return
        if config.deleted:
            if current is None or current.id == config.id:
                self.configs.pop(config.slug, None)
                self._config_ids.pop(config.id, None)
                self.deleted_slugs.add(config.slug)
            return
        self.configs[config.slug] = config
        self._config_ids[config.id] = config.slug
        self.deleted_slugs.discard(config.slug)

    def _put_prompt(self, prompt: Prompt) -> None:
        current = self.prompts.get(prompt.slug)
        if current is not None and current.revision > prompt.revision:
            return
        if prompt.deleted:
            if current is None or current.id == prompt.id:
                self.prompts.pop(prompt.slug, None)
                self._prompt_ids.pop(prompt.id, None)
                self.deleted_slugs.add(prompt.slug)
            return
        self.prompts[prompt.slug] = prompt
        self._prompt_ids[prompt.id] = prompt.slug
        self.deleted_slugs.discard(prompt.slug)

    def _put_label(self, label: Label) -> None:
        current = self.labels.get(label.id)
        if current is not None and current.revision > label.revision:
            return
        if label.deleted:
            self.labels.pop(label.id, None)
        else:
            self.labels[label.id] = label

    # -- lookups (memory first; the store once, within budget) --------------------------

    def saved_prompt(self, name: str) -> Prompt | None:
        """The prompt or partial with this slug (or id) in memory; no store read."""
        return self.prompts.get(name) or self.prompts.get(self._prompt_ids.get(name, ""))

    async def prompt(self, name: str) -> Prompt | None:
        """The prompt or partial with this slug (or id), if it exists."""
        found = self.saved_prompt(name)
        if found is not None or name in self.deleted_slugs:
            return found
        return await self._miss(
            "prompt", name, self.store.get_prompt, self._put_prompt, lambda: self.saved_prompt(name)
        )

    async def virtual_key(self, slug: str) -> VirtualKey | None:
        """The virtual key with this slug, if it exists (any status)."""
        found = self.virtual_keys.get(slug)
        if found is not None or slug in self.deleted_slugs:
            return found
        return await self._miss(
            "vk",
            slug,
            self.store.get_virtual_key,
            self._put_virtual_key,
            lambda: self.virtual_keys.get(slug),
        )

    async def api_key(self, digest: str) -> ApiKey | None:
        """The API key with this digest, if it exists (any status)."""
        found = self.api_keys.get(digest)
        if found is not None:
            return found
        return await self._miss(
            "key",
            digest,
            self.store.find_api_key,
            self._put_api_key,
            lambda: self.api_keys.get(digest),
        )

    def saved_config(self, slug: str) -> SavedConfig | None:
        """The saved config with this slug (or id) in memory; no store read."""
        return self.configs.get(slug) or self.configs.get(self._config_ids.get(slug, ""))

    async def config(self, slug: str) -> SavedConfig | None:
        """The saved config with this slug (or id), if it exists."""
        found = self.saved_config(slug)
        if found is not None or slug in self.deleted_slugs:
            return found
        return await self._miss(
            "config", slug, self.store.get_config, self._put_config, lambda: self.configs.get(slug)
        )

    async def _miss(
        self,
        kind: str,
        name: str,
        read: Callable[[str], Awaitable[T | None]],
        put: Callable[[T], None],
        again: Callable[[], T | None],
    ) -> T | None:
        if len(name) > MAX_NAME_LENGTH:
            return None  # no record has such a name; nothing is read or remembered
        marker = (kind, name)
        if marker in self._unknown:
            return None
        if not self._budget.take():
            return None
        self.miss_reads += 1
        try:
            found = await asyncio.wait_for(read(name), MISS_READ_TIMEOUT)
        except Exception as exc:  # the store is slow or down: the name is unknown for now
            log.debug("store read for an unknown name failed", kind=kind, error=type(exc).__name__)
            found = None
        if found is None:
            self._unknown.remember(marker, self.refresh_interval)
            return None
        put(found)
        return again()
