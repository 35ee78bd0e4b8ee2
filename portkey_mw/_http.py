"""Small pure-ASGI helpers: reading the body, reading headers, sending responses."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from portkey_mw.auth.outbound import check_client_host
from portkey_mw.bounds import check_json_depth, whole_number
from portkey_mw.client_body import ClientBody
from portkey_mw.context import RequestContext
from portkey_mw.errors import (
    GatewayError,
    HeadersTooLarge,
    InvalidRequest,
    UnsupportedMediaType,
)
from portkey_mw.forwarding import check_forwardable
from portkey_mw.types import Receive, Scope, Send

JSON_CONTENT_TYPE = "application/json"


def route_path(scope: Scope) -> str:
    """The path below the mount point (as Starlette's ``get_route_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def header_dict(scope: Scope, max_total: int, max_each: int) -> dict[str, str]:
    """Request headers as a dict of lower-case names (ASGI already lower-cases them).

    :raises HeadersTooLarge: all headers together are over ``max_total`` bytes, or one
        header's value is over ``max_each`` (431, before anything else reads them).
    """
    headers: dict[str, str] = {}
    total = 0
    for name, value in scope["headers"]:
        size = len(value)
        total += len(name) + size + 4  # ": " and CRLF, as on the wire
        if size > max_each:
            raise HeadersTooLarge(
                f"request header {name.decode('latin-1')!r} is larger than the gateway's "
                f"limit of {max_each} bytes"
            )
        headers[name.decode("latin-1")] = value.decode("latin-1")
    if total > max_total:
        raise HeadersTooLarge(
            f"request headers are larger than the gateway's limit of {max_total} bytes"
        )
    return headers


def encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    content_type: str = JSON_CONTENT_TYPE,
) -> None:
    """Send a complete response."""
    raw = encode_headers(headers)
    if "content-type" not in headers:
        raw.append((b"content-type", content_type.encode("latin-1")))
    raw.append((b"content-length", str(len(body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: GatewayError, headers: Mapping[str, str]) -> None:
    """Send an OpenAI-style error body with the error's status."""
    await send_bytes(send, error.status, error.to_bytes(), headers)


def unsupported_media_type(content_type: str) -> UnsupportedMediaType:
    """The 415 error for a body that is not JSON."""
    return UnsupportedMediaType(
        f"content-type {content_type!r} is not supported: send application/json"
    )


async def read_body(receive: Receive, limit: int, time_limit: float | None = None) -> bytes:
    """Read the whole request body, failing with 413 as soon as it passes ``limit`` and with
    408 when it has not arrived within ``time_limit`` seconds (a client that trickles a body
    must not hold a request open forever)."""
    return await ClientBody(receive, limit, time_limit).read()


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """Parse the body, which must be a JSON object."""
    if not raw:
        raise InvalidRequest("request body is empty: send a JSON object", code="invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"request body must be a JSON object, not {type(body).__name__}", code="invalid_json"
        )
    check_json_depth(raw, body, "the request body")
    return body


#: the tracing headers (Portkey's) a request may send, and how long each may be: the log
#: record keeps them, and the log store's columns are that wide
TRACE_HEADERS: tuple[tuple[str, int], ...] = (
    ("x-portkey-trace-id", 128),
    ("x-portkey-span-id", 64),
    ("x-portkey-parent-span-id", 64),
    ("x-portkey-span-name", 256),
)


def check_trace_header(name: str, value: str, limit: int) -> None:
    """A tracing header must be printable ASCII, at most ``limit`` characters.

    :raises InvalidRequest: it is not (400, naming the header).
    """
    if len(value) > limit or not value.isprintable() or not value.isascii():
        raise InvalidRequest(
            f"{name} must be at most {limit} printable ASCII characters",
            code="invalid_trace_header",
            param=name,
        )


def apply_request_options(ctx: RequestContext) -> None:
    """Validate the ``x-portkey-*`` headers that shape the request, and record metadata."""
    headers = ctx.headers
    metadata = headers.get("x-portkey-metadata")
    if metadata:
        try:
            parsed = orjson.loads(metadata)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise InvalidRequest(
                'x-portkey-metadata must be a JSON object, e.g. {"user": "u-1", "env": "prod"}',
                code="invalid_metadata",
                param="x-portkey-metadata",
            )
        check_json_depth(metadata, parsed, "x-portkey-metadata")
        nested = next((k for k, v in parsed.items() if isinstance(v, dict | list)), None)
        if nested is not None:
            # The log store indexes metadata as key=value pairs: a value must be one.
            raise InvalidRequest(
                f"x-portkey-metadata must map keys to strings, numbers, booleans or null: "
                f"{nested[:100]!r} holds a {type(parsed[nested]).__name__}",
                code="invalid_metadata",
                param="x-portkey-metadata",
            )
        # Values keep their JSON types, so conditional routing can compare numbers as numbers.
        ctx.metadata = parsed
    for name, limit in TRACE_HEADERS:
        value = headers.get(name)
        if value is not None:
            check_trace_header(name, value, limit)
    custom_host = headers.get("x-portkey-custom-host")
    if custom_host is not None:
        check_client_host(custom_host, "x-portkey-custom-host")
    timeout = headers.get("x-portkey-request-timeout")
    if timeout is not None and not whole_number(timeout):
        raise InvalidRequest(
            f"x-portkey-request-timeout must be a positive number of milliseconds, got {timeout!r}",
            code="invalid_request_timeout",
        )
    forward = headers.get("x-portkey-forward-headers")
    if forward:
        check_forwardable(forward.split(","), "x-portkey-forward-headers")
