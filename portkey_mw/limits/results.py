"""What the backends answer: a rate-limit decision, a budget's state, a usage entry.

Plain (not frozen) dataclasses, made on every request: treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from portkey_mw.limits.spec import Budget, BudgetType, RateLimit


@dataclass(slots=True)
class LimitStatus:
    """One rate limit after a decision.

    :param remaining: requests (or tokens) still admitted now, after this request.
    :param reset: seconds until the limit is back to its full ``value``.
    :param retry_after: seconds until this limit admits the request (0 when it does;
        None when it never will: a disabled limit).
    """

    limit: RateLimit
    remaining: int
    reset: float
    retry_after: float | None = 0.0


@dataclass(slots=True)
class Decision:
    """Whether a request is admitted, and the state of each limit it counted against.

    :param refused: the limit that refused it (the one to wait longest for), else None.
    :param retry_after: seconds until every limit admits it; None when admitted, or when
        a disabled limit (``value`` 0) refused it, which waiting does not change.
    :param degraded: decided by one process's counters because Redis was unreachable.
    """

    allowed: bool
    statuses: tuple[LimitStatus, ...] = ()
    refused: RateLimit | None = None
    retry_after: float | None = None
    degraded: bool = False


@dataclass(slots=True)
class BudgetState:
    """A budget's usage in its current period.

    :param used: dollars or tokens used this period.
    :param limit: the budget's ``credit_limit`` (None: usage is counted, nothing refused).
    :param exhausted: ``used >= limit``: requests are refused until ``next_reset``.
    :param alert_crossed: this charge took usage to ``alert_threshold`` (true for exactly
        one charge per period, across every replica sharing the backend).
    :param exhausted_now: this charge exhausted the budget (true once per period, likewise).
    :param next_reset: when usage next starts from zero (None: never).
    """

    subject: str
    type: BudgetType
    used: float
    limit: float | None
    exhausted: bool
    period_start: datetime | None
    next_reset: datetime | None
    alert_threshold: float | None = None
    alert_crossed: bool = False
    exhausted_now: bool = False
    degraded: bool = False
    budget: Budget | None = None

    @property
    def remaining(self) -> float | None:
        """What is left this period (never below 0); None without a limit."""
        return None if self.limit is None else max(0.0, self.limit - self.used)


@dataclass(slots=True)
class UsageEntry:
    """One budget's usage, as :meth:`LimitBackend.usage_snapshot` hands it out for the
    store and :meth:`LimitBackend.load_usage` takes it back after a restart.

    :param period: the period's id (its start in epoch seconds, or ``total``).
    :param expires_at: when the period ends (epoch seconds; None: never): an entry loaded
        after that is dropped.
    """

    subject: str
    type: BudgetType
    period: str
    used: float
    alerted: bool = False
    exhausted: bool = False
    expires_at: float | None = None
