"""``portkey-mw plugins``, ``providers`` and ``guardrails``: what the loaded plugins give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from portkey_mw.cli._common import build_gateway, load_settings, server_file_option
from portkey_mw.cli._table import Column, print_json, print_record, print_table

#: What a plugin can register, as the JSON keys and table labels of ``portkey-mw plugins``.
KINDS = {
    "providers": "providers",
    "guardrails": "guardrails",
    "cache_backends": "cache backends",
    "semantic_indexes": "semantic indexes",
    "semantic_verifiers": "semantic verifiers",
    "log_sinks": "log sinks",
}


def _registered(gateway: Any, plugin: str) -> dict[str, list[str]]:
    """Each kind of thing ``plugin`` registered, by its id or name."""
    return {
        "providers": sorted(p.id for p in gateway.providers.values() if p.plugin_name == plugin),
        "guardrails": sorted(g.id for g in gateway.guardrails.values() if g.plugin_name == plugin),
        "cache_backends": sorted(
            b.name for b in gateway.cache_backends.values() if b.plugin_name == plugin
        ),
        "semantic_indexes": sorted(
            i.name for i in gateway.semantic_indexes.values() if i.plugin_name == plugin
        ),
        "semantic_verifiers": sorted(
            v.name for v in gateway.semantic_verifiers.values() if v.plugin_name == plugin
        ),
        "log_sinks": sorted(s.name for s in gateway.log_sinks if s.plugin_name == plugin),
    }


@click.command("plugins")
@server_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(config: Path | None, as_json: bool) -> None:
    """List loaded plugins: distribution, version, hooks and what each registers."""
    gateway = build_gateway(load_settings(config))
    rows: list[dict[str, Any]] = []
    for info in gateway.plugins.plugins():
        rows.append(
            {
                "name": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "hooks": list(info.hooks),
                **_registered(gateway, info.name),
            }
        )
    if as_json:
        print_json(rows)
        return
    for number, row in enumerate(rows):
        if number:
            click.echo()
        origin = " ".join(p for p in (row["distribution"], row["version"]) if p) or "?"
        if row["distribution"] == row["name"]:
            origin = row["version"] or "?"
        # what a registration hook gave is shown under its kind, so it is not a hook row
        hooks = [h for h in row["hooks"] if not h.startswith("register_")]
        fields: list[tuple[str, Any]] = [("hooks", hooks)] if hooks else []
        fields += [
            (label, row[kind] or "none")
            for kind, label in KINDS.items()
            if f"register_{kind}" in row["hooks"] or row[kind]
        ]
        print_record(fields, title=f"{row['name']} ({origin})")


@click.command("providers")
@server_file_option
@click.option("--markdown", is_flag=True, help="Print the table docs/providers.md embeds.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def providers_command(config: Path | None, markdown: bool, as_json: bool) -> None:
    """List provider ids with their plugin, endpoints and chat features.

    These are the provider plugins (``openai``, ``bedrock``...). The providers an admin
    creates with credentials -- Portkey's "virtual keys" -- are ``portkey-mw virtual-keys``.
    """
    from portkey_mw.capabilities import endpoint_names, feature_names, markdown_table

    # Every provider there is, the mock included (a server file turns it on with mock: true).
    settings = load_settings(config).model_copy(update={"mock": True})
    providers = sorted(build_gateway(settings).providers.values(), key=lambda p: p.id)
    if markdown:
        click.echo(markdown_table(providers), nl=False)
        return
    rows = [
        {
            "id": p.id,
            "plugin": p.plugin_name,
            "endpoints": endpoint_names(p),
            "features": feature_names(p),
        }
        for p in providers
    ]
    if as_json:
        print_json(rows)
        return
    print_table(
        [Column("provider"), Column("plugin"), Column("endpoints"), Column("features")],
        ((r["id"], r["plugin"], r["endpoints"], r["features"]) for r in rows),
    )


@click.command("guardrails")
@server_file_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def guardrails_command(config: Path | None, as_json: bool) -> None:
    """List guardrail ids (for a config's checks) with their plugin and what they do."""
    gateway = build_gateway(load_settings(config))
    rows: list[dict[str, str | None]] = [
        {"id": g.id, "plugin": g.plugin_name, "description": describe(type(g))}
        for g in sorted(gateway.guardrails.values(), key=lambda g: g.id)
    ]
    if as_json:
        print_json(rows)
        return
    # grouped by plugin: a plugin name and an id side by side would leave no room to say
    # what the check does
    table_rows: list[tuple[str, str | None]] = []
    for plugin in sorted({str(r["plugin"]) for r in rows}):
        table_rows.append((f"{plugin}:", ""))
        table_rows += [(f"  {r['id']}", r["description"]) for r in rows if r["plugin"] == plugin]
    print_table([Column("guardrail (by plugin)"), Column("description", 3)], table_rows)


def describe(cls: type) -> str | None:
    """The first sentence of a class's own docstring (not one it inherits), without the
    leading ``id:`` label some give, and without reStructuredText's double backquotes."""
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    first = " ".join(doc.strip().split("\n\n", 1)[0].split())
    if first.startswith("``") and "``: " in first:
        first = first.split("``: ", 1)[1]
    sentence, dot, _ = first.partition(". ")
    text = (sentence + dot).rstrip() if dot else sentence
    if not text.startswith("``"):  # a parameter's name keeps its case
        text = text[:1].upper() + text[1:]
    return text.replace("``", "")
