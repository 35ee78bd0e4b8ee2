"""Spend control in the request path: admit before the provider is called, charge after.

Per request, in order:

1. after identify and resolve, :meth:`SpendControl.admit` checks the request's API key and
   the metadata budgets it matches: an exhausted budget answers 412, then each subject's
   rate limits admit it or answer 429 (budgets first, so a refused request spends no
   rate-limit unit);
2. before each target that uses a virtual key, :meth:`SpendControl.admit_target` does the
   same for that key; a refusal is that target's failure, so a fallback moves on;
3. once the response is sent, :meth:`SpendControl.settle` charges the tokens and the cost
   the provider reported (a stream's final usage included) to every subject the request
   counted against, and raises the alerts a charge crossed.

A request whose key, metadata and virtual key have no limits costs one attribute check.
See docs/limits.md.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import structlog

from portkey_mw.config.server import LimitsOptions
from portkey_mw.context import RequestContext
from portkey_mw.limits.backend import Clock, LimitBackend
from portkey_mw.limits.errors import budget_error, rate_limit_error
from portkey_mw.limits.headers import rate_limit_headers
from portkey_mw.limits.memory import MemoryLimitBackend
from portkey_mw.limits.redis_backend import REDIS_URL_ENV, RedisLimitBackend
from portkey_mw.limits.results import BudgetState
from portkey_mw.limits.subject import Subject
from portkey_mw.spend.alerts import Alerts
from portkey_mw.spend.keeper import UsageKeeper
from portkey_mw.spend.subjects import MetadataPolicies, api_key_subject, virtual_key_subject
from portkey_mw.store.protocols import ControlStore
from portkey_mw.store.records import ApiKey, VirtualKey
from portkey_mw.transport import Transport

if TYPE_CHECKING:
    from portkey_mw.logevents import LogEvent

log = structlog.get_logger("portkey_mw.spend")


def make_backend(
    options: LimitsOptions, clock: Clock = time.time, environ: Mapping[str, str] | None = None
) -> LimitBackend:
    """The backend ``limits.backend`` names (``auto``: Redis when a URL is set)."""
    import os

    env = os.environ if environ is None else environ
    url = env.get(REDIS_URL_ENV) or options.redis_url
    if options.backend == "redis" or (options.backend == "auto" and url):
        return RedisLimitBackend(url, timeout=options.redis_timeout, clock=clock)
    return MemoryLimitBackend(clock=clock)


def total_tokens(usage: Mapping[str, Any] | None) -> int:
    """The tokens a response's usage reports: ``total_tokens``, else input plus output."""
    if not usage:
        return 0
    total = usage.get("total_tokens")
    if isinstance(total, int) and not isinstance(total, bool) and total >= 0:
        return total
    count = 0
    for name in ("prompt_tokens", "completion_tokens", "input_tokens", "output_tokens"):
        value = usage.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            count += value
    return count


def _cost(event: LogEvent, usage: Mapping[str, Any] | None, estimated: bool) -> float:
    if not estimated:
        return event.cost_usd or 0.0
    if event.prices is None or not usage:
        return 0.0
    price = event.prices.cost(
        usage, provider=event.provider, model=event.model, at=event.started_at
    )
    return price or 0.0


class SpendControl:
    """Budgets and rate limits for one gateway process.

    :param options: the server file's ``limits`` section.
    :param store: where usage is kept across restarts (None: not kept).
    :param transport: for the alert webhook.
    :param backend: a backend to use instead of the one ``options`` name (tests).
    :param clock: epoch seconds for the default backend (tests control time with it).
    """

    def __init__(
        self,
        options: LimitsOptions,
        *,
        store: ControlStore | None = None,
        transport: Transport | None = None,
        backend: LimitBackend | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.options = options
        self.backend = backend if backend is not None else make_backend(options, clock)
        self.policies = MetadataPolicies(options.metadata)
        self.alerts = Alerts(options.alert_webhook, transport)
        self.keeper = UsageKeeper(self.backend, store, options.persist_interval)
        # API key id -> (the record version, its subject): parsed once per version.
        self._api_keys: dict[str, tuple[ApiKey, Subject | None]] = {}

    # -- subjects --------------------------------------------------------------------

    def api_key(self, record: ApiKey) -> Subject | None:
        """``record``'s subject (None: no limits), parsed once per record version."""
        cached = self._api_keys.get(record.id)
        if cached is not None and cached[0] is record:
            return cached[1]
        subject = api_key_subject(record)
        if len(self._api_keys) > 100_000:  # deleted keys' entries go with the rest
            self._api_keys.clear()
        self._api_keys[record.id] = (record, subject)
        return subject

    @staticmethod
    def virtual_key(record: VirtualKey) -> Subject | None:
        """``record``'s subject (None: no limits); plans hold it, compiled once."""
        return virtual_key_subject(record)

    def forget(self) -> None:
        """Drop parsed subjects (the catalog changed)."""
        self._api_keys.clear()

    # -- the request path ------------------------------------------------------------

    async def admit(self, ctx: RequestContext) -> None:
        """Admit the request for its API key and the metadata budgets it matches.

        :raises BudgetExhausted: 412, naming the budget.
        :raises RateLimitExceeded: 429 with ``retry-after`` and the rate-limit headers.
        """
        subjects: list[Subject] = []
        if ctx.api_key is not None:
            own = self.api_key(ctx.api_key)
            if own is not None:
                subjects.append(own)
        if self.policies:
            subjects.extend(self.policies.matching(ctx.metadata))
        if subjects:
            await self._admit(ctx, subjects, report=True)
            ctx.limited = subjects

    async def admit_target(self, ctx: RequestContext, subject: Subject | None) -> None:
        """Admit the request for the virtual key of the target about to be called; the
        key the answering target used is the one charged.

        :param subject: the target's virtual key, or None when it has no limits: then no
            virtual key is charged (not one an earlier target, which failed, was admitted
            for).
        """
        if subject is not None:
            await self._admit(ctx, (subject,), report=False)
        kept = [s for s in ctx.limited if s.kind != "virtual_key"]
        ctx.limited = kept if subject is None else [*kept, subject]

    async def _admit(
        self, ctx: RequestContext, subjects: tuple[Subject, ...] | list[Subject], report: bool
    ) -> None:
        backend = self.backend
        now = backend.clock()
        for subject in subjects:
            budget = subject.budget
            if budget is not None and budget.credit_limit is not None:
                state = await backend.check_budget(subject.key, budget, now)
                if state.exhausted:
                    raise budget_error(state, subject.owner)
        for subject in subjects:
            if subject.limits:
                decision = await backend.admit(subject.key, subject.limits, now)
                if not decision.allowed:
                    raise rate_limit_error(decision, subject.owner)
                if report:
                    # The first subject with limits (the API key's) speaks for the request.
                    ctx.response_headers.update(rate_limit_headers(decision))
                    report = False

    async def settle(
        self, ctx: RequestContext, event: LogEvent, estimate: Mapping[str, int] | None = None
    ) -> None:
        """Charge what the request used to every subject it counted against.

        :param estimate: the usage to charge when the response reported none (a stream cut
            short); priced like reported usage.
        """
        subjects = ctx.limited
        if not subjects:
            return
        backend = self.backend
        now = backend.clock()
        hit = event.cache_hit  # a cached answer used no provider tokens and cost nothing
        usage = event.usage
        if not total_tokens(usage) and estimate is not None and not hit:
            usage = dict(estimate)
        else:
            estimate = None
        tokens = 0 if hit else total_tokens(usage)
        cost: float | None = None
        for subject in subjects:
            if subject.limits and tokens:
                await backend.record_tokens(subject.key, subject.limits, tokens, now)
            budget = subject.budget
            if budget is None:
                continue
            if budget.type == "tokens":
                amount = float(tokens)
            else:
                if cost is None:
                    cost = 0.0 if hit else _cost(event, usage, estimate is not None)
                amount = cost
            if amount > 0:
                state = await backend.charge(subject.key, budget, amount, now)
                self.alerts.after_charge(subject, state)

    # -- the operator's view -----------------------------------------------------------

    async def usage(self, subject: Subject) -> BudgetState:
        """``subject``'s budget in its current period."""
        return await self.backend.check_budget(subject.key, subject.budget)

    async def reset(self, subject: Subject) -> BudgetState:
        """Start ``subject``'s current period over from zero, and write that to the store
        at once (a restart must not bring the old usage back)."""
        state = await self.backend.reset_budget(subject.key, subject.budget)
        await self.keeper.flush()
        return state

    def health(self) -> dict[str, Any]:
        """The backend's state, the policies and the alerts, for ``/v1/admin/limits``."""
        return {
            **self.backend.health(),
            "metadata_budgets": [s.ref for s in self.policies.subjects],
            "alerts_sent": self.alerts.sent,
            "alerts_failed": self.alerts.failed,
            "usage_writes": self.keeper.writes,
        }

    # -- lifespan ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load stored usage and start writing it."""
        await self.keeper.start()

    async def aclose(self) -> None:
        """Write the last usage, wait for alerts, close the backend."""
        await self.keeper.aclose()
        await self.alerts.aclose()
        await self.backend.aclose()
