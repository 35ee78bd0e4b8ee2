"""Budget usage as the commands print it: the admin API's usage objects as table rows
("12.50 / 50 USD monthly", "25%", "60 rpm, 100000 tokens/min") or one record's lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from portkey_mw.cli._client import Target
from portkey_mw.cli._table import Column, print_json, print_record, print_table, warn, when

#: How a token rate limit's unit reads after "tokens/".
TOKEN_UNITS = {"rps": "s", "rpm": "min", "rph": "h", "rpd": "day", "rpw": "week"}
#: Each kind of subject: its table's title and what its first column shows.
SECTIONS = {
    "api_key": ("API keys", "name"),
    "virtual_key": ("Virtual keys", "slug"),
    "metadata": ("Metadata budgets", "name"),
}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _used(value: float, kind: str) -> str:
    if kind == "tokens":
        return f"{value:.0f}"
    # a few cents' worth of requests should not read as nothing
    return f"{value:.4f}" if 0 < value < 0.01 else f"{value:.2f}"


def _limit(value: float, kind: str) -> str:
    return f"{value:.0f}" if kind == "tokens" else f"{value:g}"


def _period(budget: Mapping[str, Any]) -> str:
    if budget.get("periodic_reset") in ("monthly", "weekly"):
        return str(budget["periodic_reset"])
    days = budget.get("periodic_reset_days")
    return f"every {days} days" if days else ""


def budget_text(budget: Mapping[str, Any] | None) -> str | None:
    """``12.50 / 50 USD monthly``; ``1200 tokens (no limit)``; None without a budget."""
    if not isinstance(budget, Mapping):
        return None
    kind = "tokens" if budget.get("type") == "tokens" else "cost"
    unit = "tokens" if kind == "tokens" else "USD"
    used = _used(_number(budget.get("used")) or 0.0, kind)
    limit = _number(budget.get("credit_limit"))
    text = (
        f"{used} {unit} (no limit)" if limit is None else f"{used} / {_limit(limit, kind)} {unit}"
    )
    period = _period(budget)
    return f"{text} {period}" if period else text


def used_share(budget: Mapping[str, Any] | None) -> str | None:
    """``25%``, ``100% exhausted``; None without a budget or a limit."""
    if not isinstance(budget, Mapping):
        return None
    limit, used = _number(budget.get("credit_limit")), _number(budget.get("used")) or 0.0
    if limit is None:
        return None
    share = f"{used / limit * 100:.0f}%" if limit > 0 else "100%"
    return f"{share} exhausted" if budget.get("exhausted") else share


def rates_text(limits: Any) -> str | None:
    """``60 rpm, 100000 tokens/min``; None without rate limits."""
    if not isinstance(limits, list) or not limits:
        return None
    parts = []
    for limit in limits:
        if not isinstance(limit, Mapping):
            continue
        unit, value = limit.get("unit"), limit.get("value")
        if limit.get("type") == "tokens":
            parts.append(f"{value} tokens/{TOKEN_UNITS.get(str(unit), unit)}")
        else:
            parts.append(f"{value} {unit}")
    return ", ".join(parts) or None


def next_reset(budget: Mapping[str, Any] | None) -> str | None:
    """When usage next starts from zero (``never`` for a budget without periods)."""
    if not isinstance(budget, Mapping):
        return None
    return when(budget.get("next_reset")) or "never"


def _label(item: Mapping[str, Any]) -> Any:
    # people name API keys (an id is a UUID); virtual keys and metadata budgets by ref
    return item.get("name") if item.get("kind") == "api_key" else item.get("ref")


def print_usage_table(items: Sequence[Mapping[str, Any]], *, label: str) -> None:
    """One row per usage object: its name (an API key's name, a virtual key's slug, a
    metadata budget's name), budget, share used, next reset and rate limits."""
    columns = [
        Column(label, ratio=2),
        Column("budget", ratio=2),
        Column("used"),
        Column("next reset", whole=True),
        Column("rate limits", ratio=2),
    ]
    print_table(
        columns,
        (
            (
                _label(item),
                budget_text(item.get("budget")),
                used_share(item.get("budget")),
                next_reset(item.get("budget")),
                rates_text(item.get("rate_limits")),
            )
            for item in items
        ),
    )


def print_usage(item: Mapping[str, Any]) -> None:
    """One usage object as ``name  value`` lines."""
    budget = item.get("budget")
    fields: list[tuple[str, Any]] = [("owner", item.get("owner")), ("ref", item.get("ref"))]
    if isinstance(budget, Mapping):
        kind = "tokens" if budget.get("type") == "tokens" else "cost"
        unit = "tokens" if kind == "tokens" else "USD"
        remaining, alert = _number(budget.get("remaining")), _number(budget.get("alert_threshold"))
        start, end = when(budget.get("period_start")), when(budget.get("next_reset"))
        period = f"{start} to {end}" if start and end else "all time (no periodic reset)"
        fields += [
            ("budget", budget_text(budget)),
            ("used", used_share(budget)),
            ("remaining", None if remaining is None else f"{_used(remaining, kind)} {unit}"),
            ("alert at", None if alert is None else f"{_limit(alert, kind)} {unit}"),
            ("exhausted", bool(budget.get("exhausted"))),
            ("period", period),
        ]
    else:
        fields.append(("budget", "none"))
    fields.append(("rate limits", rates_text(item.get("rate_limits"))))
    backend = str(item.get("backend"))
    fields.append(("backend", f"{backend} (degraded)" if item.get("degraded") else backend))
    print_record(fields)


def note_local(target: Target, answer: Mapping[str, Any], *, reset: bool = False) -> None:
    """Say, on stderr, what in-process usage means without ``--url``: the store's copy."""
    if target.url is not None or answer.get("backend") != "memory":
        return
    if reset:
        warn(
            "note: without --url the reset went to the local store; a gateway running with "
            "the in-process backend keeps its own counters: reset through it with --url"
        )
    else:
        warn(
            "note: without --url this is the usage a running gateway last wrote to the store "
            "(every limits.persist_interval seconds); --url shows its live counters"
        )


def show_listing(
    target: Target,
    answer: Mapping[str, Any],
    as_json: bool,
    *,
    kinds: Iterable[str] | None,
    empty: str,
    label: str = "name",
) -> None:
    """Print ``GET /admin/budgets``: one table of ``kinds`` (its first column headed
    ``label``), or without them a titled table per kind."""
    wanted = None if kinds is None else set(kinds)
    data = [
        item
        for item in answer.get("data") or []
        if isinstance(item, Mapping) and (wanted is None or item.get("kind") in wanted)
    ]
    invalid = [
        item
        for item in answer.get("invalid") or []
        if isinstance(item, Mapping) and (wanted is None or item.get("kind") in wanted)
    ]
    if as_json:
        print_json({**answer, "total": len(data), "data": data, "invalid": invalid})
        return
    for item in invalid:
        warn(f"warning: {item.get('message')}")
    if not data:
        click.echo(empty)
    elif wanted is not None:
        print_usage_table(data, label=label)
    else:
        # one table per kind, titled: six columns would not fit 80 side by side
        first = True
        for kind, (title, column) in SECTIONS.items():
            items = [item for item in data if item.get("kind") == kind]
            if items:
                if not first:
                    click.echo()
                click.echo(title)
                print_usage_table(items, label=column)
                first = False
    note_local(target, answer)


def show_usage(target: Target, answer: Mapping[str, Any], as_json: bool) -> None:
    """Print one usage object."""
    if as_json:
        print_json(answer)
        return
    print_usage(answer)
    note_local(target, answer)
