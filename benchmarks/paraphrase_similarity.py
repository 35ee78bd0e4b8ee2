"""Cosine similarity of the semantic cache's evaluation pairs, per kind.

Embeds both questions of every pair in ``tests/data/paraphrases.toml`` with the model the
gateway uses (the shared offline all-MiniLM-L6-v2) and prints, for each kind of ``same``
and ``different`` pair, the minimum, median and maximum similarity and how many pairs
reach 0.85 and the default threshold. For ``same`` kinds a pair at or above the threshold
is a right hit; for ``different`` kinds it is a candidate wrong hit that only the
verifiers can stop. Nothing is asserted.

    HF_HUB_OFFLINE=1 python benchmarks/paraphrase_similarity.py
"""

from __future__ import annotations

import statistics
import tomllib
from pathlib import Path

import numpy as np

from portkey_mw.config.server import DEFAULT_SIMILARITY_THRESHOLD, EmbeddingOptions
from portkey_mw.embedding import EmbeddingModel, shared_model

PARAPHRASES = Path(__file__).parent.parent / "tests" / "data" / "paraphrases.toml"
#: the cut-off the brief asks about, beside the configured default
REPORTED_CUT = 0.85

Pair = tuple[str, str]


def load_kinds(path: Path = PARAPHRASES) -> dict[str, dict[str, list[Pair]]]:
    """``{"same": {kind: pairs}, "different": {kind: pairs}}`` from the evaluation file."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return {
        table: {kind: [(first, second) for first, second in pairs] for kind, pairs in kinds.items()}
        for table, kinds in data.items()
    }


def similarities(model: EmbeddingModel, pairs: list[Pair]) -> list[float]:
    """Cosine similarity of each pair (the model's vectors are unit length)."""
    texts = [text for pair in pairs for text in pair]
    vectors = np.array(model.embed(texts))
    return [float(np.dot(vectors[i], vectors[i + 1])) for i in range(0, len(texts), 2)]


def table_lines(kinds: dict[str, dict[str, list[Pair]]], model: EmbeddingModel) -> list[str]:
    """The per-kind table, one line per kind plus one total line per table."""
    threshold = DEFAULT_SIMILARITY_THRESHOLD
    header = (
        f"{'table':<10} {'kind':<11} {'pairs':>5} {'min':>6} {'median':>6} {'max':>6}"
        f" {'>=' + format(REPORTED_CUT, '.2f'):>7} {'>=' + format(threshold, '.2f'):>7}"
    )
    lines = [header, "-" * len(header)]
    for table, by_kind in kinds.items():
        everything: list[float] = []
        for kind, pairs in by_kind.items():
            scores = similarities(model, pairs)
            everything.extend(scores)
            lines.append(_row(table, kind, scores, threshold))
        lines.append(_row(table, "(all)", everything, threshold))
        lines.append("")
    return lines


def _row(table: str, kind: str, scores: list[float], threshold: float) -> str:
    at_cut = sum(score >= REPORTED_CUT for score in scores)
    at_threshold = sum(score >= threshold for score in scores)
    return (
        f"{table:<10} {kind:<11} {len(scores):>5} {min(scores):>6.3f}"
        f" {statistics.median(scores):>6.3f} {max(scores):>6.3f} {at_cut:>7} {at_threshold:>7}"
    )


def main() -> None:
    """Print the table for the shipped evaluation set."""
    model = shared_model(EmbeddingOptions())
    try:
        for line in table_lines(load_kinds(), model):
            print(line)
    finally:
        model.close()


if __name__ == "__main__":
    main()
