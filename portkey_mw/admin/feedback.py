"""Portkey's feedback API: scores on a trace (``POST /v1/feedback``, one or an array;
``PUT /v1/feedback/{id}``).

``value`` is a whole number from -10 to 10, ``weight`` a number from 0 to 1 (default 1),
``metadata`` an object. A trace id no request log carries is refused (404 naming it), so
feedback always lands on a request the gateway saw (or a custom log).
"""

from __future__ import annotations

import math
from typing import Any

from portkey_mw.admin.http import Call
from portkey_mw.admin.logs import services
from portkey_mw.errors import InvalidRequest, NotFound
from portkey_mw.logstore.feedback import FeedbackIn

#: The most feedback items one call may hold.
MAX_ITEMS = 1000
_FIELDS = frozenset({"trace_id", "value", "weight", "metadata"})


def _where(index: int | None, name: str) -> str:
    return name if index is None else f"[{index}].{name}"


def _value(raw: Any, param: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw != int(raw):
        raise InvalidRequest(f"{param} must be a whole number from -10 to 10", param=param)
    if not -10 <= raw <= 10:
        raise InvalidRequest(f"{param} must be from -10 to 10, got {raw}", param=param)
    return int(raw)


def _weight(raw: Any, param: str) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidRequest(f"{param} must be a number from 0 to 1", param=param)
    if not 0 <= raw <= 1:
        raise InvalidRequest(f"{param} must be from 0 to 1, got {raw}", param=param)
    return float(raw)


def _metadata(raw: Any, param: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{param} must be a JSON object", param=param)
    return raw


def _item(body: dict[str, Any], index: int | None) -> FeedbackIn:
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        name = _where(index, unknown[0][:60])
        raise InvalidRequest(f"unknown feedback field {name!r}", param=name)
    trace = body.get("trace_id")
    if not isinstance(trace, str) or not trace or len(trace) > 128:
        param = _where(index, "trace_id")
        raise InvalidRequest(f"{param} is required: a string of 1 to 128 characters", param=param)
    if "value" not in body:
        param = _where(index, "value")
        raise InvalidRequest(f"{param} is required", param=param)
    return FeedbackIn(
        trace_id=trace,
        value=_value(body["value"], _where(index, "value")),
        weight=_weight(body.get("weight", 1.0), _where(index, "weight")),
        metadata=_metadata(body.get("metadata") or {}, _where(index, "metadata")),
    )


async def create(call: Call) -> tuple[int, dict[str, Any]]:
    """Store feedback; answer ``{status, message, feedback_ids}`` in input order."""
    await call.authorize()
    logs = services(call)
    raw, is_array = await call.items()
    if len(raw) > MAX_ITEMS:
        raise InvalidRequest(f"at most {MAX_ITEMS} feedback items per call", code="invalid_body")
    items = [_item(body, i if is_array else None) for i, body in enumerate(raw)]
    missing = await logs.feedback.unknown_traces([item.trace_id for item in items])
    if missing:
        raise NotFound(
            f"no request log has trace id {missing[0][:128]!r}",
            param="trace_id",
            code="trace_not_found",
        )
    ids = await logs.feedback.create(items)
    return 200, {
        "status": "success",
        "message": f"{len(ids)} feedback item(s) saved",
        "feedback_ids": ids,
    }


async def update(call: Call) -> tuple[int, dict[str, Any]]:
    """Change a feedback's value, weight or metadata."""
    await call.authorize()
    logs = services(call)
    feedback_id = call.param("id")
    body = await call.body()
    unknown = sorted(set(body) - (_FIELDS - {"trace_id"}))
    if unknown:
        raise InvalidRequest(f"unknown feedback field {unknown[0][:60]!r}", param=unknown[0][:60])
    found = await logs.feedback.update(
        feedback_id,
        value=_value(body["value"], "value") if "value" in body else None,
        weight=_weight(body["weight"], "weight") if body.get("weight") is not None else None,
        metadata=_metadata(body["metadata"], "metadata")
        if body.get("metadata") is not None
        else None,
    )
    if not found:
        raise NotFound(f"no feedback {feedback_id[:100]!r}", param="id", code="feedback_not_found")
    return 200, {"status": "success", "message": "feedback updated", "feedback_ids": [feedback_id]}
