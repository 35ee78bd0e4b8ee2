"""Conditional routing: Portkey's query operators over metadata, params and the URL."""

from __future__ import annotations

from typing import Any

from portkey_mw import patterns
from portkey_mw.context import RequestContext
from portkey_mw.errors import InvalidConfig


def _lookup(ctx: RequestContext, key: str) -> Any:
    scope, _, rest = key.partition(".")
    if scope == "metadata":
        return ctx.metadata.get(rest)
    if scope == "params":
        value: Any = ctx.body
        for part in rest.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    if key == "url.pathname":
        return ctx.path
    return None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    try:
        if op == "$eq":
            return bool(actual == expected)
        if op == "$ne":
            return bool(actual != expected)
        if op == "$in":
            return actual in expected
        if op == "$nin":
            return actual not in expected
        if op == "$regex":
            return actual is not None and patterns.search(str(expected), str(actual)) is not None
        if actual is None:
            return False
        if op == "$gt":
            return bool(actual > expected)
        if op == "$gte":
            return bool(actual >= expected)
        if op == "$lt":
            return bool(actual < expected)
        if op == "$lte":
            return bool(actual <= expected)
    except TypeError:
        return False
    except patterns.PatternTimeout as exc:
        raise InvalidConfig(f"conditional $regex: {exc}") from None
    raise InvalidConfig(f"unknown operator {op!r}")


def matches(ctx: RequestContext, query: dict[str, Any]) -> bool:
    """Whether ``query`` (Portkey's conditional-routing syntax) holds for this request."""
    for key, condition in query.items():
        if key == "$and":
            if not all(matches(ctx, q) for q in condition):
                return False
        elif key == "$or":
            if not any(matches(ctx, q) for q in condition):
                return False
        else:
            actual = _lookup(ctx, key)
            if isinstance(condition, dict):
                if not all(_compare(op, actual, exp) for op, exp in condition.items()):
                    return False
            elif actual != condition:
                return False
    return True
