"""Serve the gateway under a path prefix of a host app, passing everything else through."""

from __future__ import annotations

from typing import Any

from portkey_mw.app import Gateway
from portkey_mw.types import ASGIApp, Message, Receive, Scope, Send


class GatewayMiddleware:
    """Pure ASGI middleware: requests under ``prefix`` go to the gateway, others to ``app``.

    The host app's lifespan drives the gateway's, so its upstream pool and log task start
    and stop with the app::

        app = FastAPI()
        app.add_middleware(GatewayMiddleware, prefix="/llm")
        # OpenAI SDK: base_url="http://host/llm/v1"

    :param app: the host ASGI app.
    :param prefix: the path prefix the gateway serves (``"/llm"``; ``""`` for all ``/v1``).
    :param gateway: an existing :class:`Gateway`; otherwise one is built from ``kwargs``.
    """

    def __init__(
        self, app: ASGIApp, prefix: str = "", gateway: Gateway | None = None, **kwargs: Any
    ) -> None:
        self.app = app
        self.prefix = prefix.rstrip("/")
        self.gateway = gateway or Gateway(**kwargs)

    def _owns(self, path: str) -> bool:
        if not self.prefix:
            return path.startswith("/v1/") or path == "/v1"
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            root = scope.get("root_path", "")
            path: str = scope["path"]
            local = path[len(root) :] if root and path.startswith(root) else path
            if self._owns(local):
                child = dict(scope)
                child["root_path"] = root + self.prefix
                if scope["type"] == "http":
                    await self.gateway.handle_http(child, receive, send)
                else:  # /v1/realtime
                    await self.gateway.handle_websocket(child, receive, send)
                return
        elif scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        await self.app(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.gateway.startup()
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.shutdown()
            return message

        return wrapped
