"""The HTTP protocol ``portkey-mw serve`` runs: uvicorn's httptools protocol, bounded heads.

uvicorn's httptools protocol arms no timer until a first request has been answered (its
keep-alive timeout only runs between requests), and it accepts request heads of any size.
A client that connects and sends nothing, or trickles header bytes, holds a connection
forever; one that sends megabytes of headers makes the process hold them.
:class:`BoundedHttpToolsProtocol` gives every request head (the request line and the
headers) a deadline and a size, and keeps the rest of what uvicorn does: keep-alive,
pipelining, the keep-alive timeout, flow control, upgrades.

It depends on these uvicorn internals (checked against uvicorn 0.54): the parser callbacks
and ``data_received`` of ``HttpToolsProtocol``, ``cycle.response_complete``,
``on_response_complete`` being the callback a cycle calls when its response is sent, and
``send_400_response`` being how a parser error is answered.
"""

from __future__ import annotations

import asyncio
import functools
import http
import os
from dataclasses import dataclass
from typing import Any, NoReturn

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from portkey_mw.config.server import ServerOptions, ServerSettings
from portkey_mw.errors import GatewayError, HeadersTooLarge

__all__ = ["BoundedHttpToolsProtocol", "HeadLimits", "process_head_limits"]

log = structlog.get_logger("portkey_mw.server")


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """How long a client may take to send a request head, and how large the head may be.

    :param timeout: seconds from the connection (or a new request's first byte) to the
        blank line that ends the headers.
    :param max_bytes: the request line and all headers together.
    :param max_value_bytes: any one header value.
    """

    timeout: float
    max_bytes: int
    max_value_bytes: int

    @classmethod
    def from_options(cls, options: ServerOptions) -> HeadLimits:
        """The limits set in the ``server`` section of a server file."""
        return cls(options.header_timeout, options.max_header_bytes, options.max_header_value_bytes)


@functools.cache
def process_head_limits() -> HeadLimits:
    """The limits of this process, from the server file named by ``PORTKEY_MW_CONFIG``.

    Read from the environment rather than handed over by ``serve``: with ``--workers N``
    uvicorn starts fresh processes that import this class by name, and they find the file
    the same way the app factory does (:func:`portkey_mw.server.app`). Read once per process.
    """
    path = os.environ.get("PORTKEY_MW_CONFIG")
    options = ServerSettings.from_file(path).server if path else ServerOptions()
    return HeadLimits.from_options(options)


class _ParsingStopped(Exception):
    """Raised in a parser callback: httptools stops at once and raises a parser error."""


def _head_timeout(limits: HeadLimits) -> GatewayError:
    return GatewayError(
        f"the request line and headers did not arrive within {limits.timeout:g} seconds",
        status=408,
        type="invalid_request_error",
        code="header_timeout",
    )


def _head_too_large(limits: HeadLimits) -> GatewayError:
    return HeadersTooLarge(f"the request line and headers exceed {limits.max_bytes} bytes")


def _header_value_too_large(limits: HeadLimits) -> GatewayError:
    return HeadersTooLarge(f"a request header value exceeds {limits.max_value_bytes} bytes")


def _closing_response(error: GatewayError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete response carrying ``error``, after which the connection closes."""
    body = error.to_bytes()
    status = http.HTTPStatus(error.status)
    lines = [b"HTTP/1.1 %d %s" % (status.value, status.phrase.encode("ascii"))]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit on every request head.

    The deadline runs from the moment the connection is made and, on a kept-alive
    connection, from the first byte of each new request, until the blank line ending the
    headers. Past it, a client that began a request gets ``408``; one that never did just
    loses the connection. A head larger than its limits gets ``431``. Both close the
    connection. The limits come from :func:`process_head_limits`.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.head_limits = process_head_limits()
        self._head_timer: asyncio.TimerHandle | None = None
        # Set when the deadline passed while an earlier response was still being sent.
        self._head_deadline_deferred = False
        # True from the connection's start, and from the end of each message, until the
        # blank line of the next head: bytes received meanwhile belong to a head.
        self._head_open = True
        self._head_started = False  # the parser saw this head's first byte
        self._head_bytes_received = 0  # raw bytes fed to the parser while the head is open
        self._head_bytes_parsed = 0  # URL, header names and values the callbacks delivered
        self._heads_completed = 0
        self._rejection: GatewayError | None = None  # the answer to a stopped parser

    # asyncio protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the clock: a fresh connection has the same time as a new request."""
        super().connection_made(transport)
        self._start_head_clock()

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._stop_head_clock()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser no more head bytes than the head has room for."""
        if self._head_open:
            room = self.head_limits.max_bytes - self._head_bytes_received
            if len(data) > room:
                self._receive_beyond_head_room(data, room)
                return
            self._head_bytes_received += len(data)
        super().data_received(data)
        if self._head_open and (self._head_started or self._head_bytes_received):
            # A new head began in these bytes. Starting its clock here, after parsing, and
            # not in on_message_begin, saves a timer for every head that arrives whole.
            self._start_head_clock()

    def _receive_beyond_head_room(self, data: bytes, room: int) -> None:
        """Feed the bytes the head has room for, and the rest only if the head ended there.

        httptools holds a header's value until the next header begins, so no callback sees
        a header that never ends: only counting raw bytes bounds what it holds. Splitting
        keeps a body (or the next request) that arrives in the same read as its head from
        counting as head bytes.
        """
        heads_completed = self._heads_completed
        self._head_bytes_received += room
        super().data_received(data[:room])
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            # A parser error was answered, or the connection became a WebSocket (uvicorn
            # drops bytes after an upgrade request in the same read, too).
            return
        if self._heads_completed == heads_completed:
            self._reject(_head_too_large(self.head_limits))
            return
        self.data_received(data[room:])

    # httptools parser callbacks

    def on_message_begin(self) -> None:
        """A new head: its callbacks' byte count starts again."""
        super().on_message_begin()
        self._head_started = True
        self._head_bytes_parsed = 0

    def on_url(self, url: bytes) -> None:
        """Count the URL before uvicorn keeps it (it may arrive in pieces)."""
        self._count_parsed_head_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Check one header before uvicorn keeps it."""
        if len(value) > self.head_limits.max_value_bytes:
            self._stop_parsing(_header_value_too_large(self.head_limits))
        self._count_parsed_head_bytes(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is complete in time: stop its clock, then let uvicorn run the request."""
        self._stop_head_clock()
        self._head_open = self._head_started = False
        self._head_bytes_received = 0
        self._heads_completed += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """Bytes after a message's end belong to the next request's head."""
        self._head_open = True
        super().on_message_complete()

    # uvicorn hooks

    def on_response_complete(self) -> None:
        """Give a head whose deadline passed while this response was sent its full time."""
        super().on_response_complete()
        if self._head_deadline_deferred and not self._response_pending():
            self._head_deadline_deferred = False
            self._start_head_clock()

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers every parser error with 400; a stopped parser has its own answer."""
        rejection, self._rejection = self._rejection, None
        if rejection is None:
            super().send_400_response(msg)
        else:
            self._reject(rejection)

    # the head's limits

    def _count_parsed_head_bytes(self, size: int) -> None:
        # Exact for each head, even one that began in the middle of a read, where the raw
        # count in data_received cannot tell which bytes were the head's.
        self._head_bytes_parsed += size
        if self._head_bytes_parsed > self.head_limits.max_bytes:
            self._stop_parsing(_head_too_large(self.head_limits))

    def _stop_parsing(self, error: GatewayError) -> NoReturn:
        # An exception in a callback stops httptools where it is, so nothing after the
        # offending bytes is buffered; it surfaces as a parser error, which uvicorn answers
        # through send_400_response, where the rejection is sent instead.
        self._rejection = error
        raise _ParsingStopped

    def _start_head_clock(self) -> None:
        if self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.head_limits.timeout, self._head_late)

    def _stop_head_clock(self) -> None:
        self._head_deadline_deferred = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._response_pending():
            # An earlier request on this connection is still being answered, and reading
            # may be paused until it is (pipelining): the client is not the one late, and
            # a 408 now would land inside that response. The clock restarts after it.
            self._head_deadline_deferred = True
            return
        if self._head_started:
            self._reject(_head_timeout(self.head_limits))
        else:
            log.debug("idle_connection_closed", client=self._client_address())
            self.transport.close()

    def _response_pending(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _reject(self, error: GatewayError) -> None:
        log.info(
            "request_head_rejected",
            status=error.status,
            reason=error.message,
            client=self._client_address(),
        )
        if not self._response_pending():
            # While an earlier response is being sent (a pipelined head, or trailers of a
            # chunked body), an answer now would land inside it: only close.
            self.transport.write(_closing_response(error, self.server_state.default_headers))
        self.transport.close()

    def _client_address(self) -> str | None:
        if self.client is None:
            return None
        host, port = self.client
        return f"{host}:{port}"
