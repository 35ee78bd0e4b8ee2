"""The answers to a request a limit refuses: 429 for a rate limit, 412 for a budget.

Both name what refused, in words a client developer can act on, and carry the headers
to send (:attr:`headers`); the pipeline adds them to the response.
"""

from __future__ import annotations

from portkey_mw.errors import GatewayError
from portkey_mw.limits.headers import format_reset, rate_limit_headers
from portkey_mw.limits.results import BudgetState, Decision


class RateLimitExceeded(GatewayError):
    """429: a rate limit refused the request. OpenAI's shape: ``type`` is ``requests`` or
    ``tokens``, ``code`` is ``rate_limit_exceeded``."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, type: str, headers: dict[str, str]) -> None:
        super().__init__(message, type=type)
        self.headers = headers


class BudgetExhausted(GatewayError):
    """412 (Portkey's status): a budget is spent until its next reset."""

    status = 412
    type = "budget_exceeded"
    code = "budget_exhausted"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = {}


def rate_limit_error(decision: Decision, owner: str) -> RateLimitExceeded:
    """The 429 for a refused ``decision``; ``owner`` says whose limit it is, e.g.
    ``API key 'ci'`` (a name, never the key)."""
    limit = decision.refused
    assert limit is not None, "rate_limit_error needs a refused decision"
    if limit.disabled:
        message = f"{owner} is disabled by its rate limit: {limit.describe()} admits nothing"
    else:
        wait = format_reset(decision.retry_after or 0.0)
        message = f"rate limit reached for {owner}: {limit.describe()}; try again in {wait}"
    return RateLimitExceeded(message, type=limit.type, headers=rate_limit_headers(decision))


def budget_error(state: BudgetState, owner: str) -> BudgetExhausted:
    """The 412 for an exhausted budget; ``owner`` names it, e.g. ``virtual key 'prod'``."""
    unit = "USD" if state.type == "cost" else "tokens"
    spent = f"{state.used:g} of {state.limit or 0:g} {unit} used"
    if state.next_reset is not None:
        when = state.next_reset.strftime("%Y-%m-%dT%H:%M:%SZ")
        tail = f"this period; it resets at {when}"
    else:
        tail = "(no periodic reset: an admin must raise or reset it)"
    return BudgetExhausted(f"budget of {owner} is exhausted: {spent} {tail}")
