"""Rate limits and budgets as the limits layer reads them, parsed once from the records.

The admin API validates ``rate_limits`` and ``usage_limits`` when they are written
(``portkey_mw.admin.schemas``); these parsers turn the stored mappings into small frozen
objects the backends use on every request. They check again (a record may come from an
older version, or straight from the store), raising :class:`ValueError` naming the field,
and ignore keys they do not know.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

#: Seconds per rate-limit unit: Portkey's ``rpm``/``rph``/``rpd``, plus ``rps`` and ``rpw``.
UNIT_SECONDS: Mapping[str, float] = {
    "rps": 1.0,
    "rpm": 60.0,
    "rph": 3600.0,
    "rpd": 86400.0,
    "rpw": 604800.0,
}
#: How a unit reads in a message.
UNIT_WORDS: Mapping[str, str] = {
    "rps": "second",
    "rpm": "minute",
    "rph": "hour",
    "rpd": "day",
    "rpw": "week",
}

LimitType = Literal["requests", "tokens"]
BudgetType = Literal["cost", "tokens"]
ResetPeriod = Literal["monthly", "weekly"]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``value`` requests (or tokens) per ``unit``; a ``value`` of 0 refuses everything."""

    type: LimitType
    unit: str
    value: int
    #: the unit in seconds
    period: float = field(init=False, repr=False, compare=False)
    #: seconds between two units (``period / value``; 0 for a disabled limit)
    interval: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once: the hot path reads them on every request.
        period = UNIT_SECONDS[self.unit]
        object.__setattr__(self, "period", period)
        object.__setattr__(self, "interval", period / self.value if self.value else 0.0)

    @property
    def disabled(self) -> bool:
        """True when the limit admits nothing (Portkey's ``value: 0``)."""
        return self.value == 0

    def describe(self) -> str:
        """``10 requests per minute (rpm)``."""
        return f"{self.value} {self.type} per {UNIT_WORDS[self.unit]} ({self.unit})"

    @classmethod
    def from_mapping(cls, item: Mapping[str, Any], where: str = "rate_limits") -> RateLimit:
        """Parse one ``{type, unit, value}`` entry.

        :raises ValueError: naming the field (``rate_limits.0.unit: ...``).
        """
        kind = item.get("type", "requests")
        if kind not in ("requests", "tokens"):
            raise ValueError(f"{where}.type: must be 'requests' or 'tokens'")
        unit = item.get("unit")
        if unit not in UNIT_SECONDS:
            raise ValueError(f"{where}.unit: must be one of {', '.join(UNIT_SECONDS)}")
        value = item.get("value")
        if type(value) is not int or value < 0:
            raise ValueError(f"{where}.value: must be an integer >= 0")
        return cls(kind, str(unit), value)


def parse_rate_limits(
    items: Iterable[Mapping[str, Any] | RateLimit] | None,
) -> tuple[RateLimit, ...]:
    """A record's ``rate_limits`` list (or ``None``) as :class:`RateLimit` objects.

    :raises ValueError: naming the first bad field, or a (type, unit) given twice.
    """
    if not items:
        return ()
    limits = tuple(
        item if isinstance(item, RateLimit) else RateLimit.from_mapping(item, f"rate_limits.{i}")
        for i, item in enumerate(items)
    )
    pairs = [(limit.type, limit.unit) for limit in limits]
    if len(set(pairs)) != len(pairs):
        raise ValueError("rate_limits: each (type, unit) pair may appear once")
    return limits


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"usage_limits.{where}: must be a number >= 0")
    return float(value)


@dataclass(frozen=True, slots=True)
class Budget:
    """A budget: Portkey's ``usage_limits``.

    ``credit_limit`` is in US dollars (``type: cost``) or tokens (``type: tokens``); None
    counts usage without a limit. ``alert_threshold`` is in the same unit. Periods:
    ``monthly`` (from the 1st, 00:00 UTC), ``weekly`` (from Monday 00:00 UTC),
    ``periodic_reset_days`` (every N days from ``anchor``, epoch seconds: the budget's
    record creation time, or 1970-01-01 00:00 UTC when unknown), or none (usage never
    resets by itself).
    """

    credit_limit: float | None
    type: BudgetType = "cost"
    alert_threshold: float | None = None
    periodic_reset: ResetPeriod | None = None
    periodic_reset_days: int | None = None
    anchor: float = 0.0

    @property
    def periodic(self) -> bool:
        """True when usage resets on a schedule."""
        return self.periodic_reset is not None or self.periodic_reset_days is not None

    def describe(self) -> str:
        """``100 USD per month``, ``50000 tokens every 7 days``."""
        amount = "no limit" if self.credit_limit is None else f"{self.credit_limit:g}"
        unit = "USD" if self.type == "cost" else "tokens"
        if self.periodic_reset == "monthly":
            every = " per month"
        elif self.periodic_reset == "weekly":
            every = " per week"
        elif self.periodic_reset_days is not None:
            every = f" every {self.periodic_reset_days} days"
        else:
            every = ""
        return f"{amount} {unit}{every}"

    @classmethod
    def from_mapping(
        cls, usage_limits: Mapping[str, Any], anchor: datetime | float | None = None
    ) -> Budget:
        """Parse a record's ``usage_limits``; ``anchor`` is when ``periodic_reset_days``
        periods start counting (the record's ``created_at``).

        :raises ValueError: naming the field (``usage_limits.periodic_reset_days: ...``).
        """
        kind = usage_limits.get("type") or "cost"
        if kind not in ("cost", "tokens"):
            raise ValueError("usage_limits.type: must be 'cost' or 'tokens'")
        limit = _number(usage_limits.get("credit_limit"), "credit_limit")
        alert = _number(usage_limits.get("alert_threshold"), "alert_threshold")
        reset = usage_limits.get("periodic_reset")
        if reset not in (None, "monthly", "weekly"):
            raise ValueError("usage_limits.periodic_reset: must be 'monthly' or 'weekly'")
        days = usage_limits.get("periodic_reset_days")
        if days is not None and (type(days) is not int or not 1 <= days <= 365):
            raise ValueError("usage_limits.periodic_reset_days: must be an integer in 1..365")
        if reset is not None and days is not None:
            raise ValueError(
                "usage_limits.periodic_reset: give periodic_reset or periodic_reset_days, not both"
            )
        if isinstance(anchor, datetime):
            anchor = anchor.timestamp()
        budget_type: BudgetType = "tokens" if kind == "tokens" else "cost"
        return cls(limit, budget_type, alert, reset, days, float(anchor or 0.0))


def parse_budget(
    usage_limits: Mapping[str, Any] | Budget | None, anchor: datetime | float | None = None
) -> Budget | None:
    """A record's ``usage_limits`` (or None: no budget) as a :class:`Budget`."""
    if usage_limits is None or isinstance(usage_limits, Budget):
        return usage_limits
    return Budget.from_mapping(usage_limits, anchor)
