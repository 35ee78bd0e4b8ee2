"""Circuit breaker states, driven by a fake clock."""

from __future__ import annotations

from portkey_mw.config.server import CircuitBreakerOptions
from portkey_mw.routing import CircuitBreakers, ResolvedTarget

TARGET = ResolvedTarget(path="config", provider="openai", custom_host="http://a.test/v1?key=s")
OTHER = ResolvedTarget(path="config", provider="openai", custom_host="http://b.test/v1")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breakers(clock: Clock, threshold: int = 3, cooldown: float = 10) -> CircuitBreakers:
    options = CircuitBreakerOptions(failure_threshold=threshold, cooldown=cooldown)
    return CircuitBreakers(options, clock)


def fail(cb: CircuitBreakers, target: ResolvedTarget = TARGET) -> None:
    assert cb.acquire(target)
    cb.record(target, healthy=False)


def test_opens_after_consecutive_failures_only() -> None:
    cb = breakers(Clock())
    fail(cb)
    fail(cb)
    assert cb.acquire(TARGET)
    cb.record(TARGET, healthy=True)  # a success resets the count
    fail(cb)
    fail(cb)
    assert cb.available(TARGET)
    fail(cb)
    assert not cb.available(TARGET) and not cb.acquire(TARGET)
    assert cb.available(OTHER)  # circuits are per upstream


def test_half_open_lets_one_trial_through() -> None:
    clock = Clock()
    cb = breakers(clock)
    for _ in range(3):
        fail(cb)
    clock.now += 10
    assert cb.available(TARGET)
    assert cb.acquire(TARGET)  # the trial
    assert not cb.acquire(TARGET)  # nobody else while it runs
    cb.record(TARGET, healthy=False)  # trial failed: open again for a full cooldown
    assert not cb.acquire(TARGET)
    clock.now += 10
    assert cb.acquire(TARGET)
    cb.record(TARGET, healthy=True)
    assert cb.acquire(TARGET) and cb.acquire(TARGET)  # closed again


def test_abandoned_trial_does_not_block_forever() -> None:
    clock = Clock()
    cb = breakers(clock)
    for _ in range(3):
        fail(cb)
    clock.now += 10
    assert cb.acquire(TARGET)  # a trial whose outcome never comes back
    assert not cb.acquire(TARGET)
    clock.now += 10
    assert cb.acquire(TARGET)


def test_release_gives_back_the_trial() -> None:
    clock = Clock()
    cb = breakers(clock)
    for _ in range(3):
        fail(cb)
    clock.now += 10
    assert cb.acquire(TARGET)
    cb.release(TARGET)  # the client left before the outcome was known
    assert cb.acquire(TARGET)


def test_snapshot_hides_query_strings() -> None:
    clock = Clock()
    cb = breakers(clock)
    for _ in range(3):
        fail(cb)
    clock.now += 4
    (row,) = cb.snapshot()
    assert row == {
        "provider": "openai",
        "base_url": "http://a.test/v1",
        "options_digest": "",
        "state": "open",
        "consecutive_failures": 3,
        "times_opened": 1,
        "retry_in_seconds": 6.0,
    }


def test_disabled_breaker_never_skips() -> None:
    cb = CircuitBreakers(CircuitBreakerOptions(enabled=False))
    for _ in range(10):
        fail(cb)
    assert cb.available(TARGET) and cb.acquire(TARGET)


def test_healthy_upstreams_leave_no_state_and_the_table_is_bounded() -> None:
    from portkey_mw.routing import breaker as module

    cb = breakers(Clock(), threshold=1)
    assert cb.acquire(TARGET)
    cb.record(TARGET, healthy=True)
    assert cb.snapshot() == []
    for index in range(module.MAX_BREAKERS + 50):
        fail(cb, ResolvedTarget(path="config", provider="openai", custom_host=f"http://h{index}"))
    assert len(cb.snapshot()) == module.MAX_BREAKERS
