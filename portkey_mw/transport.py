"""The upstream transport seam: one pooled HTTP client per process.

The default is aiohttp, because on this project's benchmark a bare proxy made ~2,200 req/s
with aiohttp against ~180 with httpx's own pool (see DESIGN.md). An ``httpx.AsyncClient``
(including one over ``httpx.MockTransport``) can be passed instead through
:class:`HttpxTransport`. Both raise only :class:`~portkey_mw.errors.UpstreamConnectionError`
and :class:`~portkey_mw.errors.UpstreamTimeout`, so nothing above this module knows which
library is underneath.

Every request passes the outbound policy (:mod:`portkey_mw.auth.outbound`) first: the
URL before anything is sent and, with aiohttp, every resolved address inside the pool's
resolver. Nothing here follows a redirect: a provider's redirect is an upstream error (a
credential must not follow it to another origin), and the fetcher that may follow one
(:mod:`portkey_mw.fetch`) sends each hop through the policy again. A complete body is read
up to a size limit, and an error body has every credential the request carried masked
before anyone sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver

from portkey_mw.auth.outbound import BlockedAddress, Destination, OutboundPolicy
from portkey_mw.client_body import ClientBody
from portkey_mw.errors import (
    DestinationNotAllowed,
    GatewayError,
    UpstreamBadResponse,
    UpstreamConnectionError,
    UpstreamTimeout,
)
from portkey_mw.redact import credential_values, mask, redact_url

#: A complete body larger than this is refused unless the transport is given another limit.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class StreamedBody(ABC):
    """A request body sent in pieces, for uploads too large to hold twice (a multipart
    form's files, spooled to disk). Each attempt iterates it again from the start."""

    #: its size in bytes (sent as ``Content-Length``)
    length: int

    @abstractmethod
    def chunks(self) -> AsyncIterator[bytes]:
        """The body's bytes, from the start."""


@dataclass(slots=True)
class UpstreamRequest:
    """What a provider asks the transport to send."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    #: the body: bytes; chunks sent as they come (a :class:`ClientBody` streamed from the
    #: client: an upload, a pass-through's body), raising from them aborts the request;
    #: or a :class:`StreamedBody` (a multipart form's spooled files) sent with its length
    body: bytes | StreamedBody | AsyncIterable[bytes] | None = None
    #: seconds for the whole attempt: the response headers and, unless streaming, the body
    timeout: float | None = None
    stream: bool = False
    #: what the request is for, which decides the outbound policy it passes
    destination: Destination = Destination.PROVIDER
    #: more values to mask in an error body, beside the credential headers and parameters
    secrets: tuple[str, ...] = ()
    #: largest complete body to read (``None``: the transport's limit)
    max_body: int | None = None
    _credentials: list[str] | None = field(default=None, init=False, repr=False, compare=False)

    def credentials(self) -> list[str]:
        """The credentials this request carries, longest first (see :mod:`portkey_mw.redact`);
        worked out once, however many places mask with them."""
        if self._credentials is None:
            self._credentials = credential_values(self.headers, self.url, self.secrets)
        return self._credentials


class UpstreamResponse(ABC):
    """A response whose body has not been read yet. Always :meth:`aclose` it."""

    status: int
    headers: Mapping[str, str]
    #: what was sent (its credentials are what an answer must not repeat)
    request: UpstreamRequest

    @abstractmethod
    async def read(self) -> bytes:
        """The whole body, up to the request's size limit. When the status is 400 or more,
        every credential the request carried is masked in it (an upstream that echoes the
        key it was sent must not hand it to the client)."""

    @abstractmethod
    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, never re-buffered."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection; if the body was not read to the end, drop it."""


class UpstreamWebSocket(ABC):
    """An open WebSocket to a provider (``/v1/realtime``). Always :meth:`aclose` it."""

    #: the subprotocol the provider accepted, if any
    protocol: str | None = None

    @abstractmethod
    async def receive(self) -> str | bytes | None:
        """The next message, text or binary; ``None`` once the provider closed.

        :raises UpstreamBadResponse: ``upstream_frame_too_large`` for a message past the
            limit the socket was opened with.
        :raises UpstreamConnectionError: the connection broke.
        """

    @abstractmethod
    async def send(self, data: str | bytes) -> None:
        """Send one message (text for ``str``), waiting while the provider's side is full."""

    @property
    @abstractmethod
    def close_code(self) -> int | None:
        """The code the provider closed with (``None``: still open, or none given)."""

    @abstractmethod
    async def aclose(self, code: int = 1000) -> None:
        """Close with ``code`` (idempotent)."""


class Transport(ABC):
    """Sends :class:`UpstreamRequest` objects. One instance serves the whole process.

    :param policy: the outbound policy every request passes (default: public addresses,
        and loopback for provider destinations).
    :param max_body_bytes: the largest complete body :meth:`UpstreamResponse.read` returns.
    """

    def __init__(
        self,
        *,
        policy: OutboundPolicy | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.policy = policy or OutboundPolicy()
        self._policy_given = policy is not None
        self.max_body_bytes = max_body_bytes

    def adopt_policy(self, policy: OutboundPolicy) -> None:
        """Use the gateway's policy (its server file's ``outbound`` section), unless this
        transport was made with a policy of its own. Call before :meth:`open`."""
        if not self._policy_given:
            self.policy = policy
            self._policy_given = True

    @abstractmethod
    async def open(self) -> None:
        """Create the pool (inside the running event loop)."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send the request and return once the status line and headers arrived.

        :raises DestinationNotAllowed: the outbound policy refuses the URL or its addresses.
        :raises UpstreamBadResponse: a provider answered with a redirect.
        """
        self.policy.check_url(request.url, request.destination)
        response = await self._send(request)
        if 300 <= response.status < 400 and request.destination is not Destination.FETCH:
            await response.aclose()
            target = response.headers.get("location", "")
            raise UpstreamBadResponse(
                f"the provider at {redact_url(request.url)} answered {response.status}, a "
                f"redirect to {redact_url(target) or 'nowhere'!r}: the gateway never follows "
                "a provider's redirect (credentials stay with the host they were bound to)",
                code="upstream_redirect",
            )
        return response

    @abstractmethod
    async def _send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send the request as it is (the policy has passed it); never follow redirects."""

    async def websocket(self, request: UpstreamRequest, max_frame_bytes: int) -> UpstreamWebSocket:
        """Open a WebSocket to ``request.url`` (an http(s) URL: the handshake is an HTTP
        request) with ``request.headers``, under the same policy as :meth:`send`: the URL
        now, every resolved address at connect time, and no redirect followed.

        :param max_frame_bytes: the largest message :meth:`UpstreamWebSocket.receive` takes.
        :raises DestinationNotAllowed: the outbound policy refuses the URL or its addresses.
        :raises UpstreamBadResponse: the provider answered the handshake with a status
            (``status`` says which; a redirect is never followed).
        """
        self.policy.check_url(request.url, request.destination)
        return await self._websocket(request, max_frame_bytes)

    async def _websocket(self, request: UpstreamRequest, max_frame_bytes: int) -> UpstreamWebSocket:
        raise GatewayError(
            f"this gateway's transport ({type(self).__name__}) cannot open WebSockets: "
            "realtime needs the default aiohttp transport",
            status=501,
            code="realtime_unavailable",
        )

    @abstractmethod
    async def aclose(self) -> None:
        """Close the pool."""

    def _limit(self, request: UpstreamRequest) -> int:
        return request.max_body if request.max_body is not None else self.max_body_bytes


def _content(request: UpstreamRequest) -> bytes | AsyncIterable[bytes] | None:
    """The body as the HTTP libraries take it; a streamed one carries its length as a
    header (no chunked encoding: some providers refuse it for uploads)."""
    body = request.body
    if isinstance(body, StreamedBody):
        request.headers["content-length"] = str(body.length)
        return body.chunks()
    return body


def _timeout_error(request: UpstreamRequest) -> UpstreamTimeout:
    if request.timeout is None:
        return UpstreamTimeout(f"the provider timed out ({_host(request.url)})")
    ms = int(request.timeout * 1000)
    return UpstreamTimeout(f"the provider did not answer within {ms} ms ({_host(request.url)})")


def _connection_error(
    request: UpstreamRequest, exc: BaseException, *, mid_response: bool = False
) -> UpstreamConnectionError:
    reason = str(exc) or type(exc).__name__
    if mid_response:
        message = f"the provider's connection broke mid-response ({_host(request.url)}): {reason}"
    else:
        message = f"could not reach the provider at {_host(request.url)}: {reason}"
    return UpstreamConnectionError(message)


@dataclass(frozen=True, slots=True)
class _ClientErrors:
    """How one HTTP library's exceptions map onto the gateway's two upstream errors."""

    #: the provider was never reached (connect timeouts included)
    connect: tuple[type[Exception], ...]
    #: the provider did not answer in time
    timeouts: tuple[type[Exception], ...]
    #: anything else the library raises
    other: tuple[type[Exception], ...]

    @contextlib.contextmanager
    def mapped(self, request: UpstreamRequest, *, mid_response: bool = False) -> Iterator[None]:
        """Re-raise the library's errors as ``UpstreamConnectionError`` / ``UpstreamTimeout``."""
        try:
            yield
        except (*self.connect, *self.timeouts, *self.other) as exc:
            failure = _body_failure(request)
            if failure is not None:
                # The request's own streamed body stopped it (an upload over its limit, late,
                # a client that left): the client's fault, never the upstream's.
                raise failure from None
            if isinstance(exc, self.connect):
                blocked = _blocked_cause(exc)
                if blocked is not None:
                    raise DestinationNotAllowed(
                        f"the gateway will not contact {_host(request.url)!r}: {blocked.reason}",
                        param="url",
                    ) from None
                raise _connection_error(request, exc) from exc
            if isinstance(exc, self.timeouts):
                raise _timeout_error(request) from exc
            raise _connection_error(request, exc, mid_response=mid_response) from exc


def _body_failure(request: UpstreamRequest) -> GatewayError | None:
    """Why the client's body streamed in ``request`` stopped, if it did."""
    body = request.body
    return body.failure if isinstance(body, ClientBody) else None


def _blocked_cause(exc: BaseException) -> BlockedAddress | None:
    """The policy refusal behind a connection error, if that is what it was."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, BlockedAddress):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__
    return None


def _deadline(timeout: float | None) -> float | None:
    """The loop time by which the whole attempt -- headers and body -- must be done."""
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


def _host(url: str) -> str:
    # Name the host, never the query string or userinfo (they may carry a key).
    return redact_url(url) or ""


async def _collect(
    chunks: AsyncIterator[bytes], request: UpstreamRequest, limit: int, status: int
) -> bytes:
    """A body read chunk by chunk, refused as soon as it passes ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise UpstreamBadResponse(
                f"{_host(request.url)} sent a body larger than the gateway's limit of "
                f"{limit} bytes",
                code="upstream_body_too_large",
            )
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    return mask(body, request.credentials()) if status >= 400 else body


# -------------------------------------------------------------------------
# aiohttp (default)
# -------------------------------------------------------------------------


# aiohttp's connect timeout is a TimeoutError too, but the provider was never reached.
_AIOHTTP_ERRORS = _ClientErrors(
    connect=(aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError),
    timeouts=(TimeoutError,),
    other=(aiohttp.ClientError,),
)


class _AiohttpResponse(UpstreamResponse):
    __slots__ = ("_deadline", "_limit", "_response", "headers", "request", "status")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        request: UpstreamRequest,
        deadline: float | None,
        limit: int,
    ) -> None:
        self._response = response
        self.request = request
        self._deadline = deadline
        self._limit = limit
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        with _AIOHTTP_ERRORS.mapped(self.request, mid_response=True):
            async with asyncio.timeout_at(self._deadline):
                chunks = self._response.content.iter_any()
                return await _collect(chunks, self.request, self._limit, self.status)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        with _AIOHTTP_ERRORS.mapped(self.request, mid_response=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            # Closing (not releasing) drops the TCP connection, which is how the upstream
            # learns that the client went away.
            self._response.close()


class RedirectRefused(aiohttp.ClientError):
    """A session was about to follow a redirect (only a WebSocket handshake can ask it to:
    every other request is sent with ``allow_redirects=False``)."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(status, location)
        self.status = status
        self.location = location


async def _refuse_redirect(
    session: aiohttp.ClientSession, context: object, params: aiohttp.TraceRequestRedirectParams
) -> None:
    # aiohttp's ws_connect has no allow_redirects: stop it here, before the next hop.
    params.response.close()
    raise RedirectRefused(params.response.status, params.response.headers.get("location", ""))


def _no_redirects() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(_refuse_redirect)
    return trace


class _AiohttpWebSocket(UpstreamWebSocket):
    __slots__ = ("_request", "_socket", "protocol")

    def __init__(self, socket: aiohttp.ClientWebSocketResponse, request: UpstreamRequest) -> None:
        self._socket = socket
        self._request = request
        self.protocol = socket.protocol

    async def receive(self) -> str | bytes | None:
        while True:
            message = await self._socket.receive()
            kind = message.type
            if kind is aiohttp.WSMsgType.TEXT:
                return str(message.data)
            if kind is aiohttp.WSMsgType.BINARY:
                return bytes(message.data)
            if kind in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
            ):
                return None
            if kind is aiohttp.WSMsgType.ERROR:
                error = message.data
                if getattr(error, "code", None) == aiohttp.WSCloseCode.MESSAGE_TOO_BIG:
                    raise UpstreamBadResponse(
                        f"{_host(self._request.url)} sent a WebSocket message larger than the "
                        "gateway's limit (realtime.max_frame_bytes)",
                        code="upstream_frame_too_large",
                    )
                raise _connection_error(self._request, error, mid_response=True)
            # PING/PONG are answered by aiohttp (autoping); nothing else reaches here

    async def send(self, data: str | bytes) -> None:
        with _AIOHTTP_ERRORS.mapped(self._request, mid_response=True):
            if isinstance(data, str):
                await self._socket.send_str(data)
            else:
                await self._socket.send_bytes(data)

    @property
    def close_code(self) -> int | None:
        return self._socket.close_code

    async def aclose(self, code: int = 1000) -> None:
        with contextlib.suppress(Exception):
            await self._socket.close(code=code)


#: Pool sizes for fetches (webhooks, validUrls, images, token endpoints), which are few.
FETCH_CONNECTIONS = 100
FETCH_CONNECTIONS_PER_HOST = 10


class AiohttpTransport(Transport):
    """The default transport: ``aiohttp`` pools, one per :class:`Destination`.

    Separate pools keep the policies apart: a connection opened to a loopback custom host is
    never reused for a webhook, and fetches cannot take the providers' connections. Each
    pool resolves host names through a :class:`~portkey_mw.auth.outbound.PolicyResolver`.

    :param max_connections: provider pool size across all hosts.
    :param max_connections_per_host: provider connections to any one host, so that one
        slow host cannot take the whole pool.
    :param connect_timeout: seconds to get a connection: a free slot in the pool, then the
        TCP and TLS handshakes.
    :param resolver: the resolver under the policy (default: aiohttp's threaded one);
        tests pass one that answers what they need.
    :param dns_cache: seconds a resolved (and checked) answer is reused; ``None`` caches
        nothing, so every new connection resolves and is checked again.
    """

    def __init__(
        self,
        *,
        max_connections: int = 1000,
        max_connections_per_host: int = 256,
        connect_timeout: float = 10.0,
        policy: OutboundPolicy | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        resolver: AbstractResolver | None = None,
        dns_cache: int | None = 300,
    ) -> None:
        super().__init__(policy=policy, max_body_bytes=max_body_bytes)
        self._dns_cache = dns_cache
        self._limits = {
            Destination.PROVIDER: (max_connections, max_connections_per_host),
            Destination.CUSTOM_HOST: (max_connections, max_connections_per_host),
            Destination.FETCH: (FETCH_CONNECTIONS, FETCH_CONNECTIONS_PER_HOST),
        }
        self._connect_timeout = connect_timeout
        self._base_resolver = resolver
        self._sessions: dict[Destination, aiohttp.ClientSession] = {}
        #: sessions for WebSocket handshakes (the realtime relay), made when first needed
        self._ws_sessions: dict[Destination, aiohttp.ClientSession] = {}

    async def open(self) -> None:
        for destination in self._limits:
            if destination not in self._sessions:
                self._sessions[destination] = self._session(destination, websockets=False)

    def _session(self, destination: Destination, *, websockets: bool) -> aiohttp.ClientSession:
        limit, per_host = self._limits[destination]
        connector = aiohttp.TCPConnector(
            limit=limit,
            limit_per_host=per_host,
            use_dns_cache=self._dns_cache is not None,
            ttl_dns_cache=self._dns_cache,
            resolver=self.policy.resolver(destination, self._base_resolver),
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            trust_env=False,  # no proxy from the environment: the policy sees the target
            # Only ws_connect can follow a redirect (it has no allow_redirects); HTTP requests
            # go without the trace, which costs every request its callbacks.
            trace_configs=[_no_redirects()] if websockets else None,
        )

    async def _send(self, request: UpstreamRequest) -> UpstreamResponse:
        session = self._sessions.get(request.destination)
        if session is None:
            await self.open()
            session = self._sessions[request.destination]
        deadline = _deadline(request.timeout)
        with _AIOHTTP_ERRORS.mapped(request):
            async with asyncio.timeout_at(deadline):
                response = await session.request(
                    request.method,
                    request.url,
                    headers=request.headers,
                    data=_content(request),
                    allow_redirects=False,
                )
        return _AiohttpResponse(response, request, deadline, self._limit(request))

    async def _websocket(self, request: UpstreamRequest, max_frame_bytes: int) -> UpstreamWebSocket:
        session = self._ws_sessions.get(request.destination)
        if session is None:
            session = self._ws_sessions[request.destination] = self._session(
                request.destination, websockets=True
            )
        deadline = _deadline(request.timeout)
        with _AIOHTTP_ERRORS.mapped(request):
            try:
                async with asyncio.timeout_at(deadline):
                    socket = await session.ws_connect(
                        request.url,
                        headers=request.headers,
                        max_msg_size=max_frame_bytes,
                        autoping=True,
                    )
            except (RedirectRefused, aiohttp.WSServerHandshakeError) as refused:
                raise _handshake_refused(request, refused) from None
        return _AiohttpWebSocket(socket, request)

    async def aclose(self) -> None:
        sessions = [*self._sessions.values(), *self._ws_sessions.values()]
        self._sessions, self._ws_sessions = {}, {}
        for session in sessions:
            await session.close()


def _handshake_refused(
    request: UpstreamRequest, refused: RedirectRefused | aiohttp.WSServerHandshakeError
) -> UpstreamBadResponse:
    """A WebSocket handshake the provider answered with a status instead of 101."""
    if isinstance(refused, RedirectRefused):
        error = UpstreamBadResponse(
            f"the provider at {redact_url(request.url)} answered the WebSocket handshake with "
            f"{refused.status}, a redirect to {redact_url(refused.location) or 'nowhere'!r}: "
            "the gateway never follows a provider's redirect",
            code="upstream_redirect",
        )
        error.extra["upstream_status"] = refused.status
        return error
    status = refused.status
    error = UpstreamBadResponse(
        f"the provider at {_host(request.url)} refused the WebSocket handshake"
        + (f" with status {status}" if status and status != 200 else ""),
        code="upstream_handshake_refused",
    )
    error.extra["upstream_status"] = status
    return error


# -------------------------------------------------------------------------
# httpx (opt-in: tests with MockTransport, or apps that already own a client)
# -------------------------------------------------------------------------


# httpx's own timeouts are HTTPErrors too; a connect timeout never reached the provider.
_HTTPX_ERRORS = _ClientErrors(
    connect=(httpx.ConnectError, httpx.ConnectTimeout),
    timeouts=(TimeoutError, httpx.TimeoutException),
    other=(httpx.HTTPError, httpx.StreamError),
)


class _HttpxResponse(UpstreamResponse):
    __slots__ = ("_deadline", "_limit", "_response", "headers", "request", "status")

    def __init__(
        self,
        response: httpx.Response,
        request: UpstreamRequest,
        deadline: float | None,
        limit: int,
    ) -> None:
        self._response = response
        self.request = request
        self._deadline = deadline
        self._limit = limit
        self.status = response.status_code
        self.headers = response.headers

    async def read(self) -> bytes:
        with _HTTPX_ERRORS.mapped(self.request, mid_response=True):
            async with asyncio.timeout_at(self._deadline):
                chunks = self._response.aiter_bytes()
                return await _collect(chunks, self.request, self._limit, self.status)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        with _HTTPX_ERRORS.mapped(self.request, mid_response=True):
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxTransport(Transport):
    """Sends through a caller-owned ``httpx.AsyncClient``.

    The outbound policy checks each URL (literal addresses included); host names are
    resolved by httpx, outside the policy's resolver, so the connect-time check is the
    aiohttp transport's. Use this one for tests (``httpx.MockTransport``) or an app's own
    client.

    :param client: the client to use. The gateway closes it on shutdown only when
        ``owns_client`` is true.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        owns_client: bool = False,
        policy: OutboundPolicy | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        super().__init__(policy=policy, max_body_bytes=max_body_bytes)
        self._client = client
        self._owns_client = owns_client

    async def open(self) -> None:
        return None

    async def _send(self, request: UpstreamRequest) -> UpstreamResponse:
        built = self._client.build_request(
            request.method, request.url, headers=request.headers, content=_content(request)
        )
        deadline = _deadline(request.timeout)
        with _HTTPX_ERRORS.mapped(request):
            async with asyncio.timeout_at(deadline):
                response = await self._client.send(built, stream=True, follow_redirects=False)
        return _HttpxResponse(response, request, deadline, self._limit(request))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


class ClientHostTransport(Transport):
    """The process's transport, for a target whose host the client chose: provider requests
    go through the pool for client-chosen hosts (:attr:`Destination.CUSTOM_HOST`); fetches
    keep theirs. The router hands it to the provider of such a target."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(policy=inner.policy, max_body_bytes=inner.max_body_bytes)
        self._inner = inner

    async def open(self) -> None:
        await self._inner.open()

    async def _send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.destination is Destination.PROVIDER:
            request = dataclasses.replace(request, destination=Destination.CUSTOM_HOST)
        return await self._inner._send(request)

    async def _websocket(self, request: UpstreamRequest, max_frame_bytes: int) -> UpstreamWebSocket:
        if request.destination is Destination.PROVIDER:
            request = dataclasses.replace(request, destination=Destination.CUSTOM_HOST)
        return await self._inner._websocket(request, max_frame_bytes)

    async def aclose(self) -> None:
        return None  # the inner transport is the process's: it closes it
