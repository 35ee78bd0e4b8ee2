"""``portkey-mw prompts``: the prompt library -- list, show, diff, render, push.

``list``, ``show``, ``diff`` and ``push`` go through the admin API (:mod:`._client`: the
local store in process, or a server with ``--url`` and the admin key). ``push`` sends the
files to ``POST /v1/prompts/files``, which applies them with the code start-up uses.
``render`` renders in process over the local store (no provider is called, no key is
needed: whoever holds the data directory is the operator); with ``--url`` it asks the
server's ``POST /v1/prompts/{id}/render``, the data plane, with a gateway API key.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import click
import orjson

from portkey_mw.cli._client import AdminClient, AdminError, Target, run, segment, target_options
from portkey_mw.cli._common import load_settings
from portkey_mw.cli._inputs import key_values, read_config
from portkey_mw.cli._table import Column, print_json, print_record, print_table, warn, when
from portkey_mw.errors import GatewayError

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the server's JSON answer.")
#: kind -> its admin API path
_FAMILIES = {"prompt": "/prompts", "partial": "/prompts/partials"}
#: the fields of a version besides its template (the admin API's names)
DEFINITION_FIELDS = (
    "model", "virtual_key", "provider", "config", "parameters", "tools", "tool_choice",
    "functions", "response_format", "variables", "template_metadata",
)  # fmt: skip


@click.group("prompts")
def prompts() -> None:
    """The prompt library: prompts and partials with numbered versions and labels."""


# -- list ----------------------------------------------------------------------------------
@prompts.command("list")
@click.option("--workspace-id", default=None, help="Only this workspace's.")
@_JSON
@target_options
def list_command(target: Target, workspace_id: str | None, as_json: bool) -> None:
    """List prompts and partials: published and latest versions, labels."""

    async def work(api: AdminClient) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for path in _FAMILIES.values():
            answer = await api.call("GET", path, params={"workspace_id": workspace_id})
            found.extend(answer.get("data") or [])
        return found

    records = run(target, work)
    if as_json:
        print_json({"object": "list", "total": len(records), "data": records})
        return
    print_table(
        [
            Column("slug"),
            Column("name", ratio=2),
            Column("kind"),
            Column("published"),
            Column("latest"),
            Column("labels", ratio=2),
            Column("updated", whole=True),
        ],
        (
            (
                r.get("slug"),
                r.get("name"),
                r.get("object"),
                r.get("default_version"),
                r.get("latest_version"),
                _labels_text(r.get("labels") or []),
                when(r.get("last_updated_at")),
            )
            for r in records
        ),
    )


def _labels_text(labels: Iterable[Any]) -> str | None:
    """``production=2 staging=2:70,3:30``: where each label points."""
    shown = []
    for label in labels:
        if not isinstance(label, dict):
            continue
        entries = [e for e in label.get("versions") or [] if isinstance(e, dict)]
        if len(entries) == 1:
            points = str(entries[0].get("version"))
        else:
            points = ",".join(f"{e.get('version')}:{e.get('weight')}" for e in entries)
        shown.append(f"{label.get('label_id')}={points}")
    return " ".join(shown) or None


# -- finding a version -------------------------------------------------------------------
async def _find(api: AdminClient, slug: str) -> tuple[str, dict[str, Any]]:
    """The prompt or partial called ``slug``: its kind and record."""
    for kind, path in _FAMILIES.items():
        try:
            return kind, await api.call("GET", f"{path}/{segment(slug)}")
        except AdminError as exc:
            if exc.status != 404:
                raise
    raise click.ClickException(f"no prompt or partial {slug!r}")


async def _versions(api: AdminClient, kind: str, slug: str) -> list[dict[str, Any]]:
    answer = await api.call("GET", f"{_FAMILIES[kind]}/{segment(slug)}/versions")
    return [v for v in answer.get("data") or [] if isinstance(v, dict)]


async def _pick(
    api: AdminClient,
    record: dict[str, Any],
    versions: Sequence[dict[str, Any]],
    selector: str | None,
) -> dict[str, Any]:
    """The version ``selector`` names: none (the published one), a number, ``latest``
    or a label (a split label: its first version, with a note)."""
    slug = record.get("slug")
    if selector is None:
        number = record.get("default_version")
    elif selector == "latest":
        number = record.get("latest_version")
    elif selector.isdigit() and len(selector) <= 9:
        number = int(selector)
    else:
        number = await _through_label(api, record, selector)
    found = next((v for v in versions if v.get("version") == number), None)
    if found is None:
        raise click.ClickException(f"{slug} has no version {selector or number}")
    return found


async def _through_label(api: AdminClient, record: dict[str, Any], name: str) -> int:
    deployed = {
        str(label.get("label_id")): label.get("versions") or []
        for label in record.get("labels") or []
        if isinstance(label, dict)
    }
    entries = deployed.get(name) or deployed.get(name.lower())
    if entries is None:  # a custom label's name: its id is what the prompt holds
        labels = (await api.call("GET", "/labels")).get("data") or []
        ids = [
            str(lb.get("id")) for lb in labels if str(lb.get("name", "")).lower() == name.lower()
        ]
        entries = next((deployed[i] for i in ids if i in deployed), None)
    if not entries:
        raise click.ClickException(f"label {name!r} points at no version of {record.get('slug')}")
    if len(entries) > 1:
        warn(f"label {name} splits between versions; showing the first, {entries[0]['version']}")
    return int(entries[0]["version"])


def _resolve(target: Target, prompt_id: str, selectors: Sequence[str | None]) -> Any:
    """The record, kind and the versions ``selectors`` name, in one admin session."""
    slug = prompt_id.partition("@")[0]

    async def work(api: AdminClient) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
        kind, record = await _find(api, slug)
        versions = await _versions(api, kind, slug)
        return kind, record, [await _pick(api, record, versions, s) for s in selectors]

    return run(target, work)


def _selector(prompt_id: str) -> str | None:
    _, at, selector = prompt_id.partition("@")
    return selector if at else None


# -- show and diff -----------------------------------------------------------------------
def template_text(string: Any) -> str:
    """A template as people read it: a messages array indented, plain text as it is."""
    if not isinstance(string, str):
        return ""
    try:
        parsed = orjson.loads(string)
    except orjson.JSONDecodeError:
        return string
    if isinstance(parsed, list):
        return orjson.dumps(parsed, option=orjson.OPT_INDENT_2).decode()
    return string


def definition_of(version: dict[str, Any]) -> dict[str, Any]:
    """A version's fields besides its template (the ones that are set)."""
    return {k: version[k] for k in DEFINITION_FIELDS if version.get(k) is not None}


@prompts.command("show")
@click.argument("prompt_id", metavar="ID")
@_JSON
@target_options
def show(target: Target, prompt_id: str, as_json: bool) -> None:
    """Show a version's template and definition (ID: pp-x, pp-x@3, pp-x@production)."""
    kind, record, (version,) = _resolve(target, prompt_id, [_selector(prompt_id)])
    if as_json:
        print_json(version)
        return
    print_record(
        [
            ("slug", record.get("slug")),
            ("name", record.get("name")),
            ("kind", kind),
            ("version", version.get("version")),
            ("published", record.get("default_version")),
            ("latest", record.get("latest_version")),
            ("labels", ", ".join(version.get("labels") or []) or None),
            ("description", version.get("version_description")),
            ("created", when(version.get("created_at"))),
        ]
    )
    click.echo("\ntemplate:")
    click.echo(template_text(version.get("string")))
    definition = definition_of(version)
    if definition:
        click.echo("\ndefinition:")
        print_json(definition)


def version_lines(version: dict[str, Any]) -> list[str]:
    """What ``diff`` compares: the template, then the definition as sorted JSON."""
    definition = orjson.dumps(
        definition_of(version), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
    ).decode()
    text = f"{template_text(version.get('string'))}\n--- definition ---\n{definition}\n"
    return text.splitlines(keepends=True)


@prompts.command("diff")
@click.argument("prompt_id", metavar="ID")
@click.argument("first", metavar="A")
@click.argument("second", metavar="B")
@click.option("--context", "-U", "context", default=3, show_default=True, help="Lines of context.")
@target_options
def diff(target: Target, prompt_id: str, first: str, second: str, context: int) -> None:
    """A unified diff of two versions (A, B: numbers, latest or labels): template and
    definition."""
    slug = prompt_id.partition("@")[0]
    _, _, (old, new) = _resolve(target, slug, [first, second])
    lines = difflib.unified_diff(
        version_lines(old),
        version_lines(new),
        fromfile=f"{slug}@{old.get('version')}",
        tofile=f"{slug}@{new.get('version')}",
        n=max(context, 0),
    )
    for line in lines:
        click.echo(line, nl=not line.endswith("\n"))


# -- render ------------------------------------------------------------------------------
@prompts.command("render")
@click.argument("prompt_id", metavar="ID")
@click.option("--var", "pairs", multiple=True, metavar="K=V", help="A variable (repeatable).")
@click.option(
    "--vars-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Variables as a JSON (or YAML) object; --var values win over it.",
)
@click.option(
    "--api-key",
    envvar="PORTKEY_API_KEY",
    default=None,
    help="With --url: a gateway API key (default: $PORTKEY_API_KEY; the admin key is not "
    "for the data plane).",
)
@target_options
def render(
    target: Target,
    prompt_id: str,
    pairs: tuple[str, ...],
    vars_file: Path | None,
    api_key: str | None,
) -> None:
    """Print the request a prompt call would send (as JSON), calling no provider."""
    variables: dict[str, Any] = read_config(vars_file) if vars_file is not None else {}
    variables.update(key_values(pairs, "--var"))
    body = {"variables": variables}
    if target.url is None:
        answer = asyncio.run(_render_here(target.server_file, prompt_id, body))
    else:
        answer = _render_there(Target(target.url, api_key), prompt_id, body)
    print_json(answer)


async def _render_here(server_file: Path | None, prompt_id: str, body: dict[str, Any]) -> Any:
    """Render with the gateway's own prompt library, over the local store."""
    from portkey_mw.app import local_admin_app
    from portkey_mw.prompts.library import render_answer

    try:
        gateway = local_admin_app(load_settings(server_file))
        await gateway.control.open()
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    try:
        rendered = await gateway.pipeline.prompts.render(
            prompt_id, body, workspace_id=None, callers={}, fallback_caller=""
        )
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        await gateway.control.aclose()
    return orjson.loads(render_answer(rendered))


def _render_there(target: Target, prompt_id: str, body: dict[str, Any]) -> Any:
    async def work(api: AdminClient) -> Any:
        return await api.call("POST", f"/prompts/{segment(prompt_id)}/render", body)

    try:
        return run(target, work)
    except AdminError as exc:
        if exc.status == 401 and target.admin_key is None:
            raise click.ClickException(
                f"{exc.message}: give a gateway API key with $PORTKEY_API_KEY or --api-key"
            ) from None
        raise


# -- push --------------------------------------------------------------------------------
@prompts.command("push")
@click.argument(
    "paths",
    metavar="FILE...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@_JSON
@target_options
def push(target: Target, paths: tuple[Path, ...], as_json: bool) -> None:
    """Apply prompt files (or directories of them) as start-up does: create, make a new
    published version, or leave unchanged."""
    from portkey_mw.admin.prompt_files import PromptFileError, prompt_file_paths, read_prompt_files

    try:
        files = [
            p for path in paths for p in (prompt_file_paths(path) if path.is_dir() else [path])
        ]
        read = read_prompt_files(files)
    except PromptFileError as exc:
        raise click.ClickException(exc.message) from None
    if not read:
        raise click.ClickException("no prompt files (*.yaml, *.yml) to push")
    sent = {
        "files": [
            {
                "source": item.source,
                "prompt": item.prompt.model_dump(mode="json", exclude_unset=True),
            }
            for item in read
        ]
    }

    async def work(api: AdminClient) -> dict[str, Any]:
        return await api.call("POST", "/prompts/files", sent)

    answer = run(target, work)
    if as_json:
        print_json(answer)
        return
    for applied in answer.get("data") or []:
        click.echo(_report(applied))


def _report(applied: dict[str, Any]) -> str:
    outcome, version = applied.get("outcome"), applied.get("version")
    said = {
        "created": f"created, version {version} published",
        "new version": f"new version {version}, published",
        "unchanged": f"unchanged (version {version})",
        "updated": f"updated (version {version})",
    }.get(str(outcome), str(outcome))
    moved = applied.get("labels") or []
    labels = f"; labels moved: {', '.join(moved)}" if moved else ""
    return f"{applied.get('source')}: {applied.get('slug')} {said}{labels}"
