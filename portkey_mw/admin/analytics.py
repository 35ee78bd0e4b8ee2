"""Portkey's analytics API over the log store: ``/v1/analytics/graphs/*`` (time series),
``/v1/analytics/groups/*`` (one row per model, user, metadata value ...) and
``/v1/analytics/summary/cache``.

A graph answers ``{object: "analytics-graph", summary: {...}, data_points: [{timestamp,
...}], data: <the same points>}`` -- Portkey's field names, and ``data`` for the SDK's
model. Buckets run from ``time_of_generation_min`` to ``_max`` (both required), one bucket
per ``interval`` seconds (an extension; default: the smallest of a few steps giving at
most 120 buckets). Costs are in cents, as in Portkey's analytics; rates are percentages.
"Users" are the values of the ``_user`` metadata key (Portkey's convention).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from portkey_mw.admin.http import Call
from portkey_mw.admin.log_params import (
    MAX_BUCKETS,
    MAX_PAGE_SIZE,
    bad,
    parse_bool,
    parse_int,
    portkey_filter,
    restrict,
    values,
)
from portkey_mw.admin.log_services import LogServices
from portkey_mw.admin.logs import key_ids, services
from portkey_mw.logstore.query import GROUP_FIELDS, LogFilter

#: Bucket widths tried, smallest first.
STEPS = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400)
#: The most buckets a chosen step gives.
TARGET_BUCKETS = 120
#: The metadata key Portkey's analytics call a user.
USER_KEY = "_user"
HITS = ("HIT", "SEMANTIC_HIT")


def iso(epoch_s: float | None) -> str | None:
    """An ISO-8601 UTC time (Portkey's timestamps are strings)."""
    if epoch_s is None:
        return None
    return datetime.fromtimestamp(epoch_s, UTC).isoformat().replace("+00:00", "Z")


def cents(usd: float | None) -> float:
    """US dollars as cents."""
    return round((usd or 0.0) * 100.0, 6)


def pct(part: float, whole: float) -> float:
    """``part`` of ``whole`` in percent (0 when there is no whole)."""
    return round(100.0 * part / whole, 4) if whole else 0.0


# -- graphs ----------------------------------------------------------------------------------


class Window:
    """One graph call: the filter, the buckets, the log services."""

    def __init__(
        self,
        logs: LogServices,
        f: LogFilter,
        interval: int,
        allowed: tuple[str, ...] | None = None,
    ) -> None:
        self.logs = logs
        self.f = f
        self.interval = interval
        #: the API keys a workspace key may see the records of (``None``: every key)
        self.allowed = allowed
        assert f.since is not None and f.until is not None
        self.since: float = f.since
        self.until: float = f.until

    def starts(self) -> list[float]:
        """Every bucket's start, aligned as LogQueries.series aligns them (on multiples of
        the interval since the epoch), so every graph's points line up."""
        first = math.floor(self.since / self.interval)
        end = math.ceil(self.until / self.interval)
        return [float(n * self.interval) for n in range(first, end)]

    async def series(self, **narrow: Any) -> list[dict[str, Any]]:
        """LogQueries.series over the window (``narrow``: LogFilter fields to replace)."""
        return await self.logs.queries.series(replace(self.f, **narrow), interval=self.interval)

    async def per_bucket(
        self, read: Callable[[LogFilter], Awaitable[dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """``read`` run on each bucket's filter; points with their timestamps.

        :raises InvalidRequest: more than TARGET_BUCKETS buckets (each costs queries).
        """
        starts = self.starts()
        if len(starts) > TARGET_BUCKETS:
            least = math.ceil((self.until - self.since) / TARGET_BUCKETS)
            raise bad(
                "interval",
                f"interval too small for this graph: at most {TARGET_BUCKETS} buckets "
                f"(this range needs an interval of {least} s or more)",
            )
        points = []
        for start in starts:
            bucket = replace(
                self.f, since=max(start, self.since), until=min(start + self.interval, self.until)
            )
            points.append({"timestamp": iso(start), **await read(bucket)})
        return points


def _point(row: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"timestamp": iso(row["t"]), **fields}


async def _users_in(logs: LogServices, f: LogFilter) -> int:
    _, total = await logs.queries.groups(f, by=f"metadata.{USER_KEY}", limit=1)
    return total


Graph = Callable[[Window], Awaitable[tuple[dict[str, Any], list[dict[str, Any]]]]]


async def _requests(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    points = [_point(r, total=r["requests"]) for r in rows]
    return {"total": sum(r["requests"] for r in rows)}, points


async def _cost(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    points = [
        _point(
            r,
            total=cents(r["cost_usd"]),
            avg=cents(r["cost_usd"] / r["requests"]) if r["requests"] else 0.0,
        )
        for r in rows
    ]
    total = sum(r["cost_usd"] or 0.0 for r in rows)
    count = sum(r["requests"] for r in rows)
    return {"total": cents(total), "avg": cents(total / count) if count else 0.0}, points


async def _latency(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    totals = await w.logs.queries.totals(w.f)
    points = [_point(r, avg=r["latency_avg_ms"] or 0.0) for r in rows]
    summary = {
        "avg": totals.get("latency_avg_ms") or 0.0,
        "p50": totals.get("latency_p50_ms") or 0.0,
        "p90": totals.get("latency_p90_ms") or 0.0,
        "p99": totals.get("latency_p99_ms") or 0.0,
    }
    return summary, points


async def _tokens(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    points = [
        _point(
            r,
            total=r["total_tokens"],
            input=r["input_tokens"],
            output=r["output_tokens"],
            avg=round(r["total_tokens"] / r["requests"], 4) if r["requests"] else 0.0,
        )
        for r in rows
    ]
    total = sum(r["total_tokens"] for r in rows)
    count = sum(r["requests"] for r in rows)
    return {"total": total, "avg": round(total / count, 4) if count else 0.0}, points


async def _users(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async def read(f: LogFilter) -> dict[str, Any]:
        return {"total": await _users_in(w.logs, f)}

    return {"total": await _users_in(w.logs, w.f)}, await w.per_bucket(read)


async def _users_requests(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async def read(f: LogFilter) -> dict[str, Any]:
        users = await _users_in(w.logs, f)
        requests = (await w.logs.queries.totals(f))["requests"]
        return {
            "total": users,
            "requests": requests,
            "avg": round(requests / users, 4) if users else 0.0,
        }

    summary = await read(w.f)
    return summary, await w.per_bucket(read)


async def _errors(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    return {"total": sum(r["errors"] for r in rows)}, [_point(r, total=r["errors"]) for r in rows]


async def _error_rate(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    points = [_point(r, rate=pct(r["errors"], r["requests"])) for r in rows]
    errors = sum(r["errors"] for r in rows)
    return {"rate": pct(errors, sum(r["requests"] for r in rows))}, points


async def _status_groups(logs: LogServices, f: LogFilter) -> list[dict[str, Any]]:
    rows, _ = await logs.queries.groups(replace(f, success=False), by="status", limit=100)
    return [{"status_code": r["key"], "count": r["requests"]} for r in rows]


async def _error_stacks(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async def read(f: LogFilter) -> dict[str, Any]:
        stacks = await _status_groups(w.logs, f)
        return {"total": sum(s["count"] for s in stacks), "stacks": stacks}

    summary = await read(w.f)
    return {"total": summary["total"]}, await w.per_bucket(read)


async def _status_codes(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    stacks = await _status_groups(w.logs, w.f)
    points = [
        {"timestamp": iso(w.since), "status_code": s["status_code"], "total": s["count"]}
        for s in stacks
    ]
    return {"total": sum(s["count"] for s in stacks), "status_codes": stacks}, points


async def _rescued(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    totals = await w.logs.queries.totals(w.f)
    points = [_point(r, total=r["fallbacks"]) for r in rows]
    return {"total": sum(r["fallbacks"] for r in rows), "retries": totals.get("retries", 0)}, points


async def _hit_rate(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series()
    points = [
        _point(
            r,
            rate=pct(r["cache_hits"], r["cache_lookups"]),
            hits=r["cache_hits"],
            lookups=r["cache_lookups"],
        )
        for r in rows
    ]
    hits = sum(r["cache_hits"] for r in rows)
    lookups = sum(r["cache_lookups"] for r in rows)
    return {"rate": pct(hits, lookups), "hits": hits, "lookups": lookups}, points


async def _cache_latency(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await w.series(cache_statuses=HITS)
    totals = await w.logs.queries.totals(replace(w.f, cache_statuses=HITS))
    points = [_point(r, avg=r["latency_avg_ms"] or 0.0, total=r["requests"]) for r in rows]
    summary = {
        "avg": totals.get("latency_avg_ms") or 0.0,
        "p50": totals.get("latency_p50_ms") or 0.0,
        "p90": totals.get("latency_p90_ms") or 0.0,
        "p99": totals.get("latency_p99_ms") or 0.0,
        "total": totals.get("requests", 0),
    }
    return summary, points


# Feedback graphs read the feedback given in the window (its own time), narrowed to the
# requested models when ai_org_model names some; the other log filters do not apply.


async def _feedback_rows(w: Window) -> list[dict[str, Any]]:
    rows = await w.logs.feedback.in_range(w.since, w.until, api_key_ids=w.allowed)
    if w.f.models:
        rows = [r for r in rows if r["model"] in w.f.models]
    return rows


def _by_bucket(w: Window, rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    starts = w.starts()
    buckets: list[list[dict[str, Any]]] = [[] for _ in starts]
    for row in rows:
        index = int((row["created_ms"] / 1000.0 - starts[0]) // w.interval) if starts else -1
        if 0 <= index < len(buckets):
            buckets[index].append(row)
    return buckets


def _scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    weights = sum(r["weight"] for r in rows)
    return {
        "total": len(rows),
        "avg": round(sum(r["value"] for r in rows) / len(rows), 4) if rows else 0.0,
        "weighted_avg": round(sum(r["value"] * r["weight"] for r in rows) / weights, 4)
        if weights
        else 0.0,
    }


async def _feedbacks(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await _feedback_rows(w)
    points = [
        {"timestamp": iso(start), "total": len(b)}
        for start, b in zip(w.starts(), _by_bucket(w, rows), strict=True)
    ]
    return {"total": len(rows)}, points


async def _feedback_scores(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await _feedback_rows(w)
    distribution: dict[str, int] = {}
    for row in sorted(rows, key=lambda r: r["value"]):
        distribution[str(row["value"])] = distribution.get(str(row["value"]), 0) + 1
    points = [
        {"timestamp": iso(start), **_scores(b)}
        for start, b in zip(w.starts(), _by_bucket(w, rows), strict=True)
    ]
    return {**_scores(rows), "scores": distribution}, points


async def _feedback_weighted(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await _feedback_rows(w)
    points = [
        {"timestamp": iso(start), "total": len(b), "weighted_avg": _scores(b)["weighted_avg"]}
        for start, b in zip(w.starts(), _by_bucket(w, rows), strict=True)
    ]
    scores = _scores(rows)
    return {"total": scores["total"], "weighted_avg": scores["weighted_avg"]}, points


async def _feedback_models(w: Window) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    rows = await _feedback_rows(w)
    by_model: dict[str | None, list[dict[str, Any]]] = {}
    for row in rows:
        by_model.setdefault(row["model"], []).append(row)
    models = [
        {"ai_model": m, **_scores(r)}
        for m, r in sorted(by_model.items(), key=lambda item: -len(item[1]))
    ]
    points = [
        {"timestamp": iso(start), "total": len(b)}
        for start, b in zip(w.starts(), _by_bucket(w, rows), strict=True)
    ]
    return {"total": len(rows), "ai_models": models}, points


#: graph path -> how it is computed
GRAPHS: dict[str, Graph] = {
    "requests": _requests,
    "cost": _cost,
    "latency": _latency,
    "tokens": _tokens,
    "users": _users,
    "users/requests": _users_requests,
    "errors": _errors,
    "errors/rate": _error_rate,
    "errors/stacks": _error_stacks,
    "errors/status-codes": _status_codes,
    "requests/rescued": _rescued,
    "cache/hit-rate": _hit_rate,
    "cache/latency": _cache_latency,
    "feedbacks": _feedbacks,
    "feedbacks/scores": _feedback_scores,
    "feedbacks/weighted": _feedback_weighted,
    "feedbacks/ai-models": _feedback_models,
}


def pick_interval(span: float, asked: Any) -> int:
    """The bucket width: ``interval`` when asked, else the smallest step giving at most
    TARGET_BUCKETS buckets."""
    if asked is not None:
        interval = parse_int("interval", asked, minimum=1, maximum=366 * 86400)
        if span / interval > MAX_BUCKETS:
            raise bad("interval", f"interval too small: at most {MAX_BUCKETS} buckets")
        return interval
    for step in STEPS:
        if span / step <= TARGET_BUCKETS:
            return step
    step = STEPS[-1]
    if span / step > MAX_BUCKETS:
        raise bad("time_of_generation_min", "the time range is too long for one graph")
    return step


async def analytics_window(
    call: Call, extra: tuple[str, ...] = ()
) -> tuple[Window, dict[str, Any]]:
    """An analytics call's window: the caller authorized, Portkey's filters read (the time
    range required) and narrowed to the records the caller may see, the bucket width
    chosen; and the parameters named in ``extra``, unread."""
    principal = await call.authorize()
    logs = services(call)
    f, rest = portkey_filter(_single(call), require_time=True, extra=("interval", *extra))
    allowed = await key_ids(call, principal)
    f = restrict(f, allowed)
    assert f.since is not None and f.until is not None
    interval = pick_interval(f.until - f.since, rest.pop("interval", None))
    return Window(logs, f, interval, allowed), rest


def _single(call: Call) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in call.request.query_params.multi_items():
        if name in out:
            raise bad(name, f"{name} may be given once (use a comma list)")
        out[name] = value
    return out


def graph_handler(name: str) -> Callable[[Call], Awaitable[tuple[int, dict[str, Any]]]]:
    """The handler of one graph path."""
    compute = GRAPHS[name]

    async def handle(call: Call) -> tuple[int, dict[str, Any]]:
        window, _ = await analytics_window(call)
        summary, points = await compute(window)
        return 200, {
            "object": "analytics-graph",
            "summary": summary,
            "data_points": points,
            "data": points,
            "interval": window.interval,
        }

    handle.__doc__ = f"``GET /v1/analytics/graphs/{name}``."
    return handle


# -- groups ----------------------------------------------------------------------------------

#: Portkey's group names (and a few more) -> (LogQueries group field, the key's label)
GROUPS: dict[str, tuple[str, str]] = {
    "ai-models": ("model", "ai_model"),
    "users": (f"metadata.{USER_KEY}", "user"),
    "ai-orgs": ("provider", "ai_org"),
    "providers": ("provider", "ai_org"),
    "status-codes": ("status", "status_code"),
    "virtual-keys": ("virtual_key", "virtual_key"),
    "configs": ("config_id", "config"),
    "api-keys": ("api_key_id", "api_key_id"),
    "prompts": ("prompt_id", "prompt_slug"),
    "cache-status": ("cache_status", "cache_status"),
    "endpoints": ("endpoint", "endpoint"),
    **{name: (name, name) for name in GROUP_FIELDS},
}
#: order_by values -> the aggregate sorted on
ORDER_BY = {
    "requests": "requests",
    "cost": "cost_usd",
    "tokens": "total_tokens",
    "total_tokens": "total_tokens",
    "errors": "errors",
    "latency": "latency_avg_ms",
    "last_seen": "last_ms",
}
_GROUP_EXTRA = (
    "current_page",
    "page_size",
    "order_by",
    "order_by_type",
    "columns",
    "include_total",
)


def group_row(label: str, row: dict[str, Any]) -> dict[str, Any]:
    """One group in Portkey's shape: the key under its label, cost in cents."""
    requests = row.get("requests") or 0
    return {
        label: row.get("key"),
        **{k: v for k, v in row.items() if k != "key"},
        "cost": cents(row.get("cost_usd")),
        "avg_tokens": round((row.get("total_tokens") or 0) / requests, 4) if requests else 0.0,
        "first_seen": iso((row.get("first_ms") or 0) / 1000.0) if row.get("first_ms") else None,
        "last_seen": iso((row.get("last_ms") or 0) / 1000.0) if row.get("last_ms") else None,
        "object": "analytics-group",
    }


async def _groups(call: Call, by: str, label: str) -> tuple[int, dict[str, Any]]:
    window, rest = await analytics_window(call, _GROUP_EXTRA)
    page = parse_int("current_page", rest.get("current_page") or "0", maximum=10**6)
    size = parse_int("page_size", rest.get("page_size") or "20", minimum=1, maximum=MAX_PAGE_SIZE)
    order = rest.get("order_by") or "requests"
    if order not in ORDER_BY:
        raise bad("order_by", f"order_by must be one of {', '.join(ORDER_BY)}")
    direction = (rest.get("order_by_type") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise bad("order_by_type", "order_by_type must be asc or desc")
    if rest.get("include_total"):
        parse_bool("include_total", rest["include_total"])
    rows, total = await window.logs.queries.groups(
        window.f,
        by=by,
        limit=size,
        offset=page * size,
        order_by=ORDER_BY[order],
        **({"descending": False} if direction == "asc" else {}),
    )
    data = [group_row(label, r) for r in rows]
    if rest.get("columns"):
        keep = {label, "object", *values("columns", rest["columns"])}
        data = [{k: v for k, v in row.items() if k in keep} for row in data]
    return 200, {"object": "list", "total": total, "data": data}


async def group_by(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/analytics/groups/{group_by}`` (users, ai-models, workspaces ...)."""
    await call.authorize()  # a stranger learns nothing, not even which groups there are
    name = call.param("group_by")
    if name == "workspaces":
        return await _workspaces(call)
    if name not in GROUPS:
        raise bad(
            "group_by",
            f"unknown group {name[:60]!r}: use workspaces, {', '.join(GROUPS)} or metadata/<key>",
        )
    by, label = GROUPS[name]
    return await _groups(call, by, label)


async def metadata(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/analytics/groups/metadata/{metadata_key}``: one group per value."""
    key = call.param("metadata_key")
    if not key or len(key) > 128:
        raise bad("metadata_key", "the metadata key must be 1 to 128 characters")
    return await _groups(call, f"metadata.{key}", "metadata_value")


_SUMMED = ("requests", "errors", "cost_usd", "input_tokens", "output_tokens", "total_tokens")


async def _workspaces(call: Call) -> tuple[int, dict[str, Any]]:
    """Groups by the workspace of the API key each request used (``null``: the admin key,
    organisation keys and custom logs)."""
    window, _ = await analytics_window(call, _GROUP_EXTRA)
    rows, _ = await window.logs.queries.groups(window.f, by="api_key_id", limit=10_000)
    workspace_of = {k.id: k.workspace_id for k in await call.store.list_api_keys()}
    merged: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        ws = workspace_of.get(row["key"]) if row["key"] else None
        into = merged.setdefault(ws, {"key": ws, **{k: 0 for k in _SUMMED}})
        for k in _SUMMED:
            into[k] += row.get(k) or 0
    data = [group_row("workspace_id", r) for r in merged.values()]
    data.sort(key=lambda r: -r["requests"])
    return 200, {"object": "list", "total": len(data), "data": data}


# -- summary ---------------------------------------------------------------------------------


async def summary_cache(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/analytics/summary/cache``: hits, misses, the hit rate, the cost saved."""
    window, _ = await analytics_window(call)
    totals = await window.logs.queries.totals(window.f)
    hit_totals = await window.logs.queries.totals(replace(window.f, cache_statuses=HITS))
    hits, lookups = totals.get("cache_hits", 0), totals.get("cache_lookups", 0)
    return 200, {
        "object": "analytics-summary",
        "data": {
            "requests": totals.get("requests", 0),
            "hits": hits,
            "misses": lookups - hits,
            "lookups": lookups,
            "hit_rate": pct(hits, lookups),
            "cost_saved": cents(totals.get("cost_saved_usd")),
            "avg_latency": hit_totals.get("latency_avg_ms") or 0.0,
        },
    }
