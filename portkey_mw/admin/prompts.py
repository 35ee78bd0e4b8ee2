"""The prompt library's routes: prompts and partials, their versions, publishing, labels
(with portkey-mw's weighted splits) and collections.

Every version is checked before it is saved: its template must parse (the error names
the line and column), every partial it includes must exist in the caller's reach, no
partial may include itself (directly or through others), and the virtual key, saved
config or provider it routes by must exist. A version never changes once saved; an update
that changes a version field makes the next version, and ``makeDefault`` publishes one.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from portkey_mw.admin import views
from portkey_mw.admin.access import visible, workspace_for
from portkey_mw.admin.http import Call
from portkey_mw.admin.prompt_schemas import (
    VERSION_FIELDS,
    LabelSplit,
    LabelVersion,
    PromptCreate,
    PromptUpdate,
    Publish,
    VersionFields,
)
from portkey_mw.admin.schemas import ignored_fields, parse_body
from portkey_mw.admin.services import AdminServices, Principal
from portkey_mw.admin.virtual_keys import SLUG_TRIES, derive_slug
from portkey_mw.errors import InvalidRequest, NotFound
from portkey_mw.prompts.selection import (
    BUILT_IN_LABELS,
    PromptNotFound,
    check_split,
    check_sticky,
    choose,
    label_id,
)
from portkey_mw.prompts.template import (
    PartialRef,
    PromptTemplate,
    Template,
    TemplateError,
    parse_template,
    partial_closure,
)
from portkey_mw.store.protocols import Conflict, ControlStore
from portkey_mw.store.records import PARTIAL, PROMPT, Label, Prompt, PromptVersion

#: Every prompt's and partial's slug starts so, as Portkey's do.
SLUG_PREFIX = "pp-"
_WHAT = {PROMPT: "prompt", PARTIAL: "partial"}


# -- views -------------------------------------------------------------------------------------
def version_view(prompt: Prompt, version: PromptVersion) -> dict[str, Any]:
    """One version: its number, template and definition."""
    definition = dict(version.definition)
    return {
        "id": version.id,
        "prompt_id": prompt.id,
        "prompt_slug": prompt.slug,
        "version": version.version,
        "version_id": version.id,
        "string": version.template,
        **{name: definition.get(name) for name in VERSION_FIELDS if name != "string"},
        "version_description": version.description,
        "is_default": version.version == prompt.default_version,
        "labels": [name for name, v in _label_versions(prompt).items() if version.version in v],
        "created_at": views.timestamp(version.created_at),
        "object": "prompt_version",
    }


def _label_versions(prompt: Prompt) -> dict[str, list[int]]:
    return {
        label: [int(entry["version"]) for entry in deployed.get("versions", ())]
        for label, deployed in prompt.labels.items()
        if isinstance(deployed, Mapping)
    }


def prompt_view(prompt: Prompt) -> dict[str, Any]:
    """A prompt (or partial) with its published version's fields at the top level."""
    published = prompt.version(prompt.default_version) or prompt.latest
    body: dict[str, Any] = {
        "id": prompt.id,
        "slug": prompt.slug,
        "name": prompt.name,
        "collection_id": prompt.collection_id,
        "workspace_id": prompt.workspace_id,
        "status": prompt.status,
        "default_version": prompt.default_version,
        "latest_version": prompt.latest.version if prompt.latest else None,
        "versions": len(prompt.versions),
        "labels": [
            {"label_id": label, **dict(deployed)}
            for label, deployed in prompt.labels.items()
            if isinstance(deployed, Mapping)
        ],
        "created_at": views.timestamp(prompt.created_at),
        "last_updated_at": views.timestamp(prompt.updated_at),
        "object": _WHAT[prompt.kind],
    }
    if published is not None:
        shown = version_view(prompt, published)
        for name in ("id", "labels", "object", "created_at", "prompt_id", "prompt_slug"):
            shown.pop(name)
        body.update(shown)
    return body


# -- checks --------------------------------------------------------------------------------------
async def _visible(call: Call, principal: Principal, kind: str, name: str) -> Prompt:
    record = await call.store.get_prompt(name, kind)
    if record is None or not visible(principal, record.workspace_id):
        raise PromptNotFound(f"no {_WHAT[kind]} {name[:100]!r}", param="slug")
    return record


def _definition(fields: VersionFields, base: Mapping[str, Any]) -> dict[str, Any]:
    """The version definition: ``base`` (the newest version's) with ``fields`` set."""
    definition = {k: v for k, v in base.items() if k in VERSION_FIELDS}
    for name in VERSION_FIELDS:
        if name != "string" and name in fields.model_fields_set:
            definition[name] = getattr(fields, name)
    return {k: v for k, v in definition.items() if v is not None}


async def _partials_of(
    store: ControlStore,
    principal: Principal,
    template: PromptTemplate | Template,
    own: tuple[str, Template],
    workspace_id: str | None,
) -> None:
    """Every partial ``template`` reaches exists for the caller, and none includes itself.

    A partial must also be the organisation's or of ``workspace_id`` (the including
    prompt's workspace), as the data plane requires: slugs are one namespace and a freed
    slug may be taken by another workspace.

    :param own: the partial being saved (its slug and new template), which the lookup
        answers with the new text: a cycle through the new version is caught too.
    """
    loaded: dict[str, Template] = {}

    def lookup(ref: PartialRef) -> Template:
        if ref.slug == own[0]:
            return own[1]
        if ref.text not in loaded:
            raise _Pending(ref)
        return loaded[ref.text]

    for _ in range(200):  # each pass reads one missing partial; closures are small
        try:
            partial_closure(template, lookup)
            return
        except _Pending as pending:
            ref = pending.ref
            record = await store.get_prompt(ref.slug, PARTIAL)
            if (
                record is None
                or not visible(principal, record.workspace_id)
                or record.workspace_id not in (None, workspace_id)
            ):
                raise PromptNotFound(
                    f"the template includes partial {ref.text[:100]!r}, which does not exist",
                    param="string",
                ) from None
            labels = {label.id: label for label in await store.list_labels()}
            version, _ = choose(record, ref.selector, labels, {}, "")
            loaded[ref.text] = parse_template(version.template)
    raise InvalidRequest("the template includes too many partials", param="string")


class _Pending(Exception):
    def __init__(self, ref: PartialRef) -> None:
        self.ref = ref


async def check_version(
    store: ControlStore,
    services: AdminServices,
    principal: Principal,
    kind: str,
    slug: str,
    text: str,
    definition: Mapping[str, Any],
    *,
    workspace_id: str | None = None,
) -> None:
    """Refuse a version that could not be called: the template does not parse (the error
    names the line and column), includes a partial ``principal`` cannot see or one that
    includes itself, or routes by a virtual key, saved config or provider that does not
    exist. The admin routes and prompt files (:mod:`portkey_mw.admin.prompt_files`) both
    check with this.

    :param slug: the prompt's (or partial's) slug, new or existing.
    :param text: the version's template (Portkey's ``string``).
    :param definition: the version's other fields.
    :param workspace_id: the prompt's workspace (default: the principal's).
    """
    try:
        template: PromptTemplate | Template = (
            PromptTemplate.parse(text) if kind == PROMPT else parse_template(text)
        )
    except TemplateError as exc:
        exc.param = "string"
        raise
    own = (slug, template if isinstance(template, Template) else parse_template(""))
    workspace = workspace_id if workspace_id is not None else principal.workspace_id
    await _partials_of(store, principal, template, own, workspace)
    if kind == PARTIAL:
        return
    for field, vk in _virtual_keys_named(definition):
        record = await store.get_virtual_key(vk)
        if record is None or not visible(principal, record.workspace_id):
            raise NotFound(f"no virtual key {vk[:100]!r}", param=field)
    config = definition.get("config")
    if config is not None and config not in services.named_configs:
        saved = await store.get_config(config)
        if saved is None or not visible(principal, saved.workspace_id):
            raise NotFound(f"no saved config {config[:100]!r}", param="config")
    provider = definition.get("provider")
    if provider is not None and provider not in services.known_providers:
        raise InvalidRequest(
            f"unknown provider {provider[:100]!r}", param="provider", code="unknown_provider"
        )
    parameters = definition.get("parameters") or {}
    for fixed in ("messages", "stream"):
        if fixed in parameters:
            raise InvalidRequest(
                f"parameters.{fixed} cannot be saved in a prompt", param=f"parameters.{fixed}"
            )


def _virtual_keys_named(definition: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The virtual keys a version routes by: its ``virtual_key``, and a model spelled
    ``@slug/model`` in ``model`` or ``parameters.model`` (a route as much as the field
    is), each with the field that names it."""
    named = []
    vk = definition.get("virtual_key")
    if isinstance(vk, str):
        named.append(("virtual_key", vk))
    parameters = definition.get("parameters")
    for field, model in (
        ("model", definition.get("model")),
        ("parameters.model", parameters.get("model") if isinstance(parameters, Mapping) else None),
    ):
        if isinstance(model, str) and model.startswith("@"):
            slug = model[1:].partition("/")[0]
            named.append((field, slug))
    return named


def _answer(prompt: Prompt, fields: VersionFields | None = None) -> dict[str, Any]:
    latest = prompt.latest
    body = views.created(
        _WHAT[prompt.kind],
        id=prompt.id,
        slug=prompt.slug,
        version_id=latest.id if latest else None,
        version=latest.version if latest else None,
    )
    ignored = ignored_fields(fields) if fields is not None else []
    if ignored:
        body["warning"] = "portkey-mw ignored these fields: " + ", ".join(ignored[:20])
    return body


async def _checked_version(
    call: Call,
    principal: Principal,
    record: Prompt,
    text: str,
    definition: dict[str, Any],
    description: str | None,
) -> PromptVersion:
    """The next version of ``record`` (the store numbers it), once :func:`check_version`
    passed it."""
    await check_version(
        call.store,
        call.services,
        principal,
        record.kind,
        record.slug,
        text,
        definition,
        workspace_id=record.workspace_id,
    )
    return PromptVersion(
        id=uuid.uuid4().hex,
        prompt_id=record.id,
        version=0,
        template=text,
        definition=definition,
        description=description,
    )


# -- prompts and partials ------------------------------------------------------------------------
async def create(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """Save a prompt (or partial) and its version 1."""
    principal = await call.authorize()
    fields = parse_body(PromptCreate, await call.body(), _WHAT[kind])
    workspace = workspace_for(principal, fields.workspace_id)
    definition = _definition(fields, {})
    record = Prompt(
        id=uuid.uuid4().hex,
        slug=derive_slug(fields.name, SLUG_PREFIX),
        name=fields.name,
        kind=kind,
        collection_id=fields.collection_id,
        workspace_id=workspace,
    )
    if fields.collection_id is not None:
        await _collection(call, principal, fields.collection_id)
    first = await _checked_version(
        call, principal, record, fields.string, definition, fields.version_description
    )
    for _ in range(SLUG_TRIES):
        try:
            saved = await call.store.create_prompt(record, first)
            break
        except Conflict:
            record = replace(record, slug=derive_slug(fields.name, SLUG_PREFIX))
    else:
        raise Conflict("could not find a free slug: try again", code="slug_taken")
    return 200, _answer(saved, fields)


async def list_prompts(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """Every prompt (or partial) the caller may see; ``search`` matches names and slugs."""
    principal = await call.authorize()
    workspace = workspace_for(principal, call.query("workspace_id"))
    records = list(await call.store.list_prompts(kind, workspace, call.query("collection_id")))
    search = (call.query("search") or "").lower()
    if search:
        records = [r for r in records if search in r.name.lower() or search in r.slug]
    page = call.page(records)
    return 200, views.listing([prompt_view(r) for r in page], total=len(records))


async def retrieve(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """One prompt (or partial), its published version's fields included."""
    principal = await call.authorize()
    record = await _visible(call, principal, kind, call.param("slug"))
    return 200, {**prompt_view(record), "success": True}


async def update(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """Rename or move a prompt; a version field makes the next version (not published)."""
    principal = await call.authorize()
    fields = parse_body(PromptUpdate, await call.body(), _WHAT[kind])
    record = await _visible(call, principal, kind, call.param("slug"))
    given = fields.model_fields_set
    changes: dict[str, Any] = {}
    if fields.name is not None:
        changes["name"] = fields.name
    if "collection_id" in given:
        if fields.collection_id is not None:
            await _collection(call, principal, fields.collection_id)
        changes["collection_id"] = fields.collection_id
    if fields.status is not None:
        changes["status"] = fields.status
    new_version = None
    if given & set(VERSION_FIELDS):
        latest = record.latest
        base = dict(latest.definition) if latest is not None else {}
        text = fields.string if fields.string is not None else (latest.template if latest else "")
        new_version = await _checked_version(
            call,
            principal,
            record,
            text,
            _definition(fields, base),
            fields.version_description or fields.description,
        )
    if not changes and new_version is None:
        return 200, _answer(record, fields)
    updated = await call.store.update_prompt(record.id, changes, new_version)
    if updated is None:
        raise PromptNotFound(f"no {_WHAT[kind]} {record.slug!r}", param="slug")
    return 200, _answer(updated, fields)


async def delete(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """Delete a prompt (calls to it answer 404 from then on) or a partial no live prompt
    includes."""
    principal = await call.authorize()
    record = await _visible(call, principal, kind, call.param("slug"))
    if kind == PARTIAL:
        await _refuse_if_included(call, record)
    if not await call.store.delete_prompt(record.id):
        raise PromptNotFound(f"no {_WHAT[kind]} {record.slug!r}", param="slug")
    return 200, views.created(_WHAT[kind], id=record.id, slug=record.slug)


async def _refuse_if_included(call: Call, partial: Prompt) -> None:
    """Refuse to delete a partial that a live version (published, newest, or pointed at by
    a label) of another prompt or partial includes: its calls would fail from then on."""
    for kind in (PROMPT, PARTIAL):
        for other in await call.store.list_prompts(kind):
            if other.id == partial.id:
                continue
            for version in _live_versions(other):
                try:
                    parsed: PromptTemplate | Template = (
                        PromptTemplate.parse(version.template)
                        if kind == PROMPT
                        else parse_template(version.template)
                    )
                except TemplateError:
                    continue  # saved before a stricter parser: it includes nothing callable
                if any(ref.slug == partial.slug for ref in parsed.partials):
                    raise Conflict(
                        f"partial {partial.slug!r} is included by {other.slug!r}: change that "
                        "first",
                        code="partial_in_use",
                    )


def _live_versions(prompt: Prompt) -> list[PromptVersion]:
    """The versions a call without a number reaches: the published one, the newest, and
    every one a label points at."""
    numbers = {prompt.default_version, *(v for vs in _label_versions(prompt).values() for v in vs)}
    found = [v for v in (prompt.version(n) for n in numbers) if v is not None]
    latest = prompt.latest
    return [*found, latest] if latest is not None and latest not in found else found


async def publish(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """Make a version the published one (what ``pp-x`` without ``@`` calls)."""
    principal = await call.authorize()
    number = parse_body(Publish, await call.body(), "publish").version
    record = await _visible(call, principal, kind, call.param("slug"))
    version = record.version(number)
    if version is None:
        raise PromptNotFound(
            f"{_WHAT[kind]} {record.slug!r} has no version {number}", param="version"
        )
    if kind == PARTIAL:
        # Each version was checked against the others' published versions when it was
        # saved; publishing changes what ``{{>slug}}`` means, so a cycle closed by two
        # publishes (A v2 -> B, B v2 -> A) is caught here.
        template = parse_template(version.template)
        await _partials_of(
            call.store, principal, template, (record.slug, template), record.workspace_id
        )
    updated = await call.store.update_prompt(record.id, {"default_version": number})
    if updated is None:
        raise PromptNotFound(f"no {_WHAT[kind]} {record.slug!r}", param="slug")
    return 200, {**_answer(updated), "version": number}


async def versions(call: Call, kind: str = PROMPT) -> tuple[int, dict[str, Any]]:
    """Every version, newest first (``{object, total, data}``: the SDK cannot take a bare
    array)."""
    principal = await call.authorize()
    record = await _visible(call, principal, kind, call.param("slug"))
    found = list(reversed(record.versions))
    page = call.page(found)
    return 200, views.listing([version_view(record, v) for v in page], total=len(found))


def _version_of(record: Prompt, name: str) -> PromptVersion:
    number = name.isascii() and name.isdigit() and len(name) <= 9
    found = record.version(int(name)) if number else None
    found = found or next((v for v in record.versions if v.id == name), None)
    if found is None:
        raise PromptNotFound(
            f"prompt {record.slug!r} has no version {name[:100]!r}", param="version_id"
        )
    return found


async def retrieve_version(call: Call) -> tuple[int, dict[str, Any]]:
    """One version, by its id or its number."""
    principal = await call.authorize()
    record = await _visible(call, principal, PROMPT, call.param("slug"))
    version = _version_of(record, call.param("version_id"))
    return 200, {**version_view(record, version), "success": True}


async def label_version(call: Call) -> tuple[int, dict[str, Any]]:
    """Point a label at this version (the SDK's ``versions.update(label_id=…)``)."""
    principal = await call.authorize()
    fields = parse_body(LabelVersion, await call.body(), "version update")
    record = await _visible(call, principal, PROMPT, call.param("slug"))
    version = _version_of(record, call.param("version_id"))
    label = await _label_id(call, principal, fields.label_id)
    deployed = {"versions": [{"version": version.version, "weight": 1}], "sticky": "user"}
    updated = await call.store.update_prompt(record.id, {}, moved_labels={label: deployed})
    if updated is None:
        raise PromptNotFound(f"no prompt {record.slug!r}", param="slug")
    return 200, {**views.created("prompt_version", id=version.id), "label_id": label}


async def split_label(call: Call) -> tuple[int, dict[str, Any]]:
    """Point a label at one or several versions by weight (portkey-mw's A/B split)."""
    principal = await call.authorize()
    fields = parse_body(LabelSplit, await call.body(), "label split")
    record = await _visible(call, principal, PROMPT, call.param("slug"))
    label = await _label_id(call, principal, call.param("label"))
    deployed = {
        "versions": check_split(fields.versions, record),
        "sticky": check_sticky(fields.sticky),
    }
    updated = await call.store.update_prompt(record.id, {}, moved_labels={label: deployed})
    if updated is None:
        raise PromptNotFound(f"no prompt {record.slug!r}", param="slug")
    return 200, {**views.created("prompt_label", id=label), "label_id": label, **deployed}


async def unlabel(call: Call) -> tuple[int, dict[str, Any]]:
    """Take a label off the prompt (calls through it answer 404 from then on)."""
    principal = await call.authorize()
    record = await _visible(call, principal, PROMPT, call.param("slug"))
    label = await _label_id(call, principal, call.param("label"))
    if label not in record.labels:
        raise PromptNotFound(f"label {label!r} points at no version of {record.slug!r}")
    await call.store.update_prompt(record.id, {}, moved_labels={label: None})
    return 200, views.created("prompt_label", id=label)


async def _label_id(call: Call, principal: Principal, name: str) -> str:
    """A label id (built-in, or a custom label the caller sees) from an id or a name."""
    labels = {
        label.id: label
        for label in await call.store.list_labels()
        if visible(principal, label.workspace_id)
    }
    found = label_id(name, labels, principal.workspace_id)
    if found is None:
        raise PromptNotFound(f"no label {name[:100]!r}", param="label_id")
    return found


async def _collection(call: Call, principal: Principal, name: str) -> None:
    found = await call.store.get_collection(name)
    if found is None or not visible(principal, found.workspace_id):
        raise NotFound(f"no collection {name[:100]!r}", param="collection_id")


def built_in_label(name: str) -> Label:
    """A built-in label as the label routes show it."""
    return Label(id=name, name=name, description=f"the built-in {name} label")


BUILT_INS = tuple(built_in_label(name) for name in BUILT_IN_LABELS)
