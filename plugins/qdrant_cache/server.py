"""A Qdrant server: every entry in one collection, scope and expiry as indexed payload.

The server's filtered search (HNSW with payload indexes) keeps a search within its scope
however many scopes there are, so no per-scope collections are needed.
"""

from __future__ import annotations

import time
from typing import Any

from .local import namespace_of

#: expired entries are deleted once per this many stored entries
SWEEP_EVERY = 1000


class ServerLayout:
    """One collection, filtered by the ``scope``, ``namespace`` and ``expires_at`` fields."""

    def __init__(self, collection: str, vectors: Any) -> None:
        self.collection = collection
        self.vectors = vectors
        self._stores = 0

    def open(self, client: Any) -> None:
        """Create the collection and its payload indexes unless they exist."""
        from qdrant_client import models

        if not client.collection_exists(self.collection):
            client.create_collection(self.collection, vectors_config=self.vectors)
        for field, schema in (
            ("scope", models.PayloadSchemaType.KEYWORD),
            ("namespace", models.PayloadSchemaType.KEYWORD),
            ("expires_at", models.PayloadSchemaType.FLOAT),
        ):
            client.create_payload_index(self.collection, field, field_schema=schema)

    def search(
        self, client: Any, vector: list[float], scope: str, threshold: float, limit: int
    ) -> list[Any]:
        """The ``limit`` best live points of ``scope`` at or above ``threshold``, best first."""
        from qdrant_client import models

        within = models.Filter(
            must=[
                models.FieldCondition(key="scope", match=models.MatchValue(value=scope)),
                models.FieldCondition(key="expires_at", range=models.Range(gt=time.time())),
            ]
        )
        return list(
            client.query_points(
                self.collection,
                query=vector,
                limit=limit,
                score_threshold=threshold,
                query_filter=within,
            ).points
        )

    def add(self, client: Any, points: list[Any], scope: str) -> None:
        """Store ``points``; now and then, delete what has expired."""
        from qdrant_client import models

        client.upsert(self.collection, points=points)
        self._stores += len(points)
        if self._stores >= SWEEP_EVERY:
            self._stores = 0
            expired = models.FieldCondition(key="expires_at", range=models.Range(lte=time.time()))
            client.delete(
                self.collection,
                points_selector=models.FilterSelector(filter=models.Filter(must=[expired])),
            )

    def clear(self, client: Any, namespace: str | None) -> int:
        """Delete one namespace's entries (``None``: all); return how many."""
        from qdrant_client import models

        condition = models.Filter(
            must=[models.FieldCondition(key="namespace", match=models.MatchValue(value=namespace))]
            if namespace is not None
            else []
        )
        removed = int(client.count(self.collection, count_filter=condition, exact=True).count)
        client.delete(self.collection, points_selector=models.FilterSelector(filter=condition))
        return removed


__all__ = ["ServerLayout", "namespace_of"]
