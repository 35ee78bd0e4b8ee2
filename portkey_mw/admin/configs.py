"""Saved routing configs: validated before they are saved, versioned on every change.

A saved config's slug (``pc-…``) works wherever a config id does (``x-portkey-config``,
an API key's ``defaults.config_id``). Each update that brings a ``config`` makes a new
immutable version and answers its ``version_id``.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from portkey_mw.admin import views
from portkey_mw.admin.access import visible, workspace_for
from portkey_mw.admin.http import Call
from portkey_mw.admin.schemas import ConfigCreate, ConfigUpdate, ignored_fields, parse_body
from portkey_mw.admin.services import Principal
from portkey_mw.admin.virtual_keys import SLUG_TRIES, derive_slug
from portkey_mw.errors import InvalidRequest, NotFound
from portkey_mw.store.protocols import Conflict
from portkey_mw.store.records import SavedConfig

#: Every saved config's slug starts so, as Portkey's do.
SLUG_PREFIX = "pc-"


def _warned(body: dict[str, Any], fields: ConfigCreate | ConfigUpdate) -> dict[str, Any]:
    ignored = ignored_fields(fields)
    if ignored:
        body["warning"] = "portkey-mw ignored these fields: " + ", ".join(ignored[:20])
    return body


async def _visible_config(call: Call, principal: Principal) -> SavedConfig:
    slug = call.param("slug")
    record = await call.store.get_config(slug)
    if record is None or not visible(principal, record.workspace_id):
        raise NotFound(f"no saved config {slug[:100]!r}", param="slug", code="config_not_found")
    return record


async def create(call: Call) -> tuple[int, dict[str, Any]]:
    """Save a config (checked first); answer ``{id, version_id, slug}``."""
    principal = await call.authorize()
    fields = parse_body(ConfigCreate, await call.body(), "config")
    call.services.validate_config(fields.config)
    record = SavedConfig(
        id=str(uuid.uuid4()),
        slug=derive_slug(fields.name, SLUG_PREFIX),
        name=fields.name,
        config=fields.config,
        version_id=str(uuid.uuid4()),
        is_default=fields.is_default,
        workspace_id=workspace_for(principal, fields.workspace_id),
    )
    for _ in range(SLUG_TRIES):
        try:
            saved = await call.store.create_config(record)
            break
        except Conflict:
            record = replace(record, slug=derive_slug(fields.name, SLUG_PREFIX))
    else:
        raise Conflict("could not find a free slug for the config: try again", code="slug_taken")
    body = views.created("config", id=saved.id, version_id=saved.version_id, slug=saved.slug)
    return 200, _warned(body, fields)


async def list_configs(call: Call) -> tuple[int, dict[str, Any]]:
    """Every saved config the caller may see."""
    principal = await call.authorize()
    workspace = workspace_for(principal, call.query("workspace_id"))
    records = await call.store.list_configs(workspace)
    page = call.page(records)
    return 200, views.listing([views.config(r) for r in page], total=len(records))


async def retrieve(call: Call) -> tuple[int, dict[str, Any]]:
    """One saved config, its current version's config included."""
    principal = await call.authorize()
    record = await _visible_config(call, principal)
    return 200, {**views.config(record), "success": True}


async def update(call: Call) -> tuple[int, dict[str, Any]]:
    """Change a config's name or status; a new ``config`` makes a new version."""
    principal = await call.authorize()
    fields = parse_body(ConfigUpdate, await call.body(), "config")
    record = await _visible_config(call, principal)
    given = fields.model_fields_set
    for name in ("name", "status", "config", "is_default"):
        if name in given and getattr(fields, name) is None:
            raise InvalidRequest(f"{name} may not be null", param=name, code="invalid_body")
    if fields.config is not None:
        call.services.validate_config(fields.config)
    changes: dict[str, Any] = {
        f: getattr(fields, f) for f in ("name", "status", "config", "is_default") if f in given
    }
    updated = await call.store.update_config(record.slug, changes) if changes else record
    if updated is None:
        raise NotFound(f"no saved config {record.slug!r}", param="slug", code="config_not_found")
    body = views.created("config", id=updated.id, slug=updated.slug, version_id=updated.version_id)
    return 200, _warned(body, fields)


async def delete(call: Call) -> tuple[int, dict[str, Any]]:
    """Delete a saved config: requests naming it are refused from then on."""
    principal = await call.authorize()
    record = await _visible_config(call, principal)
    if not await call.store.delete_config(record.slug):
        raise NotFound(f"no saved config {record.slug!r}", param="slug", code="config_not_found")
    return 200, views.created("config", id=record.id, slug=record.slug)


async def versions(call: Call) -> tuple[int, dict[str, Any]]:
    """Every version of a saved config, newest first (``{object, total, data}``)."""
    principal = await call.authorize()
    record = await _visible_config(call, principal)
    found = await call.store.config_versions(record.slug)
    if found is None:
        raise NotFound(f"no saved config {record.slug!r}", param="slug", code="config_not_found")
    page = call.page(found)
    return 200, views.listing([views.config_version(v) for v in page], total=len(found))
