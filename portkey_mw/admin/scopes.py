"""Every control-plane route, the SDK method that calls it, and the scope it needs.

This table is the one source: the router is built from it, ``docs/control-plane.md``
lists it and the tests enumerate it. Scope names are Portkey's. Routes on API keys need
the scope of the *kind of key* they act on (``organisation_service_api_keys.read`` for an
organisation service key ...), written here as ``{kind}``, filled in per key kind.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The mount point's API version prefix: the SDK's base_url is ``<gateway>/v1``.
PREFIX = "/v1"
#: the scope the data plane needs (Portkey's name), and what a key made without scopes gets
COMPLETIONS_SCOPE = "completions.write"
DEFAULT_SCOPES: tuple[str, ...] = (COMPLETIONS_SCOPE,)


@dataclass(frozen=True, slots=True)
class RouteScope:
    """One control-plane route.

    :param operation: the portkey-ai SDK method (``virtual_keys.create``) -- or, for a
        route the SDK has no method for, the name Portkey's API reference gives it
        (``api_keys.rotate``) or portkey-mw's own (``api_keys.usage``).
    :param method: the HTTP method.
    :param path: the path below the gateway's root, Starlette style (``{slug}``).
    :param scope: the scope the caller must hold; ``{kind}`` stands for the API key kind
        (see :data:`API_KEY_KINDS`).
    """

    operation: str
    method: str
    path: str
    scope: str

    @property
    def by_key_kind(self) -> bool:
        """Whether the scope depends on the kind of API key the route acts on."""
        return "{kind}" in self.scope

    def scope_for(self, kind: str) -> str:
        """The scope for an API key kind (``organisation_service`` ...)."""
        return self.scope.format(kind=kind)


def _crud(family: str, path: str, scope: str, key: str) -> list[RouteScope]:
    item = f"{path}/{{{key}}}"
    return [
        RouteScope(f"{family}.create", "POST", path, f"{scope}.create"),
        RouteScope(f"{family}.list", "GET", path, f"{scope}.list"),
        RouteScope(f"{family}.retrieve", "GET", item, f"{scope}.read"),
        RouteScope(f"{family}.update", "PUT", item, f"{scope}.update"),
        RouteScope(f"{family}.delete", "DELETE", item, f"{scope}.delete"),
    ]


def _usage(family: str, item: str, scope: str) -> list[RouteScope]:
    """A record's budget usage (portkey-mw's own routes: the SDK has no method for them):
    read with the record's read scope, reset with its update scope."""
    return [
        RouteScope(f"{family}.usage", "GET", f"{item}/usage", f"{scope}.read"),
        RouteScope(f"{family}.usage.reset", "POST", f"{item}/usage/reset", f"{scope}.update"),
    ]


_LOGS = f"{PREFIX}/logs"
_EXPORTS = f"{_LOGS}/exports"
_GRAPHS = (
    "requests", "cost", "latency", "tokens", "users", "users/requests", "errors",
    "errors/rate", "errors/stacks", "errors/status-codes", "requests/rescued",
    "cache/hit-rate", "cache/latency", "feedbacks", "feedbacks/scores", "feedbacks/weighted",
    "feedbacks/ai-models",
)  # fmt: skip


def graph_operation(name: str) -> str:
    """The SDK method of a graph path (``errors/status-codes`` ->
    ``analytics.graphs.errors_status_codes``)."""
    return "analytics.graphs." + name.replace("/", "_").replace("-", "_")


#: Feedback, logs, exports and analytics. ``feedback.write`` and ``logs.write`` are
#: portkey-mw's names (Portkey names no scope for them); the rest are Portkey's. Literal
#: paths come before ``/logs/{request_id}``, which would otherwise take them.
_OBSERVABILITY: tuple[RouteScope, ...] = (
    RouteScope("feedback.create", "POST", f"{PREFIX}/feedback", "feedback.write"),
    RouteScope("feedback.update", "PUT", f"{PREFIX}/feedback/{{id}}", "feedback.write"),
    RouteScope("logs.create", "POST", _LOGS, "logs.write"),
    RouteScope("logs.list", "GET", _LOGS, "logs.list"),
    RouteScope("logs.stats", "GET", f"{_LOGS}/stats", "analytics.view"),
    RouteScope("logs.exports.create", "POST", _EXPORTS, "logs.export"),
    RouteScope("logs.exports.list", "GET", _EXPORTS, "logs.export"),
    RouteScope("logs.exports.retrieve", "GET", f"{_EXPORTS}/{{id}}", "logs.export"),
    RouteScope("logs.exports.update", "PUT", f"{_EXPORTS}/{{id}}", "logs.export"),
    RouteScope("logs.exports.start", "POST", f"{_EXPORTS}/{{id}}/start", "logs.export"),
    RouteScope("logs.exports.cancel", "POST", f"{_EXPORTS}/{{id}}/cancel", "logs.export"),
    RouteScope("logs.exports.download", "GET", f"{_EXPORTS}/{{id}}/download", "logs.export"),
    # the signed link download answers: its token is the credential (no key is sent)
    RouteScope("logs.exports.file", "GET", f"{_EXPORTS}/{{id}}/file", "logs.export"),
    RouteScope("logs.retrieve", "GET", f"{_LOGS}/{{request_id}}", "logs.view"),
    *(
        RouteScope(graph_operation(g), "GET", f"{PREFIX}/analytics/graphs/{g}", "analytics.view")
        for g in _GRAPHS
    ),
    RouteScope(
        "analytics.groups.metadata",
        "GET",
        f"{PREFIX}/analytics/groups/metadata/{{metadata_key}}",
        "analytics.view",
    ),
    # portkey-mw's: one prompt's versions side by side (an A/B split judged)
    RouteScope(
        "analytics.groups.prompt_versions",
        "GET",
        f"{PREFIX}/analytics/groups/prompt-versions",
        "analytics.view",
    ),
    # users, ai-models, workspaces and any other group_by
    RouteScope(
        "analytics.groups.group_by",
        "GET",
        f"{PREFIX}/analytics/groups/{{group_by}}",
        "analytics.view",
    ),
    RouteScope(
        "analytics.summary.cache", "GET", f"{PREFIX}/analytics/summary/cache", "analytics.view"
    ),
)

_PROMPTS = f"{PREFIX}/prompts"
_PARTIALS = f"{_PROMPTS}/partials"


def _prompt_family(family: str, path: str) -> list[RouteScope]:
    """A prompt family's routes (prompts, partials): CRUD, publishing, versions."""
    return [
        *_crud(family, path, "prompts", "slug"),
        RouteScope(f"{family}.publish", "PUT", f"{path}/{{slug}}/makeDefault", "prompts.publish"),
        RouteScope(f"{family}.versions.list", "GET", f"{path}/{{slug}}/versions", "prompts.read"),
    ]


#: The prompt library. ``/prompts/partials`` comes before ``/prompts/{slug}``, which would
#: otherwise take it. Calling a prompt (``/prompts/{id}/completions``, ``…/render``) is the
#: data plane's, under ``completions.write``.
_PROMPT_LIBRARY: tuple[RouteScope, ...] = (
    # portkey-mw's own: prompt files (``portkey-mw prompts push``); it also needs
    # prompts.create and prompts.update
    RouteScope("prompts.files.apply", "POST", f"{_PROMPTS}/files", "prompts.publish"),
    *_prompt_family("prompts.partials", _PARTIALS),
    *_prompt_family("prompts", _PROMPTS),
    RouteScope(
        "prompts.versions.retrieve",
        "GET",
        f"{_PROMPTS}/{{slug}}/versions/{{version_id}}",
        "prompts.read",
    ),
    RouteScope(
        "prompts.versions.update",
        "PUT",
        f"{_PROMPTS}/{{slug}}/versions/{{version_id}}",
        "prompts.publish",
    ),
    RouteScope(
        "prompts.labels.split", "PUT", f"{_PROMPTS}/{{slug}}/labels/{{label}}", "prompts.publish"
    ),
    RouteScope(
        "prompts.labels.remove",
        "DELETE",
        f"{_PROMPTS}/{{slug}}/labels/{{label}}",
        "prompts.publish",
    ),
    *_crud("labels", f"{PREFIX}/labels", "prompts", "id"),
    *_crud("collections", f"{PREFIX}/collections", "prompts", "id"),
)

_API_KEYS = f"{PREFIX}/api-keys"
_KEY_SCOPE = "{kind}_api_keys"

#: Every route, in matching order: the literals ``/rotate`` and ``/usage`` come before
#: ``/api-keys/{type}/{sub_type}``, which would otherwise take them.
ROUTES: tuple[RouteScope, ...] = (
    *_crud("virtual_keys", f"{PREFIX}/virtual-keys", "virtual_keys", "slug"),
    *_usage("virtual_keys", f"{PREFIX}/virtual-keys/{{slug}}", "virtual_keys"),
    # Portkey's newer name for the same records; its scopes are the virtual keys' ones.
    *_crud("providers", f"{PREFIX}/providers", "virtual_keys", "slug"),
    *_usage("providers", f"{PREFIX}/providers/{{slug}}", "virtual_keys"),
    RouteScope("api_keys.rotate", "POST", f"{_API_KEYS}/{{id}}/rotate", f"{_KEY_SCOPE}.update"),
    *_usage("api_keys", f"{_API_KEYS}/{{id}}", _KEY_SCOPE),
    RouteScope(
        "api_keys.create", "POST", f"{_API_KEYS}/{{type}}/{{sub_type}}", f"{_KEY_SCOPE}.create"
    ),
    RouteScope("api_keys.list", "GET", _API_KEYS, f"{_KEY_SCOPE}.list"),
    RouteScope("api_keys.retrieve", "GET", f"{_API_KEYS}/{{id}}", f"{_KEY_SCOPE}.read"),
    RouteScope("api_keys.update", "PUT", f"{_API_KEYS}/{{id}}", f"{_KEY_SCOPE}.update"),
    RouteScope("api_keys.delete", "DELETE", f"{_API_KEYS}/{{id}}", f"{_KEY_SCOPE}.delete"),
    *_crud("configs", f"{PREFIX}/configs", "configs", "slug"),
    RouteScope(
        "configs.versions.list", "GET", f"{PREFIX}/configs/{{slug}}/versions", "configs.read"
    ),
    *_OBSERVABILITY,
    *_PROMPT_LIBRARY,
)

#: ``(type, sub_type)`` of an API key -> the ``{kind}`` of its scopes. Organisation keys are
#: service keys; user keys belong to a workspace (as in Portkey).
API_KEY_KINDS: dict[tuple[str, str], str] = {
    ("organisation", "service"): "organisation_service",
    ("workspace", "service"): "workspace_service",
    ("workspace", "user"): "workspace_user",
}


def key_kind(type_: str, sub_type: str) -> str:
    """The scope kind of an API key of this type and sub-type.

    :raises KeyError: not a kind of key there is.
    """
    return API_KEY_KINDS[(type_, sub_type)]


def route(operation: str) -> RouteScope:
    """The row of ``operation``.

    :raises KeyError: no such operation.
    """
    for row in ROUTES:
        if row.operation == operation:
            return row
    raise KeyError(operation)


def every_scope() -> list[str]:
    """Every scope some route needs, each API key kind spelled out, sorted."""
    scopes: set[str] = set()
    for row in ROUTES:
        if row.by_key_kind:
            scopes.update(row.scope_for(kind) for kind in API_KEY_KINDS.values())
        else:
            scopes.add(row.scope)
    return sorted(scopes)
