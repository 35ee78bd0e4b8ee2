"""Serving the dashboard's files: a fixed table of package files, read once, sent with a
strict Content-Security-Policy. Nothing here reads the request beyond its path and method,
and no file name comes from the request: a path that is not in the table is a 404, so
``..`` or an encoded slash can reach nothing else."""

from __future__ import annotations

from importlib import resources
from types import MappingProxyType
from typing import Final

from portkey_mw import _http
from portkey_mw.errors import MethodNotAllowed, NotFound
from portkey_mw.types import Receive, Scope, Send

#: where the page is, below the gateway's mount point
DASHBOARD_PATH: Final = "/dashboard"
STATIC_PREFIX: Final = DASHBOARD_PATH + "/static/"

#: The page runs only its own files: no inline script or style, no other origin, no
#: plugins, no framing. ``connect-src 'self'`` is what lets it call the gateway's APIs.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: Final = MappingProxyType(
    {
        "content-security-policy": CONTENT_SECURITY_POLICY,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    }
)
#: the HTML is never cached (a new release's page must not run with old assets); the
#: assets are revalidated on every load, which costs a 304-sized round trip at most
HTML_CACHE: Final = "no-store"
ASSET_CACHE: Final = "no-cache"

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


def is_dashboard_path(path: str) -> bool:
    """Whether ``path`` (below the mount point) belongs to the dashboard."""
    return path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/")


class Dashboard:
    """The dashboard's routes: ``GET /dashboard`` (the page) and
    ``GET /dashboard/static/<file>`` (its scripts and styles), ``HEAD`` for both.

    The files are read from the package once, when the first request comes.
    """

    def __init__(self) -> None:
        self._files: dict[str, tuple[bytes, str]] | None = None

    def _table(self) -> dict[str, tuple[bytes, str]]:
        """Every servable file: its path below ``static/`` -> (bytes, content type)."""
        if self._files is None:
            files: dict[str, tuple[bytes, str]] = {}
            root = resources.files(__package__).joinpath("static")
            stack = [(root, "")]
            while stack:
                folder, prefix = stack.pop()
                for entry in folder.iterdir():
                    name = prefix + entry.name
                    if entry.is_dir():
                        stack.append((entry, name + "/"))
                        continue
                    suffix = name[name.rfind(".") :] if "." in name else ""
                    if suffix in _TYPES:
                        files[name] = (entry.read_bytes(), _TYPES[suffix])
            self._files = files
        return self._files

    async def __call__(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        """Serve ``path`` (below the mount point, one :func:`is_dashboard_path` accepts)."""
        base = dict(SECURITY_HEADERS)
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            error = MethodNotAllowed(f"{path} accepts GET, not {method}")
            await _http.send_error(send, error, {**base, "allow": "GET, HEAD"})
            return
        if path == DASHBOARD_PATH + "/":
            # relative asset URLs resolve from /dashboard, not /dashboard/
            await _send_redirect(send, "../dashboard", base)
            return
        if path == DASHBOARD_PATH:
            name, cache = "index.html", HTML_CACHE
        elif path.startswith(STATIC_PREFIX) and path[len(STATIC_PREFIX) :] != "index.html":
            name, cache = path[len(STATIC_PREFIX) :], ASSET_CACHE
        else:
            name, cache = "", ""
        found = self._table().get(name)
        if found is None:
            await _http.send_error(send, NotFound(f"no route for {path}"), base)
            return
        body, content_type = found
        headers = {**base, "cache-control": cache, "content-type": content_type}
        if method == "HEAD":
            await _send_head(send, len(body), headers)
            return
        await _http.send_bytes(send, 200, body, headers)


async def _send_head(send: Send, size: int, headers: dict[str, str]) -> None:
    raw = _http.encode_headers(headers)
    raw.append((b"content-length", str(size).encode("latin-1")))
    await send({"type": "http.response.start", "status": 200, "headers": raw})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_redirect(send: Send, location: str, headers: dict[str, str]) -> None:
    raw = _http.encode_headers({**headers, "location": location, "content-length": "0"})
    await send({"type": "http.response.start", "status": 308, "headers": raw})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
