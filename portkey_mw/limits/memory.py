"""The in-process backend: the embedded default, and the Redis backend's fallback.

Every operation runs to completion without awaiting, so on one event loop each is atomic
without a lock; a lock still guards the dictionaries, so that gateways on several threads
(a mounted app's threads, tests) may share one backend.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from portkey_mw.limits import gcra
from portkey_mw.limits.backend import Charged, Clock, LimitBackend, Usage, crossed, exhausted
from portkey_mw.limits.periods import Period
from portkey_mw.limits.results import Decision, UsageEntry
from portkey_mw.limits.spec import Budget, BudgetType, RateLimit

#: Swept for empty buckets once this many are held, then at twice what remained.
SWEEP_AT = 4096


@dataclass(slots=True)
class _Account:
    period: str
    used: float
    alerted: bool
    exhausted: bool
    expires_at: float | None


class MemoryLimitBackend(LimitBackend):
    """Counters in this process's memory: exact for one process, not shared."""

    name = "memory"

    def __init__(self, clock: Clock = time.time) -> None:
        super().__init__(clock)
        #: each limit's bucket, and when it will be empty (for the sweep)
        self._buckets: dict[tuple[str, str, str], tuple[gcra.Bucket, float]] = {}
        self._accounts: dict[tuple[str, BudgetType], _Account] = {}
        self._changed: set[tuple[str, BudgetType]] = set()
        self._lock = threading.Lock()
        self._sweep_at = SWEEP_AT

    async def _admit(self, subject: str, limits: tuple[RateLimit, ...], now: float) -> Decision:
        return self.admit_now(subject, limits, now)

    def admit_now(
        self, subject: str, limits: tuple[RateLimit, ...], now: float, degraded: bool = False
    ) -> Decision:
        """:meth:`admit` without the coroutine (the Redis backend's fallback calls it)."""
        keys = [(subject, limit.type, limit.unit) for limit in limits]
        with self._lock:
            held = [self._buckets.get(key) for key in keys]
            allowed, statuses, stored = gcra.evaluate(
                limits, [None if entry is None else entry[0] for entry in held], now
            )
            if allowed:
                for key, limit, bucket in zip(keys, limits, stored, strict=True):
                    if bucket is not None:
                        self._buckets[key] = (bucket, gcra.empties_at(limit, bucket))
                if len(self._buckets) > self._sweep_at:
                    self._sweep(now)
        return gcra.decide(allowed, statuses, degraded)

    async def _record_tokens(
        self, subject: str, limits: tuple[RateLimit, ...], tokens: int, now: float
    ) -> None:
        self.record_now(subject, limits, tokens, now)

    def record_now(
        self, subject: str, limits: tuple[RateLimit, ...], tokens: int, now: float
    ) -> None:
        """:meth:`record_tokens` without the coroutine."""
        with self._lock:
            for limit in limits:
                key = (subject, limit.type, limit.unit)
                entry = self._buckets.get(key)
                bucket = gcra.charge(limit, None if entry is None else entry[0], now, tokens)
                self._buckets[key] = (bucket, gcra.empties_at(limit, bucket))

    def _sweep(self, now: float) -> None:
        # An empty bucket means the same as no bucket: the limit is full again.
        self._buckets = {key: entry for key, entry in self._buckets.items() if entry[1] > now}
        self._sweep_at = max(SWEEP_AT, 2 * len(self._buckets))

    # -- budgets -------------------------------------------------------------------------

    async def _read(self, subject: str, budget: Budget, period: Period, now: float) -> Usage:
        return self.read_now(subject, budget, period)

    def read_now(self, subject: str, budget: Budget, period: Period) -> Usage:
        """The counters of ``period`` (zero when another period is held)."""
        account = self._accounts.get((subject, budget.type))
        if account is None or account.period != period.id:
            return Usage(0.0)
        return Usage(account.used, account.alerted, account.exhausted)

    async def _add(
        self, subject: str, budget: Budget, period: Period, amount: float, now: float
    ) -> Charged:
        return self.add_now(subject, budget, period, amount)

    def add_now(self, subject: str, budget: Budget, period: Period, amount: float) -> Charged:
        """:meth:`charge` without the coroutine."""
        key = (subject, budget.type)
        with self._lock:
            account = self._accounts.get(key)
            if account is None or account.period != period.id:
                account = _Account(period.id, 0.0, False, False, period.end)
                self._accounts[key] = account
            account.used += amount
            alert = not account.alerted and crossed(account.used, budget.alert_threshold)
            spent = not account.exhausted and exhausted(account.used, budget.credit_limit)
            account.alerted |= alert
            account.exhausted |= spent
            self._changed.add(key)
            return Charged(account.used, alert, spent)

    def put_usage(self, subject: str, budget: Budget, period: Period, usage: Usage) -> None:
        """Set (not add) a period's counters: the Redis backend mirrors what Redis holds,
        so that its fallback goes on from there."""
        with self._lock:
            self._accounts[(subject, budget.type)] = _Account(
                period.id, usage.used, usage.alerted, usage.exhausted, period.end
            )

    async def _reset(self, subject: str, budget: Budget, period: Period, now: float) -> None:
        key = (subject, budget.type)
        with self._lock:
            self._accounts[key] = _Account(period.id, 0.0, False, False, period.end)
            self._changed.add(key)

    # -- persistence ---------------------------------------------------------------------

    async def usage_snapshot(self) -> list[UsageEntry]:
        with self._lock:
            changed, self._changed = self._changed, set()
            return [
                UsageEntry(
                    subject,
                    kind,
                    account.period,
                    account.used,
                    account.alerted,
                    account.exhausted,
                    account.expires_at,
                )
                for subject, kind in sorted(changed)
                if (account := self._accounts.get((subject, kind))) is not None
            ]

    async def load_usage(self, entries: Iterable[UsageEntry], now: float | None = None) -> int:
        moment = self.clock() if now is None else now
        taken = 0
        with self._lock:
            for entry in entries:
                if entry.expires_at is not None and entry.expires_at <= moment:
                    continue
                key = (entry.subject, entry.type)
                account = self._accounts.get(key)
                stale = account is not None and (
                    account.expires_at is not None and account.expires_at <= moment
                )
                if account is None or stale:
                    self._accounts[key] = _Account(
                        entry.period, entry.used, entry.alerted, entry.exhausted, entry.expires_at
                    )
                elif account.period == entry.period:
                    account.used = max(account.used, entry.used)
                    account.alerted |= entry.alerted
                    account.exhausted |= entry.exhausted
                else:
                    continue
                taken += 1
        return taken
