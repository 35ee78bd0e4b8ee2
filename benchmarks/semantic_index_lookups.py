"""Semantic index lookups: the embedded engine (qdrant-edge-py) beside qdrant-client's local
mode, through ``QdrantIndex.candidates`` -- the call the gateway makes.

For each size (10,000 and 100,000 entries) and each spread (all in one scope, or over 100
scopes): random unit vectors of 384 dimensions (seeded), and lookups for stored vectors
nudged a little, so that each has one right answer (``found`` says how often it came first:
HNSW is approximate). The edge engine is measured before its HNSW graph exists (brute force
in Rust) and after the background build has finished; the build's time is given. Local mode
at 100,000 entries in one scope costs tens of milliseconds a lookup, so it gets fewer.
Nothing is asserted: the numbers depend on the machine.

    python benchmarks/semantic_index_lookups.py [--sizes 10000 100000] [--lookups 300]

``measure()`` returns the rows (``bench_cache.py`` prints them beside its own figures).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from portkey_mw_plugins.qdrant_cache import QdrantIndex, namespace_of

DIM = 384
THRESHOLD = 0.9
LIMIT = 3
BATCH = 1000
#: lookups before the edge index is built, and for local mode past this many entries a scope
FEW_LOOKUPS = 60
SLOW_SCOPE = 20_000


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    rows = rng.standard_normal((count, DIM)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def percentiles(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000


class Data:
    """One data set: vectors, their scopes, and lookups with their right answers."""

    def __init__(self, size: int, scope_count: int, lookups: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.vectors = unit_rows(rng, size)
        self.scopes = [f"bench:{number}" for number in range(scope_count)]
        self.scope_of = [self.scopes[number % scope_count] for number in range(size)]
        self.targets = rng.integers(0, size, lookups)
        nudged = self.vectors[self.targets] + 0.01 * unit_rows(rng, lookups)
        self.queries = nudged / np.linalg.norm(nudged, axis=1, keepdims=True)

    def payload(self, number: int) -> dict[str, Any]:
        scope = self.scope_of[number]
        return {
            "scope": scope,
            "namespace": namespace_of(scope),
            "expires_at": time.time() + 86_400,
            "value": str(number),
            "question": "",
        }


async def lookups(index: QdrantIndex, data: Data, count: int) -> tuple[list[float], float]:
    """Time ``count`` lookups; return the times and the share answered right first."""
    times, right = [], 0
    for query, target in zip(data.queries[:count], data.targets[:count], strict=True):
        started = time.perf_counter()
        found = await index.candidates(query.tolist(), data.scope_of[target], THRESHOLD, LIMIT)
        times.append(time.perf_counter() - started)
        right += bool(found) and found[0].value == str(target).encode()
    return times, right / count


async def measure_edge(data: Data, count: int, directory: Path) -> dict[str, Any]:
    size = len(data.vectors)
    index = QdrantIndex(dim=DIM, path=str(directory / "edge"), max_entries=size * 2)
    edge = index.edge
    assert edge is not None
    for start in range(0, size, BATCH):
        numbers = range(start, min(size, start + BATCH))
        await edge.add_batch([(data.vectors[n].tolist(), data.payload(n)) for n in numbers])
    before, _ = await lookups(index, data, min(count, FEW_LOOKUPS))
    started = time.perf_counter()
    edge.start_build()
    await edge.wait_built()
    build = time.perf_counter() - started
    indexed = await edge.indexed()
    times, found = await lookups(index, data, count)
    await index.aclose()
    return row(
        "edge",
        data,
        times,
        found,
        p50_before_build_ms=percentiles(before)[0],
        build_s=build,
        indexed=indexed,
    )


async def measure_local(data: Data, count: int) -> dict[str, Any]:
    from qdrant_client import models

    size = len(data.vectors)
    index = QdrantIndex(dim=DIM, engine="local", max_entries=size * 2)
    await index.open()
    client = index._qdrant()
    by_scope: dict[str, list[Any]] = {}
    for number in range(size):
        point = models.PointStruct(
            id=str(uuid.uuid4()), vector=data.vectors[number].tolist(), payload=data.payload(number)
        )
        by_scope.setdefault(data.scope_of[number], []).append(point)
    for scope, points in by_scope.items():
        for start in range(0, len(points), BATCH):
            index.layout.add(client, points[start : start + BATCH], scope)
    if size // len(data.scopes) > SLOW_SCOPE:
        count = min(count, FEW_LOOKUPS)
    times, found = await lookups(index, data, count)
    await index.aclose()
    return row("local", data, times, found)


def row(
    engine: str, data: Data, times: list[float], found: float, **built: float | int | None
) -> dict[str, Any]:
    """One engine's figures on one data set (``built``: the edge engine's build figures)."""
    p50, p99 = percentiles(times)
    return {
        "engine": engine,
        "entries": len(data.vectors),
        "scopes": len(data.scopes),
        "lookups": len(times),
        "p50_ms": p50,
        "p99_ms": p99,
        "found": found,
        "p50_before_build_ms": built.get("p50_before_build_ms"),
        "build_s": built.get("build_s"),
        "indexed": built.get("indexed"),
    }


async def measure_async(
    sizes: tuple[int, ...] = (10_000, 100_000),
    scopes: tuple[int, ...] = (1, 100),
    lookups: int = 300,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per engine, size and spread (see the module docstring)."""
    # qdrant-client warns that local mode is meant for small collections: measured here.
    warnings.filterwarnings("ignore", message="Local mode is not recommended")
    rows = []
    with tempfile.TemporaryDirectory(prefix="portkey-mw-bench-") as directory:
        for size in sizes:
            for scope_count in scopes:
                data = Data(size, scope_count, lookups, seed + size + scope_count)
                case = Path(directory) / f"{size}-{scope_count}"
                rows.append(await measure_edge(data, lookups, case))
                rows.append(await measure_local(data, lookups))
    return rows


def measure(
    sizes: tuple[int, ...] = (10_000, 100_000),
    scopes: tuple[int, ...] = (1, 100),
    lookups: int = 300,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """:func:`measure_async` on an event loop of its own (in a thread of its own when the
    caller already runs one, which then waits for it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(measure_async(sizes, scopes, lookups, seed))
    result: list[list[dict[str, Any]]] = []
    worker = threading.Thread(
        target=lambda: result.append(asyncio.run(measure_async(sizes, scopes, lookups, seed)))
    )
    worker.start()
    worker.join()
    return result[0]


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table."""
    lines = [
        f"{'engine':<6} {'entries':>8} {'scopes':>6} {'lookups':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'found':>6} {'p50 unbuilt':>11} {'build s':>8}"
    ]
    for row in rows:
        unbuilt = row["p50_before_build_ms"]
        build = row["build_s"]
        lines.append(
            f"{row['engine']:<6} {row['entries']:>8} {row['scopes']:>6} {row['lookups']:>7} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {row['found']:>6.0%} "
            f"{'' if unbuilt is None else f'{unbuilt:.2f}':>11} "
            f"{'' if build is None else f'{build:.1f}':>8}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--scopes", type=int, nargs="+", default=[1, 100])
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    rows = measure(tuple(args.sizes), tuple(args.scopes), args.lookups)
    print(table(rows))


if __name__ == "__main__":
    main()
