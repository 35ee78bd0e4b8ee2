"""The ``memory`` cache backend: an in-process LRU with expiry (the embedded default).

Plugin settings (server file, ``plugins.settings["portkey-mw.memory-cache"]``):
``max_entries`` (default 10,000): past it the least recently used entry goes.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import CacheBackend

PLUGIN_NAME = "portkey-mw.memory-cache"
DEFAULT_MAX_ENTRIES = 10_000


class MemoryCache(CacheBackend):
    """Entries in a dict, in recency order, each with its own expiry time."""

    name = "memory"

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float | None, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires is not None and expires <= time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        expires = time.monotonic() + ttl if ttl else None
        self._entries[key] = (expires, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def clear(self, prefix: str = "") -> int:
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            del self._entries[key]
        return len(doomed)


@hookimpl
def register_cache_backends(
    register: Callable[[CacheBackend], None], settings: ServerSettings
) -> None:
    """Register the in-process cache."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    register(MemoryCache(int(options.get("max_entries", DEFAULT_MAX_ENTRIES))))
