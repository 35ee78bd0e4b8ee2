"""The upstream transport seam: one pooled HTTP client per process.

The default is aiohttp, because on this project's benchmark a bare proxy made ~2,200 req/s
with aiohttp against ~180 with httpx's own pool (see DESIGN.md). An ``httpx.AsyncClient``
(including one over ``httpx.MockTransport``) can be passed instead through
:class:`HttpxTransport`. Both raise only :class:`~portkey_mw.errors.UpstreamConnectionError`
and :class:`~portkey_mw.errors.UpstreamTimeout`, so nothing above this module knows which
library is underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field

import aiohttp
import httpx

from portkey_mw.errors import UpstreamConnectionError, UpstreamTimeout


@dataclass(slots=True)
class UpstreamRequest:
    """What a provider asks the transport to send."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    #: seconds for the whole attempt: the response headers and, unless streaming, the body
    timeout: float | None = None
    stream: bool = False


class UpstreamResponse(ABC):
    """A response whose body has not been read yet. Always :meth:`aclose` it."""

    status: int
    headers: Mapping[str, str]

    @abstractmethod
    async def read(self) -> bytes:
        """The whole body."""

    @abstractmethod
    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, never re-buffered."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release the connection; if the body was not read to the end, drop it."""


class Transport(ABC):
    """Sends :class:`UpstreamRequest` objects. One instance serves the whole process."""

    @abstractmethod
    async def open(self) -> None:
        """Create the pool (inside the running event loop)."""

    @abstractmethod
    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        """Send the request and return once the status line and headers arrived."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the pool."""


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
        except self.connect as exc:
            raise _connection_error(request, exc) from exc
        except self.timeouts as exc:
            raise _timeout_error(request) from exc
        except self.other as exc:
            raise _connection_error(request, exc, mid_response=mid_response) from exc


def _deadline(timeout: float | None) -> float | None:
    """The loop time by which the whole attempt -- headers and body -- must be done."""
    return None if timeout is None else asyncio.get_running_loop().time() + timeout


def _host(url: str) -> str:
    # Name the host, never the query string (it may carry a key, e.g. Gemini's ?key=).
    return url.split("?", 1)[0]


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
    __slots__ = ("_deadline", "_request", "_response", "headers", "status")

    def __init__(
        self, response: aiohttp.ClientResponse, request: UpstreamRequest, deadline: float | None
    ) -> None:
        self._response = response
        self._request = request
        self._deadline = deadline
        self.status = response.status
        self.headers = response.headers

    async def read(self) -> bytes:
        with _AIOHTTP_ERRORS.mapped(self._request, mid_response=True):
            async with asyncio.timeout_at(self._deadline):
                return await self._response.read()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        with _AIOHTTP_ERRORS.mapped(self._request, mid_response=True):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        if self._response.content.at_eof():
            self._response.release()
        else:
            # Closing (not releasing) drops the TCP connection, which is how the upstream
            # learns that the client went away.
            self._response.close()


class AiohttpTransport(Transport):
    """The default transport: an ``aiohttp.ClientSession`` with a bounded connection pool.

    :param max_connections: pool size across all hosts.
    :param connect_timeout: seconds to establish a connection.
    """

    def __init__(self, *, max_connections: int = 1000, connect_timeout: float = 10.0) -> None:
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
            )

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if self._session is None:
            await self.open()
        assert self._session is not None
        deadline = _deadline(request.timeout)
        with _AIOHTTP_ERRORS.mapped(request):
            async with asyncio.timeout_at(deadline):
                response = await self._session.request(
                    request.method, request.url, headers=request.headers, data=request.body
                )
        return _AiohttpResponse(response, request, deadline)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


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
    __slots__ = ("_deadline", "_request", "_response", "headers", "status")

    def __init__(
        self, response: httpx.Response, request: UpstreamRequest, deadline: float | None
    ) -> None:
        self._response = response
        self._request = request
        self._deadline = deadline
        self.status = response.status_code
        self.headers = response.headers

    async def read(self) -> bytes:
        with _HTTPX_ERRORS.mapped(self._request, mid_response=True):
            async with asyncio.timeout_at(self._deadline):
                return await self._response.aread()

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        with _HTTPX_ERRORS.mapped(self._request, mid_response=True):
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxTransport(Transport):
    """Sends through a caller-owned ``httpx.AsyncClient``.

    :param client: the client to use. The gateway closes it on shutdown only when
        ``owns_client`` is true.
    """

    def __init__(self, client: httpx.AsyncClient, *, owns_client: bool = False) -> None:
        self._client = client
        self._owns_client = owns_client

    async def open(self) -> None:
        return None

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        built = self._client.build_request(
            request.method, request.url, headers=request.headers, content=request.body
        )
        deadline = _deadline(request.timeout)
        with _HTTPX_ERRORS.mapped(request):
            async with asyncio.timeout_at(deadline):
                response = await self._client.send(built, stream=True)
        return _HttpxResponse(response, request, deadline)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()
