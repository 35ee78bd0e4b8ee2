"""``portkey-mw logs``: request logs from the log store, through the query endpoint
(``GET /v1/logs``, ``/v1/logs/stats``; the admin key, or the local store without ``--url``).

- ``tail``: the newest records, one line each; ``--follow`` keeps polling for new ones.
- ``search``: the records matching filters, as a table.
- ``stats``: totals and a group-by table with latency percentiles.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from portkey_mw.cli._client import AdminClient, Target, call, run, target_options
from portkey_mw.cli._table import Column, cell, print_json, print_table

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON (one object a line).")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def since_param(value: str | None, now: float | None = None) -> str | None:
    """``--since``: a duration back from now (``30s``, ``15m``, ``1h``, ``2d``), or an
    ISO-8601 time or epoch seconds (passed on as is)."""
    if not value:
        return None
    found = _DURATION.match(value.strip())
    if found is None:
        return value.strip()
    seconds = float(found.group(1)) * _UNITS[found.group(2)]
    return f"{(now if now is not None else time.time()) - seconds:.3f}"


def filter_params(
    *,
    provider: Sequence[str] = (),
    model: Sequence[str] = (),
    status: Sequence[str] = (),
    metadata: Sequence[str] = (),
    since: str | None = None,
    until: str | None = None,
    text: str | None = None,
    trace_id: str | None = None,
) -> dict[str, str | None]:
    """The query parameters of ``GET /v1/logs`` for the command's filter options."""
    params: dict[str, str | None] = {
        "provider": ",".join(provider) or None,
        "model": ",".join(model) or None,
        "status": ",".join(status) or None,
        "from": since_param(since),
        "to": until,
        "q": text,
        "trace_id": trace_id,
    }
    for pair in metadata:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--metadata")
        params[f"metadata.{key}"] = value
    return params


def _filters(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--provider", multiple=True, help="Only this provider (repeatable)."),
            click.option("--model", multiple=True, help="Only this model (repeatable)."),
            click.option("--status", multiple=True, help="Only this HTTP status (repeatable)."),
            click.option(
                "--metadata", multiple=True, metavar="KEY=VALUE", help="Metadata must match."
            ),
            click.option("--since", default=None, help="From: 15m, 1h, 2d, or an ISO time."),
            click.option("--until", default=None, help="To: an ISO time or epoch seconds."),
            click.option("--q", "text", default=None, help="Text in the stored bodies."),
            click.option("--trace-id", default=None, help="Only this trace."),
        ]
    ):
        command = option(command)
    return command


def _when(row: Mapping[str, Any]) -> str:
    ms = row.get("created_ms")
    if not isinstance(ms, int | float):
        return "-"
    return datetime.fromtimestamp(ms / 1000.0, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ms(value: Any) -> str:
    return f"{value:.0f}ms" if isinstance(value, int | float) else "-"


def _cost(value: Any) -> str:
    return f"${value:.6f}" if isinstance(value, int | float) else "-"


def line(row: Mapping[str, Any]) -> str:
    """One record as one line: time, status, provider/model, latency, tokens, cost, id."""
    model = f"{row.get('provider') or '-'}/{row.get('model') or '-'}"
    parts = [
        _when(row),
        str(row.get("status") or "-"),
        model,
        _ms(row.get("latency_ms")),
        f"{row.get('total_tokens') or 0}tok",
        _cost(row.get("cost_usd")),
        str(row.get("cache_status") or "-"),
        str(row.get("id") or row.get("request_id") or "-"),
    ]
    return "  ".join(parts)


@click.group("logs")
def logs() -> None:
    """Request logs: tail, search and statistics (the SQL log store)."""


@logs.command("tail")
@click.option("-n", "--lines", "count", default=20, show_default=True, help="Records shown.")
@click.option("-f", "--follow", is_flag=True, help="Keep polling for new records.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between polls.")
@click.option("--polls", default=0, hidden=True, help="Stop after this many polls (tests).")
@_JSON
@_filters
@target_options
def tail(
    target: Target,
    count: int,
    follow: bool,
    interval: float,
    polls: int,
    as_json: bool,
    **filters: Any,
) -> None:
    """The newest records, oldest first, one line each; --follow prints new ones."""
    params = filter_params(**filters)

    def show(rows: Sequence[Mapping[str, Any]]) -> None:
        for row in rows:
            if as_json:
                click.echo(json.dumps(dict(row), separators=(",", ":"), default=str))
            else:
                click.echo(line(row))

    async def work(api: AdminClient) -> None:
        first = await api.call("GET", "/logs", params={**params, "page_size": str(min(count, 200))})
        rows = list(reversed(first.get("data") or []))
        show(rows)
        seen = {r.get("id") for r in rows}
        newest = max((r.get("created_ms") or 0 for r in rows), default=None)
        done = 0
        while follow and (not polls or done < polls):
            await asyncio.sleep(interval)
            done += 1
            since = f"{newest / 1000.0:.3f}" if newest else params.get("from")
            answer = await api.call(
                "GET", "/logs", params={**params, "from": since, "page_size": "200"}
            )
            fresh = [r for r in reversed(answer.get("data") or []) if r.get("id") not in seen]
            show(fresh)
            for row in fresh:
                seen.add(row.get("id"))
                newest = max(newest or 0, row.get("created_ms") or 0)

    run(target, work)


_SEARCH_COLUMNS = [
    Column("time", whole=True),
    Column("status"),
    Column("provider"),
    Column("model", ratio=2),
    Column("latency"),
    Column("tokens"),
    Column("cost"),
    Column("cache"),
    Column("id", ratio=2, whole=True),
]


@logs.command("search")
@click.option("--page", default=0, show_default=True, help="Page, from 0.")
@click.option("--page-size", default=50, show_default=True, help="Records a page (max 200).")
@_JSON
@_filters
@target_options
def search(target: Target, page: int, page_size: int, as_json: bool, **filters: Any) -> None:
    """The records matching the filters, newest first."""
    params = {**filter_params(**filters), "page": str(page), "page_size": str(page_size)}
    answer = call(target, "GET", "/logs", params=params)
    if as_json:
        print_json(answer)
        return
    rows = answer.get("data") or []
    print_table(
        _SEARCH_COLUMNS,
        [
            [
                _when(r),
                r.get("status"),
                r.get("provider"),
                r.get("model"),
                _ms(r.get("latency_ms")),
                r.get("total_tokens"),
                _cost(r.get("cost_usd")),
                r.get("cache_status"),
                r.get("id"),
            ]
            for r in rows
        ],
    )
    click.echo(f"{len(rows)} of {answer.get('total', 0)} records (page {page})")


_STATS_COLUMNS = [
    Column("group", ratio=2),
    Column("requests"),
    Column("errors"),
    Column("p50"),
    Column("p90"),
    Column("p99"),
    Column("tokens"),
    Column("cost"),
]


def _stat_row(name: Any, row: Mapping[str, Any]) -> list[str]:
    return [
        cell(name),
        str(row.get("requests", 0)),
        str(row.get("errors", 0)),
        _ms(row.get("latency_p50_ms")),
        _ms(row.get("latency_p90_ms")),
        _ms(row.get("latency_p99_ms")),
        str(row.get("total_tokens") or 0),
        _cost(row.get("cost_usd")),
    ]


@logs.command("stats")
@click.option(
    "--group-by",
    default="provider",
    show_default=True,
    help="provider, model, status, api_key_id, virtual_key, config_id, prompt_id, "
    "cache_status, endpoint or metadata.<key>.",
)
@_JSON
@_filters
@target_options
def stats(target: Target, group_by: str, as_json: bool, **filters: Any) -> None:
    """Totals and one row per group, with latency percentiles."""
    params = {**filter_params(**filters), "group_by": group_by}
    answer = call(target, "GET", "/logs/stats", params=params)
    if as_json:
        print_json(answer)
        return
    rows = [_stat_row("(all)", answer.get("totals") or {})]
    rows += [_stat_row(g.get("key"), g) for g in answer.get("groups") or []]
    print_table([Column(group_by, ratio=2), *_STATS_COLUMNS[1:]], rows)
