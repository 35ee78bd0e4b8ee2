"""The ``qdrant`` index on Qdrant's embedded engine (qdrant-edge-py), the real engine on disk:
persistence, expiry, eviction, scopes, ordering, purges, damaged directories, and lookups
that keep answering while the HNSW graph is built in another process."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

pytest.importorskip("qdrant_edge")

from portkey_mw_plugins.qdrant_cache import QdrantIndex, register_semantic_indexes
from portkey_mw_plugins.qdrant_cache.edge import SWEEP_INTERVAL

from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import SemanticIndex
from portkey_mw.store.sql.engine import default_data_dir

DIM = 8


def unit(*values: float) -> list[float]:
    padded = [*values, *[0.0] * (DIM - len(values))]
    norm = math.sqrt(sum(v * v for v in padded))
    return [v / norm for v in padded]


def axis(number: int) -> list[float]:
    """Orthogonal unit vectors (cosine 0 between any two), DIM of them."""
    return unit(*[1.0 if i == number else 0.0 for i in range(DIM)])


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def edge_index(path: Path | None, **options: object) -> QdrantIndex:
    return QdrantIndex(
        dim=DIM,
        path=str(path) if path else None,
        **options,  # type: ignore[arg-type]
    )


def entries(index: QdrantIndex) -> int:
    assert index.edge is not None
    return index.edge.entries


async def test_entries_and_their_questions_survive_a_restart(tmp_path: Path) -> None:
    store = edge_index(tmp_path / "cache")
    await store.add(axis(0), "ns:a", b'{"a":1}', None, question="what is one?")
    await store.add(axis(1), "ns:a", b'{"a":2}', 3600, question="what is two?")
    await store.aclose()

    again = edge_index(tmp_path / "cache")
    await again.open()
    assert entries(again) == 2
    found = await again.candidates(unit(1, 0.1), "ns:a", 0.9, 5)
    assert [(m.value, m.question) for m in found] == [(b'{"a":1}', "what is one?")]
    # Ids go on from the newest entry: a new one replaces nothing.
    await again.add(axis(2), "ns:a", b"3", None)
    assert entries(again) == 3
    await again.aclose()
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700


async def test_expired_entries_are_never_answered_and_are_swept() -> None:
    clock = Clock()
    store = edge_index(None, clock=clock)
    await store.add(axis(0), "ns:a", b"short", 10)
    await store.add(axis(1), "ns:a", b"long", 1000)
    assert await store.search(axis(0), "ns:a", 0.9) is not None
    clock.now += 11
    assert await store.search(axis(0), "ns:a", 0.9) is None  # filtered out at search
    assert (await store.search(axis(1), "ns:a", 0.9)) is not None
    assert entries(store) == 2  # not deleted yet
    clock.now += SWEEP_INTERVAL
    await store.add(axis(2), "ns:a", b"new", None)  # a store long after the last sweep
    assert entries(store) == 2  # "short" and "long" swept, "new" stored
    await store.aclose()


async def test_past_max_entries_the_oldest_go_first(tmp_path: Path) -> None:
    store = edge_index(tmp_path / "cache", max_entries=40)
    vectors = np.random.default_rng(7).standard_normal((60, DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    for number in range(50):
        await store.add(vectors[number].tolist(), "ns:a", str(number).encode(), None)
        assert entries(store) <= 40
    await store.aclose()

    # After a restart, eviction still knows which entries are oldest.
    store = edge_index(tmp_path / "cache", max_entries=40)
    for number in range(50, 60):
        await store.add(vectors[number].tolist(), "ns:a", str(number).encode(), None)
        assert entries(store) <= 40
    kept = set()
    for number in range(60):
        match = await store.search(vectors[number].tolist(), "ns:a", 0.999)
        if match is not None and match.value == str(number).encode():
            kept.add(number)
    assert 38 <= len(kept) <= 40
    assert kept == set(range(60 - len(kept), 60))  # the newest, none older
    await store.aclose()


async def test_a_search_never_leaves_its_scope() -> None:
    store = edge_index(None)
    scopes = [f"ns{n % 3}:{n}" for n in range(60)]
    for scope in scopes:  # every scope holds the very same vector
        await store.add(axis(0), scope, scope.encode(), None, question=scope)
    for scope in scopes:
        found = await store.candidates(axis(0), scope, 0.5, 10)
        assert [m.value for m in found] == [scope.encode()]
    assert await store.candidates(axis(0), "ns0:missing", 0.0, 10) == []
    await store.aclose()


async def test_candidates_come_best_first_within_the_limit_and_threshold() -> None:
    store = edge_index(None)
    query = axis(0)
    for name, closeness in (("far", 0.5), ("best", 0.99), ("good", 0.9), ("near", 0.8)):
        other = math.sqrt(1 - closeness**2)
        await store.add(unit(closeness, other), "ns:a", name.encode(), None, question=name)
    found = await store.candidates(query, "ns:a", 0.6, 2)
    assert [m.question for m in found] == ["best", "good"]
    assert found[0].score == pytest.approx(0.99, abs=1e-4)
    found = await store.candidates(query, "ns:a", 0.6, 10)
    assert [m.question for m in found] == ["best", "good", "near"]  # "far" under threshold
    await store.aclose()


async def test_clear_removes_one_namespace_or_all_and_counts() -> None:
    store = edge_index(None)
    await store.add(axis(0), "one:a", b"1", None)
    await store.add(axis(0), "one:b", b"2", None)
    await store.add(axis(0), "two:a", b"3", None)
    assert await store.clear("one") == 2
    assert await store.search(axis(0), "one:a", 0.9) is None
    assert await store.search(axis(0), "two:a", 0.9) is not None
    assert await store.clear("absent") == 0
    assert await store.clear(None) == 1
    assert await store.search(axis(0), "two:a", 0.9) is None
    assert entries(store) == 0
    await store.aclose()


def damage_config(directory: Path) -> None:
    (directory / "edge_config.json").write_text("{not json")


def truncate_segments(directory: Path) -> None:
    for file in (directory / "segments").rglob("*"):
        if file.is_file():
            os.truncate(file, file.stat().st_size // 2)


def scribble_on_the_wal(directory: Path) -> None:
    for file in (directory / "wal").iterdir():
        with file.open("r+b") as handle:
            handle.write(b"\xff" * 64)


def replace_with_garbage(directory: Path) -> None:
    for file in directory.rglob("*"):
        if file.is_file():
            file.write_bytes(os.urandom(64))


@pytest.mark.parametrize(
    "damage", [damage_config, truncate_segments, scribble_on_the_wal, replace_with_garbage]
)
async def test_an_unreadable_index_is_moved_aside_and_rebuilt_empty(
    tmp_path: Path, damage: object
) -> None:
    directory = tmp_path / "cache"
    store = edge_index(directory)
    await store.add(axis(0), "ns:a", b"lost", None)
    await store.aclose()
    damage(directory)  # type: ignore[operator]

    with capture_logs() as logs:
        store = edge_index(directory)
        await store.open()
    aside = [name for name in os.listdir(tmp_path) if name.startswith("cache.corrupt-")]
    assert len(aside) == 1 and os.listdir(tmp_path / aside[0])  # the old files, kept
    assert [e for e in logs if e["log_level"] == "error" and e["path"] == str(directory)]
    assert await store.search(axis(0), "ns:a", 0.5) is None
    await store.add(axis(0), "ns:a", b"fresh", None)
    assert (await store.search(axis(0), "ns:a", 0.5)).value == b"fresh"  # type: ignore[union-attr]
    await store.aclose()


async def test_an_index_made_for_another_vector_size_is_set_aside(tmp_path: Path) -> None:
    store = edge_index(tmp_path / "cache")
    await store.add(axis(0), "ns:a", b"eight", None)
    await store.aclose()
    with capture_logs() as logs:
        wider = QdrantIndex(dim=2 * DIM, path=str(tmp_path / "cache"))
        await wider.open()
    assert any("incompatible" in str(e.get("error")) for e in logs)
    assert [name for name in os.listdir(tmp_path) if name.startswith("cache.corrupt-")]
    await wider.add([1.0] + [0.0] * (2 * DIM - 1), "ns:a", b"sixteen", None)
    assert entries(wider) == 1
    await wider.aclose()


async def test_a_directory_in_use_is_not_opened_twice(tmp_path: Path) -> None:
    first = edge_index(tmp_path / "cache")
    await first.add(axis(0), "ns:a", b"first", None)
    with capture_logs() as logs:
        second = edge_index(tmp_path / "cache")
        await second.add(axis(0), "ns:a", b"second", None)
    assert any(e["log_level"] == "warning" and "in use" in e["event"] for e in logs)
    assert (await second.search(axis(0), "ns:a", 0.5)).value == b"second"  # type: ignore[union-attr]
    await second.aclose()
    await first.aclose()
    again = edge_index(tmp_path / "cache")
    assert (await again.search(axis(0), "ns:a", 0.5)).value == b"first"  # type: ignore[union-attr]
    await again.aclose()


async def test_lookups_keep_answering_while_the_index_is_built(tmp_path: Path) -> None:
    dim, count = 64, 3000
    vectors = np.random.default_rng(3).standard_normal((count + 200, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store = QdrantIndex(dim=dim, path=str(tmp_path / "cache"), index_after=count)
    edge = store.edge
    assert edge is not None
    await store.add(vectors[-1].tolist(), "gone:a", b"purged during the build", None)
    for number in range(count - 2):
        await store.add(vectors[number].tolist(), f"ns:{number % 10}", str(number).encode(), None)
    assert not edge.building
    await store.add(vectors[count - 2].tolist(), "ns:8", str(count - 2).encode(), None)
    assert edge.building  # the index_after-th entry started a build

    # Lookups that began and ended while the child process was building: had the graph been
    # built in this process, holding the GIL, none could.
    answered_while_building = 0
    purged = False
    added = count
    deadline = time.monotonic() + 60
    while edge.building:
        assert time.monotonic() < deadline, "the index build did not finish"
        probe = added % (count - 1)
        during = edge.indexing_elsewhere
        match = await store.search(vectors[probe].tolist(), f"ns:{probe % 10}", 0.999)
        assert match is not None and match.value == str(probe).encode()
        answered_while_building += during and edge.indexing_elsewhere
        if during and not purged:  # purged during the build: replayed too
            assert await store.clear("gone") == 1
            purged = True
        if added < count + 199:  # stored during the build: replayed onto the indexed copy
            await store.add(vectors[added].tolist(), "ns:new", str(added).encode(), None)
            added += 1
    await edge.wait_built()
    assert answered_while_building > 0 and purged
    assert edge.builds == 1 and edge.last_build_seconds is not None
    assert await edge.indexed() >= count - 1  # the graph covers what the copy held
    assert entries(store) == added - 1  # the purged entry
    assert await store.search(vectors[-1].tolist(), "gone:a", 0.5) is None
    for number in range(count, added):
        match = await store.search(vectors[number].tolist(), "ns:new", 0.999)
        assert match is not None and match.value == str(number).encode()
    for number in range(0, count, 97):
        match = await store.search(vectors[number].tolist(), f"ns:{number % 10}", 0.999)
        assert match is not None and match.value == str(number).encode()
    await store.aclose()
    assert sorted(os.listdir(tmp_path)) == ["cache", "cache.lock"]  # no copy left behind


async def test_a_failed_build_is_logged_and_the_shard_goes_on_unindexed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import portkey_mw_plugins.qdrant_cache.edge as edge_module

    failing = tmp_path / "failing_build.py"
    failing.write_text("import sys\nprint('no room left', file=sys.stderr)\nsys.exit(3)\n")
    monkeypatch.setattr(edge_module, "BUILDER", failing)
    store = edge_index(tmp_path / "cache", index_after=5)
    with capture_logs() as logs:
        for number in range(DIM):
            await store.add(axis(number), "ns:a", str(number).encode(), None)
        assert store.edge is not None
        await store.edge.wait_built()
    failure = [e for e in logs if "build failed" in e["event"]]
    assert failure and failure[0]["exit_code"] == 3 and "no room left" in failure[0]["error"]
    assert store.edge.builds == 0 and await store.edge.indexed() == 0
    for number in range(DIM):
        match = await store.search(axis(number), "ns:a", 0.9)
        assert match is not None and match.value == str(number).encode()
    await store.aclose()
    assert sorted(os.listdir(tmp_path)) == ["cache", "cache.lock", "failing_build.py"]


def registered(options: dict[str, object]) -> QdrantIndex:
    settings = ServerSettings.from_mapping(
        {"plugins": {"settings": {"portkey-mw.qdrant-cache": options}}}
    )
    found: list[SemanticIndex] = []
    register_semantic_indexes(register=found.append, settings=settings)
    index = found[0]
    assert isinstance(index, QdrantIndex)
    return index


def test_settings_choose_the_engine_and_its_directory(tmp_path: Path) -> None:
    default = registered({})
    assert default.edge is not None
    assert default.edge.path == default_data_dir() / "semantic-cache"
    # The tests' data directory, never the user's (see conftest).
    assert str(default_data_dir()) == os.environ["PORTKEY_MW_DATA_DIR"]
    chosen = registered({"path": str(tmp_path / "elsewhere")})
    assert chosen.edge is not None and chosen.edge.path == tmp_path / "elsewhere"
    in_memory = registered({"location": ":memory:"})
    assert in_memory.edge is not None and in_memory.edge.path is None
    local = registered({"engine": "local"})
    assert local.edge is None and local.local
    server = registered({"url": "http://127.0.0.1:1"})
    assert server.edge is None and not server.local
    with pytest.raises(ValueError, match="engine"):
        registered({"engine": "faiss"})


async def test_the_temporary_directory_is_removed_on_close() -> None:
    store = edge_index(None)
    await store.add(axis(0), "ns:a", b"x", None)
    assert store.edge is not None
    temporary = store.edge._temporary
    assert temporary is not None and temporary.exists()
    await store.aclose()
    assert not temporary.exists()


async def test_the_event_loop_never_runs_a_shard_call() -> None:
    store = edge_index(None)
    await store.open()
    assert store.edge is not None
    threads: set[str] = set()
    shard = store.edge._shard

    class Watched:
        """The real shard, noting which thread reaches for each of its methods."""

        def __getattr__(self, name: str) -> object:
            threads.add(threading.current_thread().name)
            return getattr(shard, name)

    store.edge._shard = Watched()
    await store.add(axis(0), "ns:a", b"x", None)
    await store.candidates(axis(0), "ns:a", 0.5, 3)
    await store.clear(None)
    store.edge._shard = shard
    await store.aclose()
    assert threads and all(name.startswith("portkey-mw-edge") for name in threads)


async def test_closing_twice_is_closing_once(tmp_path: Path) -> None:
    index = QdrantIndex(dim=4, path=str(tmp_path / "twice"))
    await index.open()
    await index.aclose()
    await index.aclose()  # the gateway's shutdown, then the owner's
