"""Request logs over HTTP: Portkey's ``logs.create`` (``POST /v1/logs``) and portkey-mw's
own query endpoint (``GET /v1/logs``, ``/v1/logs/{request_id}``, ``/v1/logs/stats``).

Custom logs are stored as records in the log record's shape with ``custom: true``. Their
headers are never stored (they may hold credentials); their bodies are, as sent (the
client chose to send them), cut to ``MAX_CUSTOM_BODY`` bytes.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Any

import orjson

from portkey_mw.admin.http import Call
from portkey_mw.admin.log_params import (
    MAX_BUCKETS,
    MAX_PAGE_SIZE,
    bad,
    group_field,
    own_filter,
    parse_int,
    restrict,
)
from portkey_mw.admin.log_services import LogServices, LogStoreOff
from portkey_mw.admin.services import Principal
from portkey_mw.errors import InvalidRequest, NotFound

#: The most custom logs one call may insert.
MAX_CUSTOM_LOGS = 1000
#: A custom log's request or response body is cut to this many bytes of JSON.
MAX_CUSTOM_BODY = 65536
#: A custom log's ``response_time`` past this (a year, in ms) is ignored: its start would
#: be no representable time.
MAX_RESPONSE_MS = 366 * 86400 * 1000.0
#: Default span of a stats series without ``from``: the last day.
DEFAULT_SPAN = 86400.0


def services(call: Call) -> LogServices:
    """The log services, or the 503 saying the log store is off."""
    found = call.services.log_services
    if found is None:
        raise LogStoreOff()
    return found


async def key_ids(call: Call, principal: Principal) -> tuple[str, ...] | None:
    """The API keys whose logs a workspace key may see (its workspace's); ``None``: all."""
    if principal.workspace_id is None:
        return None
    keys = await call.store.list_api_keys(workspace_id=principal.workspace_id)
    # An organisation key is organisation-wide whatever workspace_id it carries.
    return tuple(k.id for k in keys if k.type == "workspace")


# -- logs.create -----------------------------------------------------------------------------


def _object(item: dict[str, Any], name: str) -> dict[str, Any]:
    value = item.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest(f"{name} must be a JSON object", param=name, code="invalid_body")
    return value


def _capped(body: Any) -> Any:
    if body is None:
        return None
    encoded = orjson.dumps(body)
    if len(encoded) <= MAX_CUSTOM_BODY:
        return body
    return encoded[:MAX_CUSTOM_BODY].decode(errors="ignore") + "…[truncated]"


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _tokens(usage: dict[str, Any]) -> dict[str, int]:
    input_ = _count(usage.get("prompt_tokens", usage.get("input_tokens")))
    output = _count(usage.get("completion_tokens", usage.get("output_tokens")))
    total = _count(usage.get("total_tokens")) or input_ + output
    return {
        "input": input_,
        "output": output,
        "cache_read": 0,
        "cache_write": 0,
        "reasoning": 0,
        "total": total,
    }


def _text(value: Any, limit: int) -> str | None:
    return None if value is None or isinstance(value, dict | list) else str(value)[:limit]


def custom_record(item: dict[str, Any], principal: Principal, now: float) -> dict[str, Any]:
    """A log record (the shape ``LogEvent.to_dict()`` gives) from one Portkey CustomLog:
    ``{request: {url, method, headers, body}, response: {status, headers, body,
    response_time}, metadata: {trace_id, span_id, span_name, ...}}``."""
    request = _object(item, "request")
    response = _object(item, "response")
    metadata = _object(item, "metadata")
    url = _text(request.get("url"), 512) or ""
    path = "/" + url.split("://", 1)[-1].split("/", 1)[-1] if "://" in url else url
    path = path.split("?", 1)[0][:512]
    endpoint = path.removeprefix("/").removeprefix("v1/")[:64] or None
    status = response.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise InvalidRequest("response.status must be an HTTP status code", param="response.status")
    latency = response.get("response_time")
    if (
        isinstance(latency, bool)
        or not isinstance(latency, int | float)
        or not 0 <= latency <= MAX_RESPONSE_MS
    ):
        latency = None
    req_body = request.get("body")
    res_body = response.get("body")
    usage = res_body.get("usage") if isinstance(res_body, dict) else None
    usage = usage if isinstance(usage, dict) else None
    model = req_body.get("model") if isinstance(req_body, dict) else None
    served = res_body.get("model") if isinstance(res_body, dict) else None
    provider = metadata.get("provider") or request.get("provider")
    scalars = {
        str(k)[:128]: v
        for k, v in metadata.items()
        if k not in ("trace_id", "span_id", "parent_span_id", "span_name")
        and isinstance(v, str | int | float | bool)
    }
    started = now - (float(latency) / 1000.0 if latency is not None else 0.0)
    return {
        "request_id": uuid.uuid4().hex,
        "trace_id": _text(metadata.get("trace_id"), 128) or uuid.uuid4().hex,
        "span_id": _text(metadata.get("span_id"), 64) or uuid.uuid4().hex[:16],
        "parent_span_id": _text(metadata.get("parent_span_id"), 64),
        "span_name": _text(metadata.get("span_name"), 256),
        "started_at": started,
        "ended_at": now,
        "endpoint": endpoint,
        "method": (_text(request.get("method"), 16) or "POST").upper(),
        "path": path or None,
        "status": status,
        "success": 200 <= status < 400,
        "stream": False,
        "provider": _text(provider, 64),
        "model": _text(model, 256),
        "served_model": _text(served, 256),
        "target": None,
        "attempts": [],
        "retry_count": 0,
        "fallback": False,
        "cache_status": None,
        "hook_results": None,
        "error_type": None,
        "error_code": None,
        "error_message": None,
        "latency_ms": float(latency) if latency is not None else 0.0,
        "upstream_ms": None,
        "ttfb_ms": None,
        "usage": usage,
        "tokens": _tokens(usage or {}),
        "cost_usd": None,
        "cost_saved_usd": None,
        "api_key_id": principal.key_id,
        "virtual_key": None,
        "config_id": None,
        "metadata": scalars,
        "prompt_id": None,
        "prompt_version": None,
        "prompt_label": None,
        "request_body": _capped(req_body),
        "response_body": _capped(res_body),
        "custom": True,
    }


async def create(call: Call) -> tuple[int, dict[str, Any]]:
    """Insert one custom log or an array of them; answer their ids, in input order."""
    principal = await call.authorize()
    logs = services(call)
    items, _ = await call.items()
    if len(items) > MAX_CUSTOM_LOGS:
        raise InvalidRequest(f"at most {MAX_CUSTOM_LOGS} logs per call", code="invalid_body")
    now = time.time()
    records = [custom_record(item, principal, now) for item in items]
    await logs.queries.insert(records)
    return 200, {
        "status": "success",
        "message": f"{len(records)} log(s) inserted",
        "log_ids": [r["request_id"] for r in records],
        "object": "list",
    }


# -- the query endpoint ------------------------------------------------------------------------


async def list_logs(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/logs``: the records matching the filters, newest first, a page at a time."""
    principal = await call.authorize()
    logs = services(call)
    f, rest = own_filter(call.request.query_params.multi_items(), extra=("page", "page_size"))
    f = restrict(f, await key_ids(call, principal))
    page = parse_int("page", rest.get("page", "0"), maximum=10**6)
    size = parse_int("page_size", rest.get("page_size", "50"), minimum=1, maximum=MAX_PAGE_SIZE)
    rows, total = await logs.queries.search(f, page=page, page_size=size)
    return 200, {"object": "list", "data": rows, "total": total, "page": page, "page_size": size}


async def retrieve(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/logs/{request_id}``: the whole record and the feedback on its trace."""
    principal = await call.authorize()
    logs = services(call)
    request_id = call.param("request_id")
    record = await logs.queries.get(request_id)
    allowed = await key_ids(call, principal)
    if record is None or (allowed is not None and record.get("api_key_id") not in allowed):
        raise NotFound(f"no log {request_id[:100]!r}", param="request_id", code="log_not_found")
    trace = record.get("trace_id")
    feedback = await logs.feedback.for_trace(trace, api_key_ids=allowed) if trace else []
    return 200, {"object": "log", **record, "feedback": feedback}


async def stats(call: Call) -> tuple[int, dict[str, Any]]:
    """``GET /v1/logs/stats``: totals, a group-by and a time series over the filters."""
    principal = await call.authorize()
    logs = services(call)
    f, rest = own_filter(
        call.request.query_params.multi_items(), extra=("group_by", "interval", "limit")
    )
    f = restrict(f, await key_ids(call, principal))
    body: dict[str, Any] = {"object": "log-stats", "totals": await logs.queries.totals(f)}
    groups: list[dict[str, Any]] = []
    if rest.get("group_by"):
        by = group_field("group_by", rest["group_by"])
        limit = parse_int("limit", rest.get("limit", "50"), minimum=1, maximum=MAX_PAGE_SIZE)
        groups, total = await logs.queries.groups(f, by=by, limit=limit)
        body["groups_total"] = total
    body["groups"] = groups
    series: list[dict[str, Any]] = []
    if rest.get("interval"):
        interval = parse_int("interval", rest["interval"], minimum=1, maximum=366 * 86400)
        until = f.until if f.until is not None else time.time()
        since = f.since if f.since is not None else until - DEFAULT_SPAN
        if (until - since) / interval > MAX_BUCKETS:
            raise bad("interval", f"interval too small: at most {MAX_BUCKETS} buckets")
        series = await logs.queries.series(replace(f, since=since, until=until), interval=interval)
    body["series"] = series
    return 200, body
