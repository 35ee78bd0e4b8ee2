"""The Qdrant semantic index in local mode: scopes, shards, eviction, expiry, persistence."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest

pytest.importorskip("qdrant_client")

from portkey_mw_plugins.qdrant_cache import QdrantIndex

DIM = 4


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


NORTH, EAST, NORTH_BY_EAST = unit(1, 0, 0, 0), unit(0, 1, 0, 0), unit(1, 0.2, 0, 0)


def index(**options: object) -> QdrantIndex:
    return QdrantIndex(dim=DIM, engine="local", **options)  # type: ignore[arg-type]


def test_search_stays_in_its_scope_and_honours_the_threshold() -> None:
    store = index()

    async def scenario() -> None:
        await store.add(NORTH, "ns:a", b"answer-a", None)
        await store.add(EAST, "ns:b", b"answer-b", None)
        match = await store.search(NORTH_BY_EAST, "ns:a", 0.9)
        assert match is not None and match.value == b"answer-a" and match.score > 0.97
        assert await store.search(NORTH_BY_EAST, "ns:b", 0.9) is None  # other scope
        assert await store.search(NORTH_BY_EAST, "ns:a", 0.999) is None  # too far
        assert await store.search(NORTH, "ns:never", 0.1) is None
        await store.aclose()

    asyncio.run(scenario())


def test_a_scope_is_split_into_shards_and_searched_across_them() -> None:
    store = index(shard_size=2)

    async def scenario() -> None:
        await store.add(EAST, "ns:a", b"east", None)
        await store.add(unit(0, 0, 1, 0), "ns:a", b"up", None)
        await store.add(NORTH, "ns:a", b"north", None)  # the second shard
        shards = store.layout.scopes[store.layout.scope_name("ns:a")]  # type: ignore[union-attr]
        assert [count for _, count in shards] == [2, 1]
        assert (await store.search(NORTH_BY_EAST, "ns:a", 0.5)).value == b"north"  # type: ignore[union-attr]
        assert (await store.search(EAST, "ns:a", 0.5)).value == b"east"  # type: ignore[union-attr]
        await store.aclose()

    asyncio.run(scenario())


def test_past_max_entries_the_least_recently_used_scope_loses_its_oldest_shard() -> None:
    store = index(shard_size=1, max_entries=2)

    async def scenario() -> None:
        await store.add(NORTH, "ns:old", b"old", None)
        await store.add(EAST, "ns:used", b"used", None)
        assert await store.search(EAST, "ns:used", 0.9) is not None  # used: now most recent
        await store.add(NORTH, "ns:new", b"new", None)
        assert await store.search(NORTH, "ns:old", 0.9) is None  # evicted
        assert await store.search(EAST, "ns:used", 0.9) is not None
        assert await store.search(NORTH, "ns:new", 0.9) is not None
        await store.aclose()

    asyncio.run(scenario())


def test_expired_entries_are_never_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    import portkey_mw_plugins.qdrant_cache as plugin
    import portkey_mw_plugins.qdrant_cache.local as local

    store = index()
    now = [1_000_000.0]
    monkeypatch.setattr(plugin.time, "time", lambda: now[0])
    monkeypatch.setattr(local.time, "time", lambda: now[0])

    async def scenario() -> None:
        await store.add(NORTH, "ns:a", b"short", 10)
        assert await store.search(NORTH, "ns:a", 0.9) is not None
        now[0] += 11
        assert await store.search(NORTH, "ns:a", 0.9) is None
        assert store.layout.entries == 0  # found expired, deleted
        await store.aclose()

    asyncio.run(scenario())


def test_clear_by_namespace_and_all() -> None:
    store = index()

    async def scenario() -> None:
        await store.add(NORTH, "one:a", b"1", None)
        await store.add(NORTH, "one:b", b"2", None)
        await store.add(NORTH, "two:a", b"3", None)
        assert await store.clear("one") == 2
        assert await store.search(NORTH, "one:a", 0.9) is None
        assert await store.search(NORTH, "two:a", 0.9) is not None
        assert await store.clear() == 1
        assert await store.search(NORTH, "two:a", 0.9) is None
        await store.aclose()

    asyncio.run(scenario())


def test_a_persisted_store_is_found_again_after_a_restart(tmp_path: Path) -> None:
    async def write() -> None:
        store = index(path=str(tmp_path), shard_size=1)
        await store.add(NORTH, "ns:a", b"kept", None)
        await store.add(EAST, "ns:a", b"also kept", None)
        await store.aclose()

    async def read() -> None:
        store = index(path=str(tmp_path), shard_size=1)
        await store.open()
        assert store.layout.entries == 2
        match = await store.search(NORTH_BY_EAST, "ns:a", 0.9)
        assert match is not None and match.value == b"kept"
        await store.aclose()

    asyncio.run(write())
    asyncio.run(read())
