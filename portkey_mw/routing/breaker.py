"""Circuit breaking: a target that keeps failing is skipped until a cooldown has passed.

One breaker per upstream (provider id, custom host and provider options), per process.
The classic three states: *closed* (requests flow; consecutive failures are counted),
*open* (requests are skipped until the cooldown ends), *half-open* (one trial request;
success closes the circuit, failure opens it for another cooldown).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from portkey_mw.config.server import CircuitBreakerOptions
from portkey_mw.redact import redact_url
from portkey_mw.routing.plan import ResolvedTarget

#: Upstreams whose health is tracked at once; the oldest closed circuits are forgotten first.
MAX_BREAKERS = 1024


class CircuitState(StrEnum):
    """Where a breaker stands."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(slots=True)
class CircuitBreaker:
    """The health of one upstream, as this process has seen it."""

    provider: str
    base_url: str
    #: a short digest of the provider options that are part of the key (values may be secret)
    options_digest: str
    state: CircuitState = CircuitState.CLOSED
    consecutive_failures: int = 0
    opened_at: float = 0.0
    trial_in_flight: bool = False
    trial_started: float = 0.0
    times_opened: int = 0


class CircuitBreakers:
    """Every breaker of the process, keyed by upstream.

    :param options: thresholds from the server file (``routing.circuit_breaker``).
    :param clock: monotonic seconds (replaceable in tests).
    """

    def __init__(
        self, options: CircuitBreakerOptions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.options = options
        self._clock = clock
        # Only upstreams that failed get a breaker (a healthy one needs no state), and the
        # table is bounded: clients choose hosts (x-portkey-custom-host), so they must not
        # be able to grow it without limit.
        self._breakers: OrderedDict[tuple[str, str, bytes], CircuitBreaker] = OrderedDict()

    def _breaker(self, target: ResolvedTarget, *, create: bool) -> CircuitBreaker | None:
        key = _key(target)
        breaker = self._breakers.get(key)
        if breaker is None and create:
            digest = hashlib.sha256(key[2]).hexdigest()[:8] if key[2] else ""
            shown = redact_url(target.custom_host) or ""  # userinfo or a query may hold a key
            breaker = CircuitBreaker(target.provider, shown, digest)
            self._breakers[key] = breaker
            if len(self._breakers) > MAX_BREAKERS:
                self._evict()
        return breaker

    def _evict(self) -> None:
        """Forget the oldest closed breaker (or, when all are open, the oldest one)."""
        for key, breaker in self._breakers.items():
            if breaker.state is CircuitState.CLOSED:
                del self._breakers[key]
                return
        self._breakers.popitem(last=False)

    def available(self, target: ResolvedTarget) -> bool:
        """Whether a request may go to ``target`` now (without claiming a trial slot)."""
        if not self.options.enabled:
            return True
        breaker = self._breaker(target, create=False)
        if breaker is None or breaker.state is CircuitState.CLOSED:
            return True
        if breaker.state is CircuitState.OPEN:
            return self._clock() - breaker.opened_at >= self.options.cooldown
        return not self._trial_pending(breaker)

    def acquire(self, target: ResolvedTarget) -> bool:
        """Claim the right to send one request to ``target``; False means skip it."""
        if not self.options.enabled:
            return True
        breaker = self._breaker(target, create=False)
        if breaker is None or breaker.state is CircuitState.CLOSED:
            return True
        if breaker.state is CircuitState.OPEN:
            if self._clock() - breaker.opened_at < self.options.cooldown:
                return False
            breaker.state = CircuitState.HALF_OPEN
        if self._trial_pending(breaker):
            return False
        breaker.trial_in_flight = True
        breaker.trial_started = self._clock()
        return True

    def _trial_pending(self, breaker: CircuitBreaker) -> bool:
        # A trial whose outcome never came back (its response was abandoned unread) stops
        # blocking after one cooldown, so a circuit cannot stay half-open forever.
        return (
            breaker.trial_in_flight
            and self._clock() - breaker.trial_started < self.options.cooldown
        )

    def record(self, target: ResolvedTarget, *, healthy: bool) -> None:
        """Record the outcome of a request that :meth:`acquire` let through."""
        if not self.options.enabled:
            return
        breaker = self._breaker(target, create=not healthy)
        if breaker is None:
            return
        breaker.trial_in_flight = False
        if healthy:
            breaker.state = CircuitState.CLOSED
            breaker.consecutive_failures = 0
            return
        breaker.consecutive_failures += 1
        if (
            breaker.state is CircuitState.HALF_OPEN
            or breaker.consecutive_failures >= self.options.failure_threshold
        ):
            if breaker.state is not CircuitState.OPEN:
                breaker.times_opened += 1
            breaker.state = CircuitState.OPEN
            breaker.opened_at = self._clock()

    def release(self, target: ResolvedTarget) -> None:
        """Give back a trial slot whose request ended without an outcome (client left)."""
        breaker = self._breaker(target, create=False)
        if breaker is not None:
            breaker.trial_in_flight = False

    def retry_in(self, target: ResolvedTarget) -> float:
        """Seconds until an open circuit lets a trial request through."""
        breaker = self._breaker(target, create=False)
        if breaker is None or breaker.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self.options.cooldown - (self._clock() - breaker.opened_at))

    def snapshot(self) -> list[dict[str, Any]]:
        """Every breaker's state, for the admin endpoint (no keys, userinfo or query strings)."""
        now = self._clock()
        rows = []
        for breaker in self._breakers.values():
            remaining = 0.0
            if breaker.state is CircuitState.OPEN:
                remaining = max(0.0, self.options.cooldown - (now - breaker.opened_at))
            rows.append(
                {
                    "provider": breaker.provider,
                    "base_url": breaker.base_url,
                    "options_digest": breaker.options_digest,
                    "state": breaker.state.value,
                    "consecutive_failures": breaker.consecutive_failures,
                    "times_opened": breaker.times_opened,
                    "retry_in_seconds": round(remaining, 3),
                }
            )
        return sorted(
            rows, key=lambda row: (row["provider"], row["base_url"], row["options_digest"])
        )


def _key(target: ResolvedTarget) -> tuple[str, str, bytes]:
    # Options are part of an upstream's identity (an in-process provider's whole behaviour
    # may hang on them), so two targets differing only there do not share a circuit.
    options = orjson.dumps(target.options, option=orjson.OPT_SORT_KEYS) if target.options else b""
    return target.provider, target.custom_host or "", options
