"""The semantic cache's decision on the shipped question pairs (``data/paraphrases.toml``),
as the gateway makes it: similarity at or above the threshold, then every verifier.

Read by tests/test_cache_semantic.py (floors on the rates) and benchmarks/bench_cache.py
(the figures). A pair is tried both ways round: either question may be the cached one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from portkey_mw.caching import SemanticUse
from portkey_mw.embedding import EmbeddingModel
from portkey_mw.interfaces import SemanticIndex, SemanticMatch, SemanticVerifier

PARAPHRASES = Path(__file__).parent / "data" / "paraphrases.toml"

Pairs = dict[str, dict[str, list[tuple[str, str]]]]


def load_pairs(path: Path = PARAPHRASES) -> Pairs:
    """``{"same": {kind: pairs}, "different": {kind: pairs}}``."""
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        side: {kind: [(a, b) for a, b in pairs] for kind, pairs in table[side].items()}
        for side in ("same", "different")
    }


@dataclass
class KindResult:
    """One kind's trials (two per pair): how many were served a cached answer."""

    trials: int = 0
    served: int = 0
    #: served on similarity alone (the threshold met, before verification)
    similar: int = 0
    #: verifier name -> trials at or above the threshold it vetoed
    vetoed: dict[str, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.served / self.trials if self.trials else 0.0

    @property
    def similar_rate(self) -> float:
        return self.similar / self.trials if self.trials else 0.0


@dataclass
class Evaluation:
    """Per-kind results of one threshold and verifier set."""

    threshold: float
    same: dict[str, KindResult]
    different: dict[str, KindResult]

    @staticmethod
    def _total(results: dict[str, KindResult]) -> KindResult:
        total = KindResult()
        for result in results.values():
            total.trials += result.trials
            total.served += result.served
            total.similar += result.similar
            for name, count in result.vetoed.items():
                total.vetoed[name] = total.vetoed.get(name, 0) + count
        return total

    @property
    def hit_rate(self) -> float:
        """Paraphrase trials answered from the cache (a right answer)."""
        return self._total(self.same).rate

    @property
    def false_hit_rate(self) -> float:
        """Different-question trials answered from the cache (a wrong answer)."""
        return self._total(self.different).rate

    def totals(self) -> tuple[KindResult, KindResult]:
        """The same-meaning and the different totals."""
        return self._total(self.same), self._total(self.different)


class _NoIndex(SemanticIndex):
    """Stands in for the index: the evaluation hands candidates to the verifiers itself."""

    name = "none"

    async def search(self, vector: object, scope: str, threshold: float) -> None:
        return None

    async def add(self, *args: object, **kwargs: object) -> None:
        return None

    async def clear(self, namespace: str | None = None) -> int:
        return 0


class PairScores:
    """Every pair's similarity under one embedding model (embedded once)."""

    def __init__(self, embedder: EmbeddingModel, pairs: Pairs) -> None:
        self.pairs = pairs
        texts = sorted(
            {q for side in pairs.values() for kind in side.values() for p in kind for q in p}
        )
        vectors = embedder.embed(texts)
        by_text = dict(zip(texts, np.asarray(vectors), strict=True))
        self.score = {
            pair: float(np.dot(by_text[pair[0]], by_text[pair[1]]))
            for side in pairs.values()
            for kind in side.values()
            for pair in kind
        }
        self.embedder = embedder

    async def evaluate(self, threshold: float, verifiers: Sequence[SemanticVerifier]) -> Evaluation:
        """The gateway's decision on every pair, both ways round."""
        sides: dict[str, dict[str, KindResult]] = {}
        for side, kinds in self.pairs.items():
            sides[side] = {}
            for kind, pairs in kinds.items():
                result = sides[side][kind] = KindResult()
                for first, second in pairs:
                    score = self.score[(first, second)]
                    for cached, asked in ((first, second), (second, first)):
                        result.trials += 1
                        if score < threshold:
                            continue
                        result.similar += 1
                        use = SemanticUse(
                            _NoIndex(), self.embedder, asked, "", threshold, 1.0, verifiers
                        )
                        match = SemanticMatch(value=b"", score=score, question=cached)
                        if await use.verified(match):
                            result.served += 1
                        for verifier in verifiers:
                            if not await verifier.verify(asked, cached):
                                result.vetoed[verifier.name] = (
                                    result.vetoed.get(verifier.name, 0) + 1
                                )
        return Evaluation(threshold, sides["same"], sides["different"])
