"""Gateway API keys: created with a recognisable prefix, shown once, stored as a digest.

The scope a route needs depends on the kind of key it acts on (see
:mod:`portkey_mw.admin.scopes`): creating a workspace user key needs
``workspace_user_api_keys.create``. Listing shows the kinds the caller may list; the other
routes first check that the caller holds the scope for *some* kind (so a stranger learns
nothing, not even whether an id exists), then the scope for the key in question.
"""

from __future__ import annotations

import uuid
from typing import Any

from portkey_mw.admin import usage, views
from portkey_mw.admin.access import (
    check_future,
    check_grants,
    check_holds,
    visible,
    workspace_for,
)
from portkey_mw.admin.http import Call
from portkey_mw.admin.schemas import (
    ApiKeyCreate,
    ApiKeyDefaults,
    ApiKeyFields,
    ApiKeyUpdate,
    ignored_fields,
    parse_body,
)
from portkey_mw.admin.scopes import API_KEY_KINDS, DEFAULT_SCOPES
from portkey_mw.admin.services import MissingScope, Principal
from portkey_mw.errors import InvalidRequest, NotFound
from portkey_mw.spend.subjects import api_key_limits
from portkey_mw.store.protocols import Conflict
from portkey_mw.store.records import REVOKED, ApiKey

#: What the SDK puts in the path for a type or sub-type the caller left out.
NOT_GIVEN = "NOT_GIVEN"


def kind_of(type_: str, sub_type: str) -> str:
    """The scope kind of a key (a stored one of an unknown pair keeps its own name)."""
    return API_KEY_KINDS.get((type_, sub_type), f"{type_}_{sub_type}")


def _warned(body: dict[str, Any], fields: ApiKeyFields, also: str | None = None) -> dict[str, Any]:
    ignored = ignored_fields(fields)
    said = ["portkey-mw ignored these fields: " + ", ".join(ignored[:20])] if ignored else []
    if also:
        said.append(also)
    if said:
        body["warning"] = "; ".join(said)
    return body


def _path_value(call: Call, name: str) -> str | None:
    value = call.param(name)
    return None if value in (NOT_GIVEN, "None", "") else value


def _chosen(path: str | None, body: Any, name: str, default: str) -> str:
    """The type or sub-type: the path's, which the body may repeat but not contradict."""
    sent = body if isinstance(body, str) else None
    if path is not None and sent is not None and sent != path:
        raise InvalidRequest(
            f"{name} is {path!r} in the path but {sent[:40]!r} in the body",
            param=name,
            code="invalid_body",
        )
    return path or sent or default


def _kind(type_: str, sub_type: str) -> str:
    kind = API_KEY_KINDS.get((type_, sub_type))
    if kind is None:
        types = ", ".join(f"{t}/{s}" for t, s in API_KEY_KINDS)
        raise InvalidRequest(
            f"there are no {type_[:40]!r}/{sub_type[:40]!r} API keys: the kinds are {types} "
            "(organisation keys are service keys; user keys belong to a workspace)",
            param="type",
            code="invalid_body",
        )
    return kind


async def _check_defaults(call: Call, defaults: ApiKeyDefaults | None) -> dict[str, Any]:
    if defaults is None:
        return {"allow_config_override": True}
    config_id = defaults.config_id
    if (
        config_id is not None
        and config_id not in call.services.named_configs
        and await call.store.get_config(config_id) is None
    ):
        raise InvalidRequest(
            f"defaults.config_id {config_id[:100]!r} names no saved config and no "
            "config of the server file",
            param="defaults.config_id",
            code="config_not_found",
        )
    return defaults.model_dump(exclude_none=True)


async def create(call: Call) -> tuple[int, dict[str, Any]]:
    """Create a key: the answer holds the key itself, the only time it is shown."""
    path_type, path_sub_type = _path_value(call, "type"), _path_value(call, "sub_type")
    principal = None
    if path_type and path_sub_type:
        # the usual case: who may make this kind of key is known before the body is read
        principal = await call.authorize(call.route.scope_for(_kind(path_type, path_sub_type)))
    raw = await call.body()
    type_ = _chosen(path_type, raw.get("type"), "type", "organisation")
    # the SDK spells it "sub-type"; "sub_type" is taken too, the SDK's own spelling wins
    sent_sub_type = raw.get("sub-type", raw.pop("sub_type", None))
    sub_type = _chosen(path_sub_type, sent_sub_type, "sub-type", "service")
    if principal is None:
        principal = await call.authorize(call.route.scope_for(_kind(type_, sub_type)))
    fields = parse_body(ApiKeyCreate, {**raw, "type": type_, "sub-type": sub_type}, "API key")
    if sub_type == "user" and not fields.user_id:
        raise InvalidRequest("user_id is required for a user key", param="user_id")
    if principal.workspace_id is not None and type_ != "workspace":
        raise MissingScope("a workspace's API key can only create workspace keys", param="type")
    workspace = workspace_for(principal, fields.workspace_id)
    if type_ == "workspace" and not workspace:
        raise InvalidRequest("workspace_id is required for a workspace key", param="workspace_id")
    # A key made without scopes may call the data plane and nothing else.
    scopes = list(DEFAULT_SCOPES) if fields.scopes is None else fields.scopes
    check_grants(principal, scopes)
    check_future(fields.expires_at)
    defaults = await _check_defaults(call, fields.defaults)
    limits = fields.limit_changes()
    key, digest, hint = call.services.new_api_key()
    record = ApiKey(
        id=str(uuid.uuid4()),
        name=fields.name,
        key_digest=digest,
        key_hint=hint,
        type=type_,
        sub_type=sub_type,
        description=fields.description,
        user_id=fields.user_id,
        workspace_id=workspace,
        scopes=tuple(scopes),
        defaults=defaults,
        usage_limits=limits.get("usage_limits"),
        rate_limits=limits.get("rate_limits", ()),
        expires_at=fields.expires_at,
    )
    saved = await call.store.create_api_key(record)
    body = views.created("api-key", id=saved.id, key=key)
    return 200, _warned(body, fields)


async def list_keys(call: Call) -> tuple[int, dict[str, Any]]:
    """The keys of every kind the caller may list (``{object, total, data}``)."""
    scopes = {call.route.scope_for(kind): kind for kind in API_KEY_KINDS.values()}
    principal, held = await call.authorize_any(list(scopes))
    kinds = {scopes[s] for s in held}
    workspace = workspace_for(principal, call.query("workspace_id"))
    records = [
        r
        for r in await call.store.list_api_keys(workspace)
        if kind_of(r.type, r.sub_type) in kinds and visible(principal, r.acting_workspace)
    ]
    page = call.page(records)
    spend = call.services.spend
    now = spend.backend.clock() if spend is not None else 0.0
    items = []
    for record in page:
        item = views.api_key(record)
        usage.add_to_listed(spend, item, record, now)
        items.append(item)
    return 200, views.listing(items, total=len(records))


async def target(call: Call) -> tuple[Principal, ApiKey]:
    """The key the route acts on, once the caller is known to hold its kind's scope.

    :raises NotFound: no such key, or one the caller may not see (404, naming the id).
    :raises MissingScope: the caller lacks the scope for this key's kind (403).
    """
    route = call.route
    principal, held = await call.authorize_any(
        [route.scope_for(kind) for kind in API_KEY_KINDS.values()]
    )
    key_id = call.param("id")
    record = await call.store.get_api_key(key_id)
    if record is None or not visible(principal, record.acting_workspace):
        raise NotFound(f"no API key {key_id[:100]!r}", param="id", code="api_key_not_found")
    needed = route.scope_for(kind_of(record.type, record.sub_type))
    if needed not in held:
        raise MissingScope.lacking(needed)
    return principal, record


async def retrieve(call: Call) -> tuple[int, dict[str, Any]]:
    """One key, its hint in place of the key."""
    _, record = await target(call)
    body = views.api_key(record)
    await usage.add_to_detail(call.services.spend, body, record)
    return 200, {**body, "success": True}


async def update(call: Call) -> tuple[int, dict[str, Any]]:
    """Change a key's name, scopes, defaults, limits, expiry or status."""
    principal, record = await target(call)
    check_holds(principal, record.scopes, "change")
    fields = parse_body(ApiKeyUpdate, await call.body(), "API key")
    given = fields.model_fields_set
    for name in ("name", "status"):
        if name in given and getattr(fields, name) is None:
            raise InvalidRequest(f"{name} may not be null", param=name, code="invalid_body")
    if record.status == REVOKED and fields.status not in (None, REVOKED):
        raise Conflict(
            f"API key {record.id!r} is revoked, and revoked keys stay revoked: create a new one",
            param="status",
            code="api_key_revoked",
        )
    changes: dict[str, Any] = {
        f: getattr(fields, f) for f in ("name", "description", "status") if f in given
    }
    if "scopes" in given:
        scopes = fields.scopes or []
        check_grants(principal, scopes)
        changes["scopes"] = tuple(scopes)
    if "defaults" in given:
        changes["defaults"] = await _check_defaults(call, fields.defaults)
    if "expires_at" in given:
        check_future(fields.expires_at)
        changes["expires_at"] = fields.expires_at
    changes.update(fields.limit_changes())
    updated = await call.store.update_api_key(record.id, changes) if changes else record
    if updated is None:
        raise NotFound(f"no API key {record.id!r}", param="id", code="api_key_not_found")
    warning = None
    if fields.reset_usage:
        warning = await usage.reset_after_update(call.services.spend, updated)
    return 200, _warned(views.created("api-key", id=updated.id), fields, warning)


async def delete(call: Call) -> tuple[int, dict[str, Any]]:
    """Delete a key: requests with it are refused from then on."""
    _, record = await target(call)
    if not await call.store.delete_api_key(record.id):
        raise NotFound(f"no API key {record.id!r}", param="id", code="api_key_not_found")
    return 200, views.created("api-key", id=record.id)


async def rotate(call: Call) -> tuple[int, dict[str, Any]]:
    """Give a key a new secret: the new key is shown once, the old one stops working."""
    principal, record = await target(call)
    check_holds(principal, record.scopes, "rotate")
    body = await call.body(required=False)
    if record.status == REVOKED:
        raise Conflict(
            f"API key {record.id!r} is revoked: create a new one", code="api_key_revoked"
        )
    key, digest, hint = call.services.new_api_key()
    updated = await call.store.update_api_key(record.id, {"key_digest": digest, "key_hint": hint})
    if updated is None:
        raise NotFound(f"no API key {record.id!r}", param="id", code="api_key_not_found")
    answer = views.created("api-key", id=updated.id, key=key)
    if body:
        # Portkey's rotation options (a transition period) are not supported: say so.
        answer["warning"] = "portkey-mw ignored these fields: " + ", ".join(
            sorted(str(k)[:64] for k in body)[:20]
        )
    return 200, answer


async def read_usage(call: Call) -> tuple[int, dict[str, Any]]:
    """The key's budget in its current period and its rate limits."""
    spend = usage.spend_of(call)
    _, record = await target(call)
    return 200, await usage.read_usage(spend, api_key_limits(record), record.name)


async def reset_usage(call: Call) -> tuple[int, dict[str, Any]]:
    """Start the key's budget period over; its usage after the reset."""
    spend = usage.spend_of(call)
    principal, record = await target(call)
    # giving a key its budget back acts with its powers, as changing its limits does
    check_holds(principal, record.scopes, "reset the budget of")
    subject = api_key_limits(record)
    return 200, await usage.reset_usage(spend, subject, record.name)
