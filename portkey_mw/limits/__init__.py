"""Spend control: rate limits (GCRA) and budgets, in process or shared through Redis.

See docs/limits.md. The pipeline admits each request after identifying it
(:meth:`LimitBackend.admit`, :meth:`LimitBackend.check_budget`) and charges it after the
response (:meth:`LimitBackend.record_tokens`, :meth:`LimitBackend.charge`).
"""

from portkey_mw.limits.backend import Clock, LimitBackend
from portkey_mw.limits.errors import (
    BudgetExhausted,
    RateLimitExceeded,
    budget_error,
    rate_limit_error,
)
from portkey_mw.limits.headers import format_reset, rate_limit_headers
from portkey_mw.limits.memory import MemoryLimitBackend
from portkey_mw.limits.periods import Period, budget_period
from portkey_mw.limits.redis_backend import REDIS_URL_ENV, RedisLimitBackend
from portkey_mw.limits.results import BudgetState, Decision, LimitStatus, UsageEntry
from portkey_mw.limits.spec import Budget, RateLimit, parse_budget, parse_rate_limits

__all__ = [
    "REDIS_URL_ENV",
    "Budget",
    "BudgetExhausted",
    "BudgetState",
    "Clock",
    "Decision",
    "LimitBackend",
    "LimitStatus",
    "MemoryLimitBackend",
    "Period",
    "RateLimit",
    "RateLimitExceeded",
    "RedisLimitBackend",
    "UsageEntry",
    "budget_error",
    "budget_period",
    "format_reset",
    "parse_budget",
    "parse_rate_limits",
    "rate_limit_error",
    "rate_limit_headers",
]
