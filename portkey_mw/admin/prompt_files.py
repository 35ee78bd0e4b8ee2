"""Prompt files: prompts and partials kept in git as YAML, applied to the store.

Each ``*.yaml`` / ``*.yml`` file of ``prompts.directory`` is one prompt or partial with a
stable slug. Applying a set of files (at start-up, by ``portkey-mw prompts push``, or by
``POST /v1/prompts/files``, which the CLI sends) makes the store match them:

- a slug the store does not have is created, its version 1 published;
- one whose newest version differs from the file gets a new version, published;
- one whose newest version is the file changes nothing (restarts make no versions).

Every version is checked as the admin API checks it
(:func:`portkey_mw.admin.prompts.check_version`). Partials that other files include are
applied first; files that include each other, in a cycle, are refused before anything is
written. A file's problem is an :class:`PromptFileError` naming the file.
"""

from __future__ import annotations

import graphlib
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson
import yaml
from pydantic import ConfigDict, Field, ValidationError, model_validator

from portkey_mw.admin.access import visible
from portkey_mw.admin.http import Call
from portkey_mw.admin.prompt_schemas import MAX_TEMPLATE, VERSION_FIELDS, VersionFields
from portkey_mw.admin.prompts import check_version
from portkey_mw.admin.schemas import MAX_TEXT, Strict, describe, parse_body
from portkey_mw.admin.services import AdminServices, MissingScope, Principal
from portkey_mw.errors import GatewayError, InvalidConfig
from portkey_mw.prompts.selection import STICKY_DEFAULT, label_id
from portkey_mw.prompts.template import PromptTemplate, Template, parse_template
from portkey_mw.store.protocols import Conflict, ControlStore
from portkey_mw.store.records import PARTIAL, PROMPT, Label, Prompt, PromptVersion

#: The largest prompt file read.
MAX_FILE_BYTES = 1024 * 1024
#: The most files one directory (or one push) may hold.
MAX_FILES = 1000
#: What a file's slug looks like: ``pp-`` then lower-case letters, digits and dashes.
SLUG_PATTERN = r"^pp-[a-z0-9][a-z0-9-]*$"
#: The suffixes of prompt files.
SUFFIXES = (".yaml", ".yml")

#: What applying a file did.
Outcome = Literal["created", "new version", "unchanged", "updated"]


class PromptFileError(InvalidConfig):
    """A prompt file is unreadable, malformed, or holds a version the store would refuse
    (400 over the admin API; at start-up, the start stops with this message)."""

    code = "invalid_prompt_file"


class PromptFile(VersionFields):
    """One prompt file's content (the admin API's version fields, plus its identity)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    slug: str = Field(pattern=SLUG_PATTERN, max_length=100)
    kind: Literal["prompt", "partial"] = "prompt"
    name: str | None = Field(None, min_length=1, max_length=MAX_TEXT)
    #: the chat messages (a prompt's template as a list) ...
    messages: list[dict[str, Any]] | None = Field(None, min_length=1, max_length=1000)
    #: ... or its template as plain text (a partial's is always plain text)
    template: str | None = Field(None, max_length=MAX_TEMPLATE)
    #: the version's description
    description: str | None = Field(None, max_length=MAX_TEXT)
    #: label -> ``latest`` or a version number: where the file points each label
    labels: dict[str, Literal["latest"] | int] = Field(default_factory=dict, max_length=50)

    @model_validator(mode="after")
    def _one_template(self) -> PromptFile:
        if self.string is not None or self.version_description is not None:
            raise ValueError("write the template as `template:` or `messages:`")
        if (self.messages is None) == (self.template is None):
            raise ValueError("give exactly one of `template:` (text) and `messages:` (a list)")
        if self.kind == PARTIAL and self.messages is not None:
            raise ValueError("a partial's template is text: use `template:`")
        return self

    @property
    def text(self) -> str:
        """The version's template as the store keeps it (Portkey's ``string``)."""
        if self.template is not None:
            return self.template
        return orjson.dumps(self.messages).decode()

    def definition(self) -> dict[str, Any]:
        """The version's other fields, as JSON would hand them back (YAML's dates become
        text here, not on the first round trip: an unchanged file stays unchanged)."""
        fields = {
            name: getattr(self, name)
            for name in VERSION_FIELDS
            if name != "string" and getattr(self, name) is not None
        }
        return dict(orjson.loads(orjson.dumps(fields)))


@dataclass(frozen=True, slots=True)
class SourcedFile:
    """A prompt file and where it came from (the file name errors and reports show)."""

    source: str
    prompt: PromptFile


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one file did."""

    source: str
    slug: str
    kind: str
    outcome: Outcome
    #: the published version once applied
    version: int
    #: the labels the file moved
    labels: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON."""
        return {
            "source": self.source,
            "slug": self.slug,
            "kind": self.kind,
            "outcome": self.outcome,
            "version": self.version,
            "labels": list(self.labels),
        }


#: What to do with a bad file: ``None`` raises (the default: stop); a callable is handed
#: the error and the file is skipped.
OnError = Callable[[PromptFileError], None] | None


# -- reading -----------------------------------------------------------------------------
def parse_prompt_file(raw: Any, source: str) -> SourcedFile:
    """Validate one file's parsed content.

    :raises PromptFileError: naming ``source`` and every bad field.
    """
    if not isinstance(raw, dict):
        raise PromptFileError(f"prompt file {source}: the top level must be a mapping")
    try:
        return SourcedFile(source, PromptFile.model_validate(raw))
    except ValidationError as exc:
        raise PromptFileError(f"prompt file {source}: {describe(exc)}") from None


def read_prompt_file(path: Path) -> SourcedFile:
    """Read and validate one YAML prompt file.

    :raises PromptFileError: unreadable, too large, not YAML, or malformed.
    """
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise PromptFileError(f"cannot read prompt file {path}: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise PromptFileError(f"prompt file {path} is larger than {MAX_FILE_BYTES} bytes")
    try:
        raw = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise PromptFileError(f"prompt file {path} is not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise PromptFileError(f"prompt file {path} is not valid YAML: {exc}") from None
    return parse_prompt_file(raw, str(path))


def prompt_file_paths(directory: Path) -> list[Path]:
    """The prompt files of ``directory`` (not its subdirectories), by name.

    :raises PromptFileError: it is not a directory, or holds more than :data:`MAX_FILES`.
    """
    if not directory.is_dir():
        raise PromptFileError(f"prompts.directory {directory} is not a directory")
    found = sorted(p for p in directory.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    if len(found) > MAX_FILES:
        raise PromptFileError(f"prompts.directory {directory} holds more than {MAX_FILES} files")
    return found


def read_prompt_files(paths: Iterable[Path], on_error: OnError = None) -> list[SourcedFile]:
    """Read every file (a bad one raises, or goes to ``on_error`` and is left out)."""
    read: list[SourcedFile] = []
    for path in paths:
        try:
            read.append(read_prompt_file(path))
        except PromptFileError as exc:
            _fail(exc, on_error)
    return read


# -- ordering ----------------------------------------------------------------------------
def includes(kind: str, text: str) -> set[str]:
    """The slugs of the partials a template includes directly.

    :raises TemplateError: it does not parse (naming the line and column).
    """
    template: PromptTemplate | Template = (
        PromptTemplate.parse(text) if kind == PROMPT else parse_template(text)
    )
    return {ref.slug for ref in template.partials}


def apply_order(files: Sequence[SourcedFile], on_error: OnError = None) -> list[SourcedFile]:
    """The files in an order where each partial comes before the files including it.

    :raises PromptFileError: two files share a slug, a template does not parse (naming
        its line and column), or files include each other in a cycle.
    """
    by_slug: dict[str, SourcedFile] = {}
    graph: dict[str, set[str]] = {}
    for item in files:
        slug = item.prompt.slug
        if slug in by_slug:
            _fail(
                PromptFileError(
                    f"prompt files {by_slug[slug].source} and {item.source} both have slug {slug}"
                ),
                on_error,
            )
            continue
        try:
            graph[slug] = includes(item.prompt.kind, item.prompt.text)
        except GatewayError as exc:
            _fail(PromptFileError(f"prompt file {item.source}: {exc.message}"), on_error)
            continue
        by_slug[slug] = item
    while True:
        sorter = graphlib.TopologicalSorter(
            {slug: deps & graph.keys() for slug, deps in graph.items()}
        )
        try:
            order = list(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle: list[str] = exc.args[1]
            names = " -> ".join(f"{s} ({by_slug[s].source})" for s in cycle)
            _fail(PromptFileError(f"prompt files include each other: {names}"), on_error)
            for slug in cycle:  # skipping: leave the cycle out, order the rest
                graph.pop(slug, None)
            continue
        return [by_slug[slug] for slug in order]


def _fail(error: PromptFileError, on_error: OnError) -> None:
    if on_error is None:
        raise error
    on_error(error)


# -- applying ----------------------------------------------------------------------------
async def apply_prompt_files(
    store: ControlStore,
    services: AdminServices,
    principal: Principal,
    files: Sequence[SourcedFile],
    on_error: OnError = None,
) -> list[Applied]:
    """Make the store match ``files`` (see the module's introduction).

    Files are checked as a whole before anything is written (slugs, templates, cycles);
    then each is checked against the store and applied in turn, partials first. A file
    the store refuses stops there (earlier files stay applied, each a valid state).

    :param principal: who applies them (the operator at start-up; the caller of the
        route): what they may see, and the workspace of what they create.
    """
    ordered = apply_order(files, on_error)
    applied: list[Applied] = []
    for item in ordered:
        try:
            applied.append(await _apply(store, services, principal, item))
        except PromptFileError as exc:
            _fail(exc, on_error)
    return applied


async def _apply(
    store: ControlStore, services: AdminServices, principal: Principal, item: SourcedFile
) -> Applied:
    spec = item.prompt
    text, definition = spec.text, spec.definition()
    existing = await store.get_prompt(spec.slug)
    if existing is not None and not visible(principal, existing.workspace_id):
        raise PromptFileError(
            f"prompt file {item.source}: slug {spec.slug} belongs to another workspace"
        )
    if existing is not None and existing.kind != spec.kind:
        raise PromptFileError(
            f"prompt file {item.source}: {spec.slug} is a {existing.kind} in the store, "
            f"the file says {spec.kind}"
        )
    try:
        workspace = existing.workspace_id if existing is not None else principal.workspace_id
        await check_version(
            store,
            services,
            principal,
            spec.kind,
            spec.slug,
            text,
            definition,
            workspace_id=workspace,
        )
    except GatewayError as exc:
        raise PromptFileError(f"prompt file {item.source}: {exc.message}") from None
    outcome: Outcome = "created"
    if existing is None:
        record = await _create(store, principal, spec, text, definition)
    else:
        record, outcome = await _update(store, existing, spec, text, definition)
    record, moved = await _point_labels(store, item, record)
    if moved and outcome == "unchanged":
        outcome = "updated"
    return Applied(
        item.source, record.slug, record.kind, outcome, record.default_version, tuple(moved)
    )


async def _create(
    store: ControlStore,
    principal: Principal,
    spec: PromptFile,
    text: str,
    definition: dict[str, Any],
) -> Prompt:
    prompt_id = uuid.uuid4().hex
    record = Prompt(
        id=prompt_id,
        slug=spec.slug,  # the file's: chosen, not derived from the name (git names it)
        name=spec.name or spec.slug,
        kind=spec.kind,
        default_version=1,
        workspace_id=principal.workspace_id,
    )
    first = _version(prompt_id, spec, text, definition)
    try:
        return await store.create_prompt(record, first)
    except Conflict:
        raise PromptFileError(
            f"slug {spec.slug} is taken (by a deleted prompt, or one made a moment ago)"
        ) from None


async def _update(
    store: ControlStore,
    existing: Prompt,
    spec: PromptFile,
    text: str,
    definition: dict[str, Any],
) -> tuple[Prompt, Outcome]:
    latest = existing.latest
    changes: dict[str, Any] = {}
    if spec.name is not None and spec.name != existing.name:
        changes["name"] = spec.name
    same = latest is not None and latest.template == text and dict(latest.definition) == definition
    if same and not changes:
        return existing, "unchanged"
    new = None if same else _version(existing.id, spec, text, definition)
    updated = await store.update_prompt(existing.id, changes, new)
    if updated is not None and new is not None and updated.latest is not None:
        updated = await store.update_prompt(
            existing.id, {"default_version": updated.latest.version}
        )
    if updated is None:
        raise PromptFileError(f"{spec.slug} was deleted while its file was applied")
    return updated, ("updated" if same else "new version")


def _version(
    prompt_id: str, spec: PromptFile, text: str, definition: dict[str, Any]
) -> PromptVersion:
    return PromptVersion(
        id=uuid.uuid4().hex,
        prompt_id=prompt_id,
        version=0,  # the store numbers it
        template=text,
        definition=definition,
        description=spec.description,
    )


async def _point_labels(
    store: ControlStore, item: SourcedFile, record: Prompt
) -> tuple[Prompt, list[str]]:
    """Point the file's labels (only those: labels it does not name stay as they are)."""
    wanted = item.prompt.labels
    if not wanted:
        return record, []
    custom: Mapping[str, Label] = {label.id: label for label in await store.list_labels()}
    labels = dict(record.labels)
    moved: list[str] = []
    latest = record.latest.version if record.latest else 1
    for name, target in wanted.items():
        found = label_id(name, custom, record.workspace_id)
        if found is None:
            raise PromptFileError(f"prompt file {item.source}: no label {name[:100]!r}")
        number = latest if target == "latest" else target
        if record.version(number) is None:
            raise PromptFileError(
                f"prompt file {item.source}: label {name} points at version {number}, "
                f"which {record.slug} does not have"
            )
        deployed = {"versions": [{"version": number, "weight": 1}], "sticky": STICKY_DEFAULT}
        if labels.get(found) != deployed:
            labels[found] = deployed
            moved.append(name)
    if not moved:
        return record, []
    updated = await store.update_prompt(record.id, {"labels": labels})
    if updated is None:
        raise PromptFileError(f"{record.slug} was deleted while its file was applied")
    return updated, moved


# -- a directory, at start-up ------------------------------------------------------------
async def load_prompt_directory(
    directory: Path,
    store: ControlStore | None,
    services: AdminServices,
    principal: Principal,
    on_error: OnError = None,
) -> list[Applied]:
    """Apply every prompt file of ``directory`` (the gateway's start-up).

    :raises PromptFileError: a bad file (unless ``on_error`` takes it), or files while
        the store is disabled (prompts live in the store).
    """
    paths = prompt_file_paths(directory)
    if not paths:
        return []
    if store is None:
        raise PromptFileError(
            f"prompts.directory {directory} holds prompt files, but the control-plane store "
            "is disabled (store.enabled: false): prompts live in the store"
        )
    return await apply_prompt_files(
        store, services, principal, read_prompt_files(paths, on_error), on_error
    )


# -- the route ---------------------------------------------------------------------------
class SentFile(Strict):
    """One file as ``portkey-mw prompts push`` sends it: parsed (YAML stays client-side)."""

    source: str = Field(min_length=1, max_length=300)
    prompt: dict[str, Any]


class SentFiles(Strict):
    """``POST /v1/prompts/files``."""

    files: list[SentFile] = Field(min_length=1, max_length=MAX_FILES)


#: what applying files does: create, make versions, publish them
APPLY_SCOPES = ("prompts.create", "prompts.update", "prompts.publish")


async def apply_files(call: Call) -> tuple[int, dict[str, Any]]:
    """Apply prompt files, exactly as start-up does; one report per file."""
    principal = await call.authorize()
    for scope in APPLY_SCOPES:
        if not principal.allows(scope):
            raise MissingScope.lacking(scope)
    sent = parse_body(SentFiles, await call.body(), "prompt files")
    files = [parse_prompt_file(f.prompt, f.source) for f in sent.files]
    applied = await apply_prompt_files(call.store, call.services, principal, files)
    return 200, {
        "object": "list",
        "success": True,
        "total": len(applied),
        "data": [a.as_dict() for a in applied],
    }
