"""The gateway as an ASGI application: request pipeline, lifespan, and plugin wiring."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import orjson
import structlog

from portkey_mw import _http
from portkey_mw.auth.admin import AdminKey
from portkey_mw.auth.outbound import OutboundPolicy
from portkey_mw.caching import (
    CACHEABLE,
    HIT_STATUSES,
    CacheStats,
    CacheUse,
    SemanticUse,
    StreamRecorder,
    route_partition,
    semantic_question,
)
from portkey_mw.config.resolve import ConfigResolver
from portkey_mw.config.schema import Cache as CacheConfig
from portkey_mw.config.schema import Target
from portkey_mw.config.server import ServerSettings
from portkey_mw.context import Endpoint, GatewayResponse, RequestContext
from portkey_mw.embedding import EmbeddingModel, shared_model
from portkey_mw.errors import (
    GatewayError,
    MethodNotAllowed,
    NotFound,
    PluginError,
)
from portkey_mw.fetch import Fetcher
from portkey_mw.guardrails.api import Guardrail
from portkey_mw.guardrails.flow import RequestGuardrails
from portkey_mw.guardrails.runner import GuardrailStats
from portkey_mw.inbound import InboundFormat
from portkey_mw.inbound.anthropic import AnthropicMessages
from portkey_mw.interfaces import CacheBackend, LogSink, Provider, SemanticIndex
from portkey_mw.logevents import LogDispatcher, LogEvent
from portkey_mw.plugins import HookCall, PluginManager, await_me_maybe, call_hook
from portkey_mw.pricing import Price, PriceTable
from portkey_mw.request_shape import check_body, require_param
from portkey_mw.routing import PlanNode, Router
from portkey_mw.streaming import (
    DONE_EVENT,
    TAIL_BYTES,
    SSEDecoder,
    error_event,
    event_data,
    json_event,
    listen,
)
from portkey_mw.transport import AiohttpTransport, HttpxTransport, Transport
from portkey_mw.types import Receive, Scope, Send

log = structlog.get_logger("portkey_mw.gateway")

#: path (below the mount point) -> (endpoint, HTTP method)
ROUTES: dict[str, tuple[Endpoint, str]] = {
    "/v1/chat/completions": (Endpoint.CHAT_COMPLETIONS, "POST"),
    "/v1/completions": (Endpoint.COMPLETIONS, "POST"),
    "/v1/embeddings": (Endpoint.EMBEDDINGS, "POST"),
    "/v1/models": (Endpoint.MODELS, "GET"),
    "/v1/images/generations": (Endpoint.IMAGES, "POST"),
    "/v1/moderations": (Endpoint.MODERATIONS, "POST"),
}
#: routes whose requests and responses are in another API's format (see portkey_mw.inbound)
INBOUND: dict[str, InboundFormat] = {
    "/v1/messages": AnthropicMessages(),
    "/v1/messages/count_tokens": AnthropicMessages(),
}
ROUTES["/v1/messages"] = (Endpoint.CHAT_COMPLETIONS, "POST")
ROUTES["/v1/messages/count_tokens"] = (Endpoint.COUNT_TOKENS, "POST")
HEALTH_PATHS = frozenset({"/", "/health", "/v1/health"})
#: every route below needs the admin key (see portkey_mw.auth.admin)
ADMIN_PREFIX = "/v1/admin"
#: the routing state of this process: every upstream's circuit breaker
CIRCUITS_PATH = "/v1/admin/circuits"
#: GET shows cache totals since start (hits, misses, cost saved); DELETE purges the response
#: cache, exact and semantic: all of it, or one namespace (``?namespace=<name>``)
CACHE_PATH = "/v1/admin/cache"
#: GET shows guardrail checks since start: passed, failed, errored, latency per check id
GUARDRAILS_PATH = "/v1/admin/guardrails"


class Gateway:
    """The portkey-mw gateway, an ASGI application.

    Run it standalone (``portkey-mw serve``), ``mount`` it into a Starlette or FastAPI app,
    or put it in front of an app with :class:`~portkey_mw.GatewayMiddleware`.

    :param settings: the server settings; default: embedded defaults.
    :param config_file: a YAML server file to read the settings from instead.
    :param http_client: an ``httpx.AsyncClient`` to send upstream requests with (e.g. over
        ``httpx.MockTransport`` in tests) instead of the default aiohttp pool.
    :param transport: a :class:`~portkey_mw.transport.Transport` to use instead.
    :param plugins: a plugin manager to use (default: one that loads entry points).
    :param load_entry_points: whether to discover installed plugins.
    """

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        config_file: str | Path | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: Transport | None = None,
        plugins: PluginManager | None = None,
        load_entry_points: bool = True,
    ) -> None:
        if config_file is not None:
            settings = ServerSettings.from_file(config_file)
        self.settings = settings or ServerSettings()
        server = self.settings.server
        outbound = self.settings.outbound
        #: where the gateway may connect on a client's or a config's behalf
        self.policy = OutboundPolicy.from_settings(
            outbound.allow, loopback_custom_hosts=outbound.loopback_custom_hosts
        )
        if transport is None:
            transport = (
                HttpxTransport(http_client, max_body_bytes=server.max_upstream_body_bytes)
                if http_client is not None
                else AiohttpTransport(
                    max_connections=server.max_connections,
                    max_connections_per_host=server.max_connections_per_host,
                    connect_timeout=server.connect_timeout,
                    max_body_bytes=server.max_upstream_body_bytes,
                )
            )
        # Every transport gets the file's policy, unless one passed in came with its own.
        transport.adopt_policy(self.policy)
        self.transport = transport
        #: fetches for webhooks, validUrls and images, through the transport's policy
        self.fetcher = Fetcher(transport)
        self.admin_key = AdminKey.from_settings(self.settings.admin.key_sha256)
        self.plugins = plugins or PluginManager(self.settings.plugins)
        if load_entry_points and plugins is None:
            self.plugins.load_entry_points()
        self.providers: dict[str, Provider] = {}
        self.guardrails: dict[str, Guardrail] = {}
        self.cache_backends: dict[str, CacheBackend] = {}
        self.semantic_indexes: dict[str, SemanticIndex] = {}
        self._embedder: EmbeddingModel | None = None
        self._opening: asyncio.Task[None] | None = None
        self.log_sinks: list[LogSink] = []
        #: free space for plugins, shared by every request (``ctx.gateway_state``); keys
        #: start with the plugin's name
        self.state: dict[str, Any] = {}
        #: API requests being handled, counting the work after the response is sent
        #: (storing a cache entry, emitting the log event): 0 means everything settled
        self.in_flight = 0
        self.prices = PriceTable(
            {
                model: Price(input=price.input, output=price.output)
                for model, price in self.settings.pricing.items()
            }
        )
        self.cache_stats = CacheStats()
        self.guardrail_stats = GuardrailStats()
        self._collect_registrations()
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._max_body = self.settings.server.max_body_bytes

    # -- plugin wiring -----------------------------------------------------------

    def _collect_registrations(self) -> None:
        """Ask every plugin for its providers, guardrails, caches and sinks."""
        settings = self.settings
        for plugin, provider in self.plugins.collect("register_providers", settings=settings):
            provider.plugin_name = plugin
            self.providers[provider.id] = provider
        for plugin, guardrail in self.plugins.collect("register_guardrails", settings=settings):
            guardrail.plugin_name = plugin
            self.guardrails[guardrail.id] = guardrail
        for plugin, backend in self.plugins.collect("register_cache_backends", settings=settings):
            backend.plugin_name = plugin
            self.cache_backends[backend.name] = backend
        for plugin, index in self.plugins.collect("register_semantic_indexes", settings=settings):
            index.plugin_name = plugin
            self.semantic_indexes[index.name] = index
        for plugin, sink in self.plugins.collect("register_log_sinks", settings=settings):
            sink.plugin_name = plugin
            self.log_sinks.append(sink)
        self.resolver = ConfigResolver(settings, self.providers, self.guardrails)
        self.router = Router(
            self.providers,
            self.transport,
            options=settings.routing,
            default_timeout_ms=settings.server.request_timeout,
        )
        self.logs = LogDispatcher(self.log_sinks)

    def refresh_plugins(self) -> None:
        """Re-collect registrations after plugins were added or removed at run time."""
        self.providers.clear()
        self.guardrails.clear()
        self.cache_backends.clear()
        self.semantic_indexes.clear()
        self.log_sinks = []
        self._collect_registrations()
        if self._started:
            self.logs.start()

    # -- lifespan ----------------------------------------------------------------

    async def startup(self) -> None:
        """Open the upstream pool, start the log task, run ``gateway_startup`` hooks."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await self.transport.open()
            self.logs.start()
            await self.plugins.broadcast("gateway_startup", gateway=self)
            if self._configures_semantic_cache():
                # Loading the model takes about a second: do it now, in the background,
                # rather than on the first request that needs it.
                self.embedder.start_loading()
                index = self.semantic_indexes.get(self.settings.cache.semantic_index)
                if index is not None:
                    self._opening = asyncio.create_task(self._open_index(index))
            self._started = True

    async def settled(self) -> None:
        """Wait until no request is being handled, after-work included (cache entries are
        stored once the client has its answer). For demos, benchmarks and tests."""
        while self.in_flight:  # noqa: ASYNC110 - a counter, polled only by these callers
            await asyncio.sleep(0.005)

    @staticmethod
    async def _open_index(index: SemanticIndex) -> None:
        try:
            await index.open()
        except Exception as exc:  # the first request that needs it tries again
            log.warning("semantic index failed to open", index=index.name, error=str(exc))

    def _configures_semantic_cache(self) -> bool:
        configs = list(self.settings.configs.values())
        if self.settings.default_config is not None and not isinstance(
            self.settings.default_config, str
        ):
            configs.append(self.settings.default_config)
        return any(_uses_semantic_cache(config) for config in configs)

    async def shutdown(self) -> None:
        """Drain logs, run ``gateway_shutdown`` hooks, close cache backends and the pool."""
        if not self._started:
            return
        self._started = False
        await self.logs.aclose()
        await self.plugins.broadcast("gateway_shutdown", gateway=self)
        if self._opening is not None:
            await self._opening  # never raises; closing must not race opening
            self._opening = None
        for guardrail in self.guardrails.values():
            try:
                await guardrail.aclose()
            except Exception:
                log.exception("guardrail failed to close", guardrail=guardrail.id)
        stores: list[CacheBackend | SemanticIndex] = [
            *self.cache_backends.values(),
            *self.semantic_indexes.values(),
        ]
        for store in stores:
            try:
                await store.aclose()
            except Exception:
                log.exception("cache store failed to close", store=store.name)
        # The embedding model is the process's (shared_model): other gateways may use it.
        self._embedder = None
        await self.transport.aclose()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """A lifespan context for a host app: ``FastAPI(lifespan=gateway.lifespan)``.

        A gateway mounted without it starts on its first request, but then nothing closes
        its connections or flushes its logs at shutdown.
        """
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    # -- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.handle_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._handle_lifespan(receive, send)

    async def _handle_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def handle_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        if not self._started:
            await self.startup()
        path = _http.route_path(scope)
        server = self.settings.server
        try:
            headers = _http.header_dict(
                scope, server.max_header_bytes, server.max_header_value_bytes
            )
        except GatewayError as too_large:
            await _http.send_error(send, too_large, {"connection": "close"})
            return
        trace_id = headers.get("x-portkey-trace-id") or uuid.uuid4().hex
        base_headers = {"x-portkey-trace-id": trace_id}
        route = ROUTES.get(path)
        if route is None:
            if path in HEALTH_PATHS and scope["method"] == "GET":
                await _http.send_bytes(send, 200, b'{"status":"ok"}', base_headers)
            elif path.startswith(ADMIN_PREFIX):
                await self._admin(scope, path, headers, send, base_headers)
            else:
                await _http.send_error(send, NotFound(f"no route for {path}"), base_headers)
            return
        endpoint, method = route
        if scope["method"] != method:
            error = MethodNotAllowed(f"{path} accepts {method}, not {scope['method']}")
            await _http.send_error(send, error, {**base_headers, "allow": method})
            return
        ctx = RequestContext(
            trace_id=trace_id,
            endpoint=endpoint,
            method=method,
            path=path,
            headers=headers,
            body=None,
            raw_body=b"",
            response_headers=base_headers,
            gateway_state=self.state,
        )
        self.in_flight += 1
        try:
            await _Exchange(self, ctx, receive, send, INBOUND.get(path)).run()
        finally:
            self.in_flight -= 1

    async def _admin(
        self, scope: Scope, path: str, headers: dict[str, str], send: Send, base: dict[str, str]
    ) -> None:
        """The admin routes: every one needs the admin key, unknown ones included (an
        unauthenticated caller learns nothing about which exist)."""
        try:
            self.admin_key.check(headers)
        except GatewayError as error:
            await _http.send_error(send, error, base)
            return
        method = scope["method"]
        if path == CIRCUITS_PATH and method == "GET":
            body = orjson.dumps({"circuits": self.router.breakers.snapshot()})
            await _http.send_bytes(send, 200, body, base)
        elif path == CACHE_PATH and method == "DELETE":
            await self._purge_cache(scope, send, base)
        elif path == CACHE_PATH and method == "GET":
            await _http.send_bytes(send, 200, orjson.dumps(self.cache_stats.to_dict()), base)
        elif path == GUARDRAILS_PATH and method == "GET":
            await _http.send_bytes(send, 200, orjson.dumps(self.guardrail_stats.to_dict()), base)
        else:
            await _http.send_error(send, NotFound(f"no route for {path}"), base)

    # -- pipeline steps (used by _Exchange) -------------------------------------------

    async def run_request_hooks(self, ctx: RequestContext) -> GatewayResponse | None:
        """Run ``on_request`` hooks in order; the first response returned answers."""
        for call in self.plugins.hook_calls("on_request"):
            result = await _run_hook(call, {"ctx": ctx})
            if result is not None:
                if not isinstance(result, GatewayResponse):
                    raise PluginError(
                        f"plugin {call.plugin!r}: on_request returned {type(result).__name__}, "
                        "expected None or GatewayResponse"
                    )
                return result
        return None

    async def _purge_cache(self, scope: Scope, send: Send, headers: dict[str, str]) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        namespace = (query.get("namespace") or [""])[0]
        backend = self.cache_backends.get(self.settings.cache.backend)
        if backend is None:
            missing = NotFound(f"no cache backend {self.settings.cache.backend!r} is registered")
            await _http.send_error(send, missing, headers)
            return
        index = self.semantic_indexes.get(self.settings.cache.semantic_index)
        try:
            purged = await backend.clear(f"{namespace}:" if namespace else "")
            if index is not None:
                purged += await index.clear(namespace or None)
        except Exception as exc:
            error = GatewayError(
                f"the cache backend failed: {exc}", status=503, code="cache_unavailable"
            )
            await _http.send_error(send, error, headers)
            return
        body = orjson.dumps({"purged": purged, "namespace": namespace or None})
        await _http.send_bytes(send, 200, body, headers)

    def cache_for(self, ctx: RequestContext, plan: PlanNode) -> CacheUse | None:
        """Caching for this request, when its config turns it on and a backend exists."""
        settings = plan.cache
        if settings is None or ctx.endpoint not in CACHEABLE:
            return None
        backend = self.cache_backends.get(self.settings.cache.backend)
        if backend is None:
            log.warning("cache backend not registered", backend=self.settings.cache.backend)
            return None
        partition = route_partition(plan, ctx.headers)
        semantic = (
            self._semantic_use(ctx, settings, partition) if settings.mode == "semantic" else None
        )
        return CacheUse(backend, ctx, settings.max_age, semantic, partition)

    def _semantic_use(
        self, ctx: RequestContext, settings: CacheConfig, partition: str
    ) -> SemanticUse | None:
        options = self.settings.cache
        index = self.semantic_indexes.get(options.semantic_index)
        if index is None:
            log.warning("semantic index not registered", index=options.semantic_index)
            return None
        found = semantic_question(ctx, partition)
        if found is None:
            return None
        question, scope = found
        threshold = settings.similarity_threshold
        return SemanticUse(
            index=index,
            embedder=self.embedder,
            question=question,
            scope=scope,
            threshold=options.similarity_threshold if threshold is None else threshold,
            timeout=options.semantic_timeout,
        )

    @property
    def embedder(self) -> EmbeddingModel:
        """The sentence-embedding model (loaded on its first use, off the event loop)."""
        if self._embedder is None:
            self._embedder = shared_model(self.settings.embedding)
        return self._embedder

    async def run_response_hooks(self, ctx: RequestContext) -> None:
        """Run ``on_response`` hooks in order."""
        for call in self.plugins.hook_calls("on_response"):
            await _run_hook(call, {"ctx": ctx})


async def _run_hook(call: HookCall, kwargs: dict[str, Any]) -> Any:
    try:
        return await await_me_maybe(call_hook(call, kwargs))
    except GatewayError:
        raise
    except Exception as exc:
        log.exception("plugin hook failed", plugin=call.plugin, hook=call.function.__name__)
        raise PluginError(f"plugin {call.plugin!r} failed: {type(exc).__name__}") from exc


class _Exchange:
    """One request/response exchange: body, hooks, routing, sending, the log event."""

    __slots__ = (
        "_disconnected",
        "_done",
        "ctx",
        "error",
        "gateway",
        "guards",
        "inbound",
        "receive",
        "response_started",
        "send",
        "status",
        "ttfb",
    )

    def __init__(
        self,
        gateway: Gateway,
        ctx: RequestContext,
        receive: Receive,
        send: Send,
        inbound: InboundFormat | None = None,
    ):
        self.gateway = gateway
        self.inbound = inbound
        self.ctx = ctx
        self.receive = receive
        self.send = send
        self.status = 500
        self.error: GatewayError | None = None
        self.response_started = False
        self.ttfb: float | None = None
        self._done = False
        self._disconnected = False
        self.guards: RequestGuardrails | None = None

    async def run(self) -> None:
        ctx = self.ctx
        watcher: asyncio.Task[None] | None = None
        try:
            try:
                if ctx.method == "POST":
                    await self._read_body()
                watcher = asyncio.get_running_loop().create_task(
                    self._watch_disconnect(asyncio.current_task())
                )
                await self._process()
            except GatewayError as error:
                await self._fail(error)
            except Exception:
                log.exception("unhandled error", trace_id=ctx.trace_id)
                await self._fail(GatewayError(f"internal gateway error (trace id {ctx.trace_id})"))
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self._disconnected or task is None:
                raise
            task.uncancel()
            self.status = 499
            self.error = GatewayError("client disconnected", status=499, code="client_closed")
        finally:
            self._done = True
            if watcher is not None:
                watcher.cancel()
            if ctx.response is not None:
                await ctx.response.aclose()
            await self._emit_log()

    async def _watch_disconnect(self, task: asyncio.Task[Any] | None) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
        if not self._done and task is not None:
            self._disconnected = True
            task.cancel()

    async def _read_body(self) -> None:
        ctx, limit = self.ctx, self.gateway._max_body
        content_type = ctx.headers.get("content-type")
        if content_type is not None and "json" not in content_type.split(";", 1)[0].lower():
            raise _http.unsupported_media_type(content_type)
        declared = ctx.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _http.too_large(limit)
        ctx.raw_body = await _http.read_body(
            self.receive, limit, self.gateway.settings.server.body_timeout
        )
        body = _http.parse_json_object(ctx.raw_body)
        if self.inbound is None:
            check_body(ctx.endpoint, body)
        else:
            require_param(ctx.endpoint, body)
        ctx.body = body
        if self.inbound is not None:
            # From here on the pipeline sees OpenAI's shape; the client gets its own back.
            ctx.set_body(self.inbound.request(body))
            ctx.state["inbound_format"] = self.inbound.name
            check_body(ctx.endpoint, ctx.body or {})

    async def _process(self) -> None:
        ctx, gateway = self.ctx, self.gateway
        _http.apply_request_options(ctx)
        plan = gateway.resolver.resolve(ctx.headers)
        response = await gateway.run_request_hooks(ctx)
        guards = self.guards = RequestGuardrails.for_plan(plan, gateway)
        per_target = None
        if guards is not None and response is None:
            if guards.shared is not None:
                # Before the cache: a cached answer never skips an input guardrail.
                await guards.check_request(ctx, guards.shared.before)
            else:
                per_target = guards.before_target
        # With per-target input guardrails the cache is not consulted (see guardrails.flow).
        cache = gateway.cache_for(ctx, plan) if response is None and per_target is None else None
        if cache is not None:
            response = await cache.lookup(ctx)
        if response is None:
            response = await gateway.router.route(ctx, plan, per_target)
        # What the cache keeps is the provider's answer as it came, before output guardrails
        # and response hooks, which run again on every hit: a config's output mutator
        # changes its own client's answer, never what other clients are served.
        answered = response.body
        if guards is not None:
            response = (
                guards.guard_stream(ctx, response)
                if response.stream is not None
                else await guards.check_response(ctx, response)
            )
        ctx.response = response
        # Only a fresh, successful answer is stored; a hit is not stored again.
        storing = cache if ctx.cache_status not in HIT_STATUSES and response.status == 200 else None
        if response.stream is None:
            await gateway.run_response_hooks(ctx)
            await self._send_complete(response)
            if storing is not None and answered:
                await storing.store(answered)
        else:
            recorder = None
            if storing is not None:
                recorder = StreamRecorder()  # hears the chunks the router's check parses
                listen(response, recorder.take)
            await self._send_stream(response)
            await gateway.run_response_hooks(ctx)
            if storing is not None and recorder is not None and response.stream_complete:
                await storing.store(orjson.dumps(recorder.completion()))

    def _response_headers(self, response: GatewayResponse) -> dict[str, str]:
        headers = {**response.headers, **self._routing_headers()}
        headers.setdefault("x-portkey-retry-attempt-count", "0")
        headers["x-portkey-cache-status"] = self.ctx.cache_status or "DISABLED"
        return headers

    def _routing_headers(self) -> dict[str, str]:
        """The request's own headers plus which provider and target answered, if any."""
        ctx = self.ctx
        headers = dict(ctx.response_headers)
        if ctx.provider:
            headers["x-portkey-provider"] = ctx.provider
        if ctx.target_index:
            headers["x-portkey-last-used-option-index"] = ctx.target_index
        return headers

    async def _send_complete(self, response: GatewayResponse) -> None:
        self.status = response.status
        self.response_started = True
        self._done = True
        body = response.body or b""
        # A token count ({"input_tokens": n}) is already in the client's shape.
        counted = self.ctx.endpoint is Endpoint.COUNT_TOKENS and response.status < 400
        if self.inbound is not None and not counted:
            parsed = response.json()
            if response.status < 400 and isinstance(parsed, dict):
                body = orjson.dumps(self.inbound.response(parsed))
            else:
                body = self.inbound.provider_error(response.status, parsed)
        await _http.send_bytes(self.send, response.status, body, self._response_headers(response))

    async def _send_stream(self, response: GatewayResponse) -> None:
        assert response.stream is not None
        self.status = response.status
        headers = self._response_headers(response)
        headers.setdefault("content-type", "text/event-stream")
        headers["cache-control"] = "no-cache"
        await self.send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": _http.encode_headers(headers),
            }
        )
        self.response_started = True
        chunk_hooks = self.gateway.plugins.hook_calls("on_stream_chunk")
        chunks = self._hooked(response.stream, chunk_hooks) if chunk_hooks else response.stream
        tail = _Tail(chunks)
        relayed = tail if self.inbound is None else self.inbound.stream(tail)
        send = self.send
        try:
            async for chunk in relayed:
                if self.ttfb is None:
                    self.ttfb = time.perf_counter()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except GatewayError as error:
            # Bytes already left: the only honest ending is an error event, never a silently
            # truncated stream.
            self.error = error
            event = error_event(error) if self.inbound is None else self.inbound.stream_error(error)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        response.stream_tail = tail.tail
        response.stream_complete = self.error is None and tail.tail.rstrip().endswith(b"[DONE]")
        self._done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _hooked(
        self, stream: AsyncIterator[bytes], hooks: tuple[HookCall, ...]
    ) -> AsyncIterator[bytes]:
        decoder, ctx = SSEDecoder(), self.ctx
        async for raw in stream:
            for event in decoder.feed(raw):
                data = event_data(event)
                if data is None or data == b"[DONE]":
                    yield DONE_EVENT if data == b"[DONE]" else event + b"\n\n"
                    continue
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    yield event + b"\n\n"
                    continue
                for call in hooks:
                    replaced = await _run_hook(call, {"ctx": ctx, "chunk": chunk})
                    if replaced is not None:
                        chunk = replaced
                yield json_event(chunk)
        for event in decoder.flush():
            yield event + b"\n\n"

    async def _fail(self, error: GatewayError) -> None:
        self.error = error
        self.status = error.status
        if self.response_started:
            return
        self.response_started = True
        self._done = True
        body = error.to_bytes() if self.inbound is None else self.inbound.error(error)
        await _http.send_bytes(self.send, error.status, body, self._routing_headers())

    async def _emit_log(self) -> None:
        ctx, response = self.ctx, self.ctx.response
        now = time.perf_counter()
        error = self.error
        event = LogEvent(
            trace_id=ctx.trace_id,
            started_at=ctx.started_at,
            endpoint=ctx.endpoint.value,
            method=ctx.method,
            path=ctx.path,
            status=self.status,
            latency_ms=(now - ctx.started) * 1000,
            stream=ctx.stream,
            provider=ctx.provider,
            model=ctx.model,
            target=ctx.target_index,
            cache_status=ctx.cache_status,
            retry_count=int(ctx.response_headers.get("x-portkey-retry-attempt-count", 0)),
            metadata=ctx.metadata,
            attempts=ctx.attempts,
            error_type=error.type if error else None,
            error_message=error.message if error else None,
            ttfb_ms=(self.ttfb - ctx.started) * 1000 if self.ttfb is not None else None,
        )
        if response is not None:
            if response.stream is not None:
                event.response_bytes = response.stream_tail
                event.stream_complete = response.stream_complete
            else:
                event.response_bytes = response.body or b""
        if self.guards is not None:
            # The client has its answer: asynchronous hooks may finish now, for the log.
            hook_results = self.guards.results(with_data=False)
            async_results = await self.guards.settle()
            if async_results:
                hook_results["async_hooks"] = async_results
            event.extra["hook_results"] = hook_results
        event.prices = self.gateway.prices
        if ctx.cache_status is not None:
            # Only hits pay for working out a cost here (parsing the cached body's usage).
            saved = event.cost_saved_usd if ctx.cache_status in HIT_STATUSES else None
            self.gateway.cache_stats.record(ctx.cache_status, saved)
        await self.gateway.logs.emit(event)


class _Tail:
    """Relays an OpenAI-format stream, keeping its last bytes (usage and ``[DONE]`` live
    there) for the log, before any translation for the client."""

    __slots__ = ("_chunks", "tail")

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.tail = b""

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            self.tail = (self.tail + chunk)[-TAIL_BYTES:]
            yield chunk


def header_items(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs from a mapping (kept public for middleware authors)."""
    return _http.encode_headers(headers)


def _uses_semantic_cache(target: Target) -> bool:
    """Whether a config turns on semantic caching anywhere in its tree."""
    if target.cache is not None and target.cache.mode == "semantic":
        return True
    return any(_uses_semantic_cache(child) for child in target.targets or ())
