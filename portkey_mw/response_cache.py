"""The gateway's response cache: which backend and index a request uses, the embedding
model, and the operator's purge -- the wiring around :mod:`portkey_mw.caching`."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Mapping
from typing import Any

import structlog

from portkey_mw.caching import (
    CACHEABLE,
    CacheStats,
    CacheUse,
    SemanticUse,
    route_partition,
    semantic_question,
)
from portkey_mw.config.schema import Cache as CacheConfig
from portkey_mw.config.server import ServerSettings
from portkey_mw.context import RequestContext
from portkey_mw.embedding import EmbeddingModel, shared_model
from portkey_mw.errors import GatewayError, InvalidConfig, NotFound
from portkey_mw.interfaces import CacheBackend, SemanticIndex, SemanticVerifier
from portkey_mw.logging import traceback_text
from portkey_mw.routing import PlanNode
from portkey_mw.singleflight import Flights

log = structlog.get_logger("portkey_mw.cache")


class ResponseCache:
    """Caching for every request of one gateway.

    :param settings: the server file (its ``cache`` and ``embedding`` sections).
    :param backends: registered exact-cache backends, by name.
    :param indexes: registered semantic indexes, by name.
    :param verifiers: registered semantic verifiers, by name.
    :raises InvalidConfig: semantic caching can be used and the server file's
        ``cache.verifiers`` names one that no plugin registers (a hit is never served
        unverified because a verifier is missing).
    """

    def __init__(
        self,
        settings: ServerSettings,
        backends: Mapping[str, CacheBackend],
        indexes: Mapping[str, SemanticIndex],
        verifiers: Mapping[str, SemanticVerifier] | None = None,
    ) -> None:
        self._settings = settings
        self.backends = backends
        self.indexes = indexes
        self.verifiers: Mapping[str, SemanticVerifier] = verifiers or {}
        missing = [name for name in settings.cache.verifiers if name not in self.verifiers]
        if missing and self.semantic_available:
            known = ", ".join(sorted(self.verifiers)) or "none"
            raise InvalidConfig(
                f"cache.verifiers names {missing[0]!r}, which no plugin registers "
                f"(registered: {known}); cache.verifiers: [] lets similarity alone decide",
                code="unknown_verifier",
            )
        self.stats = CacheStats()
        self._embedder: EmbeddingModel | None = None
        self._opening: asyncio.Task[None] | None = None
        #: whether start() began loading the model and opening the index
        self._semantic_started = False
        options = settings.cache
        #: identical misses in flight (``None``: coalescing is off)
        self.flights = Flights(options.coalesce_max_stream_bytes) if options.coalesce else None

    @property
    def semantic_available(self) -> bool:
        """Whether semantic caching can be used: the configured index is registered and
        fastembed is installed. Any client's config may then ask for ``mode: semantic``."""
        index = self._settings.cache.semantic_index
        return index in self.indexes and importlib.util.find_spec("fastembed") is not None

    def start(self) -> None:
        """When semantic caching can be used, load the model and open the index now, in
        the background, so the first request that needs them finds them ready (or waits
        for them within ``semantic_timeout``) rather than missing."""
        if not self.semantic_available:
            return
        self._semantic_started = True
        self.embedder.start_loading().add_done_callback(_retrieve)
        index = self.indexes[self._settings.cache.semantic_index]
        self._opening = asyncio.create_task(_open_index(index))

    def not_ready(self) -> list[str]:
        """What is still loading (or failed to), in words for ``GET /ready``; empty when
        the cache can serve every request at full speed."""
        if not self._semantic_started:
            return []
        waiting: list[str] = []
        model = self.embedder
        if not model.ready:
            error = model.load_error
            if error is None:
                waiting.append(f"the embedding model {model.name!r} is still loading")
            else:
                model.start_loading().add_done_callback(_retrieve)  # again, after a pause
                waiting.append(f"the embedding model {model.name!r} failed to load: {error}")
        if self._opening is not None and not self._opening.done():
            index = self._settings.cache.semantic_index
            waiting.append(f"the semantic index {index!r} is still opening")
        return waiting

    async def aclose(self) -> None:
        """Close every backend and index (after an opening in progress finished)."""
        if self._opening is not None:
            await self._opening  # never raises; closing must not race opening
            self._opening = None
        stores: list[CacheBackend | SemanticIndex] = [
            *self.backends.values(),
            *self.indexes.values(),
        ]
        for store in stores:
            try:
                await store.aclose()
            except Exception as exc:
                log.error(
                    "cache store failed to close", store=store.name, exception=traceback_text(exc)
                )
        # The embedding model is the process's (shared_model): other gateways may use it.
        self._embedder = None

    def for_request(self, ctx: RequestContext, plan: PlanNode) -> CacheUse | None:
        """Caching for this request, when its config turns it on and a backend exists."""
        settings = plan.cache
        if settings is None or ctx.endpoint not in CACHEABLE:
            return None
        options = self._settings.cache
        backend = self.backends.get(options.backend)
        if backend is None:
            log.warning("cache backend not registered", backend=options.backend)
            return None
        partition = route_partition(plan, ctx.headers)
        semantic = (
            self._semantic_use(ctx, settings, partition) if settings.mode == "semantic" else None
        )
        return CacheUse(backend, ctx, settings.max_age, semantic, partition)

    def _semantic_use(
        self, ctx: RequestContext, settings: CacheConfig, partition: str
    ) -> SemanticUse | None:
        options = self._settings.cache
        index = self.indexes.get(options.semantic_index)
        if index is None:
            log.warning("semantic index not registered", index=options.semantic_index)
            return None
        found = semantic_question(ctx, partition)
        if found is None:
            return None
        question, scope = found
        threshold = settings.similarity_threshold
        named = settings.verifiers
        return SemanticUse(
            index=index,
            embedder=self.embedder,
            question=question,
            scope=scope,
            threshold=options.similarity_threshold if threshold is None else threshold,
            timeout=options.semantic_timeout,
            verifiers=self._chosen(options.verifiers if named is None else named),
            candidates=options.semantic_candidates,
        )

    def _chosen(self, names: list[str]) -> tuple[SemanticVerifier, ...]:
        # The resolver rejected a config naming an unknown verifier; the server file's
        # names were checked at start-up. Looked up per request (a few dict reads), so a
        # refresh_plugins() that replaced a verifier is followed.
        return tuple(self.verifiers[name] for name in names if name in self.verifiers)

    @property
    def embedder(self) -> EmbeddingModel:
        """The sentence-embedding model (loaded at start-up or on first use, off the event
        loop); the process's shared one unless another was set."""
        if self._embedder is None:
            self._embedder = shared_model(self._settings.embedding)
        return self._embedder

    @embedder.setter
    def embedder(self, model: EmbeddingModel) -> None:
        # A host app (or a test) may bring a model it manages itself; set before start-up.
        self._embedder = model

    async def purge(self, namespace: str = "") -> int:
        """Drop cached answers, exact and semantic: all, or one namespace's.

        :raises NotFound: the configured backend is not registered.
        :raises GatewayError: the backend failed (503 ``cache_unavailable``).
        """
        name = self._settings.cache.backend
        backend = self.backends.get(name)
        if backend is None:
            raise NotFound(f"no cache backend {name!r} is registered")
        index = self.indexes.get(self._settings.cache.semantic_index)
        try:
            purged = await backend.clear(f"{namespace}:" if namespace else "")
            if index is not None:
                purged += await index.clear(namespace or None)
        except Exception as exc:
            raise GatewayError(
                f"the cache backend failed: {exc}", status=503, code="cache_unavailable"
            ) from exc
        return purged


async def _open_index(index: SemanticIndex) -> None:
    try:
        await index.open()
    except Exception as exc:  # the first request that needs it tries again
        log.warning("semantic index failed to open", index=index.name, error=str(exc))


def _retrieve(loading: asyncio.Future[Any]) -> None:
    # The model logs its own load failure; retrieving it keeps asyncio from logging it again.
    if not loading.cancelled():
        loading.exception()
