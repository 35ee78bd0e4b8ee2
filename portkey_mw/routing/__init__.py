"""Routing: configs compiled into plans, and the router that walks them per request."""

from portkey_mw.routing.breaker import CircuitBreakers, CircuitState
from portkey_mw.routing.conditions import matches
from portkey_mw.routing.plan import (
    PlanNode,
    ResolvedTarget,
    StrategyNode,
    compile_plan,
    plan_leaves,
    plan_providers,
)
from portkey_mw.routing.router import Router, retry_after_seconds

__all__ = [
    "CircuitBreakers",
    "CircuitState",
    "PlanNode",
    "ResolvedTarget",
    "Router",
    "StrategyNode",
    "compile_plan",
    "matches",
    "plan_leaves",
    "plan_providers",
    "retry_after_seconds",
]
