"""The interface every enforcement backend implements, and what they share.

A *subject* is whatever a limit or budget belongs to, as a string the caller chooses and
keeps stable: ``api_key:<id>``, ``virtual_key:<id>``, ``metadata:team=search``. Limits
and budgets may be passed as the records hold them (mappings) or parsed once
(:class:`RateLimit`, :class:`Budget`, which is what the hot path should do).

Times are epoch seconds. Every call takes ``now``; without it the backend's ``clock``
(``time.time`` unless given) is read, so a test controls time through either. No call
raises because a shared store is down: see :class:`RedisLimitBackend`.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, NamedTuple, TypeAlias

from portkey_mw.limits.periods import Period, budget_period
from portkey_mw.limits.results import BudgetState, Decision, UsageEntry
from portkey_mw.limits.spec import Budget, RateLimit, parse_budget, parse_rate_limits

Clock: TypeAlias = Callable[[], float]
RateLimits: TypeAlias = Sequence[RateLimit | Mapping[str, Any]] | None
UsageLimits: TypeAlias = Budget | Mapping[str, Any] | None


class Usage(NamedTuple):
    """A budget's counters in one period, as a backend stores them."""

    used: float
    alerted: bool = False
    exhausted: bool = False


class Charged(NamedTuple):
    """What one charge did: usage after it, and which thresholds it crossed."""

    used: float
    alert_crossed: bool
    exhausted_now: bool


def crossed(used: float, threshold: float | None) -> bool:
    """Whether usage ``used`` has reached ``threshold`` (a threshold of 0 is reached by the
    first usage above 0, not by none at all)."""
    return threshold is not None and used >= threshold and used > 0


def exhausted(used: float, limit: float | None) -> bool:
    """Whether a budget of ``limit`` is spent (a limit of 0 always is)."""
    return limit is not None and used >= limit


def _rate_limits(limits: RateLimits) -> tuple[RateLimit, ...]:
    if isinstance(limits, tuple) and all(isinstance(limit, RateLimit) for limit in limits):
        return limits  # parsed once by the caller: the hot path
    return parse_rate_limits(limits)


class LimitBackend(ABC):
    """Rate limits (GCRA, :mod:`portkey_mw.limits.gcra`) and budgets, for one process or
    shared by many.

    :param clock: epoch seconds, read when a call passes no ``now``.
    """

    #: Short name for logs, admin state and metrics.
    name: ClassVar[str]

    def __init__(self, clock: Clock = time.time) -> None:
        self.clock = clock

    @property
    def degraded(self) -> bool:
        """True while decisions are per-process because the shared store is unreachable."""
        return False

    def health(self) -> dict[str, Any]:
        """State for the admin API and metrics (never a URL: it may hold a password)."""
        return {"backend": self.name, "degraded": self.degraded}

    # -- rate limits ---------------------------------------------------------------------

    async def admit(self, subject: str, limits: RateLimits, now: float | None = None) -> Decision:
        """Admit one request against every limit of ``subject``, all or nothing.

        A ``requests`` limit counts the request (when admitted); a ``tokens`` limit only
        checks that its window is not spent (see :meth:`record_tokens`). A limit with
        ``value`` 0 refuses every request.
        """
        parsed = _rate_limits(limits)
        if not parsed:
            return Decision(True)
        return await self._admit(subject, parsed, self.clock() if now is None else now)

    async def record_tokens(
        self, subject: str, limits: RateLimits, tokens: int, now: float | None = None
    ) -> None:
        """Charge the tokens a request used to ``subject``'s ``tokens`` limits, once known
        (a stream's final usage); the window may go into debt, which holds later requests
        back until it is paid off."""
        if tokens <= 0:
            return
        counted = tuple(
            limit for limit in _rate_limits(limits) if limit.type == "tokens" and limit.value
        )
        if counted:
            await self._record_tokens(
                subject, counted, tokens, self.clock() if now is None else now
            )

    # -- budgets -------------------------------------------------------------------------

    async def check_budget(
        self, subject: str, usage_limits: UsageLimits, now: float | None = None
    ) -> BudgetState:
        """``subject``'s usage this period; ``exhausted`` means refuse (412)."""
        found = self._period(usage_limits, now)
        if found is None:
            return _unlimited(subject)
        budget, period, moment = found
        usage = await self._read(subject, budget, period, moment)
        return self._state(subject, budget, period, usage.used)

    async def charge(
        self, subject: str, usage_limits: UsageLimits, amount: float, now: float | None = None
    ) -> BudgetState:
        """Add ``amount`` (dollars or tokens, as the budget's ``type`` says) to this period's
        usage, atomically; the state says whether this charge crossed ``alert_threshold``
        or exhausted the budget (each true once per period).

        :raises ValueError: for a negative or non-finite amount (a caller's bug).
        """
        if not math.isfinite(amount) or amount < 0:
            raise ValueError("a charge must be a finite amount >= 0")
        found = self._period(usage_limits, now)
        if found is None:
            return _unlimited(subject)
        budget, period, moment = found
        done = await self._add(subject, budget, period, float(amount), moment)
        return self._state(subject, budget, period, done.used, done)

    async def reset_budget(
        self, subject: str, usage_limits: UsageLimits, now: float | None = None
    ) -> BudgetState:
        """Start ``subject``'s current period over from zero (the admin's reset)."""
        found = self._period(usage_limits, now)
        if found is None:
            return _unlimited(subject)
        budget, period, moment = found
        await self._reset(subject, budget, period, moment)
        return self._state(subject, budget, period, 0.0)

    def _period(
        self, usage_limits: UsageLimits, now: float | None
    ) -> tuple[Budget, Period, float] | None:
        """The budget, its period at ``now`` (default: the clock) and that moment; None
        without a budget."""
        budget = parse_budget(usage_limits)
        if budget is None:
            return None
        moment = self.clock() if now is None else now
        return budget, budget_period(budget, moment), moment

    def _state(
        self,
        subject: str,
        budget: Budget,
        period: Period,
        used: float,
        done: Charged | None = None,
    ) -> BudgetState:
        return BudgetState(
            subject=subject,
            type=budget.type,
            used=used,
            limit=budget.credit_limit,
            exhausted=exhausted(used, budget.credit_limit),
            period_start=period.start_at,
            next_reset=period.end_at,
            alert_threshold=budget.alert_threshold,
            alert_crossed=done is not None and done.alert_crossed,
            exhausted_now=done is not None and done.exhausted_now,
            degraded=self.degraded,
            budget=budget,
        )

    # -- persistence ---------------------------------------------------------------------

    @abstractmethod
    async def usage_snapshot(self) -> list[UsageEntry]:
        """The usage of every budget this process charged (or reset) since the previous
        snapshot, for the caller to write to the store in one batch."""

    @abstractmethod
    async def load_usage(self, entries: Iterable[UsageEntry], now: float | None = None) -> int:
        """Take back persisted usage (after a restart): an entry raises its period's usage
        to at least its ``used`` (so loading twice, or from two replicas, adds nothing);
        entries of a period that ended, or of another period than the one held, are
        skipped. Returns how many were taken."""

    async def aclose(self) -> None:
        """Release connections (nothing for the in-process backend)."""
        return None

    # -- what each backend implements ----------------------------------------------------

    @abstractmethod
    async def _admit(self, subject: str, limits: tuple[RateLimit, ...], now: float) -> Decision:
        """Decide, atomically; ``limits`` is not empty."""

    @abstractmethod
    async def _record_tokens(
        self, subject: str, limits: tuple[RateLimit, ...], tokens: int, now: float
    ) -> None:
        """Add ``tokens`` to the buckets of ``limits`` (enabled token limits only)."""

    @abstractmethod
    async def _read(self, subject: str, budget: Budget, period: Period, now: float) -> Usage:
        """The counters of ``period`` (zero when another period is stored)."""

    @abstractmethod
    async def _add(
        self, subject: str, budget: Budget, period: Period, amount: float, now: float
    ) -> Charged:
        """Add ``amount`` to ``period``'s usage, starting it over when another is stored."""

    @abstractmethod
    async def _reset(self, subject: str, budget: Budget, period: Period, now: float) -> None:
        """Forget ``subject``'s usage of ``budget``."""


def _unlimited(subject: str) -> BudgetState:
    return BudgetState(subject, "cost", 0.0, None, False, None, None)
