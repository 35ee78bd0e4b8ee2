"""The hooks a portkey-mw plugin can implement.

pluggy calls hooks synchronously, so async work reaches the core in one of two ways:

* **Registration hooks** run once at start-up and hand the core objects whose methods are
  async (a :class:`~portkey_mw.Provider`, a guardrail, a cache backend, a log sink).
* **Per-request hooks** may be plain functions or ``async def``: the core awaits whatever a
  hook returns when it is awaitable. They run one at a time, in pluggy's order (``tryfirst``
  and ``trylast`` apply), so a hook that answers stops the ones after it.

No hook here uses ``firstresult``: with an ``async def`` implementation it would hand back an
un-awaited coroutine. Every hook is documented, with an example, in ``docs/plugin_hooks.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from portkey_mw.config.server import ServerSettings
    from portkey_mw.context import GatewayResponse, RequestContext
    from portkey_mw.guardrails.api import Guardrail
    from portkey_mw.interfaces import (
        CacheBackend,
        LogSink,
        Provider,
        SemanticIndex,
        SemanticVerifier,
    )
    from portkey_mw.services import GatewayServices

PROJECT_NAME = "portkey_mw"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

# -------------------------------------------------------------------------
# Registration hooks: called once, at start-up
# -------------------------------------------------------------------------


@hookspec
def register_providers(register: Callable[[Provider], None], settings: ServerSettings) -> None:
    """Register provider adapters.

    :param register: call it once per :class:`~portkey_mw.Provider`; its ``id`` is the
        value configs and the ``x-portkey-provider`` header use. A later registration of the
        same id replaces an earlier one, so a plugin can override a built-in provider.
    :param settings: the validated server file (for plugin settings, extra providers).
    """


@hookspec
def register_guardrails(register: Callable[[Guardrail], None], settings: ServerSettings) -> None:
    """Register guardrail checks, referenced from configs by their ``id``.

    :param register: call it once per :class:`~portkey_mw.Guardrail`.
    :param settings: the validated server file.
    """


@hookspec
def register_cache_backends(
    register: Callable[[CacheBackend], None], settings: ServerSettings
) -> None:
    """Register response cache backends, selected by ``name``.

    :param register: call it once per :class:`~portkey_mw.CacheBackend`.
    :param settings: the validated server file.
    """


@hookspec
def register_semantic_indexes(
    register: Callable[[SemanticIndex], None], settings: ServerSettings
) -> None:
    """Register vector stores for the semantic cache, selected by ``name``.

    :param register: call it once per :class:`~portkey_mw.SemanticIndex`.
    :param settings: the validated server file.
    """


@hookspec
def register_semantic_verifiers(
    register: Callable[[SemanticVerifier], None], settings: ServerSettings
) -> None:
    """Register checks a semantic-cache candidate must pass before it is served, selected
    by ``name`` (server file ``cache.verifiers``, or a config's ``cache.verifiers``).

    :param register: call it once per :class:`~portkey_mw.SemanticVerifier`. A later
        registration of the same name replaces an earlier one.
    :param settings: the validated server file.
    """


@hookspec
def register_log_sinks(register: Callable[[LogSink], None], settings: ServerSettings) -> None:
    """Register sinks that receive request log events, in batches, off the hot path.

    :param register: call it once per :class:`~portkey_mw.LogSink`.
    :param settings: the validated server file.
    """


@hookspec
def gateway_startup(gateway: GatewayServices) -> Awaitable[None] | None:
    """Open resources (connections, background tasks) when the gateway starts.

    Called after every plugin is registered and the upstream client is open. May be async.

    :param gateway: the starting gateway (see :class:`~portkey_mw.services.GatewayServices`).
    """


@hookspec
def gateway_shutdown(gateway: GatewayServices) -> Awaitable[None] | None:
    """Close what :func:`gateway_startup` opened. May be async.

    Called after the last request finished and the log queue was drained.

    :param gateway: the stopping gateway.
    """


# -------------------------------------------------------------------------
# Per-request hooks: called for every request, on the hot path
# -------------------------------------------------------------------------


@hookspec
def on_request(ctx: RequestContext) -> Awaitable[GatewayResponse | None] | GatewayResponse | None:
    """Inspect, rewrite, answer or deny a request before it is routed.

    * **rewrite**: change the body with ``ctx.set_body(...)`` / ``ctx.set_param(...)``
      (so the core knows to re-serialise it), or edit ``ctx.metadata``;
    * **answer**: return a :class:`~portkey_mw.GatewayResponse` (e.g. a cache hit); no
      provider is called and later ``on_request`` hooks are skipped;
    * **deny**: raise :class:`~portkey_mw.errors.RequestDenied` (or any
      :class:`~portkey_mw.errors.GatewayError`); the client gets its status and body.

    :param ctx: the request; ``ctx.body`` is the parsed JSON body.
    :return: ``None`` to go on, or a response to answer with. May be awaitable.
    """


@hookspec
def on_response(ctx: RequestContext) -> Awaitable[None] | None:
    """Check, transform or record a complete (non-streamed) response.

    ``ctx.response`` holds it: read ``ctx.response.json()``, replace the body with
    ``ctx.response.set_json(...)``, add headers to ``ctx.response.headers``, or raise a
    :class:`~portkey_mw.errors.GatewayError` to answer with an error instead. Streamed
    responses go through :func:`on_stream_chunk` instead; ``on_response`` then runs once
    after the stream ended, for recording only (``ctx.response.stream_complete``).

    :param ctx: the request, with ``ctx.response`` set.
    """


@hookspec
def on_stream_chunk(ctx: RequestContext, chunk: dict[str, Any]) -> Any:
    """Check or transform one event of a streamed response, as it passes.

    ``chunk`` is one parsed server-sent event (an OpenAI ``chat.completion.chunk``).
    Mutate it in place or return a replacement dict; raise a
    :class:`~portkey_mw.errors.GatewayError` to stop the stream, which then ends with a
    well-formed error event. Only when some plugin implements this hook does the core parse
    the stream; otherwise bytes are relayed untouched.

    :param ctx: the request, with ``ctx.response`` set (status and headers already sent).
    :param chunk: the event's JSON data.
    :return: ``None`` (keep the possibly mutated chunk) or a replacement dict. May be awaitable.
    """
