"""The planted-secret scan: every response and log record the suite produces is searched
for the values of :mod:`tests.planted`.

It looks at:

* every HTTP response a test receives through httpx (the openai, anthropic and portkey-ai
  SDKs use it, as do the tests themselves): status line headers and the whole body,
  streamed bodies included, from gateways in process (``httpx.ASGITransport``), mounted in
  a threaded server, or run as ``portkey-mw serve``;
* every request log record an in-process gateway hands its sinks (``LogEvent.to_dict``),
  and every record the SQL log store inserts (``POST /v1/logs`` custom logs included);
* every warning or error an in-process gateway logs through the stdlib;
* the whole output (stdout and stderr: JSON log lines) of every ``portkey-mw serve``.

A planted value found anywhere is a leak; ``conftest.py`` fails the test during which it
was found.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import orjson

from tests import planted


class Scanner:
    """Finds planted values in text; keeps what it found."""

    def __init__(self) -> None:
        self.leaks: list[str] = []

    def scan(self, where: str, data: bytes | str) -> None:
        """Record every planted value in ``data`` (plain or JSON-escaped)."""
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else data
        for secret in planted.ALL:
            forms = {secret.encode(), orjson.dumps(secret)[1:-1]}
            if any(form in raw for form in forms):
                self.leaks.append(f"{where}: {secret[:12]}...")

    def take(self) -> list[str]:
        """The leaks found since the last call."""
        found, self.leaks = self.leaks, []
        return found


SCANNER = Scanner()


class _Tail:
    """Scans a body chunk by chunk; values split across chunks are found too."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.tail = b""
        self.keep = max(len(s) for s in planted.ALL) * 6

    def feed(self, chunk: bytes) -> None:
        window = self.tail + chunk
        SCANNER.scan(self.where, window)
        self.tail = window[-self.keep :]


class _SyncTee(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, where: str) -> None:
        self._inner = inner
        self._tail = _Tail(where)

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._tail.feed(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class _AsyncTee(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, where: str) -> None:
        self._inner = inner
        self._tail = _Tail(where)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            self._tail.feed(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


def _headers(where: str, response: httpx.Response) -> None:
    SCANNER.scan(where, "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items()))


def install() -> None:
    """Patch httpx's transports and the gateway's log dispatch (once, for the session)."""
    if getattr(httpx.HTTPTransport, "_scanned", False):
        return
    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request
    asgi_send = httpx.ASGITransport.handle_async_request

    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        response = sync_send(self, request)
        where = f"response to {request.method} {request.url.copy_with(query=None)}"
        _headers(where, response)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _SyncTee(response.stream, where)
        return response

    def make_async(original: Any) -> Any:
        async def handle_async_request(self: Any, request: httpx.Request) -> httpx.Response:
            response = await original(self, request)
            where = f"response to {request.method} {request.url.copy_with(query=None)}"
            _headers(where, response)
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _AsyncTee(response.stream, where)
            return response

        return handle_async_request

    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = make_async(async_send)  # type: ignore[method-assign]
    httpx.ASGITransport.handle_async_request = make_async(asgi_send)  # type: ignore[method-assign]
    httpx.HTTPTransport._scanned = True  # type: ignore[attr-defined]

    from portkey_mw.logevents import LogDispatcher

    deliver = LogDispatcher._deliver

    async def scanned_deliver(self: LogDispatcher, sink: Any, batch: list[Any]) -> None:
        for event in batch:
            SCANNER.scan(f"log record {event.trace_id}", orjson.dumps(event.to_dict()))
        await deliver(self, sink, batch)

    LogDispatcher._deliver = scanned_deliver  # type: ignore[method-assign]

    from portkey_mw.logstore.query import LogQueries

    insert = LogQueries.insert

    async def scanned_insert(self: LogQueries, records: Any) -> None:
        # Every record the SQL log store keeps: the sink's and logs.create's alike.
        for record in records:
            SCANNER.scan("stored log record", orjson.dumps(record, default=str))
        await insert(self, records)

    LogQueries.insert = scanned_insert  # type: ignore[method-assign]
    logging.getLogger().addHandler(_LogScan(logging.WARNING))


class _LogScan(logging.Handler):
    """Scans every stdlib log record (warnings and errors of in-process gateways)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            SCANNER.scan(f"log {record.name}", self.format(record))
        except Exception:  # the scan must never break logging
            self.handleError(record)
