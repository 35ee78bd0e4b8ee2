"""Qdrant's local mode: each scope in collections of its own, split into shards.

Local mode searches by brute force in Python, and its cost grows faster than the number of
vectors searched (each search copies the whole matrix to float64). So a search reads only
its own scope, and a scope is stored in shards of at most ``shard_size`` entries: a search
queries each shard (cheap while small) and keeps the best match. Shards also make eviction
cheap: past ``max_entries``, the oldest shard of the scope used least recently goes, as one
collection drop.

Collection names are ``<prefix>_<namespace digest>_<scope digest>_<shard number>``, so the
layout is rebuilt from the collection list when a persisted store is reopened.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

#: nearest neighbours read per shard beyond those asked for, so that expired ones can be
#: skipped
SPARE = 3


def digest(text: str, size: int) -> str:
    """A short, stable, name-safe digest."""
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def namespace_of(scope: str) -> str:
    """The namespace part of a ``<namespace>:<digest>`` scope."""
    return scope.rsplit(":", 1)[0]


class LocalLayout:
    """Sharded per-scope collections, least recently used scope evicted first."""

    def __init__(self, prefix: str, vectors: Any, shard_size: int, max_entries: int) -> None:
        self.prefix = prefix
        self.vectors = vectors
        self.shard_size = shard_size
        self.max_entries = max_entries
        #: scope collection prefix -> its shards as [name, entries], oldest first;
        #: the scope used least recently first
        self.scopes: OrderedDict[str, list[list[Any]]] = OrderedDict()

    def scope_name(self, scope: str) -> str:
        """The collection-name prefix of ``scope`` (its namespace digest leads)."""
        return f"{self.prefix}_{digest(namespace_of(scope), 12)}_{digest(scope, 24)}"

    @property
    def entries(self) -> int:
        """Entries stored, expired ones not yet found included."""
        return sum(count for shards in self.scopes.values() for _, count in shards)

    def open(self, client: Any) -> None:
        """Rebuild the layout from the collections a persisted store already has."""
        found: dict[str, list[tuple[int, str]]] = {}
        for described in client.get_collections().collections:
            name = described.name
            scope, _, number = name.rpartition("_")
            if name.startswith(self.prefix + "_") and number.isdigit():
                found.setdefault(scope, []).append((int(number), name))
        for scope, shards in found.items():
            self.scopes[scope] = [
                [name, client.count(name, exact=True).count] for _, name in sorted(shards)
            ]

    def search(
        self, client: Any, vector: list[float], scope: str, threshold: float, limit: int
    ) -> list[Any]:
        """The ``limit`` best live points of ``scope`` at or above ``threshold``, best first."""
        from qdrant_client import models

        shards = self.scopes.get(self.scope_name(scope))
        if not shards:
            return []
        self.scopes.move_to_end(self.scope_name(scope))
        now = time.time()
        best: list[Any] = []
        for shard in shards:
            found = client.query_points(
                shard[0], query=vector, limit=limit + SPARE, score_threshold=threshold
            ).points
            expired = [p.id for p in found if p.payload["expires_at"] <= now]
            if expired:
                client.delete(shard[0], points_selector=models.PointIdsList(points=expired))
                shard[1] = max(0, shard[1] - len(expired))
            best.extend(p for p in found if p.id not in expired)
        best.sort(key=lambda point: -point.score)
        return best[:limit]

    def add(self, client: Any, points: list[Any], scope: str) -> None:
        """Store ``points`` in the newest shards of their scope, starting one when full."""
        name = self.scope_name(scope)
        shards = self.scopes.setdefault(name, [])
        while points:
            if not shards or shards[-1][1] >= self.shard_size:
                number = int(shards[-1][0].rpartition("_")[2]) + 1 if shards else 0
                shards.append([f"{name}_{number}", 0])
                client.create_collection(shards[-1][0], vectors_config=self.vectors)
            room = self.shard_size - shards[-1][1]
            batch, points = points[:room], points[room:]
            client.upsert(shards[-1][0], points=batch)
            shards[-1][1] += len(batch)
        self.scopes.move_to_end(name)
        self._evict(client)

    def _evict(self, client: Any) -> None:
        total = self.entries
        while total > self.max_entries and self.scopes:
            scope, shards = next(iter(self.scopes.items()))
            if len(self.scopes) == 1 and len(shards) == 1:
                break  # never drop the shard being written to
            name, count = shards.pop(0)
            client.delete_collection(name)
            total -= count
            if not shards:
                del self.scopes[scope]

    def clear(self, client: Any, namespace: str | None) -> int:
        """Drop every shard of one namespace (``None``: all); return the entries dropped."""
        start = self.prefix + "_" + (digest(namespace, 12) + "_" if namespace is not None else "")
        removed = 0
        for scope in [s for s in self.scopes if s.startswith(start)]:
            for name, count in self.scopes.pop(scope):
                client.delete_collection(name)
                removed += count
        return removed
