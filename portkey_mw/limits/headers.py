"""Rate-limit response headers, in OpenAI's names and formats.

``x-ratelimit-limit-requests``/``-tokens`` (the limit's value),
``x-ratelimit-remaining-requests``/``-tokens`` (what is left after this request) and
``x-ratelimit-reset-requests``/``-tokens`` (until the limit is full again, as OpenAI
writes it: ``1s``, ``6m0s``, ``120ms``). A key with several limits of one type (say rpm
and rpd) reports the tightest: the one with the least remaining, then the longest
reset. A refused request also gets ``retry-after`` (whole seconds, rounded up) and
``retry-after-ms``, which the openai SDK honours before ``retry-after``.
"""

from __future__ import annotations

import math

from portkey_mw.limits.results import Decision, LimitStatus


def format_reset(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: ``0s``, ``250ms``, ``1.5s``, ``6m0s``,
    ``1h0m0s`` (Go's duration format, rounded up to the millisecond)."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    text = f"{whole}.{fraction:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    if minutes:
        return f"{minutes}m{text}"
    return text


def _tightest(statuses: list[LimitStatus]) -> LimitStatus:
    return min(statuses, key=lambda status: (status.remaining, -status.reset))


def rate_limit_headers(decision: Decision) -> dict[str, str]:
    """The headers to send with the answer to a request ``decision`` was made for (an
    admitted one, or the 429)."""
    headers: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        statuses = [status for status in decision.statuses if status.limit.type == kind]
        if not statuses:
            continue
        status = _tightest(statuses)
        headers[f"x-ratelimit-limit-{kind}"] = str(status.limit.value)
        headers[f"x-ratelimit-remaining-{kind}"] = str(status.remaining)
        headers[f"x-ratelimit-reset-{kind}"] = format_reset(status.reset)
    if not decision.allowed and decision.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(decision.retry_after - 1e-6)))
        headers["retry-after-ms"] = str(max(1, math.ceil(decision.retry_after * 1000 - 1e-6)))
    return headers
