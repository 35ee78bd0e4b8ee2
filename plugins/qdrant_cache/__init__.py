"""The ``qdrant`` semantic index: cached answers found by meaning, stored in Qdrant.

Needs ``pip install "portkey-mw[semantic]"``. Plugin settings (server file,
``plugins.settings["portkey-mw.qdrant-cache"]``) choose one of three engines:

* ``engine: "edge"`` (the default): Qdrant's embedded engine, qdrant-edge-py, in this
  process (:mod:`.edge`). One shard on disk holds every scope, filtered by payload indexes,
  with an HNSW graph built in a child process, never blocking lookups. It lives in
  ``<data dir>/semantic-cache/`` (``PORTKEY_MW_DATA_DIR``) unless ``path`` names another
  directory, and is found again on restart; ``location: ":memory:"`` keeps it in a
  temporary directory deleted on close. ``max_entries`` (default 100,000) bounds it, oldest
  out first; ``index_after`` (default 5,000) is how many new entries start a build. An
  unreadable directory is moved to ``<dir>.corrupt-<timestamp>`` (logged) and the index
  starts empty.
* ``engine: "local"``: qdrant-client's local mode, brute force in Python, with each scope
  in collections of its own (:mod:`.local`), in memory (``location``, default
  ``:memory:``) or in ``path``; for tests and comparison. ``max_entries`` bounds it and
  ``shard_size`` (default 5,000) splits a scope.
* ``url`` (and ``api_key``), whatever ``engine`` says: a Qdrant server, for replicas, with
  every entry in one collection (:mod:`.server`).

``collection`` (default ``portkey_mw_cache``) names the server's collection, or prefixes
local mode's.

Every blocking call runs on a private thread pool (one thread for the embedded engines),
never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import PluginMissingDependency
from portkey_mw.interfaces import SemanticIndex, SemanticMatch
from portkey_mw.store.sql.engine import default_data_dir

from .edge import EdgeStore
from .local import LocalLayout, namespace_of
from .server import ServerLayout

PLUGIN_NAME = "portkey-mw.qdrant-cache"
DEFAULT_COLLECTION = "portkey_mw_cache"
DEFAULT_MAX_ENTRIES = 100_000
DEFAULT_SHARD_SIZE = 5_000
DEFAULT_INDEX_AFTER = 5_000
ENGINES = ("edge", "local")
#: the edge shard's directory inside the data directory
DATA_SUBDIRECTORY = "semantic-cache"
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
        engine: str = "edge",
        index_after: int = DEFAULT_INDEX_AFTER,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if engine not in ENGINES:
            raise ValueError(
                f"{PLUGIN_NAME}: engine must be {' or '.join(map(repr, ENGINES))}, not {engine!r}"
            )
        self.local = url is None
        self.dim = dim
        #: seconds since the epoch; ``None``: ``time.time`` (looked up at each call)
        self.clock = clock
        #: the embedded engine, when it is the one in use (no url, engine "edge")
        self.edge: EdgeStore | None = None
        if url is None and engine == "edge":
            self.edge = EdgeStore(
                # No path: a temporary directory (qdrant-edge has no in-memory mode).
                Path(path) if path else None,
                dim=dim,
                max_entries=max_entries,
                index_after=index_after,
                clock=clock,
            )
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
        if self.edge is not None:
            await self.edge.open()
            return
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
        if self.edge is not None:
            found = await self.edge.search(list(vector), scope, threshold, limit)
            return [
                SemanticMatch(
                    value=str(payload["value"]).encode(),
                    score=score,
                    question=str(payload.get("question", "")),
                )
                for score, payload in found
            ]
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
        if self.edge is not None:
            await self.edge.add(list(vector), self._payload(scope, value, ttl, question))
            return
        await self._run(self._add, list(vector), scope, value, ttl, question)

    def _payload(
        self, scope: str, value: bytes, ttl: float | None, question: str
    ) -> dict[str, Any]:
        return {
            "scope": scope,
            "namespace": namespace_of(scope),
            "expires_at": (self.clock or time.time)() + ttl if ttl else NEVER,
            "value": value.decode(),
            "question": question,
        }

    def _add(
        self, vector: list[float], scope: str, value: bytes, ttl: float | None, question: str
    ) -> None:
        from qdrant_client import models

        payload = self._payload(scope, value, ttl, question)
        point = models.PointStruct(id=str(uuid.uuid4()), vector=vector, payload=payload)
        self.layout.add(self._qdrant(), [point], scope)

    async def clear(self, namespace: str | None = None) -> int:
        if self.edge is not None:
            return await self.edge.clear(namespace)
        return await self._run(lambda: self.layout.clear(self._qdrant(), namespace))

    async def aclose(self) -> None:
        if self.edge is not None:
            await self.edge.aclose()
        if self._client is not None:
            client, self._client = self._client, None
            await self._run(client.close)
        self._pool.shutdown(wait=False)


@hookimpl
def register_semantic_indexes(
    register: Callable[[SemanticIndex], None], settings: ServerSettings
) -> None:
    """Register the Qdrant index: the embedded engine in the data directory unless settings
    say otherwise (see the module docstring); opened at start-up or on first use."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    url = options.get("url")
    engine = str(options.get("engine", "edge"))
    path = str(options["path"]) if options.get("path") else None
    if engine == "edge" and path is None and "location" not in options:
        path = str(default_data_dir() / DATA_SUBDIRECTORY)
    register(
        QdrantIndex(
            location=str(options.get("location", ":memory:")),
            path=path,
            engine=engine,
            index_after=int(options.get("index_after", DEFAULT_INDEX_AFTER)),
            url=str(url) if url else None,
            api_key=str(options["api_key"]) if options.get("api_key") else None,
            collection=str(options.get("collection", DEFAULT_COLLECTION)),
            max_entries=int(options.get("max_entries", DEFAULT_MAX_ENTRIES)),
            shard_size=int(options.get("shard_size", DEFAULT_SHARD_SIZE)),
            timeout=float(options.get("timeout", settings.cache.semantic_timeout)),
            dim=int(settings.embedding.dim or 384),
        )
    )
