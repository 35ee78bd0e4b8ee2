"""Rate limits and budgets (portkey_mw.limits): the same tests on the in-process backend
and on Redis (a real ``redis-server`` on loopback), with a clock the tests control.

For Redis, "two replicas" are two backend instances, each with its own connection pool,
sharing one server; for the in-process backend both names are the same instance (one
process is one replica).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis

from portkey_mw import limits as limits_package
from portkey_mw.limits import (
    Budget,
    BudgetExhausted,
    Decision,
    LimitBackend,
    MemoryLimitBackend,
    RateLimit,
    RateLimitExceeded,
    RedisLimitBackend,
    UsageEntry,
    budget_error,
    budget_period,
    format_reset,
    parse_budget,
    parse_rate_limits,
    rate_limit_error,
    rate_limit_headers,
)
from tests.planted import USERINFO_PASSWORD
from tests.redis_server import RedisServer, free_port

#: A Thursday, one minute before February: month and week boundaries are near.
START = datetime(2030, 1, 31, 23, 0, tzinfo=UTC).timestamp()
DEADLINE = 10.0


class Clock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


Factory = Callable[[], LimitBackend]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "redis"])
async def replicas(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Factory]:
    """Makes backends that share state as replicas would."""
    made: list[LimitBackend] = []
    if request.param == "memory":
        shared = MemoryLimitBackend(clock)
        made.append(shared)

        def make() -> LimitBackend:
            return shared

    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = f"redis://127.0.0.1:{server.port}/0"

        def make() -> LimitBackend:
            backend = RedisLimitBackend(url, clock=clock, timeout=2.0)
            made.append(backend)
            return backend

    yield make
    for backend in made:
        assert not backend.degraded, "a healthy Redis must never degrade the backend"
        await backend.aclose()


@pytest.fixture
def backend(replicas: Factory) -> LimitBackend:
    return replicas()


def rpm(value: int, kind: str = "requests", unit: str = "rpm") -> RateLimit:
    return RateLimit.from_mapping({"type": kind, "unit": unit, "value": value})


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({"type": "calls", "unit": "rpm", "value": 1}, "rate_limits.0.type"),
        ({"type": "requests", "unit": "rpy", "value": 1}, "rate_limits.0.unit"),
        ({"type": "requests", "unit": "rpm", "value": -1}, "rate_limits.0.value"),
        ({"type": "requests", "unit": "rpm", "value": "10"}, "rate_limits.0.value"),
        ({"type": "requests", "unit": "rpm", "value": 1.5}, "rate_limits.0.value"),
        ({"type": "requests", "unit": "rpm", "value": True}, "rate_limits.0.value"),
    ],
)
def test_a_bad_rate_limit_is_refused_naming_the_field(item: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}:"):
        parse_rate_limits([item])


def test_the_same_rate_limit_twice_is_refused() -> None:
    limit = {"type": "requests", "unit": "rpm", "value": 1}
    with pytest.raises(ValueError, match="once"):
        parse_rate_limits([limit, dict(limit, value=2)])


@pytest.mark.parametrize(
    ("usage_limits", "field"),
    [
        ({"credit_limit": -1}, "credit_limit"),
        ({"credit_limit": "10"}, "credit_limit"),
        ({"credit_limit": float("inf")}, "credit_limit"),
        ({"credit_limit": 10, "type": "dollars"}, "type"),
        ({"credit_limit": 10, "alert_threshold": -2}, "alert_threshold"),
        ({"credit_limit": 10, "periodic_reset": "daily"}, "periodic_reset"),
        ({"credit_limit": 10, "periodic_reset_days": 0}, "periodic_reset_days"),
        ({"credit_limit": 10, "periodic_reset_days": 366}, "periodic_reset_days"),
        ({"credit_limit": 10, "periodic_reset": "weekly", "periodic_reset_days": 7}, "periodic"),
    ],
)
def test_a_bad_budget_is_refused_naming_the_field(usage_limits: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^usage_limits\.{field}"):
        parse_budget(usage_limits)


def test_a_budget_as_the_records_hold_it() -> None:
    created = datetime(2030, 1, 10, 12, tzinfo=UTC)
    budget = parse_budget(
        {"credit_limit": 5, "type": "tokens", "alert_threshold": 4, "periodic_reset_days": 7},
        anchor=created,
    )
    assert budget == Budget(5.0, "tokens", 4.0, None, 7, created.timestamp())
    assert budget.describe() == "5 tokens every 7 days"
    assert parse_budget(None) is None
    assert parse_budget({}) == Budget(None)  # counted, never refused


# -- rate limits ----------------------------------------------------------------------------


async def test_a_burst_admits_exactly_the_limit(backend: LimitBackend, clock: Clock) -> None:
    limits = (rpm(3),)
    decisions = [await backend.admit("key", limits) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.statuses[0].remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.refused == limits[0]
    assert refused.retry_after == pytest.approx(20.0)  # one request's share of the minute
    assert refused.statuses[0].reset == pytest.approx(60.0)
    clock.advance(19.9)
    assert not (await backend.admit("key", limits)).allowed
    clock.advance(0.1)
    assert (await backend.admit("key", limits)).allowed
    assert not (await backend.admit("key", limits)).allowed


async def test_capacity_comes_back_continuously(backend: LimitBackend, clock: Clock) -> None:
    limits = (rpm(60),)
    for _ in range(60):
        assert (await backend.admit("key", limits)).allowed
    clock.advance(30)  # half a minute gives back half the limit, not all or nothing
    admitted = [(await backend.admit("key", limits)).allowed for _ in range(31)]
    assert admitted.count(True) == 30


async def test_subjects_do_not_share_limits(backend: LimitBackend) -> None:
    assert (await backend.admit("a", (rpm(1),))).allowed
    assert not (await backend.admit("a", (rpm(1),))).allowed
    assert (await backend.admit("b", (rpm(1),))).allowed


async def test_every_limit_counts_and_a_refusal_costs_nothing(
    backend: LimitBackend, clock: Clock
) -> None:
    limits = (rpm(10), rpm(1, unit="rps"))
    assert (await backend.admit("key", limits)).allowed
    refused = await backend.admit("key", limits)
    assert not refused.allowed
    assert refused.refused == limits[1]
    assert refused.retry_after == pytest.approx(1.0)
    # the refused request did not count against the minute
    assert [s.remaining for s in refused.statuses] == [9, 0]
    clock.advance(1)
    admitted = await backend.admit("key", limits)
    assert admitted.allowed
    assert [s.remaining for s in admitted.statuses] == [8, 0]


async def test_a_limit_of_zero_refuses_everything(backend: LimitBackend, clock: Clock) -> None:
    limits = (rpm(100), rpm(0, unit="rpd"))
    for _ in range(3):
        decision = await backend.admit("key", limits)
        assert not decision.allowed
        assert decision.refused == limits[1]
        assert decision.retry_after is None  # waiting does not help
        clock.advance(86400)
    assert decision.statuses[0].remaining == 100  # nothing counted
    headers = rate_limit_headers(decision)
    assert "retry-after" not in headers
    assert headers["x-ratelimit-remaining-requests"] == "0"
    error = rate_limit_error(decision, "API key 'ci'")
    assert error.status == 429
    assert "disabled" in error.message and "0 requests per day (rpd)" in error.message


async def test_token_limits_hold_requests_back_while_spent(
    backend: LimitBackend, clock: Clock
) -> None:
    limits = (rpm(10), rpm(1000, kind="tokens"))
    first = await backend.admit("key", limits)
    assert first.allowed
    assert first.statuses[1].remaining == 1000  # admitting does not spend tokens
    await backend.record_tokens("key", limits, 1500)  # the answer used more than the window
    refused = await backend.admit("key", limits)
    assert not refused.allowed
    assert refused.refused == limits[1]
    # 1500 tokens are 90 s of a 1000-per-minute window: room for one more token after 30 s
    assert refused.retry_after == pytest.approx(30.06)
    assert refused.statuses[0].remaining == 9  # the refused request was not counted
    clock.advance(30.06)
    assert (await backend.admit("key", limits)).allowed
    await backend.record_tokens("key", limits, 0)  # nothing used: nothing changes
    await backend.record_tokens("key", (rpm(5),), 100)  # no token limit: nothing to do


async def test_a_key_without_limits_is_admitted_without_a_round_trip(
    backend: LimitBackend,
) -> None:
    decision = await backend.admit("key", ())
    assert decision == Decision(True)
    assert rate_limit_headers(decision) == {}


async def test_limits_as_the_records_hold_them(backend: LimitBackend) -> None:
    stored = ({"type": "requests", "unit": "rpm", "value": 1},)
    assert (await backend.admit("key", stored)).allowed
    assert not (await backend.admit("key", list(stored))).allowed


async def test_replicas_admit_exactly_the_limit_together(replicas: Factory) -> None:
    first, second = replicas(), replicas()
    limits = (rpm(50), rpm(500, unit="rph"))
    decisions = await asyncio.gather(
        *((first if i % 2 else second).admit("shared", limits, now=START) for i in range(200))
    )
    assert sum(d.allowed for d in decisions) == 50
    assert {d.refused for d in decisions if not d.allowed} == {limits[0]}


# -- headers and errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.0004, "1ms"),
        (0.25, "250ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.9991, "1m0s"),
        (360, "6m0s"),
        (3723.25, "1h2m3.25s"),
        (86400, "24h0m0s"),
    ],
)
def test_reset_durations_read_as_openai_writes_them(seconds: float, text: str) -> None:
    assert format_reset(seconds) == text


async def test_the_headers_of_a_refusal(backend: LimitBackend) -> None:
    limits = (rpm(2), rpm(100, unit="rpd"), rpm(10_000, kind="tokens"))
    await backend.admit("key", limits)
    admitted = await backend.admit("key", limits)
    assert rate_limit_headers(admitted) == {
        "x-ratelimit-limit-requests": "2",  # the tightest of rpm and rpd
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m0s",
        "x-ratelimit-limit-tokens": "10000",
        "x-ratelimit-remaining-tokens": "10000",
        "x-ratelimit-reset-tokens": "0s",
    }
    refused = await backend.admit("key", limits)
    headers = rate_limit_headers(refused)
    assert headers["retry-after"] == "30"
    assert headers["retry-after-ms"] == "30000"
    error = rate_limit_error(refused, "API key 'ci'")
    assert isinstance(error, RateLimitExceeded)
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.message == (
        "rate limit reached for API key 'ci': 2 requests per minute (rpm); try again in 30s"
    )
    assert error.headers == headers


async def test_retry_after_rounds_up(backend: LimitBackend) -> None:
    limits = (rpm(7),)  # 60/7 s apart
    for _ in range(7):
        await backend.admit("key", limits)
    headers = rate_limit_headers(await backend.admit("key", limits))
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("9", "8572")


# -- budgets ---------------------------------------------------------------------------------


async def test_a_token_budget_runs_out(backend: LimitBackend) -> None:
    budget = {"credit_limit": 100, "type": "tokens", "alert_threshold": 80}
    state = await backend.check_budget("vk", budget)
    assert (state.used, state.limit, state.exhausted, state.remaining) == (0, 100, False, 100)
    assert state.next_reset is None and state.period_start is None
    crossed = []
    for _ in range(4):
        state = await backend.charge("vk", budget, 30)
        crossed.append((state.alert_crossed, state.exhausted_now))
    assert crossed == [(False, False), (False, False), (True, False), (False, True)]
    assert (state.used, state.exhausted, state.remaining) == (120, True, 0)
    assert (await backend.check_budget("vk", budget)).exhausted
    error = budget_error(state, "virtual key 'prod'")
    assert isinstance(error, BudgetExhausted)
    assert (error.status, error.code) == (412, "budget_exhausted")
    assert "virtual key 'prod'" in error.message and "120 of 100 tokens" in error.message


async def test_a_cost_budget_adds_fractions_exactly_alike(backend: LimitBackend) -> None:
    budget = Budget(1.0, "cost", alert_threshold=0.3)
    states = [await backend.charge("key", budget, 0.1) for _ in range(10)]
    assert [s.alert_crossed for s in states].index(True) == 2  # 0.1 * 3 > 0.3 in floats
    assert states[-1].used == sum([0.1] * 10)
    assert states[-1].exhausted_now is False  # 0.9999999999999999
    assert (await backend.charge("key", budget, 0.0)).used == states[-1].used


async def test_a_budget_of_zero_is_exhausted_from_the_start(backend: LimitBackend) -> None:
    state = await backend.check_budget("key", {"credit_limit": 0})
    assert state.exhausted
    assert "resets" not in budget_error(state, "API key 'x'").message


async def test_no_budget_counts_nothing(backend: LimitBackend) -> None:
    state = await backend.charge("key", None, 5)
    assert (state.used, state.limit, state.exhausted) == (0, None, False)


async def test_a_charge_must_be_a_finite_amount(backend: LimitBackend) -> None:
    for amount in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="finite"):
            await backend.charge("key", {"credit_limit": 1}, amount)


async def test_a_monthly_budget_resets_on_the_first_at_midnight_utc(
    backend: LimitBackend, clock: Clock
) -> None:
    budget = Budget(10, "cost", alert_threshold=5, periodic_reset="monthly")
    state = await backend.charge("key", budget, 12)
    assert state.exhausted and state.alert_crossed
    assert state.period_start == datetime(2030, 1, 1, tzinfo=UTC)
    assert state.next_reset == datetime(2030, 2, 1, tzinfo=UTC)
    clock.now = datetime(2030, 1, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp()
    assert (await backend.check_budget("key", budget)).exhausted
    clock.now = datetime(2030, 2, 1, tzinfo=UTC).timestamp()
    state = await backend.check_budget("key", budget)
    assert (state.used, state.exhausted) == (0, False)
    assert state.next_reset == datetime(2030, 3, 1, tzinfo=UTC)
    again = await backend.charge("key", budget, 6)
    assert again.alert_crossed  # once per period: the new period alerts again


async def test_a_reset_starts_the_period_over(backend: LimitBackend) -> None:
    budget = Budget(10, "tokens", alert_threshold=5, periodic_reset="weekly")
    await backend.charge("key", budget, 10)
    state = await backend.reset_budget("key", budget)
    assert (state.used, state.exhausted) == (0, False)
    assert (await backend.check_budget("key", budget)).used == 0
    assert (await backend.charge("key", budget, 5)).alert_crossed


async def test_replicas_share_a_budget_and_alert_once(replicas: Factory) -> None:
    """200 requests, 20 at a time, on two replicas, against a budget of 100 tokens costing 3
    each: the overspend is at most the requests in flight when it ran out."""
    first, second = replicas(), replicas()
    budget = Budget(100, "tokens", alert_threshold=50)
    cost, concurrency = 3, 20
    gate = asyncio.Semaphore(concurrency)
    admitted = []
    results = []

    async def request(backend: LimitBackend) -> None:
        async with gate:
            if (await backend.check_budget("team", budget)).exhausted:
                return
            admitted.append(1)
            await asyncio.sleep(0)  # the provider answers
            results.append(await backend.charge("team", budget, cost))

    await asyncio.gather(*(request(first if i % 2 else second) for i in range(200)))
    used = (await second.check_budget("team", budget)).used
    assert used == cost * len(admitted)
    assert 100 <= used <= 100 + cost * concurrency
    assert sum(r.alert_crossed for r in results) == 1
    assert sum(r.exhausted_now for r in results) == 1


# -- periods ---------------------------------------------------------------------------------


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=UTC).timestamp()  # type: ignore[misc]


@pytest.mark.parametrize(
    ("budget", "now", "start", "end"),
    [
        (
            Budget(1, periodic_reset="monthly"),
            at(2030, 12, 31, 23, 59),
            (2030, 12, 1),
            (2031, 1, 1),
        ),
        (Budget(1, periodic_reset="monthly"), at(2032, 2, 29, 12), (2032, 2, 1), (2032, 3, 1)),
        # 2030-01-06 is a Sunday: its week began on Monday the 1st ...
        (Budget(1, periodic_reset="weekly"), at(2030, 1, 6, 23, 59), (2029, 12, 31), (2030, 1, 7)),
        # ... and Monday 00:00 starts the next one
        (Budget(1, periodic_reset="weekly"), at(2030, 1, 7), (2030, 1, 7), (2030, 1, 14)),
        # every 10 days from the budget's creation, 2030-01-03 06:00
        (
            Budget(1, periodic_reset_days=10, anchor=at(2030, 1, 3, 6)),
            at(2030, 1, 25),
            (2030, 1, 23, 6),
            (2030, 2, 2, 6),
        ),
        # without an anchor, days count from the epoch (so periods start at 00:00 UTC)
        (Budget(1, periodic_reset_days=1), at(2030, 5, 5, 13), (2030, 5, 5), (2030, 5, 6)),
    ],
)
def test_periods_start_at_documented_utc_boundaries(
    budget: Budget, now: float, start: tuple[int, ...], end: tuple[int, ...]
) -> None:
    period = budget_period(budget, now)
    assert (period.start, period.end) == (at(*start), at(*end))
    assert datetime(*start[:3]).weekday() == 0 or budget.periodic_reset != "weekly"


def test_a_budget_without_reset_has_one_period() -> None:
    period = budget_period(Budget(1), START)
    assert (period.start, period.end, period.id) == (None, None, "total")


# -- persistence -----------------------------------------------------------------------------


async def test_usage_survives_a_restart(replicas: Factory, clock: Clock) -> None:
    backend = replicas()
    monthly = Budget(100, "cost", alert_threshold=1, periodic_reset="monthly")
    await backend.charge("a", monthly, 2.5)
    await backend.charge("b", Budget(10, "tokens"), 7)
    snapshot = await backend.usage_snapshot()
    assert [(e.subject, e.type, e.used, e.alerted) for e in snapshot] == [
        ("a", "cost", 2.5, True),
        ("b", "tokens", 7, False),
    ]
    assert snapshot[0].expires_at == at(2030, 2, 1)
    assert await backend.usage_snapshot() == []  # nothing changed since

    fresh = MemoryLimitBackend(clock)  # a restarted process
    assert await fresh.load_usage(snapshot) == 2
    assert await fresh.load_usage(snapshot) == 2  # loading again adds nothing
    assert (await fresh.check_budget("a", monthly)).used == 2.5
    assert not (await fresh.charge("a", monthly, 1)).alert_crossed  # already alerted

    clock.now = at(2030, 2, 1)  # a restart after the period ended: the entry is stale
    later = MemoryLimitBackend(clock)
    assert await later.load_usage(snapshot) == 1
    assert (await later.check_budget("a", monthly)).used == 0


async def test_loading_usage_never_lowers_it(backend: LimitBackend) -> None:
    budget = Budget(10, "tokens")
    await backend.charge("a", budget, 5)
    taken = await backend.load_usage([UsageEntry("a", "tokens", "total", 3)])
    assert taken == 1
    assert (await backend.check_budget("a", budget)).used == 5
    await backend.load_usage([UsageEntry("a", "tokens", "total", 8)])
    assert (await backend.check_budget("a", budget)).used == 8


# -- the two backends agree ------------------------------------------------------------------


async def test_both_backends_compute_the_same_results(
    redis_server: RedisServer, clock: Clock
) -> None:
    """A seeded random run of every operation gives bit-for-bit the same answers."""
    memory = MemoryLimitBackend(clock)
    shared = RedisLimitBackend(f"redis://127.0.0.1:{redis_server.port}/0", clock=clock)
    rng = random.Random(12)
    limits = (rpm(7), rpm(3, unit="rps"), rpm(900, kind="tokens"), rpm(40, unit="rph"))
    budget = Budget(12.0, "cost", alert_threshold=5.0, periodic_reset_days=1)
    refused = alerts = 0
    try:
        for _ in range(400):
            subject = rng.choice(["a", "b"])
            step = rng.random()
            if step < 0.5:
                some = limits[: rng.randint(1, 4)]
                answers = [await b.admit(subject, some) for b in (memory, shared)]
                assert answers[0] == answers[1]
                refused += not answers[0].allowed
            elif step < 0.65:
                tokens = rng.randint(1, 400)
                for b in (memory, shared):
                    await b.record_tokens(subject, limits, tokens)
            elif step < 0.85:
                amount = rng.uniform(0, 3)
                states = [await b.charge(subject, budget, amount) for b in (memory, shared)]
                assert states[0] == states[1]
                alerts += states[0].alert_crossed
            else:
                clock.advance(rng.choice([0.1, 0.5, 3, 17, 3600, 86400]))
    finally:
        await shared.aclose()
    assert refused > 20 and alerts > 2  # the run did reach refusals and new periods


# -- Redis specifics -------------------------------------------------------------------------


async def test_redis_keys_expire_with_their_state(redis_server: RedisServer, clock: Clock) -> None:
    backend = RedisLimitBackend(f"redis://127.0.0.1:{redis_server.port}/0", clock=clock)
    client = aioredis.Redis(port=redis_server.port)
    try:
        await backend.admit("k", (rpm(10),))
        await backend.charge("k", Budget(5, periodic_reset="monthly"), 1)
        await backend.charge("k", Budget(5, "tokens"), 1)
        ttls = {key.decode(): await client.pttl(key) for key in await client.keys("*")}
        rate = ttls["portkey-mw:limits:{k}:rate:requests:rpm"]
        assert 60_000 < rate <= 66_000  # until the TAT passes, plus one period
        monthly = ttls["portkey-mw:limits:{k}:budget:cost"]
        assert 3_600_000 + 86_400_000 - 5000 < monthly <= 3_600_000 + 86_400_000
        assert ttls["portkey-mw:limits:{k}:budget:tokens"] == -1  # never resets: kept
    finally:
        await client.aclose()
        await backend.aclose()


async def poll_until_recovered(backend: RedisLimitBackend, budget: Budget) -> None:
    end = time.monotonic() + DEADLINE
    while backend.degraded:
        assert time.monotonic() < end, "the backend did not recover after Redis came back"
        await backend.check_budget("probe", budget)  # each call may start the probe
        await asyncio.sleep(0.02)


async def test_redis_going_away_degrades_and_recovers(
    redis_server: RedisServer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="portkey_mw.limits")
    url = f"redis://127.0.0.1:{redis_server.port}/0"
    first = RedisLimitBackend(url, clock=clock, min_backoff=0.01, max_backoff=0.05)
    second = RedisLimitBackend(url, clock=clock, min_backoff=0.01, max_backoff=0.05)
    budget = Budget(100, "tokens", alert_threshold=90)
    limits = (rpm(5),)
    try:
        await first.charge("key", budget, 60)
        assert (await first.admit("key", limits)).allowed
        redis_server.stop()

        # Nothing raises; decisions come from this process, going on from the usage it saw.
        decision = await first.admit("key", limits)
        assert decision.allowed and decision.degraded
        assert first.degraded and first.health()["degraded"] is True
        state = await first.charge("key", budget, 35)
        assert (state.used, state.degraded, state.alert_crossed) == (95, True, True)
        assert (await first.check_budget("key", budget)).used == 95
        await first.record_tokens("key", (rpm(10, kind="tokens"),), 5)
        await first.reset_budget("other", budget)
        assert await first.load_usage([UsageEntry("x", "tokens", "total", 1)]) == 0
        for _ in range(5):
            assert (await first.admit("key", limits)).degraded
        down = [r for r in caplog.records if "limits.redis_unavailable" in r.getMessage()]
        assert len(down) == 1  # logged once per outage
        assert first.health()["outages"] == 1

        redis_server.start()  # back, and empty (no persistence)
        await poll_until_recovered(first, budget)
        assert [r for r in caplog.records if "limits.redis_recovered" in r.getMessage()]
        # What was counted meanwhile went to Redis, so the other replica sees it ...
        assert (await second.check_budget("key", budget)).used == 95
        # ... and the two share one budget and one rate limit again.
        assert (await second.charge("key", budget, 5)).exhausted_now
        assert (await first.check_budget("key", budget)).exhausted
        shared = (rpm(2, unit="rph"),)
        assert (await first.admit("again", shared)).allowed
        assert (await second.admit("again", shared)).allowed
        assert not (await first.admit("again", shared)).allowed
        assert not first.degraded and first.health()["down_since"] is None
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_burst_shares_a_few_connections_and_never_degrades(
    redis_server: RedisServer, clock: Clock
) -> None:
    # Found by tests/test_spend_replicas.py: with one connection per concurrent call, a
    # burst of 100 requests per replica opened 100 connections at once, their connects
    # missed the 0.25 s timeout on a busy event loop, and a healthy Redis was taken for
    # down (each replica then admitted a whole rate limit of its own).
    backend = RedisLimitBackend(f"redis://127.0.0.1:{redis_server.port}/0", clock=clock)
    observer = aioredis.Redis(port=redis_server.port)
    try:
        decisions = await asyncio.gather(
            *(backend.admit("burst", (rpm(50, unit="rph"),)) for _ in range(200))
        )
        assert sum(d.allowed for d in decisions) == 50
        assert not backend.degraded
        clients = await observer.client_list()
        assert len(clients) <= 16 + 1  # the pool's bound, and the observer
    finally:
        await observer.aclose()
        await backend.aclose()


async def test_connections_from_before_an_outage_do_not_end_the_recovery(
    redis_server: RedisServer, clock: Clock
) -> None:
    # A generous timeout: this is about stale connections, not slow ones (a busy machine
    # stalling a healthy Redis past the 0.25 s default would look like a second outage).
    backend = RedisLimitBackend(
        f"redis://127.0.0.1:{redis_server.port}/0", clock=clock, min_backoff=0.01, timeout=2.0
    )
    limits = (rpm(10**6),)
    try:
        await asyncio.gather(*(backend.admit("k", limits) for _ in range(16)))  # 16 open
        redis_server.stop()
        assert (await backend.admit("k", limits)).degraded  # one of them finds out
        redis_server.start()
        await poll_until_recovered(backend, Budget(1, "tokens"))
        # The other 15 led to the old server: used now, they must not degrade it again.
        decisions = await asyncio.gather(*(backend.admit("k", limits) for _ in range(16)))
        assert not any(d.degraded for d in decisions)
        assert not backend.degraded and backend.outages == 1
    finally:
        await backend.aclose()


async def test_redis_never_reached_is_degraded_from_the_first_call(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="portkey_mw.limits")
    # A password in the URL: it must never reach a log line or the admin's state.
    url = f"redis://:{USERINFO_PASSWORD}@127.0.0.1:{free_port()}/0"
    backend = RedisLimitBackend(url, clock=clock, max_backoff=0.05)
    try:
        assert (await backend.admit("key", (rpm(1),))).allowed
        assert not (await backend.admit("key", (rpm(1),))).allowed  # enforced locally
        assert backend.degraded
        assert USERINFO_PASSWORD not in repr(backend.health())
        assert not await backend.probe()
    finally:
        await backend.aclose()
    assert any("limits.redis_unavailable" in r.getMessage() for r in caplog.records)


def test_the_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTKEY_MW_REDIS_URL", "redis://127.0.0.1:1/3")
    assert RedisLimitBackend().url == "redis://127.0.0.1:1/3"
    assert RedisLimitBackend("redis://127.0.0.1:2/0").url == "redis://127.0.0.1:2/0"


def test_the_package_exports_what_it_lists() -> None:
    import types

    public = {
        name
        for name, value in vars(limits_package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(limits_package.__all__) == sorted(public)
