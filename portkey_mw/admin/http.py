"""The control plane's HTTP plumbing: one call's context, bodies in, JSON out, errors.

Every answer is a JSON object with ``content-type: application/json`` -- the SDK indexes
the header and casts the body, DELETE included. Failures are the gateway's
OpenAI-style error body (``error.message`` is what the SDK shows), plus ``success: false``
for clients written against Portkey's own control-plane shape.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from portkey_mw._http import parse_json_object, read_body, unsupported_media_type
from portkey_mw.admin.scopes import RouteScope
from portkey_mw.admin.services import AdminServices, Authorize, MissingScope, Principal
from portkey_mw.errors import GatewayError, InvalidRequest, MethodNotAllowed, NotFound
from portkey_mw.store.protocols import ControlStore

log = logging.getLogger(__name__)

#: Largest request body the control plane reads (a big routing config fits many times).
MAX_BODY_BYTES = 1024 * 1024
#: How long a client may take to send a body.
BODY_SECONDS = 30.0
#: Largest page the list routes return at once.
MAX_PAGE_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one admin request may make the server read."""

    max_body_bytes: int = MAX_BODY_BYTES
    body_seconds: float = BODY_SECONDS


@dataclass(slots=True)
class Call:
    """One admin request: what a route handler works with."""

    request: Request
    route: RouteScope
    store: ControlStore
    services: AdminServices
    authorize_with: Authorize
    limits: Limits

    @property
    def headers(self) -> Mapping[str, str]:
        """Request headers, lower-case names."""
        return self.request.headers

    def param(self, name: str) -> str:
        """A path parameter.

        :raises InvalidRequest: it holds a NUL character, which no slug or id has and some
            databases refuse to compare (400 rather than a store error).
        """
        value = str(self.request.path_params[name])
        if "\x00" in value:
            raise InvalidRequest(f"the {name} in the path holds a NUL character", param=name)
        return value

    def query(self, name: str) -> str | None:
        """A query parameter; empty counts as absent (the SDK sends a bare ``?``)."""
        value = self.request.query_params.get(name)
        return value or None

    async def authorize(self, scope: str | None = None) -> Principal:
        """The caller, who must hold ``scope`` (default: the route's own scope)."""
        return await self.authorize_with(self.headers, scope or self.route.scope)

    async def authorize_any(self, scopes: Sequence[str]) -> tuple[Principal, frozenset[str]]:
        """The caller, who must hold at least one of ``scopes``; and the ones it holds.

        A missing or bad key fails at the first try (401). When every scope is refused,
        the error names them all -- unless each refusal said the same thing (the admin
        API is off, say), which is then said once.
        """
        denials: list[GatewayError] = []
        for scope in scopes:
            try:
                principal = await self.authorize_with(self.headers, scope)
            except GatewayError as exc:
                if exc.status != 403:
                    raise
                denials.append(exc)
                continue
            return principal, frozenset(s for s in scopes if principal.allows(s))
        if len({d.message for d in denials}) == 1:
            raise denials[0]
        names = ", ".join(repr(s) for s in scopes)
        raise MissingScope(f"this API key lacks every one of the scopes {names}")

    async def _raw_body(self) -> bytes:
        content_type = self.headers.get("content-type", "")
        media = content_type.split(";", 1)[0].strip().lower()
        if media and media != "application/json" and not media.endswith("+json"):
            raise unsupported_media_type(content_type[:100])
        return await read_body(
            self.request.receive, self.limits.max_body_bytes, self.limits.body_seconds
        )

    async def items(self) -> tuple[list[dict[str, Any]], bool]:
        """The JSON object or array of objects sent (feedback and logs take either), and
        whether it was an array.

        :raises InvalidRequest: malformed, empty, or not objects (400).
        """
        raw = await self._raw_body()
        if raw.lstrip()[:1] != b"[":
            return [self._checked(parse_json_object(raw))], False
        wrapped = parse_json_object(b'{"items":' + raw + b"}")
        items = wrapped["items"]
        if not items or not all(isinstance(item, dict) for item in items):
            raise InvalidRequest(
                "request body must be a JSON object or a non-empty array of objects",
                code="invalid_json",
            )
        return [self._checked(item) for item in items], True

    async def body(self, *, required: bool = True) -> dict[str, Any]:
        """The JSON object sent, read within the size and time bounds.

        :raises InvalidRequest: malformed JSON or not an object (400), empty when required.
        :raises GatewayError: too large (413), too slow (408), not JSON (415).
        """
        raw = await self._raw_body()
        if not raw.strip() and not required:
            return {}
        return self._checked(parse_json_object(raw))

    @staticmethod
    def _checked(body: dict[str, Any]) -> dict[str, Any]:
        if _has_nul(body):
            # PostgreSQL refuses NUL in text and JSON: a 400 here, not a store error later
            raise InvalidRequest(
                "request body holds a NUL character (\\u0000) in a string", code="invalid_json"
            )
        return body

    def page(self, items: Sequence[Any]) -> Sequence[Any]:
        """``items`` cut to the page asked for (``current_page`` from 0, ``page_size``)."""
        size = _count(self.query("page_size") or self.query("pageSize"), "page_size", 1)
        page = _count(self.query("current_page") or self.query("currentPage"), "current_page", 0)
        if size is None:
            return items
        size = min(size, MAX_PAGE_SIZE)
        start = (page or 0) * size
        return items[start : start + size]


def _has_nul(value: Any) -> bool:
    # The depth is bounded by parse_json_object, so recursion is too.
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any("\x00" in k or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _count(value: str | None, name: str, minimum: int) -> int | None:
    if value is None:
        return None
    if len(value) > 9 or not value.isascii() or not value.isdigit() or int(value) < minimum:
        raise InvalidRequest(
            f"{name} must be a whole number of at least {minimum}, got {value[:40]!r}",
            param=name,
            code="invalid_query",
        )
    return int(value)


def _jsonable(value: Any) -> Any:
    # Records hold read-only mappings and datetimes; orjson takes dicts and lists.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON object response."""
    return Response(
        orjson.dumps(dict(body), default=_jsonable),
        status_code=status,
        headers=dict(headers or {}),
        media_type="application/json",
    )


def error_response(error: GatewayError, headers: Mapping[str, str] | None = None) -> Response:
    """The OpenAI-style error body, with ``success: false`` beside it."""
    body = {**error.to_dict(), "success": False}
    return json_response(error.status, body, headers)


#: A route handler: ``(status, JSON object)``, or a ready response (a file download).
Handler = Callable[[Call], Awaitable[tuple[int, dict[str, Any]] | Response]]


def endpoint(
    rows: Mapping[str, tuple[RouteScope, Handler]],
    store: ControlStore,
    services: AdminServices,
    authorize: Authorize,
    limits: Limits,
) -> Callable[[Request], Awaitable[Response]]:
    """One path's Starlette endpoint: dispatches on the method, answers every failure as
    JSON (405 included, which Starlette would answer in plain text)."""
    allow = ", ".join(sorted(rows))

    async def respond(request: Request) -> Response:
        found = rows.get(request.method)
        if found is None:
            error = MethodNotAllowed(
                f"{request.method} is not allowed on {request.url.path}: use {allow}"
            )
            return error_response(error, {"allow": allow})
        route, handler = found
        call = Call(request, route, store, services, authorize, limits)
        try:
            answer = await handler(call)
        except GatewayError as exc:
            return error_response(exc)
        except Exception as exc:
            # Never a client's fault. Logged by type and place only: a message or a
            # traceback's locals might hold a credential from a record or a body.
            log.error("control-plane route %s failed: %s", route.operation, _where(exc))
            return error_response(GatewayError("the control plane failed; see the server log"))
        if isinstance(answer, Response):
            return answer
        status, body = answer
        return json_response(status, body)

    return respond


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return type(exc).__name__
    last = frames[-1]
    return f"{type(exc).__name__} at {last.filename}:{last.lineno} in {last.name}"


async def not_found(scope: Any, receive: Any, send: Any) -> None:
    """The router's answer for a path no route takes."""
    error = NotFound(f"no control-plane route {scope.get('path', '')[:200]!r}")
    await error_response(error)(scope, receive, send)
