"""Inbound API formats: requests in another API's shape, served through the same pipeline.

The pipeline speaks OpenAI chat completions inside: hooks, router and providers all see the
OpenAI shape. An inbound format translates the client's request into it on the way in, and
the response, the stream and the errors back on the way out.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from portkey_mw.errors import GatewayError

if TYPE_CHECKING:
    from portkey_mw.context import RequestContext

#: ``ctx.state`` key: the endpoint a log record names when the client's differs from the one
#: served inside (``/v1/responses`` answered through chat completions)
LOGGED_ENDPOINT = "portkey_mw.logged_endpoint"


class InboundFormat(Protocol):
    """How one foreign API's requests and responses map onto OpenAI chat completions."""

    name: str

    def request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI chat completions request for the client's body (or the body itself,
        checked, when the translation waits for the route: see :meth:`routed`)."""

    async def routed(self, ctx: RequestContext, native: bool) -> InboundFormat | None:
        """Once the request's plan is resolved: the format that serves it from here on.

        :param native: every provider the plan can reach serves ``ctx.endpoint`` itself.
        :returns: ``self`` for a format translated in :meth:`request`; a per-request
            format (it may replace ``ctx.body`` and ``ctx.endpoint``), or ``None`` for a
            request forwarded and answered as it is.
        """

    def response(self, completion: dict[str, Any]) -> dict[str, Any]:
        """The client's response for a successful OpenAI chat completion."""

    def error(self, error: GatewayError) -> bytes:
        """The client's error body for a gateway error."""

    def provider_error(self, status: int, body: Any) -> bytes:
        """The client's error body for a provider's (OpenAI-shaped) error response."""

    def stream(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The client's event stream for an OpenAI chat completion stream."""

    def stream_error(self, error: GatewayError) -> bytes:
        """The event that ends a stream that failed after its start."""


__all__ = ["LOGGED_ENDPOINT", "InboundFormat"]
