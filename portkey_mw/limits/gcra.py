"""GCRA (the generic cell rate algorithm), the rate limiter of both backends.

A limit of ``value`` per ``period`` seconds is a bucket holding at most ``value`` units
that empties continuously, one unit every ``interval = period / value`` seconds. A request
is admitted when one more unit fits; so a full limit's worth may come at once, and from
then on capacity comes back one unit per interval, not all at once at a window edge (at
most ``value`` at a time, and ``value`` per period on average; a window of one period
may see up to ``2 * value - 1``, a full bucket plus what drained meanwhile -- the token
bucket OpenAI's limits behave as).

Each limit keeps one record: the bucket's *level* (in units) and the time it was measured
(``last``). That is GCRA's theoretical arrival time, ``last + level * interval``, kept in
two parts because counting units is exact in floating point (a burst at one instant adds
1.0 at a time), where adding intervals to epoch seconds rounds at every step. Compared
with a sliding-window log it stores two numbers per limit instead of one entry per
request; unlike a fixed window it has no edge at which twice the limit gets through, and
unlike a weighted sliding-window counter it is exact.

Token limits cannot know a request's tokens before it runs, so admitting only checks
that one more token fits (the window is not spent), and :func:`charge` adds the tokens
actually used once known; the level may go above ``value`` (a debt), which holds
requests back until it drains.

:mod:`portkey_mw.limits.scripts` runs the same arithmetic in Lua inside Redis; the two
must stay identical (a test runs one seeded sequence against both and compares).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

from portkey_mw.limits.results import Decision, LimitStatus
from portkey_mw.limits.spec import RateLimit

#: Slack on the admission test, in seconds: epoch seconds in doubles step by ~2.4e-7 s
#: today, so a client that waits exactly the advertised ``retry_after`` may come back a
#: rounding step "early"; a microsecond absorbs that. (Converted to units per limit; it
#: exceeds one unit only for limits faster than a million per second.)
SLACK_SECONDS = 1e-6


class Bucket(NamedTuple):
    """A limit's stored state: its level (units) as measured at ``last`` (epoch seconds)."""

    level: float
    last: float


def drained(bucket: Bucket | None, interval: float, now: float) -> Bucket:
    """The bucket at ``now``; a clock behind ``last`` (another replica's) drains nothing."""
    if bucket is None:
        return Bucket(0.0, now)
    elapsed = now - bucket.last
    if elapsed < 0:
        elapsed = 0.0
    level = bucket.level - elapsed / interval
    if level < 0:
        level = 0.0
    return Bucket(level, bucket.last if bucket.last > now else now)


def evaluate(
    limits: Sequence[RateLimit], buckets: Sequence[Bucket | None], now: float
) -> tuple[bool, tuple[LimitStatus, ...], list[Bucket | None]]:
    """Decide one request against every limit at once (all or nothing).

    :param buckets: each limit's stored state (None: never used, or expired).
    :return: whether it is admitted, each limit's status, and the buckets to store (None
        for a disabled limit; all of them unchanged when refused: a refused request
        costs nothing).
    """
    allowed = True
    checked: list[tuple[Bucket, float, float | None]] = []  # (now, level after, retry)
    for limit, bucket in zip(limits, buckets, strict=True):
        if limit.value == 0:
            allowed = False
            checked.append((Bucket(0.0, now), 0.0, None))
            continue
        interval = limit.interval
        current = drained(bucket, interval, now)
        need = current.level + 1
        if need <= limit.value + SLACK_SECONDS / interval:
            checked.append((current, need if limit.type == "requests" else current.level, 0.0))
        else:
            allowed = False
            checked.append((current, current.level, (need - limit.value) * interval))
    statuses = []
    stored: list[Bucket | None] = []
    for limit, (current, after, retry) in zip(limits, checked, strict=True):
        level = after if allowed else current.level
        statuses.append(status(limit, level, retry))
        stored.append(Bucket(level, current.last) if limit.value else None)
    return allowed, tuple(statuses), stored


def charge(limit: RateLimit, bucket: Bucket | None, now: float, units: float) -> Bucket:
    """The bucket of an enabled limit after ``units`` more tokens."""
    current = drained(bucket, limit.interval, now)
    return Bucket(current.level + units, current.last)


def status(limit: RateLimit, level: float, retry: float | None) -> LimitStatus:
    """What a limit whose bucket holds ``level`` units has left."""
    if limit.value == 0:
        return LimitStatus(limit, 0, 0.0, None)
    interval = limit.interval
    remaining = math.floor(limit.value - level + SLACK_SECONDS / interval)
    reset = level * interval
    return LimitStatus(limit, max(0, min(limit.value, remaining)), reset, retry)


def empties_at(limit: RateLimit, bucket: Bucket) -> float:
    """When ``bucket`` is empty again: from then on it means the same as no bucket."""
    return bucket.last + bucket.level * limit.interval


def decide(allowed: bool, statuses: tuple[LimitStatus, ...], degraded: bool = False) -> Decision:
    """The decision for ``statuses``: when refused, the limit to wait longest for (a
    disabled one first: waiting never admits it)."""
    if allowed:
        return Decision(True, statuses, degraded=degraded)
    disabled = next((s for s in statuses if s.retry_after is None), None)
    if disabled is not None:
        return Decision(False, statuses, disabled.limit, None, degraded)
    worst = max(statuses, key=lambda s: s.retry_after or 0.0)
    return Decision(False, statuses, worst.limit, worst.retry_after, degraded)
