"""The client's request body, read from ASGI ``receive`` chunk by chunk: the one place that
counts it against a byte limit (413), a time limit (408) and notices the client leaving
(499).

A body the gateway streams to an upstream (a file upload, a pass-through) is a
:class:`ClientBody` the transport iterates; a body the gateway reads whole
(:func:`portkey_mw._http.read_body`, a multipart form) iterates one too. A leaf module:
anything may import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from portkey_mw.bounds import whole_number
from portkey_mw.errors import GatewayError, InvalidRequest, PayloadTooLarge
from portkey_mw.types import Receive

#: the setting a request body's limit comes from, named in the 413
BODY_LIMIT = "server.max_body_bytes"
#: the setting an upload's (a file, a multipart form) limit comes from
UPLOAD_LIMIT = "server.max_upload_bytes"


def too_large(limit: int, setting: str = BODY_LIMIT) -> PayloadTooLarge:
    """The 413 for a body over ``limit`` bytes, naming the ``setting`` that set it."""
    return PayloadTooLarge(
        f"request body is larger than the gateway's limit of {limit} bytes ({setting})"
    )


def declared_length(
    headers: Mapping[str, str], limit: int, setting: str = BODY_LIMIT
) -> int | None:
    """The request's ``Content-Length`` (``None``: absent or not a number), checked before
    anything of the body is read.

    :raises PayloadTooLarge: it is over ``limit`` (413).
    """
    length = whole_number(headers.get("content-length"))
    if length is not None and length > limit:
        raise too_large(limit, setting)
    return length


class ClientBody:
    """The client's body as it arrives, iterated once (``async for``): 413 past ``limit``
    bytes, 408 when it has not all arrived within ``time_limit`` seconds of the request's
    arrival (when this was made), 499 when the client disconnects.

    What went wrong is kept in :attr:`failure`: when the body is streamed to an upstream,
    its error aborts the upstream request, and the transport and pipeline report it — the
    client's fault — instead of the upstream failure the abort looks like.

    :param receive: the request's ASGI ``receive``.
    :param limit: the most bytes the body may have.
    :param time_limit: seconds the client has to send the whole body (``None``: no limit).
    :param setting: the setting ``limit`` comes from, named in the 413.
    :param content_type: the client's ``Content-Type``, when it is forwarded with the body.
    :param declared: the client's ``Content-Length`` (already checked against ``limit``).
    """

    __slots__ = (
        "_deadline",
        "_receive",
        "_started",
        "content_type",
        "declared",
        "done",
        "failure",
        "limit",
        "setting",
        "size",
        "time_limit",
    )

    def __init__(
        self,
        receive: Receive,
        limit: int,
        time_limit: float | None,
        *,
        setting: str = BODY_LIMIT,
        content_type: str | None = None,
        declared: int | None = None,
    ) -> None:
        self._receive = receive
        self.limit = limit
        self.time_limit = time_limit
        self.setting = setting
        self.content_type = content_type
        self.declared = declared
        # counted from the request's arrival, not from when an upstream starts reading
        loop = asyncio.get_running_loop()
        self._deadline = None if time_limit is None else loop.time() + time_limit
        #: bytes read so far (for the log: never the bytes themselves)
        self.size = 0
        #: set once the last chunk was read (or reading stopped): from then on another
        #: reader (the disconnect watcher) may take the client's messages
        self.done = asyncio.Event()
        #: why the body stopped (over the limit, late, the client gone, read twice)
        self.failure: GatewayError | None = None
        self._started = False

    def headers(self) -> dict[str, str]:
        """The content headers an upstream request carrying this body sends: the client's."""
        headers = {}
        if self.content_type is not None:
            headers["content-type"] = self.content_type
        if self.declared is not None:
            headers["content-length"] = str(self.declared)
        return headers

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        self._start()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(self._deadline):
                        message = await self._receive()
                except TimeoutError:
                    raise self._fail(self._late()) from None
                chunk = self._take(message)
                if chunk:
                    yield chunk
                if not message.get("more_body", False):
                    return
        finally:
            self.done.set()

    async def read(self) -> bytes:
        """The whole body, for a request the gateway reads itself: the same checks, in a
        plain loop under one deadline (every JSON request comes this way)."""
        self._start()
        chunks: list[bytes] = []
        try:
            async with asyncio.timeout_at(self._deadline):
                while True:
                    message = await self._receive()
                    chunk = self._take(message)
                    if chunk:
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise self._fail(self._late()) from None
        finally:
            self.done.set()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _start(self) -> None:
        if self._started:  # a second attempt cannot replay what was already sent
            if self.failure is None:  # (else the first attempt's reason stays the error)
                self.failure = InvalidRequest(
                    "a request body streamed from the client cannot be sent twice",
                    code="upload_spent",
                )
            raise self.failure
        self._started = True

    def _take(self, message: Mapping[str, Any]) -> bytes:
        """One ``receive`` message's bytes, counted; raises when the client left or the
        body passed its limit."""
        if message["type"] == "http.disconnect":
            raise self._fail(
                InvalidRequest("client disconnected while sending the body", status=499)
            )
        chunk: bytes = message.get("body", b"")
        if chunk:
            self.size += len(chunk)
            if self.size > self.limit:
                raise self._fail(too_large(self.limit, self.setting))
        return chunk

    def _late(self) -> GatewayError:
        return InvalidRequest(
            f"the request body did not arrive within {self.time_limit:g} s",
            status=408,
            code="body_timeout",
        )

    def _fail(self, error: GatewayError) -> GatewayError:
        self.failure = error
        return error
