"""The ``redis`` cache backend: cached responses shared by every gateway replica.

Needs redis-py: ``pip install "portkey-mw[redis]"``. Plugin settings (server file,
``plugins.settings["portkey-mw.redis-cache"]``): ``url`` (default
``redis://127.0.0.1:6379/0``), ``key_prefix`` (default ``portkey-mw:cache:``) and
``timeout`` (seconds per operation, default 0.5: a slow Redis must not slow requests; the
core treats a failed lookup as a miss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import PluginMissingDependency
from portkey_mw.interfaces import CacheBackend

PLUGIN_NAME = "portkey-mw.redis-cache"


class RedisCache(CacheBackend):
    """Entries as Redis strings with a server-side expiry (``PX``)."""

    name = "redis"

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = "portkey-mw:cache:",
        timeout: float = 0.5,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis.asyncio as redis
            except ImportError as exc:
                raise PluginMissingDependency("redis-cache", "redis", exc) from exc
            self._client = redis.from_url(
                self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout
            )
        return self._client

    async def get(self, key: str) -> bytes | None:
        value = await self._redis().get(self.prefix + key)
        return bytes(value) if value is not None else None

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        milliseconds = int(ttl * 1000) if ttl else None
        await self._redis().set(self.prefix + key, value, px=milliseconds)

    async def clear(self, prefix: str = "") -> int:
        client = self._redis()
        removed = 0
        async for name in client.scan_iter(match=self.prefix + prefix + "*", count=500):
            removed += int(await client.delete(name))
        return removed

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


@hookimpl
def register_cache_backends(
    register: Callable[[CacheBackend], None], settings: ServerSettings
) -> None:
    """Register the Redis cache (connected on first use)."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    register(
        RedisCache(
            url=str(options.get("url", "redis://127.0.0.1:6379/0")),
            prefix=str(options.get("key_prefix", "portkey-mw:cache:")),
            timeout=float(options.get("timeout", 0.5)),
        )
    )
