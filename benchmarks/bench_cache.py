"""Cache lookups on the embedded default (memory + Qdrant's embedded engine + all-MiniLM-L6-v2),
and the semantic cache's evaluation set.

One run, in one process, nothing asserted (the numbers depend on the machine):

1. the baseline: a request through the whole gateway pipeline, uncached, answered by the
   in-process ``mock`` provider with no delay -- the gateway's own overhead per request;
2. for 10,000 and 100,000 cached entries:
   * exact lookup p50 (key + memory backend), and a whole request answered by an exact hit;
   * semantic lookup p50/p99 -- embedding, the search on the embedded engine (HNSW built)
     and verification -- with every entry in the question's scope (the worst case), beside
     the embedding time; and a whole request answered by a semantic hit;
3. the evaluation set (``tests/data/paraphrases.toml``) at the default settings: hit and
   false-hit rates per kind, what each verifier vetoed, the rates at other thresholds, and
   the verification cost per candidate;
4. the index alone (``semantic_index_lookups.py``): lookup p50/p99 at 10k and 100k entries,
   in one scope and over 100, for the embedded engine beside qdrant-client's local mode.

The filler entries are random unit vectors (384 dimensions): a search costs the same
whatever they hold, and embedding 100,000 real questions would take minutes. A run takes
about ten minutes, most of it building HNSW graphs (in a child process, as the gateway does).

    python benchmarks/bench_cache.py [--sizes 10000 100000] [--lookups 300]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import structlog
from portkey_mw_plugins.memory_cache import MemoryCache
from portkey_mw_plugins.qdrant_cache import QdrantIndex
from portkey_mw_plugins.semantic_verifiers import FIRST_PARTY
from portkey_mw_plugins.semantic_verifiers.analysis import analyse

from portkey_mw import Endpoint, Gateway, RequestContext, ServerSettings
from portkey_mw.caching import CacheUse, SemanticUse, route_partition, semantic_question
from portkey_mw.config.server import DEFAULT_SIMILARITY_THRESHOLD, DEFAULT_VERIFIERS
from portkey_mw.embedding import EmbeddingModel
from portkey_mw.interfaces import SemanticMatch, SemanticVerifier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.paraphrase_eval
from semantic_index_lookups import measure as measure_index
from semantic_index_lookups import table as index_table

from tests.paraphrase_eval import PairScores, load_pairs

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


async def fill_index(index: QdrantIndex, scope: str, total: int, rng: np.random.Generator) -> float:
    """``total`` random entries in ``scope``, then the HNSW build; the build's seconds."""
    edge = index.edge
    assert edge is not None, "the embedded engine is the default"
    for start in range(0, total, INSERT_BATCH):
        size = min(INSERT_BATCH, total - start)
        vectors = rng.standard_normal((size, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        payload = index._payload(scope, b"{}", 3600, "filler")
        await edge.add_batch([(vector, payload) for vector in vectors.tolist()])
    started = time.perf_counter()
    edge.start_build()
    await edge.wait_built()
    return time.perf_counter() - started


def lookup_questions(count: int) -> list[str]:
    """What the semantic lookups ask: every other one the stored question reworded (a
    hit), the others the evaluation set's questions (mostly misses)."""
    questions = [pair[0] for pairs in load_pairs()["same"].values() for pair in pairs]
    return [questions[i % len(questions)] if i % 2 else REWORDED for i in range(count)]


async def measure_size(
    size: int, lookups: int, baseline_p50: float, embedder: EmbeddingModel, embed_p50: float
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

    # Semantic, with every entry in the question's scope (the worst case), on the default
    # embedded engine once its HNSW graph is built: embedding, search and verification.
    semantic = headers("semantic", "whole")
    settings = ServerSettings.from_mapping(
        {"mock": True, "plugins": {"block": ["portkey-mw.structlog-sink"]}}
    )
    gateway = Gateway(settings)
    partition = route_partition(await gateway.resolver.resolve(semantic), semantic)
    found = semantic_question(context(QUESTION, "whole"), partition)
    assert found is not None
    scope = found[1]
    with tempfile.TemporaryDirectory(prefix="portkey-mw-bench-") as directory:
        index = QdrantIndex(path=directory, max_entries=size * 2)
        build = await fill_index(index, scope, size, rng)
        verifiers = first_party_verifiers()
        await index.add(
            embedder.embed([QUESTION])[0], scope, orjson.dumps({"choices": []}), 3600, QUESTION
        )
        timed, hits = [], 0
        for question in lookup_questions(lookups):
            use = SemanticUse(
                index, embedder, question, scope, DEFAULT_SIMILARITY_THRESHOLD, 5.0, verifiers, 5
            )
            started = time.perf_counter()
            hits += await use.search() is not None
            timed.append(time.perf_counter() - started)
        p50, p99 = ms(timed)
        print(
            f"  semantic lookup, all in one scope (embed + search + verify) p50 {p50:6.2f} ms"
            f"  p99 {p99:6.2f} ms  = embedding + {p50 - embed_p50:.2f} ms"
            f"  ({hits} of {lookups} hit; HNSW built in {build:.0f} s off the process)"
        )

        # Whole requests answered from the cache, with this many entries in the store.
        gateway.cache_backends["memory"] = memory
        gateway.semantic_indexes["qdrant"] = index
        gateway.cache.embedder = embedder
        transport = httpx.ASGITransport(app=gateway)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            # Another question than the lookups' above, so that it starts as a miss.
            asked, reworded = "How do I delete my account?", "How can I delete my account?"
            await timed_requests(client, [chat_body(asked)], semantic, "MISS")
            await gateway.settled()  # the miss is stored after it was answered
            exact_hits = await timed_requests(client, [chat_body(asked)] * lookups, semantic, "HIT")
            semantic_hits = await timed_requests(
                client, [chat_body(reworded)] * lookups, semantic, "SEMANTIC_HIT"
            )
        await gateway.shutdown()
        await index.aclose()
    for name, times in (("exact hit", exact_hits), ("semantic hit", semantic_hits)):
        p50, p99 = ms(times)
        print(
            f"  whole request, {name:<13} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms"
            f"  (x{p50 / baseline_p50:.2f} the uncached request)"
        )


async def uncached_baseline(requests: int) -> float:
    settings = ServerSettings.from_mapping(
        {"mock": True, "plugins": {"block": ["portkey-mw.structlog-sink"]}}
    )
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


def first_party_verifiers() -> list[SemanticVerifier]:
    """The verifiers of ``cache.verifiers`` at its default, in its order."""
    by_name = {cls.name: cls() for cls in FIRST_PARTY}
    return [by_name[name] for name in DEFAULT_VERIFIERS]


async def evaluation(embedder: EmbeddingModel) -> None:
    """Hit and false-hit rates per kind of the shipped set at the default settings, what
    each verifier costs and catches, the rates at other thresholds, and the verification
    cost per candidate."""
    pairs = load_pairs()
    scores = PairScores(embedder, pairs)
    verifiers = first_party_verifiers()
    result = await scores.evaluate(DEFAULT_SIMILARITY_THRESHOLD, verifiers)
    same, different = result.totals()
    print(
        f"\nevaluation set: {sum(len(p) for p in pairs['same'].values())} same-meaning pairs,"
        f" {sum(len(p) for p in pairs['different'].values())} different;"
        f" each tried both ways round; threshold {DEFAULT_SIMILARITY_THRESHOLD},"
        f" verifiers {', '.join(DEFAULT_VERIFIERS)}"
    )
    print(
        f"  {'kind':<22}{'trials':>7}  similarity min/median/max{'similar':>9}{'served':>8}"
        "   vetoed by"
    )
    for side, results in (("same", result.same), ("different", result.different)):
        label = "hit" if side == "same" else "FALSE hit"
        for kind, kind_result in [*results.items(), ("ALL", same if side == "same" else different)]:
            kinds = pairs[side].values() if kind == "ALL" else [pairs[side][kind]]
            values = [scores.score[pair] for group in kinds for pair in group]
            spread = f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"
            vetoes = ", ".join(f"{n} {c}" for n, c in sorted(kind_result.vetoed.items()))
            print(
                f"  {side + '.' + kind:<22}{kind_result.trials:>7}  {spread:<25}"
                f"{kind_result.similar_rate:>9.1%}{kind_result.rate:>8.1%}   {vetoes}"
                + (f"   <- {label} rate" if kind == "ALL" else "")
            )
    print(
        "  (similar: trials at or above the threshold; served: also accepted by every"
        " verifier; vetoed by: trials at or above the threshold each verifier refused)"
    )
    print("\n  threshold   hit rate   false-hit rate   (similarity alone: hit / false hit)")
    for threshold in sorted({0.70, 0.75, 0.80, 0.85, DEFAULT_SIMILARITY_THRESHOLD, 0.90}):
        at = await scores.evaluate(threshold, verifiers)
        s_total, d_total = at.totals()
        default = "  <- default" if threshold == DEFAULT_SIMILARITY_THRESHOLD else ""
        print(
            f"  {threshold:9.2f}   {at.hit_rate:8.1%}   {at.false_hit_rate:14.1%}"
            f"   ({s_total.similar_rate:.1%} / {d_total.similar_rate:.1%}){default}"
        )
    # Verification cost: every verifier on one candidate, both readings new (a question
    # never seen), and with the cached question's reading kept (how a lookup runs).
    all_pairs = [pair for side in pairs.values() for kind in side.values() for pair in kind]
    cold, warm = [], []
    for cached, asked in all_pairs:
        analyse.cache_clear()
        use = SemanticUse(None, embedder, asked, "", 0.0, 1.0, verifiers)  # type: ignore[arg-type]
        match = SemanticMatch(value=b"", score=1.0, question=cached)
        started = time.perf_counter()
        await use.verified(match)
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        await use.verified(match)
        warm.append(time.perf_counter() - started)
    print(
        f"\nverification per candidate, all six verifiers: {statistics.median(cold) * 1e6:.0f} µs"
        f" p50 reading both questions (p99 {ms(cold)[1] * 1000:.0f} µs),"
        f" {statistics.median(warm) * 1e6:.1f} µs p50 with both readings cached;"
        f" a lookup verifies at most {ServerSettings().cache.semantic_candidates} candidates"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--lookups", type=int, default=300)
    args = parser.parse_args()
    # The verifiers log each veto at debug level: not figures.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    # qdrant-client warns that local mode is meant for small collections: measured here.
    warnings.filterwarnings("ignore", message="Local mode is not recommended")

    embedder = EmbeddingModel()
    await embedder.wait_ready()
    # The same mix of questions as the semantic lookups below ask, so that the two compare.
    embedding = []
    for question in lookup_questions(400):
        started = time.perf_counter()
        await embedder.aembed(question)
        embedding.append(time.perf_counter() - started)
    embed_p50 = ms(embedding)[0]
    print(
        "embedding one question (all-MiniLM-L6-v2 int8, 1 thread, the lookups' mix):"
        f" p50 {embed_p50:.2f} ms\n"
    )
    baseline = await uncached_baseline(args.lookups * 3)
    for size in args.sizes:
        await measure_size(size, args.lookups, baseline, embedder, embed_p50)
    await evaluation(embedder)
    embedder.close()
    print(
        "\nthe index alone, through QdrantIndex.candidates: the embedded engine (default)"
        " beside qdrant-client's local mode (semantic_index_lookups.py)"
    )
    print(index_table(measure_index(tuple(args.sizes), (1, 100), args.lookups)))


if __name__ == "__main__":
    asyncio.run(main())
