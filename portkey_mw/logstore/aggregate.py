"""What an aggregate is made of before it is reported: sums, counts, the first and last
time, and the latency histogram, all of which add up. The raw rows of a time range and the
hourly rollups both give a :class:`Partial`; partials of the pieces of one range are
added, and only then turned into rates, averages and percentiles (:meth:`Partial.result`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from portkey_mw.logstore.latency import add_counts, percentile

__all__ = ["AGGREGATES", "SERIES_FIELDS", "SUM_FIELDS", "Partial", "merge_into"]

#: What groups and totals report, in this order (and what a group list may be ordered by).
AGGREGATES = (
    "requests",
    "errors",
    "error_rate",
    "cost_usd",
    "cost_saved_usd",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_hits",
    "cache_lookups",
    "cache_hit_rate",
    "fallbacks",
    "retries",
    "latency_avg_ms",
    "latency_p50_ms",
    "latency_p90_ms",
    "latency_p99_ms",
    "first_ms",
    "last_ms",
)
#: What each series bucket reports (besides ``t``).
SERIES_FIELDS = (
    "requests",
    "errors",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_hits",
    "cache_lookups",
    "fallbacks",
    "latency_avg_ms",
)
#: The sums a partial carries (a rollup row has one column for each).
SUM_FIELDS = (
    "requests",
    "errors",
    "cost_usd",
    "cost_saved_usd",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_hits",
    "cache_lookups",
    "fallbacks",
    "retries",
    "latency_sum",
    "latency_count",
)
_FLOAT_SUMS = frozenset({"cost_usd", "cost_saved_usd", "latency_sum"})
_PERCENTILES = {"latency_p50_ms": 50, "latency_p90_ms": 90, "latency_p99_ms": 99}


def _zero_sums() -> dict[str, int | float]:
    return {name: (0.0 if name in _FLOAT_SUMS else 0) for name in SUM_FIELDS}


@dataclass(slots=True)
class Partial:
    """The additive part of an aggregate over some records."""

    sums: dict[str, int | float] = field(default_factory=_zero_sums)
    first_ms: int | None = None
    last_ms: int | None = None
    #: latency histogram bucket -> how many latencies fell in it
    latency: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Partial:
        """A partial from a result row holding :data:`SUM_FIELDS`, ``first_ms`` and
        ``last_ms`` (PostgreSQL hands sums back as Decimal; a sum over no rows is NULL)."""
        sums: dict[str, int | float] = {}
        for name in SUM_FIELDS:
            value = row[name]
            if name in _FLOAT_SUMS:
                sums[name] = float(value) if value is not None else 0.0
            else:
                sums[name] = int(value) if value is not None else 0
        first, last = row["first_ms"], row["last_ms"]
        return cls(
            sums=sums,
            first_ms=None if first is None else int(first),
            last_ms=None if last is None else int(last),
        )

    def add(self, other: Partial) -> None:
        """Add ``other``'s records to these."""
        for name, value in other.sums.items():
            self.sums[name] += value
        if other.first_ms is not None and (self.first_ms is None or other.first_ms < self.first_ms):
            self.first_ms = other.first_ms
        if other.last_ms is not None and (self.last_ms is None or other.last_ms > self.last_ms):
            self.last_ms = other.last_ms
        add_counts(self.latency, other.latency.items())

    def result(self, names: Sequence[str] = AGGREGATES) -> dict[str, Any]:
        """The reported aggregates ``names`` (:data:`AGGREGATES` or :data:`SERIES_FIELDS`)."""
        s = self.sums
        requests, lookups, timed = s["requests"], s["cache_lookups"], s["latency_count"]
        derived: dict[str, Any] = {
            **s,
            "error_rate": s["errors"] / requests if requests else 0.0,
            "cache_hit_rate": s["cache_hits"] / lookups if lookups else None,
            "first_ms": self.first_ms,
            "last_ms": self.last_ms,
        }
        if timed:
            derived["latency_avg_ms"] = s["latency_sum"] / timed
        else:  # a series bucket draws an empty one as 0; totals and groups say "none"
            derived["latency_avg_ms"] = 0.0 if names is SERIES_FIELDS else None
        for name, p in _PERCENTILES.items():
            if name in names:
                derived[name] = percentile(self.latency, p)
        return {name: derived[name] for name in names}


def merge_into(into: dict[Any, Partial], more: Mapping[Any, Partial]) -> None:
    """Add each of ``more``'s partials to ``into``'s partial of the same key."""
    for key, partial in more.items():
        found = into.get(key)
        if found is None:
            into[key] = partial
        else:
            found.add(partial)
