"""The gateway as an ASGI application: construction, plugin wiring, lifespan, and the
route table. The per-request path is :mod:`portkey_mw.pipeline`; the operator's routes are
:mod:`portkey_mw.admin`."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
import structlog

from portkey_mw import _http, passthrough
from portkey_mw.admin.operations import ADMIN_PREFIX, operations_router
from portkey_mw.admin.prompt_files import PromptFileError, load_prompt_directory
from portkey_mw.admin.routes import control_plane_routes, is_control_plane_path
from portkey_mw.admin.services import ADMIN_PRINCIPAL, Services
from portkey_mw.auth.admin import AdminKey
from portkey_mw.auth.outbound import OutboundPolicy
from portkey_mw.caching import CacheStats
from portkey_mw.config.resolve import ConfigResolver
from portkey_mw.config.server import ServerSettings
from portkey_mw.context import Endpoint, RequestContext
from portkey_mw.control import ControlPlane, RefreshingStore
from portkey_mw.dashboard import Dashboard, is_dashboard_path
from portkey_mw.errors import GatewayError, InvalidConfig, MethodNotAllowed, NotFound
from portkey_mw.fetch import Fetcher
from portkey_mw.files import OPERATION, FileOperation, is_files_path, match
from portkey_mw.guardrails.api import Guardrail
from portkey_mw.guardrails.runner import GuardrailStats
from portkey_mw.inbound import InboundFormat
from portkey_mw.inbound.anthropic import AnthropicMessages
from portkey_mw.inbound.responses import RESPONSES_PREFIX, ResponsesFormat, stored_response_route
from portkey_mw.interfaces import (
    CacheBackend,
    LogSink,
    Provider,
    SemanticIndex,
    SemanticVerifier,
)
from portkey_mw.logbodies import BodyPolicy
from portkey_mw.logevents import LogDispatcher
from portkey_mw.logging import traceback_text
from portkey_mw.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from portkey_mw.metrics import GatewayMetrics, MetricsSink, StateCollector, StateSources
from portkey_mw.pipeline import Pipeline
from portkey_mw.plugin import PluginManager
from portkey_mw.pricing import Price, PriceTable
from portkey_mw.prompts.library import PromptCall, PromptLibrary
from portkey_mw.realtime import (
    REALTIME_PATH,
    RealtimeLimits,
    RealtimeSession,
    handshake_headers,
    offered_subprotocols,
    refuse_websocket,
    requested_model,
)
from portkey_mw.response_cache import ResponseCache
from portkey_mw.response_store import ResponseArchive, ResponseStore
from portkey_mw.routing import Router
from portkey_mw.spend import SpendControl
from portkey_mw.store.protocols import ControlStore
from portkey_mw.transport import AiohttpTransport, HttpxTransport, Transport
from portkey_mw.types import Receive, Scope, Send

if TYPE_CHECKING:  # SQLAlchemy loads only when a store is used
    from portkey_mw.admin.log_services import LogServices
    from portkey_mw.logstore import LogQueries

log = structlog.get_logger("portkey_mw.gateway")

#: path (below the mount point) -> (endpoint, HTTP method)
ROUTES: dict[str, tuple[Endpoint, str]] = {
    "/v1/chat/completions": (Endpoint.CHAT_COMPLETIONS, "POST"),
    "/v1/completions": (Endpoint.COMPLETIONS, "POST"),
    "/v1/embeddings": (Endpoint.EMBEDDINGS, "POST"),
    "/v1/models": (Endpoint.MODELS, "GET"),
    "/v1/images/generations": (Endpoint.IMAGES, "POST"),
    "/v1/moderations": (Endpoint.MODERATIONS, "POST"),
    "/v1/messages": (Endpoint.CHAT_COMPLETIONS, "POST"),
    "/v1/messages/count_tokens": (Endpoint.COUNT_TOKENS, "POST"),
    "/v1/rerank": (Endpoint.RERANK, "POST"),
    "/v1/responses": (Endpoint.RESPONSES, "POST"),
    "/v1/audio/speech": (Endpoint.AUDIO_SPEECH, "POST"),
    "/v1/audio/transcriptions": (Endpoint.AUDIO_TRANSCRIPTIONS, "POST"),
    "/v1/audio/translations": (Endpoint.AUDIO_TRANSLATIONS, "POST"),
    "/v1/images/edits": (Endpoint.IMAGE_EDITS, "POST"),
}
#: routes whose requests and responses are in another API's format (see portkey_mw.inbound)
INBOUND: dict[str, InboundFormat] = {
    "/v1/messages": AnthropicMessages(),
    "/v1/messages/count_tokens": AnthropicMessages(),
}
HEALTH_PATHS = frozenset({"/", "/health", "/v1/health"})
#: readiness: 503 until what start-up loads (the embedding model) has loaded
READY_PATHS = frozenset({"/ready", "/v1/ready"})
METRICS_PATH = "/metrics"
#: the guardrail whose detector masks PII in logged bodies (``logging.redact_pii``)
PII_GUARDRAIL = "default.pii"


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
    :param store: the control-plane store (default: the SQL store ``store.url`` or
        ``PORTKEY_MW_DATABASE_URL`` names, SQLite in the data directory otherwise; none when
        ``store.enabled`` is false).
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
        store: ControlStore | None = None,
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
        if store is None and self.settings.store.enabled:
            store = _default_store(self.settings)
        #: the store, the catalog the data plane reads, and who may do what
        self.control = ControlPlane(self.settings, self.admin_key, store)
        self.plugins = plugins or PluginManager(self.settings.plugins)
        if load_entry_points and plugins is None:
            self.plugins.load_entry_points()
        self.providers: dict[str, Provider] = {}
        self.guardrails: dict[str, Guardrail] = {}
        self.cache_backends: dict[str, CacheBackend] = {}
        self.semantic_indexes: dict[str, SemanticIndex] = {}
        self.semantic_verifiers: dict[str, SemanticVerifier] = {}
        self.log_sinks: list[LogSink] = []
        #: free space for plugins, shared by every request (``ctx.gateway_state``); keys
        #: start with the plugin's name
        self.state: dict[str, Any] = {}
        #: API requests being handled, counting the work after the response is sent
        #: (storing a cache entry, emitting the log event): 0 means everything settled
        self.in_flight = 0
        self.prices = PriceTable(
            {
                model: Price(
                    input=price.input,
                    output=price.output,
                    cache_read=price.cache_read,
                    cache_write=price.cache_write,
                )
                for model, price in self.settings.pricing.items()
            }
        )
        self.guardrail_stats = GuardrailStats()
        #: the dashboard's page and assets (``GET /dashboard``)
        self.dashboard = Dashboard()
        #: the Prometheus series (``GET /metrics``)
        self.metrics = GatewayMetrics()
        self.metrics.add_state(StateCollector(self._metric_sources))
        #: budgets and rate limits (in process, or shared through Redis)
        self.spend = SpendControl(
            self.settings.limits, store=self.control.store, transport=self.transport
        )
        #: the responses /v1/responses stored (``store``, ``previous_response_id``)
        self.responses = _response_archive(self.settings, self.control.store)
        self._inbound: dict[str, InboundFormat] = {
            **INBOUND,
            "/v1/responses": ResponsesFormat(self.responses),
        }
        if self.control.catalog is not None:
            self.control.catalog.on_change(self.spend.forget)
        self._collect_registrations()
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        #: dispatchers replaced by refresh_plugins while running: drained at shutdown
        self._retired_logs: list[LogDispatcher] = []
        #: semantic indexes replaced by refresh_plugins (an open one holds files): closed
        #: at shutdown
        self._retired_indexes: list[SemanticIndex] = []

    # -- plugin wiring -----------------------------------------------------------

    def _collect_registrations(self) -> None:
        """Ask every plugin for its providers, guardrails, caches and sinks."""
        settings, plugins = self.settings, self.plugins
        for plugin, provider in plugins.register_providers(settings):
            provider.plugin_name = plugin
            self.providers[provider.id] = provider
        for plugin, guardrail in plugins.register_guardrails(settings):
            guardrail.plugin_name = plugin
            self.guardrails[guardrail.id] = guardrail
        for plugin, backend in plugins.register_cache_backends(settings):
            backend.plugin_name = plugin
            self.cache_backends[backend.name] = backend
        for plugin, index in plugins.register_semantic_indexes(settings):
            index.plugin_name = plugin
            self.semantic_indexes[index.name] = index
        for plugin, verifier in plugins.register_semantic_verifiers(settings):
            verifier.plugin_name = plugin
            self.semantic_verifiers[verifier.name] = verifier
        for plugin, sink in plugins.register_log_sinks(settings):
            sink.plugin_name = plugin
            self.log_sinks.append(sink)
        self.log_sinks.append(MetricsSink(self.metrics))  # /metrics, from the log events
        #: the SQL log store's queries, when its sink is active (the log and analytics
        #: routes read them); ``None`` when logging.store is off or there is no store
        self.log_queries: LogQueries | None = next(
            (q for sink in self.log_sinks if (q := getattr(sink, "log_queries", None))), None
        )
        self.resolver = ConfigResolver(
            settings,
            self.providers,
            self.guardrails,
            self.control.catalog,
            secret_options={n for p in self.providers.values() for n in p.secret_options},
            known_verifiers=self.semantic_verifiers,
        )
        self.router = Router(
            self.providers,
            self.transport,
            options=settings.routing,
            default_timeout_ms=settings.server.request_timeout,
            admit_target=self.spend.admit_target,
        )
        self.logs = LogDispatcher(
            self.log_sinks,
            queue_size=settings.logging.queue_size,
            drain_timeout=settings.logging.drain_timeout,
        )
        self.cache = ResponseCache(
            settings, self.cache_backends, self.semantic_indexes, self.semantic_verifiers
        )
        self.pipeline = Pipeline(
            settings=settings,
            plugins=plugins,
            resolver=self.resolver,
            router=self.router,
            cache=self.cache,
            guardrail_stats=self.guardrail_stats,
            services=self,
            logs=self.logs,
            prices=self.prices,
            identifier=self.control.identifier,
            spend=self.spend,
            bodies=self._body_policy(),
            prompts=PromptLibrary(
                self.control.catalog,
                strict_variables=settings.prompts.strict_variables,
                max_rendered_chars=settings.prompts.max_rendered_chars,
            ),
        )
        store = self.control.store
        #: what the control-plane routes (and prompt files) borrow from the gateway
        self.admin_services = Services(
            validate=self.resolver.validate_saved,
            generate_key=self.control.new_api_key,
            providers=self.providers,
            configs=tuple(settings.configs),
            spend=self.spend,
            logs=self._log_services,
        )
        self._admin_routes = operations_router(
            self.router.breakers,
            self.cache,
            self.guardrail_stats,
            self.prices,
            spend=self.spend,
            store=store,
        )
        self._control_routes = (
            control_plane_routes(
                cast(ControlStore, RefreshingStore(store, self.control)),
                self.control.authorize,
                self.admin_services,
            )
            if store is not None
            else None
        )

    def _body_policy(self) -> BodyPolicy:
        """How log records keep bodies (``logging``); PII is masked with the PII
        guardrail's own detector, so the gateway has one notion of personal data."""
        options = self.settings.logging
        redactor = None
        if options.redact_pii:
            redactor = getattr(self.guardrails.get(PII_GUARDRAIL), "redact_text", None)
            if not callable(redactor):
                raise InvalidConfig(
                    f"logging.redact_pii needs the {PII_GUARDRAIL} guardrail (the "
                    "default_guardrails plugin), which is not loaded"
                )
        return BodyPolicy(options.bodies, options.max_body_bytes, redactor)

    def _log_services(self) -> LogServices | None:
        """The log routes' services over the open SQL log store (``None``: it is off)."""
        queries = self.log_queries
        if queries is None:
            return None
        # SQLAlchemy loads only when a store is used
        from portkey_mw.admin.log_services import LogServices
        from portkey_mw.logstore.exports import ExportStore
        from portkey_mw.logstore.feedback import FeedbackStore
        from portkey_mw.store.sql.engine import default_data_dir

        current = self.__dict__.get("_log_route_services")
        if current is None or current.queries is not queries:
            store_dir = getattr(self.control.store, "data_dir", None)
            base = store_dir if isinstance(store_dir, Path) else default_data_dir()
            current = LogServices(
                queries,
                FeedbackStore(queries.engine),
                ExportStore(queries.engine),
                export_dir=base / "exports",
            )
            self.__dict__["_log_route_services"] = current
        return cast("LogServices", current)

    def _metric_sources(self) -> StateSources:
        return StateSources(
            self.cache.stats,
            self.guardrail_stats,
            self.router.breakers,
            self.logs,
            self.spend,
            self.prices,
        )

    @property
    def cache_stats(self) -> CacheStats:
        """Cache totals since start (hits, misses, cost saved)."""
        return self.cache.stats

    def refresh_plugins(self) -> None:
        """Re-collect registrations after plugins were added or removed at run time."""
        self.providers.clear()
        self.guardrails.clear()
        self.cache_backends.clear()
        self._retired_indexes.extend(self.semantic_indexes.values())
        self.semantic_indexes.clear()
        self.semantic_verifiers.clear()
        self.log_sinks = []
        retired = self.logs
        self._collect_registrations()
        if self._started:
            # The old dispatcher keeps delivering what it holds; shutdown drains it.
            self._retired_logs.append(retired)
            self.logs.start()

    # -- lifespan ----------------------------------------------------------------

    async def startup(self) -> None:
        """Open the upstream pool, start the log task, run ``gateway_startup`` hooks."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            await self.control.open()  # a store that cannot open stops the start
            try:
                await self._apply_prompt_files()  # a bad prompt file stops it too
            except BaseException:
                await self.control.aclose()
                raise
            await self.transport.open()
            await self.spend.start()
            self.logs.start()
            await self.plugins.gateway_startup(self)
            self.cache.start()
            self._started = True

    async def _apply_prompt_files(self) -> None:
        """Apply ``prompts.directory``'s files to the store (before serving: a prompt in
        git is callable once the gateway is up). The CLI's in-process app does not: its
        commands act on the store as it is (``portkey-mw prompts push`` applies files)."""
        options = self.settings.prompts
        if options.directory is None or self.control.local_operator:
            return

        def skip(error: PromptFileError) -> None:
            log.error("prompt file left out", error=error.message)

        applied = await load_prompt_directory(
            options.directory,
            self.control.store,
            self.admin_services,
            ADMIN_PRINCIPAL,  # the operator's files
            skip if options.bad_files == "skip" else None,
        )
        if applied:
            await self.control.refresh()
            outcomes = Counter(a.outcome.replace(" ", "_") for a in applied)
            log.info("prompt files applied", directory=str(options.directory), **dict(outcomes))

    def not_ready(self) -> list[str]:
        """What the gateway is still loading (``GET /ready`` names it); empty when ready.

        Readiness is not liveness: ``/health`` answers as soon as the process serves."""
        return self.cache.not_ready()

    async def settled(self) -> None:
        """Wait until no request is being handled, after-work included (cache entries are
        stored once the client has its answer). For demos, benchmarks and tests."""
        while self.in_flight:  # noqa: ASYNC110 - a counter, polled only by these callers
            await asyncio.sleep(0.005)

    async def shutdown(self) -> None:
        """Drain logs, run ``gateway_shutdown`` hooks, close cache backends and the pool."""
        if not self._started:
            return
        self._started = False
        route_services = self.__dict__.get("_log_route_services")
        if route_services is not None:
            await route_services.aclose()  # export tasks still writing
        await self.logs.aclose()
        while self._retired_logs:
            await self._retired_logs.pop().aclose()
        while self._retired_indexes:
            await self._retired_indexes.pop().aclose()
        await self.spend.aclose()  # after the last request was charged
        await self.responses.settled()  # stored responses still being written
        await self.plugins.gateway_shutdown(self)
        for guardrail in self.guardrails.values():
            try:
                await guardrail.aclose()
            except Exception as exc:
                log.error(
                    "guardrail failed to close",
                    guardrail=guardrail.id,
                    exception=traceback_text(exc),
                )
        await self.cache.aclose()
        await self.control.aclose()
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
        elif scope["type"] == "websocket":
            await self.handle_websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._handle_lifespan(receive, send)

    async def _handle_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("gateway failed to start", exception=traceback_text(exc))
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
        # One random id per request; a request without a trace id starts a trace of its own.
        request_id = uuid.uuid4().hex
        trace_id = headers.get("x-portkey-trace-id") or request_id
        base_headers = {"x-portkey-trace-id": trace_id, "x-portkey-request-id": request_id}
        route = ROUTES.get(path)
        operation: FileOperation | None = None
        if route is None and is_files_path(path):
            # /v1/files… and /v1/batches…: the path names the operation (and the method)
            try:
                operation = match(path, scope["method"], scope.get("query_string", b""))
            except GatewayError as refused:
                await _http.send_error(send, refused, base_headers)
                return
            route = (operation.endpoint, operation.method)
        if route is None:
            if path in HEALTH_PATHS and scope["method"] == "GET":
                await _http.send_bytes(send, 200, b'{"status":"ok"}', base_headers)
            elif path in READY_PATHS and scope["method"] == "GET":
                await self._ready(send, base_headers)
            elif path == METRICS_PATH and scope["method"] == "GET":
                await self._metrics(send, headers, base_headers)
            elif is_dashboard_path(path):
                await self.dashboard(scope, receive, send, path)
            elif path.startswith(RESPONSES_PREFIX):
                await self._stored_response(scope, receive, send, path, headers, base_headers)
            elif (prompt_call := PromptCall.of_path(path)) is not None:
                await self._prompt_call(scope, receive, send, prompt_call, headers, base_headers)
            elif path == REALTIME_PATH:
                error = GatewayError(
                    f"{path} is a WebSocket: connect with a WebSocket client (the openai "
                    "SDK's realtime.connect)",
                    status=426,
                    code="websocket_required",
                )
                await _http.send_error(send, error, {**base_headers, "upgrade": "websocket"})
            elif self._control_routes is not None and is_control_plane_path(path):
                # Portkey's admin API (before /v1/admin: its users and workspaces live there)
                await self._control_routes(scope, receive, send)
            elif path.startswith(ADMIN_PREFIX + "/") or path == ADMIN_PREFIX:
                await self._admin(scope, receive, send, headers, base_headers)
            elif _passes_through(path):
                await self._proxy(scope, receive, send, headers, base_headers)
            else:
                await _http.send_error(send, NotFound(f"no route for {path}"), base_headers)
            return
        endpoint, method = route
        if scope["method"] != method:
            error = MethodNotAllowed(f"{path} accepts {method}, not {scope['method']}")
            await _http.send_error(send, error, {**base_headers, "allow": method})
            return
        ctx = self._context(endpoint, method, path, headers, base_headers)
        if operation is not None:
            ctx.state[OPERATION] = operation
        await self._exchange(ctx, receive, send, self._inbound.get(path))

    def _context(
        self,
        endpoint: Endpoint,
        method: str,
        path: str,
        headers: dict[str, str],
        base: dict[str, str],
    ) -> RequestContext:
        """A data-plane request's context, before its body is read."""
        return RequestContext(
            trace_id=base["x-portkey-trace-id"],
            endpoint=endpoint,
            method=method,
            path=path,
            headers=headers,
            body=None,
            raw_body=b"",
            response_headers=base,
            gateway_state=self.state,
            request_id=base["x-portkey-request-id"],
        )

    async def _exchange(
        self,
        ctx: RequestContext,
        receive: Receive,
        send: Send,
        inbound: InboundFormat | None = None,
        prompt_call: PromptCall | None = None,
    ) -> None:
        """Run one request through the pipeline, counted in :attr:`in_flight`."""
        self.in_flight += 1
        try:
            await self.pipeline.handle(ctx, receive, send, inbound, prompt_call)
        finally:
            self.in_flight -= 1

    async def handle_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one WebSocket: ``/v1/realtime`` (see :mod:`portkey_mw.realtime`)."""
        if not self._started:
            await self.startup()
        path = _http.route_path(scope)
        server = self.settings.server
        request_id = uuid.uuid4().hex
        try:
            if path != REALTIME_PATH:
                raise NotFound(f"no WebSocket route for {path}")
            headers = _http.header_dict(
                scope, server.max_header_bytes, server.max_header_value_bytes
            )
            subprotocols = offered_subprotocols(scope)
            headers = handshake_headers(headers, subprotocols)
            model = requested_model(scope.get("query_string", b""))
        except GatewayError as error:
            await refuse_websocket(scope, receive, send, error)
            return
        options = self.settings.realtime
        ctx = RequestContext(
            trace_id=headers.get("x-portkey-trace-id") or request_id,
            endpoint=Endpoint.REALTIME,
            method="GET",
            path=path,
            headers=headers,
            body={"model": model},
            raw_body=b"",
            gateway_state=self.state,
            request_id=request_id,
        )
        session = RealtimeSession(
            ctx,
            scope,
            receive,
            send,
            RealtimeLimits(
                options.max_frame_bytes, options.max_session_seconds, options.connect_timeout
            ),
        )
        self.in_flight += 1
        try:
            await session.run(self.pipeline.open_realtime, self.pipeline.finish_realtime)
        finally:
            self.in_flight -= 1

    async def _prompt_call(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        call: PromptCall,
        headers: dict[str, str],
        base: dict[str, str],
    ) -> None:
        """``POST /v1/prompts/{id}/completions`` (a chat completion through the whole
        pipeline) or ``…/render`` (the rendered request, no provider called)."""
        if scope["method"] != "POST":
            error = MethodNotAllowed(f"{scope['path']} accepts POST, not {scope['method']}")
            await _http.send_error(send, error, {**base, "allow": "POST"})
            return
        path = _http.route_path(scope)
        ctx = self._context(Endpoint.CHAT_COMPLETIONS, "POST", path, headers, base)
        await self._exchange(ctx, receive, send, prompt_call=call)

    async def _proxy(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        base: dict[str, str],
    ) -> None:
        """``/v1/proxy/…`` and unmatched ``/v1/…`` paths, any method: forwarded untranslated
        to the resolved provider (:mod:`portkey_mw.passthrough`)."""
        path = _http.route_path(scope)
        ctx = self._context(Endpoint.PROXY, scope["method"], path, headers, base)
        passthrough.prepare(ctx, scope)
        await self._exchange(ctx, receive, send)

    async def _stored_response(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        headers: dict[str, str],
        base: dict[str, str],
    ) -> None:
        """``GET``/``DELETE /v1/responses/{id}``, ``GET …/input_items``: the caller's own
        stored responses (identified like any API request)."""
        try:
            api_key = await self.control.identifier.identify(headers)
            status, body = await stored_response_route(
                self.responses, scope["method"], path, scope.get("query_string", b""), api_key
            )
        except GatewayError as error:
            await _http.send_error(send, error, base)
            return
        await _http.send_bytes(send, status, body, base)

    async def _ready(self, send: Send, base: dict[str, str]) -> None:
        """``GET /ready``: 200 once everything start-up loads has loaded; until then 503
        naming what is still loading, so a load balancer sends no traffic yet."""
        waiting = self.not_ready()
        if not waiting:
            await _http.send_bytes(send, 200, b'{"status":"ready"}', base)
            return
        error = GatewayError(
            "the gateway is not ready: " + "; ".join(waiting), status=503, code="not_ready"
        )
        await _http.send_error(send, error, {**base, "retry-after": "1"})

    async def _metrics(self, send: Send, headers: Mapping[str, str], base: dict[str, str]) -> None:
        """``GET /metrics``: the admin key is required (Prometheus sends it as a bearer
        token), as the figures name models, providers and spend."""
        try:
            if not self.control.local_operator:
                self.admin_key.check(headers)
        except GatewayError as error:
            await _http.send_error(send, error, base)
            return
        body = self.metrics.render()
        await _http.send_bytes(send, 200, body, base, METRICS_CONTENT_TYPE)

    async def _admin(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: Mapping[str, str],
        base: dict[str, str],
    ) -> None:
        """The ``/v1/admin`` routes: every one needs the admin key, unknown ones included
        (an unauthenticated caller learns nothing about which exist)."""
        try:
            if not self.control.local_operator:  # the CLI's in-process app: see local_admin_app
                self.admin_key.check(headers)
        except GatewayError as error:
            await _http.send_error(send, error, base)
            return
        await self._admin_routes(_mounted(scope, ADMIN_PREFIX), receive, send)


def local_admin_app(settings: ServerSettings) -> Gateway:
    """The gateway the CLI drives in process to manage the local store: whoever holds the
    data directory is the operator, so its admin calls need no key. Never serve it."""
    gateway = Gateway(settings)
    if gateway.control.store is None:
        raise InvalidConfig("the control-plane store is disabled (store.enabled: false)")
    gateway.control.local_operator = True
    return gateway


def _passes_through(path: str) -> bool:
    """Whether an unrouted path is a pass-through (Portkey's gateway forwards every
    ``/v1/…`` path it has no route for); the gateway's own paths never are."""
    return (
        path.startswith("/v1/")
        and path not in HEALTH_PATHS
        and path not in READY_PATHS
        and not is_control_plane_path(path)
    )


def _default_store(settings: ServerSettings) -> ControlStore:
    """The SQL store the settings (or ``PORTKEY_MW_DATABASE_URL``) name."""
    from portkey_mw.store.sql import SQLStore  # SQLAlchemy loads only when a store is used

    return SQLStore(settings.store.url)


def _response_archive(settings: ServerSettings, store: ControlStore | None) -> ResponseArchive:
    """Where ``/v1/responses`` keeps responses: in process, and in the SQL store when there
    is one and ``responses.store`` is ``sql``."""
    options = settings.responses
    persistent = store if options.store == "sql" else None
    return ResponseArchive(
        ttl=options.ttl,
        max_entry_bytes=options.max_entry_bytes,
        memory_entries=options.memory_entries,
        memory_bytes=options.memory_bytes,
        store=cast(ResponseStore, persistent) if isinstance(persistent, ResponseStore) else None,
    )


def _mounted(scope: Scope, prefix: str) -> Scope:
    """The scope a router mounted at ``prefix`` (below the gateway's own mount) sees."""
    child = dict(scope)
    child["root_path"] = scope.get("root_path", "") + prefix
    return child


def header_items(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI header pairs from a mapping (kept public for middleware authors)."""
    return _http.encode_headers(headers)
