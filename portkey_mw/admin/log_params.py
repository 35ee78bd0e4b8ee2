"""Query parameters and filters of the log routes, read into a
:class:`~portkey_mw.logstore.query.LogFilter`.

Two dialects: portkey-mw's own query endpoint (``GET /v1/logs``: ``from``, ``provider``,
``metadata.<key>`` ...) and Portkey's analytics and export filters
(``time_of_generation_min``, ``ai_org_model``, ``virtual_keys`` ...). Every bad or unknown
parameter is a 400 naming it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson

from portkey_mw.errors import InvalidRequest
from portkey_mw.logstore.query import GROUP_FIELDS, LogFilter

#: The largest page the log routes answer.
MAX_PAGE_SIZE = 200
#: The most buckets one series may have.
MAX_BUCKETS = 1000
#: Longest filter value read (ids, slugs, models are far shorter).
MAX_VALUE = 512
#: The largest token count a column holds (the writer clamps to it).
MAX_TOKENS = 2**31 - 1


def bad(param: str, message: str) -> InvalidRequest:
    """The 400 for one parameter."""
    return InvalidRequest(message, param=param, code="invalid_query")


def no_nul(param: str, value: str) -> str:
    """``value``, which must not hold NUL: PostgreSQL refuses it in a text parameter (a 500
    there, not a 400) and no stored value holds one."""
    if "\x00" in value:
        raise bad(param, f"{param} holds a NUL character")
    return value


def parse_time(param: str, value: Any) -> float:
    """An instant: epoch seconds, or ISO-8601 (a date, or a date-time; UTC unless it says)."""
    if isinstance(value, bool):
        raise bad(param, f"{param} must be an ISO-8601 time or epoch seconds")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise bad(
                    param,
                    f"{param} must be an ISO-8601 time (2025-01-31T12:00:00Z) or epoch "
                    f"seconds, got {text[:60]!r}",
                ) from None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    if not math.isfinite(number) or not 0 <= number < 1e11:
        raise bad(param, f"{param} is not a time: {value!r}"[:200])
    return number


def parse_int(param: str, value: Any, *, minimum: int = 0, maximum: int = 10**12) -> int:
    """A whole number within bounds."""
    text = str(value).strip()
    if (
        len(text) > 13
        or not text.isascii()
        or not text.lstrip("-").isdigit()
        or not minimum <= int(text) <= maximum
    ):
        raise bad(
            param, f"{param} must be a whole number from {minimum} to {maximum}, got {text[:40]!r}"
        )
    return int(text)


def parse_number(param: str, value: Any) -> float:
    """A finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise bad(param, f"{param} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise bad(param, f"{param} must be a finite number")
    return number


def values(param: str, raw: Any) -> tuple[str, ...]:
    """A list filter: a JSON list, repeated values or a comma list -- any of them ORed."""
    items: Iterable[Any] = raw if isinstance(raw, list | tuple) else [raw]
    out: list[str] = []
    for item in items:
        if isinstance(item, dict | list) or item is None:
            raise bad(param, f"{param} must be a string or a list of strings")
        for part in str(item).split(","):
            part = part.strip()
            if part:
                if len(part) > MAX_VALUE or "\x00" in part:
                    raise bad(param, f"a value of {param} is too long or holds NUL")
                out.append(part)
    return tuple(dict.fromkeys(out))


def statuses(param: str, raw: Any) -> tuple[int, ...]:
    """HTTP status codes."""
    return tuple(parse_int(param, v, minimum=100, maximum=599) for v in values(param, raw))


def metadata_object(param: str, raw: Any) -> dict[str, str]:
    """A metadata filter given as a JSON object (Portkey's ``metadata`` parameter)."""
    parsed = raw
    if isinstance(raw, str):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
    if not isinstance(parsed, dict):
        raise bad(param, f'{param} must be a JSON object, e.g. {{"_user": "u-1"}}')
    out: dict[str, str] = {}
    for key, value in parsed.items():
        if isinstance(value, dict | list) or value is None:
            raise bad(param, f"{param}.{str(key)[:60]} must be a string, number or boolean")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out[no_nul(param, str(key))[:128]] = no_nul(param, text)[:MAX_VALUE]
    return out


def parse_bool(param: str, raw: str) -> bool:
    """``true``/``false`` (also ``1``/``0``)."""
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad(param, f"{param} must be true or false, got {raw[:20]!r}")


def group_field(param: str, value: str) -> str:
    """A group-by of the query endpoint: one of GROUP_FIELDS or ``metadata.<key>``."""
    if value in GROUP_FIELDS or (value.startswith("metadata.") and len(value) > 9):
        return no_nul(param, value)
    raise bad(
        param,
        f"{param} must be one of {', '.join(GROUP_FIELDS)} or metadata.<key>, got {value[:60]!r}",
    )


# -- portkey-mw's own query endpoint ---------------------------------------------------------

#: ``GET /v1/logs`` list parameters -> LogFilter field
_LIST_PARAMS = {
    "provider": "providers",
    "model": "models",
    "api_key_id": "api_key_ids",
    "virtual_key": "virtual_keys",
    "config": "configs",
    "prompt_id": "prompt_ids",
    "prompt_label": "prompt_labels",
    "cache_status": "cache_statuses",
}


def own_filter(
    query: Iterable[tuple[str, str]], *, extra: Iterable[str] = ()
) -> tuple[LogFilter, dict[str, str]]:
    """The filter of a ``GET /v1/logs`` (``/stats``) query, and the parameters named in
    ``extra`` (paging, ``group_by`` ...), unread.

    :raises InvalidRequest: a bad value, or a parameter neither a filter nor in ``extra``.
    """
    allowed_extra = set(extra)
    lists: dict[str, list[str]] = {}
    single: dict[str, str] = {}
    metadata: dict[str, str] = {}
    rest: dict[str, str] = {}
    for name, value in query:
        if name in _LIST_PARAMS or name == "status":
            lists.setdefault(name, []).append(value)
        elif name.startswith("metadata."):
            key = name[9:]
            if not key or len(key) > 128:
                raise bad(name, "metadata.<key> needs a key of 1 to 128 characters")
            metadata[no_nul(name, key)] = no_nul(name, value)[:MAX_VALUE]
        elif name in ("from", "to", "success", "trace_id", "q"):
            if name in single:
                raise bad(name, f"{name} may be given once")
            single[name] = value
        elif name in allowed_extra:
            rest[name] = value
        else:
            raise bad(name, f"unknown query parameter {name[:60]!r}")
    kwargs: dict[str, Any] = {
        field: values(p, lists[p]) for p, field in _LIST_PARAMS.items() if p in lists
    }
    if "status" in lists:
        kwargs["statuses"] = statuses("status", lists["status"])
    if "from" in single:
        kwargs["since"] = parse_time("from", single["from"])
    if "to" in single:
        kwargs["until"] = parse_time("to", single["to"])
    if "success" in single:
        kwargs["success"] = parse_bool("success", single["success"])
    if single.get("trace_id"):
        kwargs["trace_id"] = no_nul("trace_id", single["trace_id"])[:128]
    if single.get("q"):
        kwargs["text"] = no_nul("q", single["q"])[:MAX_VALUE]
    if metadata:
        kwargs["metadata"] = metadata
    return LogFilter(**kwargs), rest


# -- Portkey's analytics and export filters --------------------------------------------------

#: Portkey's filters portkey-mw accepts and ignores (it has one workspace for logs)
IGNORED = frozenset({"workspace_slug", "workspace_id", "organisation_id"})
_RANGES = {
    "total_units_min",
    "total_units_max",
    "cost_min",
    "cost_max",
    "prompt_token_min",
    "prompt_token_max",
    "completion_token_min",
    "completion_token_max",
}
#: Every Portkey filter name read by :func:`portkey_filter`.
PORTKEY_FILTERS = frozenset(
    {
        "time_of_generation_min",
        "time_of_generation_max",
        "status_code",
        "virtual_keys",
        "configs",
        "api_key_ids",
        "ai_org_model",
        "ai_org",
        "ai_model",
        "prompt_slug",
        "prompt_label",
        "metadata",
        "cache_status",
        "trace_id",
        "is_success",
        *_RANGES,
        *IGNORED,
    }
)


def portkey_filter(
    params: Mapping[str, Any], *, require_time: bool, extra: Iterable[str] = ()
) -> tuple[LogFilter, dict[str, Any]]:
    """The filter of Portkey's analytics query (strings) or export ``filters`` (JSON), and
    the parameters named in ``extra``, unread.

    ``time_of_generation_min``/``_max`` bound the time (required when ``require_time``);
    ``ai_org_model`` is ``provider__model`` pairs (comma-separated); ``cost_*`` are cents,
    as in Portkey's analytics; ``total_units_*`` bound total tokens, ``prompt_token_*`` input
    and ``completion_token_*`` output tokens.

    :raises InvalidRequest: a bad value, a missing time, an unknown filter.
    """
    allowed_extra = set(extra)
    rest: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    for name, raw in params.items():
        if name in allowed_extra:
            rest[name] = raw
            continue
        if name not in PORTKEY_FILTERS:
            raise bad(name, f"unknown filter {name[:60]!r}")
        if name in IGNORED or raw is None or raw == "":
            continue
        if name == "time_of_generation_min":
            kwargs["since"] = parse_time(name, raw)
        elif name == "time_of_generation_max":
            kwargs["until"] = parse_time(name, raw)
        elif name == "status_code":
            kwargs["statuses"] = statuses(name, raw)
        elif name == "virtual_keys":
            kwargs["virtual_keys"] = values(name, raw)
        elif name == "configs":
            kwargs["configs"] = values(name, raw)
        elif name == "api_key_ids":
            kwargs["api_key_ids"] = values(name, raw)
        elif name == "prompt_slug":
            kwargs["prompt_ids"] = values(name, raw)
        elif name == "prompt_label":  # portkey-mw's: the label a prompt call came through
            kwargs["prompt_labels"] = values(name, raw)
        elif name == "cache_status":
            kwargs["cache_statuses"] = tuple(v.upper() for v in values(name, raw))
        elif name == "ai_org":
            kwargs["providers"] = kwargs.get("providers", ()) + values(name, raw)
        elif name == "ai_model":
            kwargs["models"] = kwargs.get("models", ()) + values(name, raw)
        elif name == "ai_org_model":
            for pair in values(name, raw):
                org, sep, model = pair.partition("__")
                if not sep or not org or not model:
                    raise bad(name, f"{name} takes provider__model pairs, got {pair[:60]!r}")
                kwargs["providers"] = (*kwargs.get("providers", ()), org)
                kwargs["models"] = (*kwargs.get("models", ()), model)
        elif name == "metadata":
            kwargs["metadata"] = metadata_object(name, raw)
        elif name == "trace_id":
            kwargs["trace_id"] = values(name, raw)[0] if values(name, raw) else None
        elif name == "is_success":
            kwargs["success"] = raw if isinstance(raw, bool) else parse_bool(name, str(raw))
        elif name in _RANGES:
            kwargs.update(_range(name, raw))
    if require_time:
        for name, key in (("time_of_generation_min", "since"), ("time_of_generation_max", "until")):
            if key not in kwargs:
                raise bad(name, f"{name} is required (an ISO-8601 time)")
    since, until = kwargs.get("since"), kwargs.get("until")
    if since is not None and until is not None and until <= since:
        raise bad("time_of_generation_max", "time_of_generation_max must be after _min")
    for key in ("providers", "models"):
        if key in kwargs:
            kwargs[key] = tuple(dict.fromkeys(kwargs[key]))
    return LogFilter(**kwargs), rest


def _range(name: str, raw: Any) -> dict[str, Any]:
    """One bound of a cost or token range, as LogFilter's field."""
    number = parse_number(name, raw)
    if number < 0:
        raise bad(name, f"{name} must not be negative")
    side = "min" if name.endswith("_min") else "max"
    if name.startswith("cost_"):
        return {f"{side}_cost_usd": number / 100.0}
    column = {"total_units": "total", "prompt_token": "input", "completion_token": "output"}[
        name.rsplit("_", 1)[0]
    ]
    # Token columns hold 32-bit counts: a larger bound is the same as that one (and a 500
    # as a bound parameter).
    return {f"{side}_{column}_tokens": int(min(number, MAX_TOKENS))}


def restrict(f: LogFilter, api_key_ids: tuple[str, ...] | None) -> LogFilter:
    """``f`` narrowed to records of these API keys (a workspace key's); ``None``: as is."""
    if api_key_ids is None:
        return f
    allowed = set(api_key_ids)
    asked = f.api_key_ids
    keep = tuple(k for k in asked if k in allowed) if asked else tuple(sorted(allowed))
    # An impossible id keeps an empty intersection from meaning "every key".
    return replace(f, api_key_ids=keep or ("-",))
