"""Prompt labels and collections.

``production``, ``staging`` and ``development`` are built in: every listing shows them,
they cannot be changed or removed, and their ids are their names. Custom labels belong
to a workspace (or the organisation) and may be renamed; a label still pointing at a
version of some prompt cannot be deleted.
"""

from __future__ import annotations

import uuid
from typing import Any

from portkey_mw.admin import views
from portkey_mw.admin.access import visible, workspace_for
from portkey_mw.admin.http import Call
from portkey_mw.admin.prompt_schemas import (
    CollectionCreate,
    CollectionUpdate,
    LabelCreate,
    LabelUpdate,
)
from portkey_mw.admin.prompts import BUILT_INS
from portkey_mw.admin.schemas import parse_body
from portkey_mw.admin.services import Principal
from portkey_mw.admin.virtual_keys import derive_slug
from portkey_mw.errors import InvalidRequest, NotFound
from portkey_mw.prompts.selection import BUILT_IN_LABELS, reserved_label_name
from portkey_mw.store.protocols import Conflict
from portkey_mw.store.records import PROMPT, Collection, Label


def label_view(label: Label) -> dict[str, Any]:
    """A label as the SDK reads it."""
    return {
        "id": label.id,
        "name": label.name,
        "description": label.description,
        "color_code": label.color_code,
        "workspace_id": label.workspace_id,
        "is_universal": label.name in BUILT_IN_LABELS,
        "created_at": views.timestamp(label.created_at),
        "last_updated_at": views.timestamp(label.updated_at),
        "object": "label",
    }


def collection_view(collection: Collection) -> dict[str, Any]:
    """A collection as the SDK reads it."""
    return {
        "id": collection.id,
        "slug": collection.slug,
        "name": collection.name,
        "workspace_id": collection.workspace_id,
        "parent_collection_id": collection.parent_collection_id,
        "created_at": views.timestamp(collection.created_at),
        "last_updated_at": views.timestamp(collection.updated_at),
        "object": "collection",
    }


def _built_in(label_id: str) -> None:
    if label_id in BUILT_IN_LABELS:
        raise InvalidRequest(
            f"{label_id!r} is a built-in label: it cannot be changed or removed",
            param="label_id",
            code="built_in_label",
        )


def _callable_name(name: str) -> None:
    """Refuse a name ``pp-x@<name>`` could not reach: a built-in label's, ``latest``, or a
    number (those select versions first)."""
    if name.lower() in BUILT_IN_LABELS:
        raise Conflict(f"{name!r} is a built-in label", param="name")
    if reserved_label_name(name):
        raise InvalidRequest(
            f"a label cannot be called {name!r}: pp-x@{name} selects a version",
            param="name",
            code="reserved_label_name",
        )


async def _label(call: Call, principal: Principal) -> Label:
    label_id = call.param("id")
    if label_id in BUILT_IN_LABELS:
        return next(b for b in BUILT_INS if b.id == label_id)
    found = await call.store.get_label(label_id)
    if found is None or not visible(principal, found.workspace_id):
        raise NotFound(f"no label {label_id[:100]!r}", param="label_id", code="label_not_found")
    return found


async def create_label(call: Call) -> tuple[int, dict[str, Any]]:
    """Make a custom label."""
    principal = await call.authorize()
    fields = parse_body(LabelCreate, await call.body(), "label")
    _callable_name(fields.name)
    record = Label(
        id=uuid.uuid4().hex,
        name=fields.name,
        description=fields.description,
        color_code=fields.color_code,
        workspace_id=workspace_for(principal, fields.workspace_id),
    )
    saved = await call.store.create_label(record)
    return 200, views.created("label", id=saved.id)


async def list_labels(call: Call) -> tuple[int, dict[str, Any]]:
    """The built-in labels, then the custom ones the caller sees."""
    principal = await call.authorize()
    workspace = workspace_for(principal, call.query("workspace_id"))
    custom = [
        label
        for label in await call.store.list_labels()
        if workspace is None or label.workspace_id in (None, workspace)
    ]
    everything = [*BUILT_INS, *custom]
    page = call.page(everything)
    return 200, views.listing([label_view(label) for label in page], total=len(everything))


async def retrieve_label(call: Call) -> tuple[int, dict[str, Any]]:
    """One label."""
    principal = await call.authorize()
    return 200, {**label_view(await _label(call, principal)), "success": True}


async def update_label(call: Call) -> tuple[int, dict[str, Any]]:
    """Rename or describe a custom label."""
    principal = await call.authorize()
    fields = parse_body(LabelUpdate, await call.body(), "label")
    label = await _label(call, principal)
    _built_in(label.id)
    changes: dict[str, Any] = {
        name: getattr(fields, name)
        for name in ("name", "description", "color_code")
        if name in fields.model_fields_set and getattr(fields, name) is not None
    }
    if "name" in changes:
        _callable_name(changes["name"])
    if changes:
        await call.store.update_label(label.id, changes)
    return 200, views.created("label", id=label.id)


async def delete_label(call: Call) -> tuple[int, dict[str, Any]]:
    """Remove a custom label no prompt points with."""
    principal = await call.authorize()
    label = await _label(call, principal)
    _built_in(label.id)
    for prompt in await call.store.list_prompts(PROMPT):
        if label.id in prompt.labels:
            raise Conflict(
                f"label {label.name!r} still points at a version of {prompt.slug!r}: move it "
                "off first",
                code="label_in_use",
            )
    await call.store.delete_label(label.id)
    return 200, views.created("label", id=label.id)


async def _collection(call: Call, principal: Principal) -> Collection:
    name = call.param("id")
    found = await call.store.get_collection(name)
    if found is None or not visible(principal, found.workspace_id):
        raise NotFound(f"no collection {name[:100]!r}", param="collection_id")
    return found


async def create_collection(call: Call) -> tuple[int, dict[str, Any]]:
    """Make a collection (optionally inside another)."""
    principal = await call.authorize()
    fields = parse_body(CollectionCreate, await call.body(), "collection")
    workspace = workspace_for(principal, fields.workspace_id)
    if fields.parent_collection_id is not None:
        parent = await call.store.get_collection(fields.parent_collection_id)
        if parent is None or not visible(principal, parent.workspace_id):
            raise NotFound(
                f"no collection {fields.parent_collection_id[:100]!r}",
                param="parent_collection_id",
            )
    record = Collection(
        id=uuid.uuid4().hex,
        slug=derive_slug(fields.name),
        name=fields.name,
        workspace_id=workspace,
        parent_collection_id=fields.parent_collection_id,
    )
    saved = await call.store.create_collection(record)
    return 200, views.created("collection", id=saved.id, slug=saved.slug)


async def list_collections(call: Call) -> tuple[int, dict[str, Any]]:
    """Every collection the caller sees; ``search`` matches names."""
    principal = await call.authorize()
    workspace = workspace_for(principal, call.query("workspace_id"))
    found = list(await call.store.list_collections(workspace))
    search = (call.query("search") or "").lower()
    if search:
        found = [c for c in found if search in c.name.lower()]
    page = call.page(found)
    return 200, views.listing([collection_view(c) for c in page], total=len(found))


async def retrieve_collection(call: Call) -> tuple[int, dict[str, Any]]:
    """One collection."""
    principal = await call.authorize()
    return 200, {**collection_view(await _collection(call, principal)), "success": True}


async def update_collection(call: Call) -> tuple[int, dict[str, Any]]:
    """Rename a collection."""
    principal = await call.authorize()
    fields = parse_body(CollectionUpdate, await call.body(), "collection")
    found = await _collection(call, principal)
    changes: dict[str, Any] = {
        name: getattr(fields, name)
        for name in ("name", "parent_collection_id")
        if name in fields.model_fields_set
    }
    if changes.get("parent_collection_id") == found.id:
        raise InvalidRequest("a collection cannot be its own parent", param="parent_collection_id")
    if changes:
        await call.store.update_collection(found.id, changes)
    return 200, views.created("collection", id=found.id, slug=found.slug)


async def delete_collection(call: Call) -> tuple[int, dict[str, Any]]:
    """Delete a collection (its prompts stay, outside any collection)."""
    principal = await call.authorize()
    found = await _collection(call, principal)
    await call.store.delete_collection(found.id)
    return 200, views.created("collection", id=found.id, slug=found.slug)
