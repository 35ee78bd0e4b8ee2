"""What plugins and guardrails may use of the gateway: a small protocol, not the whole
:class:`~portkey_mw.Gateway`, so that no concern folder imports the application."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from portkey_mw.types import Receive, Scope, Send

if TYPE_CHECKING:
    from portkey_mw.config.server import ServerSettings
    from portkey_mw.fetch import Fetcher


class GatewayServices(Protocol):
    """The gateway as plugins see it (``gateway_startup``, guardrail checks)."""

    @property
    def settings(self) -> ServerSettings:
        """The validated server file."""

    @property
    def state(self) -> dict[str, Any]:
        """Free space shared by every request (``ctx.gateway_state``); keys start with the
        plugin's name."""

    @property
    def fetcher(self) -> Fetcher:
        """The client for URLs (webhooks, links): it applies the outbound policy."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The gateway as an ASGI app, for checks that call its own routes (moderation)."""
