"""The Redis backend: one budget and one rate limit shared by every replica.

Each check or charge is one round trip running a Lua script (:mod:`.scripts`), so
concurrent requests on any number of replicas are counted exactly once each.

When Redis cannot be reached (refused, timed out, or answering errors), the backend
*degrades* instead of failing the request: it logs ``limits.redis_unavailable`` once,
sets :attr:`degraded`, and decides with per-process counters (a
:class:`MemoryLimitBackend`). Budgets go on from the last usage this process read from
Redis, so a nearly spent budget stays nearly spent; rate limits start from full, so
during an outage each replica admits up to the whole limit. In the background it pings
Redis with exponential backoff (``min_backoff`` doubling to ``max_backoff``); when
Redis answers, the budget charges made meanwhile are added to Redis (usage becomes at
least what this replica counted, in case Redis lost its data), ``limits.redis_recovered``
is logged, and shared enforcement resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from portkey_mw.errors import PluginMissingDependency
from portkey_mw.limits import gcra, scripts
from portkey_mw.limits.backend import Charged, Clock, LimitBackend, Usage
from portkey_mw.limits.memory import MemoryLimitBackend
from portkey_mw.limits.periods import Period, budget_period
from portkey_mw.limits.results import Decision, UsageEntry
from portkey_mw.limits.spec import Budget, BudgetType, RateLimit

log = structlog.get_logger("portkey_mw.limits")

#: Where the Redis URL comes from when none is given.
REDIS_URL_ENV = "PORTKEY_MW_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/0"
#: A budget's key outlives its period by this much (ms), so clocks a little apart agree.
EXPIRY_SLACK_MS = 86_400_000

T = TypeVar("T")


def _number(value: float | None) -> str:
    return "" if value is None else repr(value)


class RedisLimitBackend(LimitBackend):
    """Limits and budgets in Redis, shared by every replica using the same ``url``.

    :param url: ``redis://`` or ``rediss://`` URL; default ``PORTKEY_MW_REDIS_URL``, else
        ``redis://127.0.0.1:6379/0``.
    :param prefix: prefix of every key.
    :param timeout: seconds per connect and per command: past it the call degrades.
    :param max_connections: the most calls (so connections) this process has at Redis at
        once; more concurrent calls wait their turn.
    :param clock: epoch seconds (``now`` of calls that pass none); also the fallback's.
    :param monotonic: the clock the probe backoff runs on.
    """

    name = "redis"

    def __init__(
        self,
        url: str | None = None,
        *,
        prefix: str = "portkey-mw:limits:",
        timeout: float = 0.25,
        max_connections: int = 16,
        clock: Clock = time.time,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        monotonic: Clock = time.monotonic,
    ) -> None:
        super().__init__(clock)
        try:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - the redis extra is not installed
            raise PluginMissingDependency("limits", "redis", exc) from exc
        self.url = url or os.environ.get(REDIS_URL_ENV) or DEFAULT_URL
        self.prefix = prefix
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._monotonic = monotonic
        # No client-side retries: a down Redis must cost one timeout, then the fallback.
        self._client: Any = aioredis.Redis.from_url(
            self.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        # At most this many calls at Redis at once, so at most this many connections. With
        # one connection per concurrent call, a burst of requests opened as many at once;
        # on a busy event loop those connects missed the timeout, and a healthy Redis was
        # taken for down (measured: 100 concurrent requests per replica, after which each
        # replica admitted a whole rate limit of its own). A semaphore rather than redis'
        # blocking pool: a call waiting its turn is queueing, not Redis failing, so it has
        # no timeout of its own; and it sees that Redis went down meanwhile.
        self._slots = asyncio.Semaphore(max_connections)
        self._down_errors: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
        self._admit_script = self._client.register_script(scripts.ADMIT)
        self._record_script = self._client.register_script(scripts.RECORD_TOKENS)
        self._charge_script = self._client.register_script(scripts.CHARGE)
        self._load_script = self._client.register_script(scripts.LOAD)
        #: the fallback; also mirrors the budget usage last read from Redis
        self.local = MemoryLimitBackend(clock)
        self._degraded = False
        self._down_since: float | None = None
        self.outages = 0
        self._backoff = min_backoff
        self._next_probe = 0.0
        self._probe_task: asyncio.Task[bool] | None = None
        #: budget charges made while degraded, added to Redis when it is back
        self._pending: dict[tuple[str, BudgetType], tuple[Budget, Period, float]] = {}
        #: budgets charged or reset since the last snapshot
        self._touched: dict[tuple[str, BudgetType], Budget] = {}

    @property
    def degraded(self) -> bool:
        """True while Redis is unreachable and counters are this process's own."""
        return self._degraded

    def health(self) -> dict[str, Any]:
        """Backend name, ``degraded``, how many outages so far, and since when it is down."""
        since = None
        if self._down_since is not None:
            since = datetime.fromtimestamp(self._down_since, UTC).isoformat()
        return {
            "backend": self.name,
            "degraded": self._degraded,
            "outages": self.outages,
            "down_since": since,
            "pending_charges": len(self._pending),
        }

    # -- keys ----------------------------------------------------------------------------

    def _rate_key(self, subject: str, limit: RateLimit) -> str:
        return f"{self.prefix}{{{subject}}}:rate:{limit.type}:{limit.unit}"

    def _budget_key(self, subject: str, kind: str) -> str:
        return f"{self.prefix}{{{subject}}}:budget:{kind}"

    @staticmethod
    def _expiry_ms(period: Period, now: float) -> str:
        if period.end is None:
            return "0"
        return str(max(1, math.ceil((period.end - now) * 1000)) + EXPIRY_SLACK_MS)

    # -- degradation ---------------------------------------------------------------------

    async def _call(self, remote: Callable[[], Awaitable[T]], local: Callable[[], T]) -> T:
        if not self._degraded:
            async with self._slots:
                # Checked again after the wait: Redis may have gone down meanwhile, and the
                # calls queued behind the one that found out need not wait for their own
                # timeouts.
                if not self._degraded:
                    try:
                        return await remote()
                    except self._down_errors as exc:
                        self._degrade(exc)
                        return local()
        self._schedule_probe()
        return local()

    def _degrade(self, exc: BaseException) -> None:
        if self._degraded:
            return
        self._degraded = True
        self._down_since = self.clock()
        self.outages += 1
        self._backoff = self.min_backoff
        self._next_probe = self._monotonic() + self._backoff
        # The error's class only: its text may name the host, never the URL's password.
        log.warning(
            "limits.redis_unavailable",
            error=type(exc).__name__,
            fallback="per-process counters until Redis answers",
        )

    def _schedule_probe(self) -> None:
        if self._probe_task is not None or self._monotonic() < self._next_probe:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # pragma: no cover - always called from a coroutine
            return
        self._probe_task = loop.create_task(self.probe())

    async def probe(self) -> bool:
        """Ask Redis whether it is back (the background probe calls this; so may an admin
        action). On success the charges made meanwhile go to Redis and shared enforcement
        resumes; on failure the next probe waits twice as long."""
        try:
            await self._client.ping()
            if self._degraded:
                # The connections opened before the outage lead to the Redis that went
                # away: the first calls to use them would fail and degrade the backend
                # again, just after it recovered. Drop them; new ones are opened as needed.
                await self._client.connection_pool.disconnect(inuse_connections=False)
            await self._flush_pending()
        except self._down_errors:
            self._backoff = min(self._backoff * 2, self.max_backoff)
            self._next_probe = self._monotonic() + self._backoff
            return False
        finally:
            if self._probe_task is asyncio.current_task():
                self._probe_task = None
        if self._degraded:
            self._degraded = False
            self._down_since = None
            log.info("limits.redis_recovered", outages=self.outages)
        return True

    async def _flush_pending(self) -> None:
        now = self.clock()
        while self._pending:
            key = next(iter(self._pending))
            budget, period, amount = self._pending.pop(key)
            if not period.contains(now):
                continue  # that period is over: its usage no longer matters
            floor = self.local.read_now(key[0], budget, period).used
            try:
                await self._charge_script(
                    keys=[self._budget_key(*key)],
                    args=self._charge_args(budget, period, amount, now, floor),
                )
            except BaseException:
                self._pending[key] = (budget, period, amount)
                raise

    # -- rate limits ---------------------------------------------------------------------

    async def _admit(self, subject: str, limits: tuple[RateLimit, ...], now: float) -> Decision:
        async def remote() -> Decision:
            args: list[Any] = [repr(now)]
            for limit in limits:
                args += [limit.type, repr(limit.period), limit.value]
            reply = await self._admit_script(
                keys=[self._rate_key(subject, limit) for limit in limits], args=args
            )
            statuses = []
            for i, limit in enumerate(limits):
                retry = float(reply[2 * i + 2])
                statuses.append(
                    gcra.status(limit, float(reply[2 * i + 1]), None if retry < 0 else retry)
                )
            return gcra.decide(bool(int(reply[0])), tuple(statuses))

        return await self._call(
            remote, lambda: self.local.admit_now(subject, limits, now, degraded=True)
        )

    async def _record_tokens(
        self, subject: str, limits: tuple[RateLimit, ...], tokens: int, now: float
    ) -> None:
        async def remote() -> None:
            args: list[Any] = [repr(now), tokens]
            for limit in limits:
                args += [repr(limit.period), limit.value]
            await self._record_script(
                keys=[self._rate_key(subject, limit) for limit in limits], args=args
            )

        await self._call(remote, lambda: self.local.record_now(subject, limits, tokens, now))

    # -- budgets -------------------------------------------------------------------------

    def _charge_args(
        self, budget: Budget, period: Period, amount: float, now: float, floor: float | None
    ) -> list[str]:
        return [
            period.id,
            repr(amount),
            _number(budget.alert_threshold),
            _number(budget.credit_limit),
            self._expiry_ms(period, now),
            _number(floor),
        ]

    async def _read(self, subject: str, budget: Budget, period: Period, now: float) -> Usage:
        async def remote() -> Usage:
            held, used, alerted, spent = await self._client.hmget(
                self._budget_key(subject, budget.type), "period", "used", "alerted", "exhausted"
            )
            usage = Usage(0.0)
            if held is not None and held.decode() == period.id:
                usage = Usage(float(used or 0), alerted is not None, spent is not None)
            self.local.put_usage(subject, budget, period, usage)
            return usage

        return await self._call(remote, lambda: self.local.read_now(subject, budget, period))

    async def _add(
        self, subject: str, budget: Budget, period: Period, amount: float, now: float
    ) -> Charged:
        key = (subject, budget.type)
        self._touched[key] = budget

        async def remote() -> Charged:
            reply = await self._charge_script(
                keys=[self._budget_key(subject, budget.type)],
                args=self._charge_args(budget, period, amount, now, None),
            )
            used = float(reply[0])
            usage = Usage(used, bool(reply[3]), bool(reply[4]))
            self.local.put_usage(subject, budget, period, usage)
            return Charged(used, bool(reply[1]), bool(reply[2]))

        def local() -> Charged:
            _, held_period, held = self._pending.get(key, (budget, period, 0.0))
            self._pending[key] = (budget, period, amount + (held if held_period == period else 0))
            return self.local.add_now(subject, budget, period, amount)

        return await self._call(remote, local)

    async def _reset(self, subject: str, budget: Budget, period: Period, now: float) -> None:
        key = (subject, budget.type)
        self._touched[key] = budget
        self._pending.pop(key, None)
        await self.local._reset(subject, budget, period, now)

        async def remote() -> None:
            await self._client.delete(self._budget_key(subject, budget.type))

        # While Redis is down the reset applies here only: an admin sees ``degraded``.
        await self._call(remote, lambda: None)

    # -- persistence ---------------------------------------------------------------------

    async def usage_snapshot(self) -> list[UsageEntry]:
        touched, self._touched = self._touched, {}
        now = self.clock()
        entries = []
        for (subject, _kind), budget in sorted(touched.items(), key=lambda item: item[0]):
            period = budget_period(budget, now)
            usage = await self._read(subject, budget, period, now)
            entries.append(
                UsageEntry(
                    subject,
                    budget.type,
                    period.id,
                    usage.used,
                    usage.alerted,
                    usage.exhausted,
                    period.end,
                )
            )
        return entries

    async def load_usage(self, entries: Iterable[UsageEntry], now: float | None = None) -> int:
        moment = self.clock() if now is None else now
        taken = 0
        for entry in entries:
            if entry.expires_at is not None and entry.expires_at <= moment:
                continue
            expiry = "0"
            if entry.expires_at is not None:
                expiry = str(math.ceil((entry.expires_at - moment) * 1000) + EXPIRY_SLACK_MS)
            args = [
                entry.period,
                repr(float(entry.used)),
                "1" if entry.alerted else "0",
                "1" if entry.exhausted else "0",
                expiry,
            ]

            async def remote(entry: UsageEntry = entry, args: list[str] = args) -> int:
                return int(
                    await self._load_script(
                        keys=[self._budget_key(entry.subject, entry.type)], args=args
                    )
                )

            # Down: nothing is loaded into Redis; the caller may load again later.
            taken += await self._call(remote, lambda: 0)
        return taken

    async def aclose(self) -> None:
        """Close the connection pool (and a probe under way)."""
        task, self._probe_task = self._probe_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._client.aclose()
