"""The control-plane router: :data:`~portkey_mw.admin.scopes.ROUTES` bound to handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.routing import BaseRoute, Route, Router
from starlette.types import Receive, Scope, Send

from portkey_mw.admin import (
    analytics,
    api_keys,
    configs,
    exports,
    feedback,
    logs,
    prompt_files,
    prompt_labels,
    prompt_outcomes,
    prompts,
    virtual_keys,
)
from portkey_mw.admin.http import Handler, Limits, endpoint, not_found
from portkey_mw.admin.scopes import PREFIX, ROUTES, RouteScope, graph_operation
from portkey_mw.admin.services import AdminServices, Authorize
from portkey_mw.admin.unimplemented import FAMILIES, unimplemented_routes
from portkey_mw.admin.virtual_keys import PROVIDERS, VIRTUAL_KEYS
from portkey_mw.store.protocols import ControlStore
from portkey_mw.store.records import PARTIAL, PROMPT


def _family_handlers(name: str, family: virtual_keys.Family) -> dict[str, Handler]:
    return {
        f"{name}.create": partial(virtual_keys.create, family=family),
        f"{name}.list": partial(virtual_keys.list_records, family=family),
        f"{name}.retrieve": partial(virtual_keys.retrieve, family=family),
        f"{name}.update": partial(virtual_keys.update, family=family),
        f"{name}.delete": partial(virtual_keys.delete, family=family),
        f"{name}.usage": partial(virtual_keys.read_usage, family=family),
        f"{name}.usage.reset": partial(virtual_keys.reset_usage, family=family),
    }


def _prompt_handlers(name: str, kind: str) -> dict[str, Handler]:
    return {
        f"{name}.{verb}": partial(handler, kind=kind)
        for verb, handler in (
            ("create", prompts.create),
            ("list", prompts.list_prompts),
            ("retrieve", prompts.retrieve),
            ("update", prompts.update),
            ("delete", prompts.delete),
            ("publish", prompts.publish),
            ("versions.list", prompts.versions),
        )
    }


#: operation (a row of ROUTES) -> the handler that serves it
HANDLERS: dict[str, Handler] = {
    **_family_handlers("virtual_keys", VIRTUAL_KEYS),
    **_family_handlers("providers", PROVIDERS),
    "api_keys.create": api_keys.create,
    "api_keys.list": api_keys.list_keys,
    "api_keys.retrieve": api_keys.retrieve,
    "api_keys.update": api_keys.update,
    "api_keys.delete": api_keys.delete,
    "api_keys.rotate": api_keys.rotate,
    "api_keys.usage": api_keys.read_usage,
    "api_keys.usage.reset": api_keys.reset_usage,
    "configs.create": configs.create,
    "configs.list": configs.list_configs,
    "configs.retrieve": configs.retrieve,
    "configs.update": configs.update,
    "configs.delete": configs.delete,
    "configs.versions.list": configs.versions,
    "feedback.create": feedback.create,
    "feedback.update": feedback.update,
    "logs.create": logs.create,
    "logs.list": logs.list_logs,
    "logs.retrieve": logs.retrieve,
    "logs.stats": logs.stats,
    "logs.exports.create": exports.create,
    "logs.exports.list": exports.list_exports,
    "logs.exports.retrieve": exports.retrieve,
    "logs.exports.update": exports.update,
    "logs.exports.start": exports.start,
    "logs.exports.cancel": exports.cancel,
    "logs.exports.download": exports.download,
    "logs.exports.file": exports.file,
    **{graph_operation(name): analytics.graph_handler(name) for name in analytics.GRAPHS},
    "analytics.groups.metadata": analytics.metadata,
    "analytics.groups.prompt_versions": prompt_outcomes.prompt_versions,
    "analytics.groups.group_by": analytics.group_by,
    "analytics.summary.cache": analytics.summary_cache,
    **_prompt_handlers("prompts", PROMPT),
    **_prompt_handlers("prompts.partials", PARTIAL),
    "prompts.files.apply": prompt_files.apply_files,
    "prompts.versions.retrieve": prompts.retrieve_version,
    "prompts.versions.update": prompts.label_version,
    "prompts.labels.split": prompts.split_label,
    "prompts.labels.remove": prompts.unlabel,
    "labels.create": prompt_labels.create_label,
    "labels.list": prompt_labels.list_labels,
    "labels.retrieve": prompt_labels.retrieve_label,
    "labels.update": prompt_labels.update_label,
    "labels.delete": prompt_labels.delete_label,
    "collections.create": prompt_labels.create_collection,
    "collections.list": prompt_labels.list_collections,
    "collections.retrieve": prompt_labels.retrieve_collection,
    "collections.update": prompt_labels.update_collection,
    "collections.delete": prompt_labels.delete_collection,
}

#: Paths below these belong to the control-plane router (served or answered 404).
CONTROL_PLANE_PREFIXES: tuple[str, ...] = (
    f"{PREFIX}/virtual-keys",
    f"{PREFIX}/providers",
    f"{PREFIX}/api-keys",
    f"{PREFIX}/configs",
    f"{PREFIX}/feedback",
    f"{PREFIX}/logs",
    f"{PREFIX}/analytics",
    f"{PREFIX}/prompts",
    f"{PREFIX}/labels",
    f"{PREFIX}/collections",
    *FAMILIES,
)


def is_control_plane_path(path: str) -> bool:
    """Whether the control-plane router answers ``path`` (below the gateway's root)."""
    return any(path == p or path.startswith(p + "/") for p in CONTROL_PLANE_PREFIXES)


class _Endpoint:
    """A path's endpoint as an ASGI app, so Starlette passes it every method (a plain
    function endpoint would get Starlette's plain-text 405 for the others)."""

    def __init__(self, respond: Callable[[Request], Awaitable[Any]]) -> None:
        self.respond = respond

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(Request(scope, receive))
        await response(scope, receive, send)


def control_plane_routes(
    store: ControlStore,
    authorize: Authorize,
    services: AdminServices,
    *,
    limits: Limits | None = None,
) -> Router:
    """The control plane as a Starlette router, to mount at the gateway's root.

    :param store: where records live.
    :param authorize: who the caller is and whether it holds a route's scope.
    :param services: config validation, provider ids, key generation, custom host checks,
        spend control (the usage routes).
    :param limits: body size and time bounds (defaults: 1 MiB, 30 s).
    """
    bounds = limits or Limits()
    by_path: dict[str, dict[str, tuple[RouteScope, Handler]]] = {}
    for row in ROUTES:
        by_path.setdefault(row.path, {})[row.method] = (row, HANDLERS[row.operation])
    routes: list[BaseRoute] = [
        Route(path, _Endpoint(endpoint(rows, store, services, authorize, bounds)))
        for path, rows in by_path.items()
    ]
    routes.extend(unimplemented_routes())
    return Router(routes=routes, default=not_found, redirect_slashes=False)
