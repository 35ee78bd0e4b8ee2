"""Virtual keys and providers: one record kind behind two APIs.

``/v1/virtual-keys`` is Portkey's original API, ``/v1/providers`` its Model Catalog API;
both create, read and change the same :class:`~portkey_mw.store.records.VirtualKey`. The
SDK's credential fields (``key``, ``awsSecretAccessKey`` ...) go to the record's
``secrets``, which the vault encrypts and no response ever shows; the fields that decide
where requests go (``resourceName``, ``awsRegion`` ...) to its ``options``, under the names
the provider plugins read.
"""

from __future__ import annotations

import re
import secrets as random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from portkey_mw.admin import usage, views
from portkey_mw.admin.access import check_future, visible, workspace_for
from portkey_mw.admin.http import Call
from portkey_mw.admin.schemas import (
    ProviderCreate,
    ProviderUpdate,
    VirtualKeyCreate,
    VirtualKeyFields,
    VirtualKeyUpdate,
    ignored_fields,
    parse_body,
)
from portkey_mw.admin.services import Principal
from portkey_mw.errors import InvalidRequest, NotFound, PermissionDenied
from portkey_mw.spend.subjects import virtual_key_limits
from portkey_mw.store.protocols import Conflict
from portkey_mw.store.records import VirtualKey

#: Body field -> the secret it sets (as the provider plugins name their secret options).
SECRET_FIELDS = {
    "key": "api_key",
    "aws_access_key_id": "aws_access_key_id",
    "aws_secret_access_key": "aws_secret_access_key",
    "aws_session_token": "aws_session_token",
    "vertex_service_account_json": "vertex_service_account_json",
}
#: Body fields that are provider options under the same name (shown as ``model_config``).
OPTION_FIELDS = (
    "aws_region",
    "resource_name",
    "deployment_id",
    "api_version",
    "vertex_project_id",
    "vertex_region",
)
#: Fields a body may not clear with null.
REQUIRED_FIELDS = ("name", "status")
#: Tries at a derived slug before giving up (each try draws a new random suffix).
SLUG_TRIES = 3


@dataclass(frozen=True, slots=True)
class Family:
    """What differs between the virtual keys API and the providers API."""

    noun: str
    object: str
    not_found: str
    create: type[VirtualKeyFields]
    update: type[VirtualKeyUpdate]
    view: Callable[[VirtualKey, bool], dict[str, Any]]


VIRTUAL_KEYS = Family(
    "virtual key",
    "virtual-key",
    "virtual_key_not_found",
    VirtualKeyCreate,
    VirtualKeyUpdate,
    lambda record, detail: views.virtual_key(record),
)
PROVIDERS = Family(
    "provider",
    "provider",
    "provider_not_found",
    ProviderCreate,
    ProviderUpdate,
    lambda record, detail: views.provider(record, detail=detail),
)


def derive_slug(name: str, prefix: str = "") -> str:
    """A slug from a name: lower-case words joined by dashes, and a random suffix."""
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40].strip("-") or "key"
    return f"{prefix}{base}-{random.token_hex(3)}"


def _with_warning(
    body: dict[str, Any], ignored: list[str], also: str | None = None
) -> dict[str, Any]:
    said = ["portkey-mw ignored these fields: " + ", ".join(ignored[:20])] if ignored else []
    if also:
        said.append(also)
    if said:
        body["warning"] = "; ".join(said)
    return body


def _deployment(fields: VirtualKeyFields, given: set[str]) -> dict[str, Any]:
    """Options from Portkey's ``deploymentConfig``: its default deployment (or only one)."""
    deployments = fields.deployment_config or []
    if not deployments:
        return {}
    default = next((d for d in deployments if d.is_default), deployments[0])
    options: dict[str, Any] = {}
    if "deployment_id" not in given:
        options["deployment_id"] = default.deployment_name
    if "api_version" not in given and default.api_version:
        options["api_version"] = default.api_version
    return options


def _split(fields: VirtualKeyFields) -> tuple[dict[str, str | None], dict[str, Any]]:
    """The secrets and options the body sets; ``None`` for one it clears."""
    given = set(fields.model_fields_set)
    secrets = {SECRET_FIELDS[f]: getattr(fields, f) for f in SECRET_FIELDS if f in given}
    options: dict[str, Any] = {f: getattr(fields, f) for f in OPTION_FIELDS if f in given}
    options.update(_deployment(fields, given))
    return secrets, options


def _merged(current: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = {**current, **changes}
    return {k: v for k, v in merged.items() if v is not None}


def _provider_of(fields: VirtualKeyFields, call: Call) -> str | None:
    provider = fields.provider
    integration = getattr(fields, "integration_id", None)
    if provider and integration and provider != integration:
        raise InvalidRequest(
            "provider and integration_id disagree: give one (portkey-mw's integration_id "
            "is the provider id)",
            param="integration_id",
            code="invalid_body",
        )
    chosen = provider or integration
    if chosen is not None and chosen not in call.services.known_providers:
        known = ", ".join(sorted(call.services.known_providers)[:60])
        raise InvalidRequest(
            f"unknown provider {chosen[:100]!r}: registered providers are {known}",
            param="provider",
            code="unknown_provider",
        )
    return chosen


def _check_common(fields: VirtualKeyFields, call: Call) -> None:
    for name in REQUIRED_FIELDS:
        if name in fields.model_fields_set and getattr(fields, name) is None:
            raise InvalidRequest(f"{name} may not be null", param=name, code="invalid_body")
    if fields.custom_host is not None:
        call.services.check_custom_host(fields.custom_host)
    check_future(fields.expires_at)


async def visible_record(call: Call, family: Family, principal: Any) -> VirtualKey:
    """The record the path's slug names, if the caller may see it.

    :raises NotFound: no such record, or one of another workspace (404, naming the slug).
    """
    slug = call.param("slug")
    record = await call.store.get_virtual_key(slug)
    if record is None or not visible(principal, record.workspace_id):
        raise NotFound(f"no {family.noun} {slug[:100]!r}", param="slug", code=family.not_found)
    return record


async def create(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """Create a virtual key; answer its ids (``{id, slug, object}``)."""
    principal = await call.authorize()
    fields = parse_body(family.create, await call.body(), family.noun)
    provider = _provider_of(fields, call)
    if provider is None:
        raise InvalidRequest(
            "integration_id: Field required (the provider id, e.g. openai)",
            param="integration_id",
            code="invalid_body",
        )
    _check_common(fields, call)
    secrets, options = _split(fields)
    limits = fields.limit_changes()
    given_slug: str | None = getattr(fields, "slug", None)
    name = fields.name or provider
    record = VirtualKey(
        id=str(uuid.uuid4()),
        slug=given_slug or derive_slug(name),
        name=name,
        provider=provider,
        secrets=_merged({}, secrets),
        options=_merged({}, options),
        custom_host=fields.custom_host,
        defaults=fields.defaults.model_dump(exclude_none=True) if fields.defaults else {},
        note=fields.note,
        status=fields.status or "active",
        usage_limits=limits.get("usage_limits"),
        rate_limits=limits.get("rate_limits", ()),
        workspace_id=workspace_for(principal, fields.workspace_id),
        expires_at=fields.expires_at,
    )
    saved = await _insert(call, record, family, derived=given_slug is None)
    body = views.created(family.object, id=saved.id, slug=saved.slug)
    return 200, _with_warning(body, ignored_fields(fields))


async def _insert(call: Call, record: VirtualKey, family: Family, *, derived: bool) -> VirtualKey:
    for _ in range(SLUG_TRIES if derived else 1):
        try:
            return await call.store.create_virtual_key(record)
        except Conflict:
            if not derived:
                break
            record = replace(record, slug=derive_slug(record.name))
    raise Conflict(
        f"a {family.noun} with slug {record.slug!r} already exists",
        param="slug",
        code="slug_taken",
    )


async def list_records(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """Every virtual key the caller may see (``{object, total, data}``)."""
    principal = await call.authorize()
    workspace = workspace_for(principal, call.query("workspace_id"))
    records = await call.store.list_virtual_keys(workspace)
    page = call.page(records)
    spend = call.services.spend
    now = spend.backend.clock() if spend is not None else 0.0
    items = []
    for record in page:
        item = family.view(record, False)
        usage.add_to_listed(spend, item, record, now)
        items.append(item)
    return 200, views.listing(items, total=len(records))


async def retrieve(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """One virtual key, without its credentials."""
    principal = await call.authorize()
    record = await visible_record(call, family, principal)
    body = family.view(record, True)
    await usage.add_to_detail(call.services.spend, body, record)
    return 200, {**body, "success": True}


async def update(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """Change a virtual key; a new ``key`` (or other credential) rotates it."""
    principal = await call.authorize()
    fields = parse_body(family.update, await call.body(), family.noun)
    record = await visible_record(call, family, principal)
    provider = _provider_of(fields, call)
    if provider is not None and provider != record.provider:
        raise InvalidRequest(
            f"the provider of {family.noun} {record.slug!r} cannot change: create a new one",
            param="provider",
            code="invalid_body",
        )
    _check_common(fields, call)
    given = fields.model_fields_set
    changes: dict[str, Any] = {
        f: getattr(fields, f) for f in ("name", "note", "status", "expires_at") if f in given
    }
    changes.update(fields.limit_changes())
    if "custom_host" in given:
        changes["custom_host"] = fields.custom_host
    if "defaults" in given:
        defaults = fields.defaults
        changes["defaults"] = defaults.model_dump(exclude_none=True) if defaults else {}
    if "workspace_id" in given:
        changes["workspace_id"] = workspace_for(principal, fields.workspace_id)
    secrets, options = _split(fields)
    _check_move(principal, record, fields, secrets)
    if secrets:
        changes["secrets"] = _merged(dict(record.secrets), secrets)
    if options:
        changes["options"] = _merged(dict(record.options), options)
    updated = await call.store.update_virtual_key(record.slug, changes) if changes else record
    if updated is None:
        raise NotFound(f"no {family.noun} {record.slug!r}", param="slug", code=family.not_found)
    warning = None
    if fields.reset_usage:
        warning = await usage.reset_after_update(call.services.spend, updated)
    body = views.created(family.object, id=updated.id, slug=updated.slug)
    return 200, _with_warning(body, ignored_fields(fields), warning)


def _check_move(
    principal: Principal, record: VirtualKey, fields: VirtualKeyFields, secrets: dict[str, Any]
) -> None:
    """A new ``custom_host`` sends the stored credentials there: only the admin key may do
    that, or a caller sending the credentials anew (``virtual_keys.update`` never shows
    them, so it must not be a way to read them at a host of its own).

    :raises PermissionDenied: ``credentials_required`` (403), naming those kept.
    """
    host = fields.custom_host
    if "custom_host" not in fields.model_fields_set or host is None or principal.is_admin:
        return
    if host.rstrip("/") == (record.custom_host or "").rstrip("/"):
        return
    kept = sorted(name for name in record.secrets if name not in secrets)
    if kept:
        raise PermissionDenied(
            f"a new custom_host would send the stored credentials of {record.slug!r} "
            f"({', '.join(kept)}) there: only the admin key may move them; an API key must "
            "send them anew in the same update",
            param="custom_host",
            code="credentials_required",
        )


async def delete(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """Delete a virtual key: requests naming its slug are refused from then on."""
    principal = await call.authorize()
    record = await visible_record(call, family, principal)
    if not await call.store.delete_virtual_key(record.slug):
        raise NotFound(f"no {family.noun} {record.slug!r}", param="slug", code=family.not_found)
    return 200, views.created(family.object, id=record.id, slug=record.slug)


async def read_usage(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """The virtual key's budget in its current period and its rate limits."""
    spend = usage.spend_of(call)
    record = await visible_record(call, family, await call.authorize())
    subject = virtual_key_limits(record)
    return 200, await usage.read_usage(spend, subject, record.name)


async def reset_usage(call: Call, family: Family) -> tuple[int, dict[str, Any]]:
    """Start the virtual key's budget period over; its usage after the reset."""
    spend = usage.spend_of(call)
    record = await visible_record(call, family, await call.authorize())
    subject = virtual_key_limits(record)
    return 200, await usage.reset_usage(spend, subject, record.name)
