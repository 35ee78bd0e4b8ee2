"""The ``qdrant`` semantic index: cached answers found by meaning, stored in Qdrant.

Needs qdrant-client: ``pip install "portkey-mw[semantic]"``. Plugin settings (server file,
``plugins.settings["portkey-mw.qdrant-cache"]``):

* ``location`` (default ``:memory:``) or ``path`` (a directory): Qdrant's local mode, in
  this process, with each scope in collections of its own (:mod:`.local`).
  ``max_entries`` (default 100,000) bounds them, ``shard_size`` (default 5,000) splits a
  scope.
* ``url`` (and ``api_key``): a Qdrant server, for replicas and large caches, with every
  entry in one collection (:mod:`.server`).

``collection`` (default ``portkey_mw_cache``) names the collection, or prefixes them.

qdrant-client's calls block, so they run on a private thread pool (one thread in local
mode, which is not thread-safe), never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import PluginMissingDependency
from portkey_mw.interfaces import SemanticIndex, SemanticMatch

from .local import LocalLayout, namespace_of
from .server import ServerLayout

PLUGIN_NAME = "portkey-mw.qdrant-cache"
DEFAULT_COLLECTION = "portkey_mw_cache"
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_SHARD_SIZE = 5_000
#: expiry of entries stored without max_age: the year 5138 (JSON has no infinity)
NEVER = 1e11

T = TypeVar("T")


class QdrantIndex(SemanticIndex):
    """Entries are points: the question's vector, and the cached body, scope, namespace and
    expiry as payload."""

    name = "qdrant"

    def __init__(
        self,
        *,
        location: str | None = ":memory:",
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        collection: str = DEFAULT_COLLECTION,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        shard_size: int = DEFAULT_SHARD_SIZE,
        timeout: float = 1.0,
        dim: int = 384,
    ) -> None:
        self.local = url is None
        self.dim = dim
        self._connect_args: dict[str, Any]
        if url is not None:
            self._connect_args = {
                "url": url,
                "api_key": api_key,
                "timeout": max(1, int(timeout)),
                # The version probe runs on its own thread and only warns; skip it.
                "check_compatibility": False,
            }
        elif path:
            self._connect_args = {"path": path}
        else:
            self._connect_args = {"location": location}
        # Vector parameters are qdrant-client objects: set when the client is opened, so
        # that registering the plugin does not need qdrant-client installed.
        self.layout: LocalLayout | ServerLayout = (
            LocalLayout(collection, None, shard_size, max_entries)
            if self.local
            else ServerLayout(collection, None)
        )
        self._client: Any = None
        # Local mode is not thread-safe: one thread. A server takes concurrent calls.
        self._pool = ThreadPoolExecutor(
            max_workers=1 if self.local else 4, thread_name_prefix="portkey-mw-qdrant"
        )

    @property
    def _vectors(self) -> Any:
        from qdrant_client import models

        # fastembed's vectors are unit length, so the dot product is the cosine similarity.
        return models.VectorParams(size=self.dim, distance=models.Distance.DOT)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn, *args)

    def _qdrant(self) -> Any:
        if self._client is None:
            try:
                from qdrant_client import QdrantClient
            except ImportError as exc:
                raise PluginMissingDependency("qdrant-cache", "semantic", exc) from exc
            client = QdrantClient(**self._connect_args)
            self.layout.vectors = self._vectors
            self.layout.open(client)
            self._client = client
        return self._client

    async def open(self) -> None:
        # Importing qdrant-client and opening the store takes about a second.
        await self._run(self._qdrant)

    async def search(
        self, vector: Sequence[float], scope: str, threshold: float
    ) -> SemanticMatch | None:
        found = await self.candidates(vector, scope, threshold, 1)
        return found[0] if found else None

    async def candidates(
        self, vector: Sequence[float], scope: str, threshold: float, limit: int
    ) -> list[SemanticMatch]:
        return await self._run(self._candidates, list(vector), scope, threshold, limit)

    def _candidates(
        self, vector: list[float], scope: str, threshold: float, limit: int
    ) -> list[SemanticMatch]:
        points = self.layout.search(self._qdrant(), vector, scope, threshold, limit)
        return [
            SemanticMatch(
                value=str(point.payload["value"]).encode(),
                score=float(point.score),
                question=str(point.payload.get("question", "")),
            )
            for point in points
        ]

    async def add(
        self,
        vector: Sequence[float],
        scope: str,
        value: bytes,
        ttl: float | None,
        question: str = "",
    ) -> None:
        await self._run(self._add, list(vector), scope, value, ttl, question)

    def _add(
        self, vector: list[float], scope: str, value: bytes, ttl: float | None, question: str
    ) -> None:
        from qdrant_client import models

        payload = {
            "scope": scope,
            "namespace": namespace_of(scope),
            "expires_at": time.time() + ttl if ttl else NEVER,
            "value": value.decode(),
            "question": question,
        }
        point = models.PointStruct(id=str(uuid.uuid4()), vector=vector, payload=payload)
        self.layout.add(self._qdrant(), [point], scope)

    async def clear(self, namespace: str | None = None) -> int:
        return await self._run(lambda: self.layout.clear(self._qdrant(), namespace))

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await self._run(client.close)
        self._pool.shutdown(wait=False)


@hookimpl
def register_semantic_indexes(
    register: Callable[[SemanticIndex], None], settings: ServerSettings
) -> None:
    """Register the Qdrant index (local mode unless a ``url`` is set; opened on first use)."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    url = options.get("url")
    register(
        QdrantIndex(
            location=str(options.get("location", ":memory:")),
            path=str(options["path"]) if options.get("path") else None,
            url=str(url) if url else None,
            api_key=str(options["api_key"]) if options.get("api_key") else None,
            collection=str(options.get("collection", DEFAULT_COLLECTION)),
            max_entries=int(options.get("max_entries", DEFAULT_MAX_ENTRIES)),
            shard_size=int(options.get("shard_size", DEFAULT_SHARD_SIZE)),
            timeout=float(options.get("timeout", settings.cache.semantic_timeout)),
            dim=int(settings.embedding.dim or 384),
        )
    )
