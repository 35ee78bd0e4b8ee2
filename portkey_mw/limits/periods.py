"""Budget periods: when the current one started and when the next begins, in UTC.

* ``monthly``: from the 1st of the month, 00:00 UTC, to the 1st of the next;
* ``weekly``: from Monday 00:00 UTC to the next Monday (ISO weeks; Portkey's docs say
  both "Sunday" and "Monday" in different places, so the boundary is stated here);
* ``periodic_reset_days: N``: every N days of 86 400 s from the budget's anchor (its
  record's creation time; the Unix epoch, so 00:00 UTC, when unknown);
* no reset: one period forever.

Times are epoch seconds (floats); the backends store the period's start as its id, so a
new period starts from zero without any process having to reset anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime

from portkey_mw.limits.spec import Budget

DAY = 86400.0
#: 1970-01-01 was a Thursday: days since the epoch plus this, modulo 7, is days since Monday.
_EPOCH_WEEKDAY = 3
#: The id of the one period of a budget that never resets.
FOREVER = "total"


def as_datetime(moment: float | None) -> datetime | None:
    """Epoch seconds as an aware UTC datetime."""
    return None if moment is None else datetime.fromtimestamp(moment, UTC)


@dataclass(frozen=True, slots=True)
class Period:
    """One budget period: ``[start, end)`` in epoch seconds (None for a budget that never
    resets), and the same as UTC datetimes."""

    start: float | None
    end: float | None
    #: what the backends store beside the usage: a new id means a fresh period
    id: str = field(init=False, repr=False, compare=False)
    start_at: datetime | None = field(init=False, repr=False, compare=False)
    end_at: datetime | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once per period, not per request (see the cache below).
        object.__setattr__(self, "id", FOREVER if self.start is None else str(int(self.start)))
        object.__setattr__(self, "start_at", as_datetime(self.start))
        object.__setattr__(self, "end_at", as_datetime(self.end))

    def contains(self, now: float) -> bool:
        """True while ``now`` falls in this period."""
        if self.start is None or self.end is None:
            return True
        return self.start <= now < self.end


#: The current period of each schedule, so that a request does not redo calendar
#: arithmetic; (reset, days, anchor) -> period. Cleared when it grows past CACHE_SIZE.
_current: dict[tuple[str | None, int | None, float], Period] = {}
CACHE_SIZE = 4096


def budget_period(budget: Budget, now: float) -> Period:
    """The period of ``budget`` that ``now`` (epoch seconds) falls in."""
    if not budget.periodic:
        return _FOREVER_PERIOD
    key = (budget.periodic_reset, budget.periodic_reset_days, budget.anchor)
    period = _current.get(key)
    if period is None or not period.contains(now):
        period = _compute(budget, now)
        if len(_current) >= CACHE_SIZE:
            _current.clear()
        _current[key] = period
    return period


def _compute(budget: Budget, now: float) -> Period:
    if budget.periodic_reset == "monthly":
        moment = datetime.fromtimestamp(now, UTC)
        first = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        year, month = (
            (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        )
        return Period(first.timestamp(), datetime(year, month, 1, tzinfo=UTC).timestamp())
    if budget.periodic_reset == "weekly":
        day = math.floor(now / DAY)
        monday = (day - (day + _EPOCH_WEEKDAY) % 7) * DAY
        return Period(monday, monday + 7 * DAY)
    if budget.periodic_reset_days is not None:
        length = budget.periodic_reset_days * DAY
        start = budget.anchor + math.floor((now - budget.anchor) / length) * length
        return Period(start, start + length)
    return _FOREVER_PERIOD


_FOREVER_PERIOD = Period(None, None)
