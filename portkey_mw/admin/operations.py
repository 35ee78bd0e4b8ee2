"""The operator's routes under ``/v1/admin``: routing state, the cache, guardrail totals,
pricing, budgets and limits.

Every one needs the admin key, unknown ones included (the application checks it before
routing here, so an unauthenticated caller learns nothing about which exist).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from portkey_mw._http import parse_json_object, read_body, unsupported_media_type
from portkey_mw.admin.budgets import BudgetsAdmin
from portkey_mw.admin.http import BODY_SECONDS, MAX_BODY_BYTES
from portkey_mw.admin.services import SpendView
from portkey_mw.errors import GatewayError, MethodNotAllowed, NotFound
from portkey_mw.guardrails.runner import GuardrailStats
from portkey_mw.response_cache import ResponseCache
from portkey_mw.store.protocols import ControlStore

#: where these routes are mounted
ADMIN_PREFIX = "/v1/admin"

Endpoint = Callable[[Request], Awaitable[Response]]


class RoutingState(Protocol):
    """What the circuits route shows: every upstream's circuit breaker."""

    def snapshot(self) -> Any:
        """The breakers' state, JSON-ready."""


class PricingState(Protocol):
    """What the pricing route shows: the price source, overrides and unpriced requests."""

    def stats(self) -> dict[str, Any]:
        """JSON-ready totals."""


def json_response(body: Any, status: int = 200) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def error_response(error: GatewayError, headers: Mapping[str, str] | None = None) -> Response:
    """An OpenAI-style error body with its status."""
    return Response(
        error.to_bytes(),
        status_code=error.status,
        media_type="application/json",
        headers=dict(headers or {}),
    )


def json_route(path: str, endpoints: Mapping[str, Endpoint]) -> Route:
    """A route that answers a method it does not serve with an OpenAI-style 405 (Starlette's
    own is plain text), and turns a :class:`GatewayError` into its error body."""
    allowed = ", ".join(sorted(endpoints))

    async def dispatch(request: Request) -> Response:
        endpoint = endpoints.get(request.method)
        if endpoint is None:
            error = MethodNotAllowed(f"{request.url.path} accepts {allowed}, not {request.method}")
            return error_response(error, {"allow": allowed})
        try:
            return await endpoint(request)
        except GatewayError as error:
            return error_response(error)

    return Route(path, dispatch, methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"])


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    """The router's answer for a path no route matches: an OpenAI-style 404."""
    response = error_response(NotFound(f"no route for {scope['path']}"))
    await response(scope, receive, send)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, read within the control plane's size and time bounds.

    :raises GatewayError: not JSON (415), too large (413), too slow (408), malformed (400).
    """
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media != "application/json" and not media.endswith("+json"):
        raise unsupported_media_type(content_type[:100])
    return parse_json_object(await read_body(request.receive, MAX_BODY_BYTES, BODY_SECONDS))


def operations_router(
    breakers: RoutingState,
    cache: ResponseCache,
    guardrail_stats: GuardrailStats,
    pricing: PricingState,
    *,
    spend: SpendView | None = None,
    store: ControlStore | None = None,
) -> Router:
    """The ``/v1/admin`` routes (paths relative to that prefix).

    :param spend: budgets and rate limits (without it: no ``/budgets`` or ``/limits``).
    :param store: where the API keys and virtual keys ``/budgets`` lists are kept.
    """

    async def circuits(request: Request) -> Response:
        return json_response({"circuits": breakers.snapshot()})

    async def cache_stats(request: Request) -> Response:
        return json_response(cache.stats.to_dict())

    async def purge(request: Request) -> Response:
        # ?namespace=<name> purges one namespace; without it, the whole cache.
        namespace = request.query_params.get("namespace", "")
        purged = await cache.purge(namespace)
        return json_response({"purged": purged, "namespace": namespace or None})

    async def guardrails(request: Request) -> Response:
        return json_response(guardrail_stats.to_dict())

    async def prices(request: Request) -> Response:
        return json_response(pricing.stats())

    routes = [
        # GET: every upstream's circuit breaker
        json_route("/circuits", {"GET": circuits}),
        # GET: cache totals since start; DELETE: purge (all, or ?namespace=)
        json_route("/cache", {"GET": cache_stats, "DELETE": purge}),
        # GET: guardrail checks since start, per check id
        json_route("/guardrails", {"GET": guardrails}),
        # GET: where prices come from, the server file's overrides, unpriced requests
        json_route("/pricing", {"GET": prices}),
    ]
    if spend is not None:
        routes.extend(_budget_routes(BudgetsAdmin(spend, store)))
    return Router(routes=routes, default=not_found)


def _budget_routes(budgets: BudgetsAdmin) -> list[Route]:
    async def listing(request: Request) -> Response:
        return json_response(await budgets.list_usage())

    async def reset(request: Request) -> Response:
        return json_response(await budgets.reset(await json_body(request)))

    async def limits(request: Request) -> Response:
        return json_response(budgets.limits())

    return [
        # GET: every API key, virtual key and metadata budget with limits, and its usage
        json_route("/budgets", {"GET": listing}),
        # POST {"kind", "ref"}: start one budget's current period over
        json_route("/budgets/reset", {"POST": reset}),
        # GET: the limits backend's state (degraded?), the metadata budgets, the alerts
        json_route("/limits", {"GET": limits}),
    ]
