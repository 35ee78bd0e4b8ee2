"""Cache lookups on the embedded default (memory + Qdrant local mode + all-MiniLM-L6-v2).

One run, in one process, nothing asserted (the numbers depend on the machine):

1. the baseline: a request through the whole gateway pipeline, uncached, answered by the
   in-process ``mock`` provider with no delay -- the gateway's own overhead per request;
2. for 10,000 and 100,000 cached entries:
   * exact lookup p50 (key + memory backend), and a whole request answered by an exact hit;
   * semantic lookup p50/p99 -- embedding the question plus the Qdrant search -- with all
     entries in the question's scope (the worst case: local mode searches a scope by brute
     force) and spread over 100 scopes; and a whole request answered by a semantic hit;
3. hit rate and false-hit rate of the shipped paraphrase set
   (``tests/data/paraphrases.toml``) at the default threshold and a few others.

The filler entries are random unit vectors (384 dimensions): a search costs the same
whatever they hold, and embedding 100,000 real questions would take minutes.

    python benchmarks/bench_cache.py [--sizes 10000 100000] [--lookups 300]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import tomllib
import uuid
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
from portkey_mw_plugins.memory_cache import MemoryCache
from portkey_mw_plugins.qdrant_cache import QdrantIndex

from portkey_mw import Endpoint, Gateway, RequestContext, ServerSettings
from portkey_mw.caching import CacheUse, SemanticUse, route_partition, semantic_question
from portkey_mw.config.server import DEFAULT_SIMILARITY_THRESHOLD
from portkey_mw.embedding import EmbeddingModel

PARAPHRASES = Path(__file__).parent.parent / "tests" / "data" / "paraphrases.toml"
QUESTION = "How do I reset my password?"
REWORDED = "How can I reset my password?"
DIM = 384
INSERT_BATCH = 5_000


def ms(seconds: list[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds."""
    cuts = statistics.quantiles(seconds, n=100)
    return cuts[49] * 1000, cuts[98] * 1000


def chat_body(question: str) -> dict[str, Any]:
    return {"model": "mock-gpt", "messages": [{"role": "user", "content": question}]}


def context(question: str, namespace: str = "default") -> RequestContext:
    ctx = RequestContext(
        trace_id="bench",
        endpoint=Endpoint.CHAT_COMPLETIONS,
        method="POST",
        path="/v1/chat/completions",
        headers={"x-portkey-cache-namespace": namespace},
        body=chat_body(question),
        raw_body=b"",
        response_headers={},
        gateway_state={},
    )
    return ctx


def headers(mode: str, namespace: str) -> dict[str, str]:
    config = {"provider": "mock", "cache": {"mode": mode, "max_age": 3600}}
    return {
        "x-portkey-config": orjson.dumps(config).decode(),
        "x-portkey-cache-namespace": namespace,
    }


async def timed_requests(
    client: httpx.AsyncClient, bodies: list[dict[str, Any]], head: dict[str, str], status: str
) -> list[float]:
    """Seconds per request, checking each got the expected cache status."""
    times = []
    for body in bodies:
        started = time.perf_counter()
        reply = await client.post("/v1/chat/completions", json=body, headers=head)
        times.append(time.perf_counter() - started)
        got = reply.headers.get("x-portkey-cache-status")
        assert reply.status_code == 200 and got == status, (reply.status_code, got)
    return times


def fill_index(index: QdrantIndex, scopes: list[str], total: int, rng: np.random.Generator) -> None:
    """``total`` random entries spread evenly over ``scopes``, in batches."""
    from qdrant_client import models

    client = index._qdrant()
    per_scope = total // len(scopes)
    payload = {"expires_at": time.time() + 3600, "value": "{}"}
    for scope in scopes:
        for start in range(0, per_scope, INSERT_BATCH):
            size = min(INSERT_BATCH, per_scope - start)
            vectors = rng.standard_normal((size, DIM)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            points = [
                models.PointStruct(id=str(uuid.uuid4()), vector=v, payload=payload)
                for v in vectors.tolist()
            ]
            index.layout.add(client, points, scope)


async def measure_size(
    size: int, lookups: int, baseline_p50: float, embedder: EmbeddingModel
) -> None:
    rng = np.random.default_rng(size)
    print(f"\n{size:,} cached entries")

    # Exact: the key and a memory-backend lookup, at this many entries.
    memory = MemoryCache(max_entries=size + 10)
    for i in range(size):
        await memory.set(f"default:{i:064x}", b'{"filler": true}', 3600)
    ctx = context(QUESTION)
    await memory.set(CacheUse(memory, ctx, 3600).key, orjson.dumps({"choices": []}), 3600)
    exact = []
    for _ in range(lookups):
        started = time.perf_counter()
        use = CacheUse(memory, ctx, 3600)
        assert await use.lookup(ctx) is not None
        exact.append(time.perf_counter() - started)
    p50, _ = ms(exact)
    print(f"  exact lookup (key + memory get)   p50 {p50 * 1000:8.1f} µs")

    # Semantic: embed the question, search Qdrant's local mode, in both layouts.
    found = semantic_question(context(QUESTION))
    assert found is not None
    scope = found[1]
    questions = [pair[0] for pair in paraphrase_pairs()["same"]]
    for layout, scopes in (
        ("all in the question's scope", [scope]),
        ("over 100 scopes", [scope] + [f"default:filler-{i}" for i in range(99)]),
    ):
        index = QdrantIndex(max_entries=size * 2)
        started = time.perf_counter()
        fill_index(index, scopes, size, rng)
        filled = time.perf_counter() - started
        semantic = []
        for i in range(lookups):
            question = questions[i % len(questions)]
            use = SemanticUse(index, embedder, question, scope, DEFAULT_SIMILARITY_THRESHOLD, 5.0)
            started = time.perf_counter()
            await use.search()
            semantic.append(time.perf_counter() - started)
        p50, p99 = ms(semantic)
        print(
            f"  semantic lookup, {layout:<28} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  (x{p50 / baseline_p50:.1f} the uncached overhead; filled in {filled:.0f} s)"
        )
        await index.aclose()

    # Whole requests answered from the cache, with this many entries in the store (in a
    # namespace of their own, so the question starts as a miss).
    semantic = headers("semantic", "whole")
    settings = ServerSettings.from_mapping({"plugins": {"block": ["portkey-mw.structlog-sink"]}})
    gateway = Gateway(settings)
    partition = route_partition(await gateway.resolver.resolve(semantic), semantic)
    found = semantic_question(context(QUESTION, "whole"), partition)
    assert found is not None
    scope = found[1]
    gateway.cache_backends["memory"] = memory
    index = QdrantIndex(max_entries=size * 2)
    fill_index(index, [scope], size, rng)
    gateway.semantic_indexes["qdrant"] = index
    gateway._embedder = embedder
    transport = httpx.ASGITransport(app=gateway)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        await timed_requests(client, [chat_body(QUESTION)], semantic, "MISS")
        await gateway.settled()  # the miss is stored after it was answered
        hits = await timed_requests(client, [chat_body(QUESTION)] * lookups, semantic, "HIT")
        semantic_hits = await timed_requests(
            client, [chat_body(REWORDED)] * lookups, semantic, "SEMANTIC_HIT"
        )
    gateway._embedder = None  # shared with the next size; not the gateway's to close
    await gateway.shutdown()
    await index.aclose()
    for name, times in (("exact hit", hits), ("semantic hit", semantic_hits)):
        p50, p99 = ms(times)
        print(
            f"  whole request, {name:<13} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  (x{p50 / baseline_p50:.2f} the uncached request)"
        )


async def uncached_baseline(requests: int) -> float:
    settings = ServerSettings.from_mapping({"plugins": {"block": ["portkey-mw.structlog-sink"]}})
    gateway = Gateway(settings)
    transport = httpx.ASGITransport(app=gateway)
    bodies = [chat_body(f"question {i}") for i in range(requests)]
    async with (
        gateway.lifespan(),
        httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
    ):
        await timed_requests(client, bodies[:50], {"x-portkey-provider": "mock"}, "DISABLED")
        times = await timed_requests(client, bodies, {"x-portkey-provider": "mock"}, "DISABLED")
    p50, p99 = ms(times)
    print(
        f"uncached request through the gateway (mock provider, no delay): p50 {p50:.2f} ms"
        f"  p99 {p99:.2f} ms"
    )
    return p50


def paraphrase_pairs() -> dict[str, list[list[str]]]:
    """The `same` and `different` pairs of the paraphrase set, each with all kinds together."""
    tables = tomllib.loads(PARAPHRASES.read_text(encoding="utf-8"))
    return {
        table: [pair for pairs in tables[table].values() for pair in pairs]
        for table in ("same", "different")
    }


def paraphrase_rates(embedder: EmbeddingModel) -> None:
    pairs = paraphrase_pairs()
    scores: dict[str, list[float]] = {}
    for kind in ("same", "different"):
        scores[kind] = []
        for first, second in pairs[kind]:
            a, b = embedder.embed([first, second])
            scores[kind].append(float(np.dot(a, b)))
    same, different = np.array(scores["same"]), np.array(scores["different"])
    print(
        f"\nparaphrase set ({len(same)} same-meaning pairs, {len(different)} different):"
        f" similarity of same-meaning pairs p50 {np.median(same):.3f} (min {same.min():.3f}),"
        f" of different pairs p50 {np.median(different):.3f} (max {different.max():.3f})"
    )
    for threshold in sorted({0.80, 0.85, DEFAULT_SIMILARITY_THRESHOLD, 0.90, 0.95}):
        default = "  <- default" if threshold == DEFAULT_SIMILARITY_THRESHOLD else ""
        print(
            f"  threshold {threshold:.2f}: hit rate {np.mean(same >= threshold):6.1%}"
            f"   false-hit rate {np.mean(different >= threshold):6.1%}{default}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    # qdrant-client warns that local mode is meant for small collections: measured here.
    warnings.filterwarnings("ignore", message="Local mode is not recommended")

    embedder = EmbeddingModel()
    await embedder.wait_ready()
    started = time.perf_counter()
    for _ in range(100):
        embedder.embed([REWORDED])
    print(
        f"embedding one question (all-MiniLM-L6-v2 int8, 1 thread): "
        f"{(time.perf_counter() - started) * 10:.2f} ms mean\n"
    )
    baseline = await uncached_baseline(args.lookups * 3)
    for size in args.sizes:
        await measure_size(size, args.lookups, baseline, embedder)
    paraphrase_rates(embedder)
    embedder.close()


if __name__ == "__main__":
    asyncio.run(main())
