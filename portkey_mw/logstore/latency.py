"""Latency percentiles from a log-scale histogram.

Every stored latency gets a bucket index, ``ceil(log_g(ms))`` with g = 1.02 / 0.98 (so
each bucket is about 4% wide), and a percentile is read from bucket counts: nearest rank
(the bucket holding rank ``ceil(p * n / 100)`` among the ``n`` latencies), reported as
the bucket's midpoint, within :data:`RELATIVE_ERROR` (2%) of the exact latency at that
rank. Counts per bucket add up, so the hourly rollups and the raw rows give the same
answer for the same records, and no query sorts latencies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

__all__ = ["RELATIVE_ERROR", "add_counts", "bucket_index", "bucket_value", "percentile"]

#: How far a reported percentile may be from the exact one, relative to it.
RELATIVE_ERROR = 0.02
_GAMMA = (1 + RELATIVE_ERROR) / (1 - RELATIVE_ERROR)
_LOG_GAMMA = math.log(_GAMMA)
#: latencies below this (0 included) share the lowest bucket
_FLOOR_MS = 0.001
#: and above this (about 11.6 days) the highest: the index stays a small integer
_CEILING_MS = 1e9


def bucket_index(latency_ms: float | None) -> int | None:
    """The histogram bucket of ``latency_ms`` (``None``: no latency)."""
    if latency_ms is None or not math.isfinite(latency_ms):
        return None
    clamped = min(max(latency_ms, _FLOOR_MS), _CEILING_MS)
    return math.ceil(math.log(clamped) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The latency a bucket stands for: the midpoint that is within RELATIVE_ERROR of every
    latency in the bucket ``(g^(index-1), g^index]``."""
    return 2 * _GAMMA**index / (_GAMMA + 1)


def percentile(counts: Mapping[int, int], p: int) -> float | None:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of the latencies counted per
    bucket in ``counts``; ``None`` when there are none."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = (total * p + 99) // 100  # ceil(p * n / 100), integers only
    seen = 0
    for index in sorted(counts):
        seen += counts[index]
        if seen >= rank:
            return bucket_value(index)
    return bucket_value(max(counts))  # unreachable: the ranks add up to total


def add_counts(into: dict[int, int], pairs: Iterable[tuple[int, int]]) -> None:
    """Add ``(bucket, count)`` pairs into ``into``."""
    for index, count in pairs:
        into[index] = into.get(index, 0) + count
