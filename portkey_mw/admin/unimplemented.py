"""Control-plane families the portkey-ai SDK has and portkey-mw does not (yet) serve.

Each answers 404 with a message saying so, in the error shape the SDK reads, instead of
a bare "not found" that reads like a typo in the client's base URL.
"""

from __future__ import annotations

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from portkey_mw.admin.http import error_response
from portkey_mw.admin.scopes import PREFIX
from portkey_mw.errors import NotFound

#: path prefix -> (what it is, whether a later version is planned to serve it)
FAMILIES: dict[str, tuple[str, bool]] = {
    f"{PREFIX}/admin/users": ("organisation users and invites", False),
    f"{PREFIX}/admin/workspaces": ("workspaces", False),
    f"{PREFIX}/integrations": ("integrations (portkey-mw's providers hold credentials)", False),
    f"{PREFIX}/mcp-integrations": ("MCP integrations", False),
    f"{PREFIX}/mcp-servers": ("MCP servers", False),
    f"{PREFIX}/guardrails": ("saved guardrails", True),
}


class Unimplemented:
    """An ASGI app answering every request under one family's prefix with a 404."""

    def __init__(self, prefix: str, what: str, planned: bool) -> None:
        later = " yet" if planned else ""
        self.error = NotFound(
            f"portkey-mw does not implement the {what} API ({prefix}){later}",
            code="not_implemented",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the 404."""
        await error_response(self.error)(scope, receive, send)


def unimplemented_routes() -> list[Route]:
    """Routes for every family of :data:`FAMILIES`, the prefix itself and below it."""
    routes = []
    for prefix, (what, planned) in FAMILIES.items():
        app = Unimplemented(prefix, what, planned)
        routes.append(Route(prefix, app))
        routes.append(Route(prefix + "/{rest:path}", app))
    return routes
