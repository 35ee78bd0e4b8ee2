"""The ``qdrant`` semantic index: cached answers found by meaning, stored in Qdrant.

Needs qdrant-client: ``pip install "portkey-mw[semantic]"``. Plugin settings (server file,
``plugins.settings["portkey-mw.qdrant-cache"]``):

* ``location`` (default ``:memory:``) or ``path`` (a directory): Qdrant's local mode, in
  this process. Local mode searches by brute force, so each scope gets its own collection
  and a search only reads the entries of its own scope. ``max_entries`` (default 100,000)
  bounds them: past it, the scope used least recently goes.
* ``url`` (and ``api_key``): a Qdrant server, for replicas and large caches. Everything
  lives in one collection (``collection``, default ``portkey_mw_cache``) with the scope,
  namespace and expiry as indexed payload fields, and the search filters on them.

qdrant-client's calls block, so they run on a private thread pool (one thread in local
mode, which is not thread-safe), never on the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import structlog

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import PluginMissingDependency
from portkey_mw.interfaces import SemanticIndex, SemanticMatch

PLUGIN_NAME = "portkey-mw.qdrant-cache"
DEFAULT_COLLECTION = "portkey_mw_cache"
DEFAULT_MAX_ENTRIES = 100_000
#: nearest neighbours read per local search, so expired ones can be skipped
CANDIDATES = 4
#: expiry of entries stored without max_age: the year 5138
NEVER = 1e11

log = structlog.get_logger("portkey_mw.qdrant_cache")
T = TypeVar("T")


def _digest(text: str, size: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def _namespace(scope: str) -> str:
    return scope.rsplit(":", 1)[0]


class QdrantIndex(SemanticIndex):
    """Entries are points: the question's vector, the cached body, scope and expiry."""

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
        timeout: float = 1.0,
        dim: int = 384,
    ) -> None:
        self.local = url is None
        self.collection = collection
        self.max_entries = max_entries
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
        self._client: Any = None
        self._pool = ThreadPoolExecutor(
            max_workers=1 if self.local else 4, thread_name_prefix="portkey-mw-qdrant"
        )
        #: local mode: collection name -> entry count, least recently used first
        self._scopes: OrderedDict[str, int] = OrderedDict()
        self._adds = 0

    # -- plumbing --------------------------------------------------------------------

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
            if self.local:
                for described in client.get_collections().collections:
                    if described.name.startswith(self.collection + "_"):
                        count = client.count(described.name, exact=True).count
                        self._scopes[described.name] = count
            else:
                self._ensure_shared_collection(client)
            self._client = client
        return self._client

    def _vectors(self) -> Any:
        from qdrant_client import models

        # fastembed's vectors are unit length, so the dot product is the cosine similarity.
        return models.VectorParams(size=self.dim, distance=models.Distance.DOT)

    def _ensure_shared_collection(self, client: Any) -> None:
        from qdrant_client import models

        if not client.collection_exists(self.collection):
            client.create_collection(self.collection, vectors_config=self._vectors())
        for field, schema in (
            ("scope", models.PayloadSchemaType.KEYWORD),
            ("namespace", models.PayloadSchemaType.KEYWORD),
            ("expires_at", models.PayloadSchemaType.FLOAT),
        ):
            client.create_payload_index(self.collection, field, field_schema=schema)

    def _scope_collection(self, scope: str) -> str:
        # The namespace digest leads, so one namespace's collections share a prefix.
        return f"{self.collection}_{_digest(_namespace(scope), 12)}_{_digest(scope, 24)}"

    # -- SemanticIndex ----------------------------------------------------------------

    async def open(self) -> None:
        # Importing qdrant-client and opening the store takes about a second.
        await self._run(self._qdrant)

    async def search(
        self, vector: Sequence[float], scope: str, threshold: float
    ) -> SemanticMatch | None:
        return await self._run(self._search, list(vector), scope, threshold)

    def _search(self, vector: list[float], scope: str, threshold: float) -> SemanticMatch | None:
        from qdrant_client import models

        client = self._qdrant()
        now = time.time()
        if self.local:
            name = self._scope_collection(scope)
            if name not in self._scopes:
                return None
            self._scopes.move_to_end(name)
            found = client.query_points(
                name, query=vector, limit=CANDIDATES, score_threshold=threshold
            ).points
            expired = [p.id for p in found if (p.payload or {}).get("expires_at", now + 1) <= now]
            if expired:
                client.delete(name, points_selector=models.PointIdsList(points=expired))
                self._scopes[name] = max(0, self._scopes[name] - len(expired))
            live = [p for p in found if p.id not in expired]
        else:
            live = client.query_points(
                self.collection,
                query=vector,
                limit=1,
                score_threshold=threshold,
                query_filter=models.Filter(
                    must=[
                        models.FieldCondition(key="scope", match=models.MatchValue(value=scope)),
                        models.FieldCondition(key="expires_at", range=models.Range(gt=now)),
                    ]
                ),
            ).points
        if not live:
            return None
        best = live[0]
        return SemanticMatch(value=str(best.payload["value"]).encode(), score=float(best.score))

    async def add(
        self, vector: Sequence[float], scope: str, value: bytes, ttl: float | None
    ) -> None:
        await self._run(self._add, list(vector), scope, value, ttl)

    def _add(self, vector: list[float], scope: str, value: bytes, ttl: float | None) -> None:
        from qdrant_client import models

        client = self._qdrant()
        payload = {
            "scope": scope,
            "namespace": _namespace(scope),
            # Entries without max_age live until evicted (JSON has no infinity).
            "expires_at": time.time() + ttl if ttl else NEVER,
            "value": value.decode(),
        }
        point = models.PointStruct(id=str(uuid.uuid4()), vector=vector, payload=payload)
        if self.local:
            name = self._scope_collection(scope)
            if name not in self._scopes:
                client.create_collection(name, vectors_config=self._vectors())
                self._scopes[name] = 0
            client.upsert(name, points=[point])
            self._scopes[name] += 1
            self._scopes.move_to_end(name)
            self._evict(client)
        else:
            client.upsert(self.collection, points=[point])
            self._adds += 1
            if self._adds % 1000 == 0:
                self._drop_expired(client)

    def _evict(self, client: Any) -> None:
        total = sum(self._scopes.values())
        while total > self.max_entries and len(self._scopes) > 1:
            name, count = self._scopes.popitem(last=False)
            client.delete_collection(name)
            total -= count

    def _drop_expired(self, client: Any) -> None:
        from qdrant_client import models

        expired = models.Filter(
            must=[models.FieldCondition(key="expires_at", range=models.Range(lte=time.time()))]
        )
        client.delete(self.collection, points_selector=models.FilterSelector(filter=expired))

    async def clear(self, namespace: str | None = None) -> int:
        return await self._run(self._clear, namespace)

    def _clear(self, namespace: str | None) -> int:
        from qdrant_client import models

        client = self._qdrant()
        if self.local:
            prefix = self.collection + "_"
            if namespace is not None:
                prefix += _digest(namespace, 12) + "_"
            doomed = [name for name in self._scopes if name.startswith(prefix)]
            removed = 0
            for name in doomed:
                removed += self._scopes.pop(name)
                client.delete_collection(name)
            return removed
        condition = (
            models.Filter(
                must=[
                    models.FieldCondition(key="namespace", match=models.MatchValue(value=namespace))
                ]
            )
            if namespace is not None
            else models.Filter()
        )
        removed = int(client.count(self.collection, count_filter=condition, exact=True).count)
        client.delete(self.collection, points_selector=models.FilterSelector(filter=condition))
        return removed

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
            timeout=float(options.get("timeout", settings.cache.semantic_timeout)),
            dim=int(settings.embedding.dim or 384),
        )
    )
