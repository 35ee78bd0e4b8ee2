"""The realtime WebSocket (``/v1/realtime``): one client socket relayed to one provider socket.

The session is refused or opened as a whole before the client's handshake is answered:
the caller is identified, its route resolved and admitted, and the provider's socket
opened (through the transport's outbound policy), all by the pipeline
(:meth:`portkey_mw.pipeline.Pipeline.open_realtime`). Only then is the client accepted;
a refusal is an HTTP error response when the server supports the ASGI
``websocket.http.response`` extension (uvicorn does), a close before accepting otherwise.

Frames then flow both ways, text and binary, one at a time per direction (each ``send``
awaited before the next ``receive``: back-pressure), each bounded in size. Either side
closing closes the other. The session is logged once, when it ends: duration, close code,
frame counts, and the usage summed from the provider's ``response.done`` events -- never
a frame's content.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
import structlog

from portkey_mw.context import RequestContext
from portkey_mw.errors import GatewayError, InvalidRequest
from portkey_mw.logevents import LogEvent
from portkey_mw.logging import traceback_text
from portkey_mw.transport import Transport, UpstreamRequest, UpstreamWebSocket
from portkey_mw.types import Receive, Scope, Send

log = structlog.get_logger("portkey_mw.realtime")

#: the route (below the mount point)
REALTIME_PATH = "/v1/realtime"
#: a browser cannot set headers on a WebSocket: OpenAI's clients send the key as a
#: subprotocol ``openai-insecure-api-key.<key>``
KEY_SUBPROTOCOL = "openai-insecure-api-key."
#: a browser's way of asking for the beta protocol (``OpenAI-Beta: realtime=v1``)
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
#: the subprotocol a browser client asks to speak (accepted when offered)
REALTIME_SUBPROTOCOL = "realtime"
#: headers of the WebSocket handshake itself (key, version, protocols, extensions)
HANDSHAKE_HEADER_PREFIX = "sec-websocket-"
#: a model name longer than this is refused (it goes into the upstream URL and the log)
MAX_MODEL_CHARS = 256
#: close codes (RFC 6455)
NORMAL, GOING_AWAY, POLICY, TOO_BIG, INTERNAL = 1000, 1001, 1008, 1009, 1011
#: codes an endpoint may not send in a close frame (they only describe what happened)
_RESERVED = frozenset({1004, 1005, 1006, 1015})

#: opens the provider's socket for a session: the pipeline's identify → resolve → admit
OpenUpstream = Callable[[RequestContext], Awaitable[tuple[UpstreamRequest, Transport]]]
#: records the ended session (charge and log event)
FinishSession = Callable[[RequestContext, LogEvent], Awaitable[None]]


def offered_subprotocols(scope: Scope) -> list[str]:
    """The subprotocols the client's handshake offers."""
    offered = scope.get("subprotocols") or []
    return [str(p) for p in offered]


def handshake_headers(headers: dict[str, str], subprotocols: list[str]) -> dict[str, str]:
    """The handshake's headers as the pipeline reads them: a key sent as a subprotocol
    becomes ``Authorization: Bearer <key>``, and ``openai-beta.realtime-v1`` becomes
    ``OpenAI-Beta: realtime=v1`` (headers the client sent win)."""
    read = headers
    for protocol in subprotocols:
        if protocol.startswith(KEY_SUBPROTOCOL) and "authorization" not in read:
            key = protocol[len(KEY_SUBPROTOCOL) :].strip()
            if key:
                read = {**read, "authorization": f"Bearer {key}"}
        elif protocol == BETA_SUBPROTOCOL and "openai-beta" not in read:
            read = {**read, "openai-beta": "realtime=v1"}
    return read


def requested_model(query_string: bytes) -> str:
    """The ``model`` query parameter of the handshake.

    :raises InvalidRequest: there is none (400, ``param: model``).
    """
    values = parse_qs(query_string.decode("latin-1")).get("model") or []
    model = values[0].strip() if values else ""
    if not model:
        raise InvalidRequest(
            "/v1/realtime needs the model: connect to /v1/realtime?model=<model>",
            param="model",
            code="missing_model",
        )
    if len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            f"the model name is longer than {MAX_MODEL_CHARS} characters",
            param="model",
            code="invalid_model",
        )
    return model


def _refusal_code(error: GatewayError) -> int:
    return POLICY if error.status < 500 else INTERNAL


async def _deny(
    scope: Scope, send: Send, error: GatewayError, trace_id: str, request_id: str
) -> None:
    """Refuse a handshake: an HTTP error response where the server can send one (the ASGI
    ``websocket.http.response`` extension), else a close before accepting; the client sees
    a failed handshake either way."""
    with contextlib.suppress(OSError):  # the client may be gone already
        await _send_denial(scope, send, error, trace_id, request_id)


async def _send_denial(
    scope: Scope, send: Send, error: GatewayError, trace_id: str, request_id: str
) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [
            (b"content-type", b"application/json"),
            (b"x-portkey-trace-id", trace_id.encode("latin-1")),
            (b"x-portkey-request-id", request_id.encode("latin-1")),
        ]
        start = {"type": "websocket.http.response.start", "status": error.status}
        await send({**start, "headers": headers})
        body = error.to_bytes()
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
        return
    await send({"type": "websocket.close", "code": _refusal_code(error)})


async def refuse_websocket(scope: Scope, receive: Receive, send: Send, error: GatewayError) -> None:
    """Refuse a WebSocket before any session exists (no route, headers too large, no
    model): the error is answered to the handshake, nothing is logged."""
    message = await receive()
    if message["type"] == "websocket.connect":
        request_id = uuid.uuid4().hex
        await _deny(scope, send, error, request_id, request_id)


@dataclass(slots=True)
class Usage:
    """Token usage summed over a session's ``response.done`` events."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    responses: int = 0

    def add(self, usage: Any) -> None:
        """Add one ``response.usage`` object (anything not a count is ignored)."""
        if not isinstance(usage, dict):
            return
        self.responses += 1
        self.input_tokens += _count(usage.get("input_tokens"))
        self.output_tokens += _count(usage.get("output_tokens"))
        self.total_tokens += _count(usage.get("total_tokens"))
        details = usage.get("input_token_details") or usage.get("input_tokens_details")
        if isinstance(details, dict):
            self.cached_tokens += _count(details.get("cached_tokens"))
            self.input_audio_tokens += _count(details.get("audio_tokens"))
        details = usage.get("output_token_details") or usage.get("output_tokens_details")
        if isinstance(details, dict):
            self.output_audio_tokens += _count(details.get("audio_tokens"))

    def as_body(self, model: str | None) -> bytes:
        """A response body carrying the usage in OpenAI's shape, which the log event reads
        (tokens, cost); empty when no response finished."""
        if not self.responses:
            return b""
        usage = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens or self.input_tokens + self.output_tokens,
            "input_tokens_details": {
                "cached_tokens": self.cached_tokens,
                "audio_tokens": self.input_audio_tokens,
            },
            "output_tokens_details": {"audio_tokens": self.output_audio_tokens},
        }
        return orjson.dumps({"model": model, "usage": usage} if model else {"usage": usage})


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


@dataclass(slots=True)
class _Tally:
    """What went by in one direction (counts only)."""

    frames: int = 0
    bytes: int = 0


@dataclass(slots=True)
class _Ending:
    """How the session ended."""

    code: int = NORMAL
    by: str = "client"
    error: GatewayError | None = None


@dataclass(slots=True)
class RealtimeLimits:
    """The bounds of every session (``realtime`` in the server file)."""

    max_frame_bytes: int = 16 * 1024 * 1024
    #: 0: no limit
    max_session_seconds: float = 3600.0
    #: seconds to open the provider's socket
    connect_timeout: float = 10.0


@dataclass(slots=True)
class RealtimeSession:
    """One ``/v1/realtime`` session, from the client's handshake to the log event."""

    ctx: RequestContext
    scope: Scope
    receive: Receive
    send: Send
    limits: RealtimeLimits
    usage: Usage = field(default_factory=Usage)
    sent: _Tally = field(default_factory=_Tally)
    received: _Tally = field(default_factory=_Tally)
    ending: _Ending = field(default_factory=_Ending)
    status: int = 101
    accepted_at: float | None = None

    async def run(self, open_upstream: OpenUpstream, finish: FinishSession) -> None:
        """Serve the session, then record it with ``finish`` (always, refusals included)."""
        message = await self.receive()
        if message["type"] != "websocket.connect":
            return  # the client left before its handshake reached the app
        upstream: UpstreamWebSocket | None = None
        try:
            try:
                request, transport = await open_upstream(self.ctx)
                # The handshake's own headers are the transport's to write: none a client
                # forwarded (x-portkey-forward-headers) may stand in for them.
                headers = {
                    name: value
                    for name, value in request.headers.items()
                    if not name.lower().startswith(HANDSHAKE_HEADER_PREFIX)
                }
                request = dataclasses.replace(
                    request, headers=headers, timeout=self.limits.connect_timeout
                )
                upstream = await transport.websocket(request, self.limits.max_frame_bytes)
            except GatewayError as error:
                await self._deny(error)
                return
            except Exception as exc:
                log.error(
                    "realtime session failed to open",
                    trace_id=self.ctx.trace_id,
                    exception=traceback_text(exc),
                )
                await self._deny(
                    GatewayError(f"internal gateway error (trace id {self.ctx.trace_id})")
                )
                return
            await self.send(
                {
                    "type": "websocket.accept",
                    "subprotocol": self._subprotocol(),
                    "headers": [
                        (b"x-portkey-trace-id", self.ctx.trace_id.encode("latin-1")),
                        (b"x-portkey-request-id", self.ctx.request_id.encode("latin-1")),
                    ],
                }
            )
            self.accepted_at = time.perf_counter()
            await self._relay(upstream)
        finally:
            if upstream is not None:
                await upstream.aclose(self._upstream_code())
            await finish(self.ctx, self._event())

    def _subprotocol(self) -> str | None:
        offered = offered_subprotocols(self.scope)
        return REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None

    async def _deny(self, error: GatewayError) -> None:
        self.status = error.status
        self.ending = _Ending(_refusal_code(error), "gateway", error)
        await _deny(self.scope, self.send, error, self.ctx.trace_id, self.ctx.request_id)

    async def _relay(self, upstream: UpstreamWebSocket) -> None:
        loop = asyncio.get_running_loop()
        upward = loop.create_task(self._client_to_upstream(upstream))
        downward = loop.create_task(self._upstream_to_client(upstream))
        limit = self.limits.max_session_seconds or None
        done, pending = await asyncio.wait(
            {upward, downward}, timeout=limit, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not done:
            self.ending = _Ending(
                POLICY,
                "gateway",
                GatewayError(
                    f"the realtime session reached its limit of {limit:g} seconds "
                    "(realtime.max_session_seconds)",
                    status=408,
                    code="session_too_long",
                ),
            )
        for task in done:
            task.result()  # a bug in the relay is not swallowed
        if self.ending.by != "client":
            # Tell the client why; it may already be gone, which is fine.
            with contextlib.suppress(Exception):
                await self.send({"type": "websocket.close", "code": self._client_code()})

    async def _client_to_upstream(self, upstream: UpstreamWebSocket) -> None:
        limit = self.limits.max_frame_bytes
        tally = self.sent
        while True:
            message = await self.receive()
            kind = message["type"]
            if kind == "websocket.disconnect":
                self.ending = _Ending(int(message.get("code") or NORMAL), "client")
                return
            if kind != "websocket.receive":
                continue
            text = message.get("text")
            data: str | bytes = text if text is not None else (message.get("bytes") or b"")
            size = len(data)
            if isinstance(data, str) and size * 4 > limit:
                # Only a text frame that might be over the limit is measured in UTF-8 bytes
                # (audio comes as base64, ASCII: a character is a byte).
                size = len(data.encode())
            if size > limit:
                self.ending = _Ending(
                    TOO_BIG,
                    "gateway",
                    GatewayError(
                        f"a client message of {size} bytes is over the gateway's limit of "
                        f"{limit} bytes (realtime.max_frame_bytes)",
                        status=413,
                        code="frame_too_large",
                    ),
                )
                return
            tally.frames += 1
            tally.bytes += size
            try:
                await upstream.send(data)
            except GatewayError as error:
                self.ending = _Ending(INTERNAL, "upstream", error)
                return

    async def _upstream_to_client(self, upstream: UpstreamWebSocket) -> None:
        tally = self.received
        send = self.send
        while True:
            try:
                data = await upstream.receive()
            except GatewayError as error:
                code = TOO_BIG if error.code == "upstream_frame_too_large" else INTERNAL
                self.ending = _Ending(code, "upstream", error)
                return
            if data is None:
                closed = upstream.close_code
                self.ending = _Ending(closed if closed is not None else NORMAL, "upstream")
                return
            tally.frames += 1
            tally.bytes += len(data)
            message: dict[str, Any]
            if isinstance(data, str):
                if "response.done" in data:
                    self._read_usage(data)
                message = {"type": "websocket.send", "text": data}
            else:
                message = {"type": "websocket.send", "bytes": data}
            try:
                await send(message)
            except OSError:  # the client went away (uvicorn's ClientDisconnected)
                self.ending = _Ending(GOING_AWAY, "client")
                return

    def _read_usage(self, text: str) -> None:
        """Add the usage of a ``response.done`` event (parsed only for those)."""
        try:
            event = orjson.loads(text)
        except orjson.JSONDecodeError:
            return
        if isinstance(event, dict) and event.get("type") == "response.done":
            response = event.get("response")
            if isinstance(response, dict):
                self.usage.add(response.get("usage"))

    def _client_code(self) -> int:
        """The code the client's socket is closed with: the provider's when it gave one a
        peer may send, else the gateway's reason."""
        code = self.ending.code
        if code in _RESERVED or not (1000 <= code <= 4999):
            return INTERNAL if self.ending.error is not None else NORMAL
        return code

    def _upstream_code(self) -> int:
        """The code the provider's socket is closed with."""
        code = self.ending.code
        if self.ending.by == "client" and code not in _RESERVED and 1000 <= code <= 4999:
            return code
        return GOING_AWAY if self.ending.by != "upstream" else NORMAL

    def _event(self) -> LogEvent:
        """The session's one log record."""
        ctx, ending = self.ctx, self.ending
        error = ending.error
        now = time.perf_counter()
        event = LogEvent.of_request(
            ctx,
            status=self.status,
            latency_ms=(now - ctx.started) * 1000,
            error=error,
            response_bytes=self.usage.as_body(ctx.model),
        )
        if self.accepted_at is not None:
            event.ttfb_ms = (self.accepted_at - ctx.started) * 1000
            event.extra["realtime"] = {
                "close_code": ending.code,
                "closed_by": ending.by,
                "duration_ms": round((now - self.accepted_at) * 1000, 3),
                "client_frames": self.sent.frames,
                "client_bytes": self.sent.bytes,
                "upstream_frames": self.received.frames,
                "upstream_bytes": self.received.bytes,
                "responses": self.usage.responses,
            }
        return event
