"""How the control-plane commands reach the admin API: one code path, two targets.

With ``--url`` (or ``$PORTKEY_MW_URL``) the commands call a running portkey-mw over HTTP
with the admin key. Without it they run the gateway's admin API in this process, over the
local store, through ``httpx.ASGITransport`` -- the same requests, the same answers, the
same errors. :func:`_local_client` is the one place that knows how the in-process app is
made.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import click
import httpx

from portkey_mw.cli._common import load_settings
from portkey_mw.errors import GatewayError
from portkey_mw.redact import mask_text, redact_url
from portkey_mw.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")

#: The in-process app's made-up origin (nothing listens there; the transport is a call).
LOCAL_ORIGIN = "http://portkey-mw.local"
#: Seconds one admin request may take before the command gives up.
TIMEOUT = 30.0
#: Seconds the in-process app has to finish its lifespan call once it answered.
STOP_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where the commands send their requests.

    :param url: a running server's root (with its mount prefix); ``None``: the local store.
    :param admin_key: sent as ``x-portkey-api-key``; never printed.
    :param server_file: the server file the local store's settings come from.
    """

    url: str | None
    admin_key: str | None = field(default=None, repr=False)
    server_file: Path | None = None

    @property
    def where(self) -> str:
        """The target as error messages name it (never with userinfo or a query)."""
        return (redact_url(self.url) or "") if self.url else "the local store"


def target_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--url``, ``--admin-key`` and ``--server-file``, handed over as ``target``."""

    @click.option(
        "--url",
        envvar="PORTKEY_MW_URL",
        default=None,
        help="A running portkey-mw's root URL (default: $PORTKEY_MW_URL; without it, the "
        "local store, in this process).",
    )
    @click.option(
        "--admin-key",
        envvar="PORTKEY_MW_ADMIN_KEY",
        default=None,
        show_default=False,
        help="The admin key (default: $PORTKEY_MW_ADMIN_KEY). Prefer the variable: an "
        "option's value lands in the shell's history.",
    )
    @click.option(
        "--server-file",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="PORTKEY_MW_CONFIG",
        help="Without --url: the server file naming the local store (default: $PORTKEY_MW_CONFIG).",
    )
    @functools.wraps(command)
    def with_target(
        *args: Any, url: str | None, admin_key: str | None, server_file: Path | None, **kw: Any
    ) -> Any:
        return command(*args, target=Target(url or None, admin_key or None, server_file), **kw)

    return with_target


class AdminError(click.ClickException):
    """The admin API refused or failed: its ``error.message``, exit status 1."""

    #: the HTTP status it answered (``None``: it could not be reached)
    status: int | None = None


class AdminClient:
    """The admin API, wherever it runs: JSON in, JSON objects out, errors as messages.

    :param client: an ``httpx.AsyncClient`` whose base URL is the gateway's root.
    :param target: what error messages name, and the admin key to send.
    """

    def __init__(self, client: httpx.AsyncClient, target: Target) -> None:
        self._client = client
        self._target = target
        self._secrets: list[str] = [target.admin_key] if target.admin_key else []

    def keep_secret(self, *values: str | None) -> None:
        """Never print these (a provider key this command sends) in any message."""
        self._secrets.extend(v for v in values if v)

    def hide(self, text: str) -> str:
        """``text`` without any secret this command knows."""
        return mask_text(text, sorted(self._secrets, key=len, reverse=True))

    async def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str | None] | None = None,
    ) -> dict[str, Any]:
        """Send one request to ``/v1<path>``; the answer's JSON object.

        :raises AdminError: the server is unreachable, refused (4xx) or failed (5xx).
        """
        headers = {"accept": "application/json"}
        if self._target.admin_key:
            headers["x-portkey-api-key"] = self._target.admin_key
        try:
            reply = await self._client.request(
                method,
                f"/v1{path}",
                json=dict(body) if body is not None else None,
                params={k: v for k, v in (params or {}).items() if v},
                headers=headers,
            )
        except httpx.HTTPError as exc:
            reason = self.hide(str(exc) or type(exc).__name__)
            raise AdminError(f"cannot reach portkey-mw at {self._target.where}: {reason}") from None
        try:
            answer = reply.json()
        except ValueError:
            answer = None
        if reply.is_success and isinstance(answer, dict):
            return answer
        error = AdminError(self.hide(self._failure(reply.status_code, answer)))
        error.status = reply.status_code
        raise error

    def _failure(self, status: int, answer: Any) -> str:
        message = _message(answer)
        if message is None:
            # not the admin API answering: a wrong --url, a proxy, another server
            return (
                f"{self._target.where} answered {status} without an admin API error: "
                "is it portkey-mw's root URL (with its mount prefix)?"
            )
        if status == 401 and not self._target.admin_key:
            message += " (give the admin key with $PORTKEY_MW_ADMIN_KEY or --admin-key)"
        return f"{message} (HTTP {status})"


def _message(answer: Any) -> str | None:
    """``error.message`` of an OpenAI-style error, or ``data.message`` of Portkey's own."""
    if not isinstance(answer, dict):
        return None
    for outer in ("error", "data"):
        inner = answer.get(outer)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return None


def run(target: Target, work: Callable[[AdminClient], Awaitable[T]]) -> T:
    """Run ``work`` against the target's admin API and return what it returns."""

    async def main() -> T:
        async with _connect(target) as client:
            return await work(AdminClient(client, target))

    return asyncio.run(main())


@asynccontextmanager
async def _connect(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    if target.url is None:
        async with _local_client(target.server_file) as client:
            yield client
        return
    url = target.url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise click.ClickException(f"--url must be an http(s) URL, got {target.where!r}")
    async with httpx.AsyncClient(base_url=url, timeout=TIMEOUT) as client:
        yield client


@asynccontextmanager
async def _local_client(server_file: Path | None) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests go to the admin API of this process, over the store
    the server file (or the environment) names; the app started and stopped around it.

    :func:`portkey_mw.app.local_admin_app` is the gateway whose admin calls are the
    operator's: whoever can read the data directory needs no admin key.
    """
    from portkey_mw.app import local_admin_app

    settings = load_settings(server_file)
    try:
        app = local_admin_app(settings)
    except GatewayError as exc:
        raise click.ClickException(exc.message) from None
    async with lifespan(app) as served:
        transport = httpx.ASGITransport(app=served)
        async with httpx.AsyncClient(
            transport=transport, base_url=LOCAL_ORIGIN, timeout=TIMEOUT
        ) as client:
            yield client


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """Run ``app``'s ASGI lifespan around the block, as a server would.

    Yields the app to send requests to: it hands each request the lifespan's ``state``
    (which ``httpx.ASGITransport`` does not). An app without lifespan support is served
    as it is; one whose start-up fails raises a :class:`click.ClickException` with its
    message (never a traceback: it could show a record's values).
    """
    state: dict[str, Any] = {}
    to_app: asyncio.Queue[Message] = asyncio.Queue()
    from_app: asyncio.Queue[Message] = asyncio.Queue()
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}

    async def send(message: Message) -> None:
        await from_app.put(message)

    async def serve() -> None:
        await app(scope, to_app.get, send)

    task = asyncio.create_task(serve())
    await to_app.put({"type": "lifespan.startup"})
    reply = await _reply(task, from_app)
    if reply is None:  # no lifespan support: the app runs without one
        await _settle(task)
    elif reply["type"] != "lifespan.startup.complete":
        raise click.ClickException(f"the local admin API did not start: {await _reason(task)}")

    async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope = {**scope, "state": dict(state)}
        await app(scope, receive, send)

    try:
        yield with_state
    finally:
        if reply is not None:
            await to_app.put({"type": "lifespan.shutdown"})
            await _reply(task, from_app)
            await _settle(task)


async def _reply(task: asyncio.Task[None], replies: asyncio.Queue[Message]) -> Message | None:
    """The app's next lifespan message, or ``None`` if it returned or raised first."""
    waiting = asyncio.ensure_future(replies.get())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    return None


async def _settle(task: asyncio.Task[None]) -> None:
    """Wait for the app's lifespan call to end; what it raised does not matter any more."""
    try:
        await asyncio.wait_for(task, STOP_SECONDS)
    except Exception:  # an app without lifespan support raises here, by the ASGI spec
        return


async def _reason(task: asyncio.Task[None]) -> str:
    """Why the app's start-up failed: a gateway error's message, else the error's type
    (its text, like the traceback an app may put in ``lifespan.startup.failed``, could
    hold a value from the store)."""
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
    except TimeoutError:
        task.cancel()
        return "its start-up failed"
    except GatewayError as exc:
        return exc.message
    except Exception as exc:
        return type(exc).__name__
    return "its start-up failed"


def call(
    target: Target,
    method: str,
    path: str,
    body: Mapping[str, Any] | None = None,
    *,
    params: Mapping[str, str | None] | None = None,
    secrets: tuple[str | None, ...] = (),
) -> dict[str, Any]:
    """One request to the target's admin API (see :meth:`AdminClient.call`).

    :param secrets: values the body carries that no message may show (provider keys).
    """

    async def work(api: AdminClient) -> dict[str, Any]:
        api.keep_secret(*secrets)
        return await api.call(method, path, body, params)

    return run(target, work)


def given(**fields: Any) -> dict[str, Any]:
    """The body fields the user gave (``None`` is "not given", never "clear")."""
    return {name: value for name, value in fields.items() if value is not None}


def segment(value: str) -> str:
    """A slug or id as one path segment: a ``/`` or ``?`` in it cannot reach another route."""
    return quote(value, safe="@-._~")
