"""The per-request path, in order, in one file.

parse (body, options) → identify (the gateway API key) → resolve (virtual keys, saved
configs, the key's defaults → a compiled plan) → admit (budgets and rate limits: 412,
429) → ``on_request`` hooks → input guardrails → cache lookup → route (retries,
fallbacks; each virtual key admitted before its target is called) → output guardrails →
``on_response`` hooks → send (whole or streamed) → store in the cache → charge (tokens and
cost to the budgets and limits admitted) → record (the log event). Everything a request
needs is handed to :class:`Pipeline` once, by the application (:mod:`portkey_mw.app`);
each request is one :class:`Exchange`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from portkey_mw import _http, passthrough
from portkey_mw.auth.identity import Identifier
from portkey_mw.auth.virtual_keys import MODEL_REF_PREFIX, split_model_ref
from portkey_mw.bounds import whole_number
from portkey_mw.caching import HIT_STATUSES, CacheUse, StreamRecorder
from portkey_mw.client_body import ClientBody, declared_length
from portkey_mw.config.resolve import ConfigResolver
from portkey_mw.config.server import ServerSettings
from portkey_mw.context import Endpoint, GatewayResponse, RequestContext
from portkey_mw.errors import GatewayError, InvalidRequest, PluginError
from portkey_mw.files import (
    FILE_ENDPOINTS,
    UPLOAD,
    open_upload,
    operation,
    refuse_unguardable,
)
from portkey_mw.guardrails.flow import RequestGuardrails
from portkey_mw.guardrails.runner import GuardrailStats
from portkey_mw.inbound import LOGGED_ENDPOINT, InboundFormat
from portkey_mw.logbodies import BodyPolicy, StreamCapture
from portkey_mw.logevents import LogDispatcher, LogEvent
from portkey_mw.logging import traceback_text
from portkey_mw.multipart import FORM_STATE, MULTIPART_ENDPOINTS, Form, read_form
from portkey_mw.plugin import HookCall, PluginManager, await_me_maybe, call_hook
from portkey_mw.pricing import PriceTable
from portkey_mw.prompts.library import (
    RENDER,
    PromptCall,
    PromptLibrary,
    RenderedPrompt,
    callers,
    render_answer,
)
from portkey_mw.request_shape import check_body, require_param
from portkey_mw.response_cache import ResponseCache
from portkey_mw.routing import PlanNode, ResolvedTarget, Router, plan_leaves
from portkey_mw.services import GatewayServices
from portkey_mw.singleflight import Flight
from portkey_mw.spend import SpendControl, total_tokens
from portkey_mw.store.records import ApiKey
from portkey_mw.streaming import (
    DONE_EVENT,
    FINAL_EVENT_TYPES,
    TAIL_BYTES,
    SSEDecoder,
    error_event,
    event_data,
    is_event_stream,
    json_event,
    listen,
)
from portkey_mw.transport import Transport, UpstreamRequest
from portkey_mw.types import Receive, Send

log = structlog.get_logger("portkey_mw.gateway")


#: headers by which a request names its own route (a prompt's binding then stands aside)
_ROUTE_HEADERS = ("x-portkey-config", "x-portkey-virtual-key", "x-portkey-provider")
#: a prompt version's binding -> the header it stands for
_BINDING_HEADERS = {
    "config": "x-portkey-config",
    "virtual_key": "x-portkey-virtual-key",
    "provider": "x-portkey-provider",
}


def _take_model_ref(ctx: RequestContext) -> str | None:
    """The virtual key a model ``@<slug>/<model>`` names (the body keeps the model)."""
    model = ctx.model
    if model is None or not model.startswith(MODEL_REF_PREFIX):
        return None
    split = split_model_ref(model)
    if split is None:
        raise InvalidRequest(
            f"model {model!r}: a model naming a virtual key is '@<slug>/<model>'",
            param="model",
            code="invalid_model",
        )
    model_ref, name = split
    ctx.set_param("model", name)
    return model_ref


def _apply_key_metadata(ctx: RequestContext, api_key: ApiKey) -> None:
    """The API key's default metadata, under the request's: the key's own values win, so a
    client cannot pass for another user or team the operator tagged the key with."""
    defaults = api_key.defaults.get("metadata")
    if isinstance(defaults, dict) and defaults:
        ctx.metadata = {**ctx.metadata, **defaults}


@dataclass(slots=True)
class Pipeline:
    """What every request's path uses, built once by the application."""

    settings: ServerSettings
    plugins: PluginManager
    resolver: ConfigResolver
    router: Router
    cache: ResponseCache
    guardrail_stats: GuardrailStats
    #: the gateway as plugins and guardrail checks see it
    services: GatewayServices
    logs: LogDispatcher
    prices: PriceTable
    #: finds each request's gateway API key
    identifier: Identifier
    #: budgets and rate limits
    spend: SpendControl
    #: which requests' log records keep their bodies, and how (``logging``)
    bodies: BodyPolicy = field(default_factory=BodyPolicy)
    #: the prompt library (``/v1/prompts/{id}/completions`` and ``…/render``)
    prompts: PromptLibrary = field(default_factory=lambda: PromptLibrary(None))

    async def handle(
        self,
        ctx: RequestContext,
        receive: Receive,
        send: Send,
        inbound: InboundFormat | None = None,
        prompt_call: PromptCall | None = None,
    ) -> None:
        """Serve one API request, from reading its body to emitting its log event.

        :param prompt_call: the request calls a stored prompt: its body (variables and
            overrides) is rendered into a chat request after the caller is identified.
        """
        await Exchange(self, ctx, receive, send, inbound, prompt_call).run()

    async def open_realtime(self, ctx: RequestContext) -> tuple[UpstreamRequest, Transport]:
        """A realtime session's way to its provider (see :mod:`portkey_mw.realtime`):
        identify → resolve → admit, as for any request, then the router's checks of the
        target (virtual key, credential binding). Raises the refusal; nothing has been sent
        upstream then. Per-request hooks and the cache do not apply to frames; a route with
        guardrails is refused (nothing could check the frames)."""
        _http.apply_request_options(ctx)
        api_key = await self.identifier.identify(ctx.headers)
        if api_key is not None:
            ctx.api_key = api_key
            _apply_key_metadata(ctx, api_key)
        model_ref = _take_model_ref(ctx)
        plan, ctx.config_id = await self.resolver.resolve_request(ctx.headers, api_key, model_ref)
        if RequestGuardrails.for_plan(plan, self.services, self.guardrail_stats) is not None:
            # Frames are never checked: a route's guardrails would be skipped by speaking
            # over a socket instead (as a pass-through or a batch would skip them).
            raise InvalidRequest(
                "guardrails cannot check a realtime session (its frames are not read): "
                "use a config without guardrails for /v1/realtime",
                code="realtime_guardrails",
            )
        await self.spend.admit(ctx)
        _target, request, transport = await self.router.realtime(ctx, plan)
        return request, transport

    async def finish_realtime(self, ctx: RequestContext, event: LogEvent) -> None:
        """Charge an ended realtime session's usage and emit its log event."""
        event.prices = self.prices
        if ctx.limited:
            try:
                await self.spend.settle(ctx, event)
            except Exception as exc:  # never lose the log record over a charge
                log.error(
                    "charging the session's usage failed",
                    trace_id=ctx.trace_id,
                    exception=traceback_text(exc),
                )
        await self.logs.emit(event)

    async def run_request_hooks(self, ctx: RequestContext) -> GatewayResponse | None:
        """Run ``on_request`` hooks in order; the first response returned answers."""
        for call in self.plugins.on_request:
            result = await _run_hook(call, {"ctx": ctx})
            if result is not None:
                if not isinstance(result, GatewayResponse):
                    raise PluginError(
                        f"plugin {call.plugin!r}: on_request returned {type(result).__name__}, "
                        "expected None or GatewayResponse"
                    )
                return result
        return None

    async def run_response_hooks(self, ctx: RequestContext) -> None:
        """Run ``on_response`` hooks in order."""
        for call in self.plugins.on_response:
            await _run_hook(call, {"ctx": ctx})


async def _run_hook(call: HookCall, kwargs: dict[str, Any]) -> Any:
    try:
        return await await_me_maybe(call_hook(call, kwargs))
    except GatewayError:
        raise
    except Exception as exc:
        log.error(
            "plugin hook failed",
            plugin=call.plugin,
            hook=call.function.__name__,
            exception=traceback_text(exc),
        )
        raise PluginError(f"plugin {call.plugin!r} failed: {type(exc).__name__}") from exc


class Exchange:
    """One request/response exchange: body, hooks, routing, sending, the log event."""

    __slots__ = (
        "_disconnected",
        "_done",
        "capture",
        "ctx",
        "error",
        "final_usage",
        "finished",
        "flight",
        "guards",
        "inbound",
        "media",
        "pipeline",
        "plan",
        "prompt_call",
        "receive",
        "relay",
        "response_started",
        "send",
        "sent",
        "status",
        "ttfb",
        "unlogged",
        "upload",
    )

    def __init__(
        self,
        pipeline: Pipeline,
        ctx: RequestContext,
        receive: Receive,
        send: Send,
        inbound: InboundFormat | None = None,
        prompt_call: PromptCall | None = None,
    ):
        self.pipeline = pipeline
        self.inbound = inbound
        self.prompt_call = prompt_call
        #: no log record (a prompt render: nothing was asked of a provider)
        self.unlogged = False
        self.ctx = ctx
        self.receive = receive
        self.send = send
        self.status = 500
        self.error: GatewayError | None = None
        self.response_started = False
        self.ttfb: float | None = None
        #: when the last byte left: the latency logged is the client's, not counting the
        #: work after it (a cache store, async guardrails, the charge)
        self.finished: float | None = None
        self._done = False
        self._disconnected = False
        self.guards: RequestGuardrails | None = None
        #: the stream relayed (None: not a stream), read for the log and the charge even when
        #: the client left in the middle
        self.relay: _Tail | None = None
        #: a native Responses stream's usage and model, from its last event (which holds the
        #: whole response, so it may not fit in the tail the log keeps)
        self.final_usage: bytes | None = None
        #: the complete body the client got (a reference, for the log's bodies)
        self.sent: bytes | None = None
        #: a stream's events as sent, when its log record keeps bodies
        self.capture: StreamCapture | None = None
        #: the request's compiled plan, once resolved
        self.plan: PlanNode | None = None
        #: the flight this request leads: identical misses wait for its answer
        self.flight: Flight | None = None
        #: the client's body streamed to the upstream as it arrives (an upload, a
        #: pass-through's), which the upstream request's failure may be the fault of
        self.upload: ClientBody | None = None
        #: a charged pass-through's answer relayed as bytes: the whole of it (``None``: it
        #: was larger than PROXY_USAGE_BYTES) and its size, for the usage it reports
        self.media: tuple[bytes | None, int] | None = None

    async def run(self) -> None:
        ctx = self.ctx
        watcher: asyncio.Task[None] | None = None
        try:
            try:
                if ctx.endpoint is Endpoint.PROXY:
                    server = self.pipeline.settings.server
                    self.upload = passthrough.open_body(
                        ctx, self.receive, server.max_body_bytes, server.body_timeout
                    )
                elif ctx.method == "POST":
                    await self._read_body()
                if UPLOAD not in ctx.state:  # (an upload's body is read as it goes upstream)
                    watcher = asyncio.get_running_loop().create_task(
                        self._watch_disconnect(asyncio.current_task())
                    )
                await self._process()
            except GatewayError as error:
                await self._fail(error)
            except Exception as exc:
                log.error("unhandled error", trace_id=ctx.trace_id, exception=traceback_text(exc))
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
            if self.flight is not None:
                self._land(self.flight)
            if ctx.response is not None:
                await ctx.response.aclose()
            form = ctx.state.get(FORM_STATE)
            if isinstance(form, Form):
                form.close()  # its files' temporary copies
            await self._emit_log()

    async def _watch_disconnect(self, task: asyncio.Task[Any] | None) -> None:
        if self.upload is not None:
            await self.upload.done.wait()  # until then, the body's reader hears a disconnect
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                break
        if not self._done and task is not None:
            self._disconnected = True
            task.cancel()

    async def _read_body(self) -> None:
        ctx, server = self.ctx, self.pipeline.settings.server
        if ctx.endpoint in FILE_ENDPOINTS:
            op = operation(ctx)
            if op.name == "upload":
                # Never read whole: the provider's request streams it, counted (files.py).
                self.upload = ctx.state[UPLOAD] = open_upload(
                    self.receive, ctx.headers, server.max_upload_bytes, server.body_timeout
                )
                return
            if not op.reads_json:
                return  # a batch's cancel has no body
        if ctx.endpoint in MULTIPART_ENDPOINTS:
            form = await read_form(
                self.receive,
                ctx.headers,
                ctx.endpoint,
                server.max_upload_bytes,
                server.body_timeout,
            )
            ctx.state[FORM_STATE] = form
            ctx.body = dict(form.fields)
            # What the log keeps as the request body: the fields and the files' sizes.
            ctx.raw_body = orjson.dumps(form.description())
            return
        limit = server.max_body_bytes
        content_type = ctx.headers.get("content-type")
        if content_type is not None and "json" not in content_type.split(";", 1)[0].lower():
            raise _http.unsupported_media_type(content_type)
        declared_length(ctx.headers, limit)
        ctx.raw_body = await _http.read_body(self.receive, limit, server.body_timeout)
        body = _http.parse_json_object(ctx.raw_body)
        if self.prompt_call is not None:
            ctx.body = body  # variables and overrides: checked once rendered
            return
        if self.inbound is None:
            check_body(ctx.endpoint, body)
        else:
            require_param(ctx.endpoint, body)
        ctx.body = body
        if self.inbound is not None:
            # From here on the pipeline sees OpenAI's shape; the client gets its own back.
            translated = self.inbound.request(body)
            if translated is not body:  # (else the translation waits for the route)
                ctx.set_body(translated)
                ctx.state["inbound_format"] = self.inbound.name
                check_body(ctx.endpoint, ctx.body or {})

    async def _process(self) -> None:
        ctx, pipeline = self.ctx, self.pipeline
        _http.apply_request_options(ctx)
        # identify: the gateway API key, from memory (the catalog), never the store
        api_key = await pipeline.identifier.identify(ctx.headers)
        if api_key is not None:
            ctx.api_key = api_key
            _apply_key_metadata(ctx, api_key)
        if self.prompt_call is not None:
            rendered = await self._render_prompt(self.prompt_call, api_key)
            if self.prompt_call.action == RENDER:
                self.unlogged = True
                await self._send_complete(
                    GatewayResponse(status=200, headers={}, body=render_answer(rendered))
                )
                return
        # resolve: virtual keys, saved configs, the key's defaults -> one compiled plan
        model_ref = _take_model_ref(ctx)
        plan, ctx.config_id = await pipeline.resolver.resolve_request(
            ctx.headers, api_key, model_ref
        )
        self.plan = plan
        if ctx.endpoint in FILE_ENDPOINTS:
            plan = self.plan = _first_target(plan, streamed=UPLOAD in ctx.state)
        if ctx.endpoint is Endpoint.PROXY and not isinstance(plan, ResolvedTarget):
            # The body streams to one upstream once: no fallback or retry could resend it.
            raise InvalidRequest(
                "a pass-through request goes to a single target: its config has several "
                "(strategies cannot resend a streamed body)",
                code="proxy_single_target",
            )
        if self.inbound is not None:
            # A format may serve a request natively or translate it, by where it can go.
            arrived = self.inbound
            self.inbound = await arrived.routed(ctx, self._native(plan))
            if self.inbound is not None and self.inbound is not arrived:
                check_body(ctx.endpoint, ctx.body or {})  # the request it translated to
        # admit: budgets (412) and rate limits (429) of the key and its metadata, from memory
        # or one Redis round trip each; nothing when none apply
        await pipeline.spend.admit(ctx)
        response = await pipeline.run_request_hooks(ctx)
        guards = self.guards = RequestGuardrails.for_plan(
            plan, pipeline.services, pipeline.guardrail_stats
        )
        if guards is not None and ctx.endpoint in FILE_ENDPOINTS:
            refuse_unguardable(operation(ctx))
        per_target = None
        if guards is not None and ctx.endpoint is Endpoint.PROXY:
            raise InvalidRequest(
                "guardrails cannot check a pass-through request (its body is not read): "
                "call a translated route, or use a config without guardrails",
                code="proxy_guardrails",
            )
        if guards is not None and response is None:
            if guards.shared is not None:
                # Before the cache: a cached answer never skips an input guardrail.
                await guards.check_request(ctx, guards.shared.before)
            else:
                per_target = guards.before_target
        # With per-target input guardrails the cache is not consulted (see guardrails.flow).
        cache = (
            pipeline.cache.for_request(ctx, plan)
            if response is None and per_target is None
            else None
        )
        if cache is not None:
            response = await cache.lookup(ctx)
            if response is None:
                response = await self._coalesce(cache)
        if response is None:
            try:
                response = await pipeline.router.route(ctx, plan, per_target)
            except GatewayError:
                if self.upload is not None and self.upload.failure is not None:
                    # The upstream request was aborted because of the body: that is the error.
                    raise self.upload.failure from None
                raise
            if self.flight is not None:
                self._take_off(self.flight, response)
        # What the cache keeps is the provider's answer as it came, before output guardrails
        # and response hooks, which run again on every hit: a config's output mutator
        # changes its own client's answer, never what other clients are served.
        answered = response.body
        if guards is not None:
            try:
                response = (
                    guards.guard_stream(ctx, response)
                    if response.stream is not None
                    else await guards.check_response(ctx, response)
                )
            except GatewayError:
                # The provider answered, and billed, before an output guardrail refused the
                # answer (a check's result may even carry its text back): it is charged like
                # any answer, or a client's own denying guardrail would make requests free.
                ctx.response = response
                raise
        ctx.response = response
        # Only a fresh, successful answer is stored; a hit is not stored again.
        storing = cache if ctx.cache_status not in HIT_STATUSES and response.status == 200 else None
        if response.stream is None:
            await pipeline.run_response_hooks(ctx)
            await self._send_complete(response)
            if storing is not None and answered:
                await storing.store(answered)
        else:
            recorder = None
            if storing is not None:
                recorder = StreamRecorder()  # hears the chunks the router's check parses
                listen(response, recorder.take)
            await self._send_stream(response)
            await pipeline.run_response_hooks(ctx)
            if storing is not None and recorder is not None and response.stream_complete:
                completion = orjson.dumps(recorder.completion())
                if self.flight is not None:
                    self.flight.complete(completion)  # followers first: the store may wait
                await storing.store(completion)

    def _native(self, plan: PlanNode) -> bool:
        """Whether every provider ``plan`` can reach serves the request's endpoint itself."""
        providers, endpoint = self.pipeline.router.providers, self.ctx.endpoint
        return all(
            (provider := providers.get(leaf.provider)) is not None
            and endpoint in provider.endpoints
            for leaf in plan_leaves(plan)
        )

    async def _render_prompt(self, call: PromptCall, api_key: ApiKey | None) -> RenderedPrompt:
        """Make a prompt call a chat request: the body rendered from the prompt's version,
        the version's route used when the request names none, the log told which prompt."""
        ctx = self.ctx
        workspace = api_key.acting_workspace if api_key is not None else None
        body = ctx.body or {}
        rendered = await self.pipeline.prompts.render(
            call.prompt_id,
            body,
            workspace_id=workspace,
            callers=callers(body, ctx.metadata, ctx.trace_id),
            fallback_caller=ctx.request_id,
        )
        ctx.state["portkey_mw.prompt"] = {
            "id": rendered.prompt.slug,
            "version": rendered.version.version,
            "label": rendered.label,
        }
        check_body(ctx.endpoint, rendered.body)
        ctx.set_body(rendered.body)
        forced = api_key is not None and api_key.defaults.get("allow_config_override") is False
        own_route = any(ctx.headers.get(h) for h in _ROUTE_HEADERS)
        if not forced and not own_route:
            # The request names no route of its own: the version's, through the same checks
            # as the header would get (a virtual key's status, workspace, budget).
            for name, header in _BINDING_HEADERS.items():
                if name in rendered.binding:
                    ctx.headers[header] = rendered.binding[name]
                    break
        return rendered

    async def _coalesce(self, cache: CacheUse) -> GatewayResponse | None:
        """A miss: lead the flight for its key (``None``: call the upstream), or follow the
        identical one in flight and return its answer (served like a hit)."""
        flights = self.pipeline.cache.flights
        if flights is None or cache.refresh:
            return None  # a forced refresh wants its own answer
        ctx = self.ctx
        assert self.plan is not None
        timeout_ms = _follow_timeout(ctx, self.plan, self.pipeline.router.default_timeout_ms)
        deadline = None
        if timeout_ms:
            deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
        stream = ctx.stream and ctx.endpoint is not Endpoint.EMBEDDINGS
        asked = _asked_for_usage(ctx.body)
        while True:
            flight, leading = flights.join(cache.key)
            if flight is None:
                return None  # one in flight that can no longer be joined: go alone
            if leading:
                self.flight = flight
                return None
            ctx.state[COALESCED] = True  # said in the log, even of a follower timing out
            answer = await flight.follow(
                stream=stream, include_usage=asked, deadline=deadline, timeout_ms=timeout_ms
            )
            if isinstance(answer, GatewayResponse):
                break
            if answer is None:  # the leader failed: this request goes upstream on its own
                ctx.state.pop(COALESCED, None)
                return None
            # the leader's client left: follow, or lead, the next flight
        # No upstream call, no cost: accounted exactly like a cache hit.
        ctx.cache_status = "HIT"
        ctx.response_headers[COALESCED_HEADER] = "true"
        if answer.stream is not None and not asked:
            # The leader's stream may carry a usage chunk this client did not ask for.
            answer.stream = _without_usage(answer.stream)
        return answer

    def _take_off(self, flight: Flight, response: GatewayResponse) -> None:
        """The leader's upstream answered: share a success, release followers otherwise."""
        if response.status != 200:
            flight.fail()
        elif response.stream is not None:
            response.stream = flight.tee(response.stream)
        elif response.body:
            flight.complete(response.body)
        else:
            flight.fail()

    def _land(self, flight: Flight) -> None:
        """The leader is done: hand the flight over if its client left mid-answer."""
        if self._disconnected:
            flight.abandon()
        flights = self.pipeline.cache.flights
        if flights is not None:
            flights.land(flight)  # any other unfinished end fails the flight

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
        self.finished = time.perf_counter()
        self.sent = body

    async def _send_stream(self, response: GatewayResponse) -> None:
        assert response.stream is not None
        if not is_event_stream(response):
            await self._send_media(response)
            return
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
        ctx = self.ctx
        # A pass-through's answer is relayed as it came: no hook or usage filter reads it as
        # OpenAI's events, and its bodies are not kept (its request's never was read).
        proxied = ctx.endpoint is Endpoint.PROXY
        chunk_hooks = () if proxied else self.pipeline.plugins.on_stream_chunk
        chunks = self._hooked(response.stream, chunk_hooks) if chunk_hooks else response.stream
        if ctx.endpoint is Endpoint.RESPONSES and self.inbound is None:
            listen(response, self._take_final_usage)
        tail = self.relay = _Tail(chunks, counting=bool(ctx.limited))
        relayed: AsyncIterable[bytes] = tail if self.inbound is None else self.inbound.stream(tail)
        if (
            not proxied
            and self.inbound is None
            and ctx.limited
            and ctx.endpoint is not Endpoint.RESPONSES  # (its usage is in its last event)
            and not _asked_for_usage(ctx.body)
        ):
            # The router asked the provider for the final usage, which spend control
            # charges (see _provider_call); the client did not, so it does not see it.
            relayed = _without_usage(relayed)
        capture = None
        if self.pipeline.bodies.enabled(ctx) and not proxied:
            # Only then: a stream whose bodies are not kept pays nothing for this.
            capture = self.capture = StreamCapture(self.pipeline.bodies.max_bytes)
            relayed = capture.wrap(relayed)
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
            if capture is not None:
                capture.add(event)
        response.stream_tail = tail.tail
        response.stream_complete = self.error is None and tail.tail.rstrip().endswith(b"[DONE]")
        self._done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finished = time.perf_counter()

    def _take_final_usage(self, event: dict[str, Any]) -> None:
        if event.get("type") in FINAL_EVENT_TYPES:
            final = event.get("response")
            if isinstance(final, dict) and final.get("usage") is not None:
                self.final_usage = orjson.dumps(
                    {"usage": final["usage"], "model": final.get("model")}
                )

    async def _send_media(self, response: GatewayResponse) -> None:
        """Relay a stream of bytes that are not events (speech audio, a file's content) as
        they arrive, with the upstream's content type. Nothing of it is kept: the log gets
        its type and size. An upstream that breaks off mid-way leaves the response
        unfinished (the connection closes), so a client cannot take a cut file for a whole
        one."""
        assert response.stream is not None
        self.status = response.status
        headers = self._response_headers(response)
        await self.send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": _http.encode_headers(headers),
            }
        )
        self.response_started = True
        size, send = 0, self.send
        # A charged pass-through keeps a small answer whole: its usage is in it.
        keep = PROXY_USAGE_BYTES if self.ctx.endpoint is Endpoint.PROXY and self.ctx.limited else -1
        kept = bytearray()
        async for chunk in response.stream:
            if self.ttfb is None:
                self.ttfb = time.perf_counter()
            size += len(chunk)
            if size <= keep:
                kept += chunk
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        response.stream_complete = True
        if keep >= 0:
            self.media = (bytes(kept) if size <= keep else None, size)
        self._done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.finished = time.perf_counter()
        self.sent = orjson.dumps({"content_type": headers.get("content-type"), "bytes": size})

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

    def _usage_estimate(self, event: LogEvent) -> dict[str, int] | None:
        """What a provider answer that reported no usage probably used: a stream cut before
        its usage (the client left, the upstream broke off), or an upstream that never
        reports it (a self-hosted server). The provider bills those tokens (or the operator
        pays for the machine), so budgets count them too: a client cannot spend for free by
        hanging up before the last chunk."""
        ctx = self.ctx
        if event.cache_hit or total_tokens(event.usage):
            return None  # usage that counts no token (junk, or none) is estimated too
        relay = self.relay
        if relay is not None:
            # A provider that was called read the prompt, even when nothing of its stream was
            # relayed (an output guardrail stopped it on its first event).
            if not (relay.events or ctx.attempts):
                return None
            completion = relay.events
            if ctx.endpoint is Endpoint.PROXY and not completion:
                whole = relay.tail if relay.size == len(relay.tail) else None
                return self._proxy_usage(event, whole, relay.size)
        else:
            response = ctx.response
            if ctx.endpoint is Endpoint.PROXY and self.media is not None:
                return self._proxy_usage(event, *self.media)
            if (
                response is None
                or response.status >= 400
                or not ctx.attempts
                or ctx.endpoint not in ESTIMATED_ENDPOINTS
            ):
                return None
            # about 4 bytes a token of the answer; an embedding's vectors are no tokens
            generated = ctx.endpoint is not Endpoint.EMBEDDINGS
            completion = len(response.body or b"") // 4 if generated else 0
        event.extra["usage_estimated"] = True
        return _estimate(ctx, completion)

    def _proxy_usage(self, event: LogEvent, body: bytes | None, size: int) -> dict[str, int] | None:
        """A pass-through's answer, relayed as it came (JSON, not events), charged like any
        other: its own ``usage`` when the whole answer is at hand, else an estimate (about
        4 bytes a token of the body sent and of the answer) -- else a budget never ran out."""
        reported = _json_usage(body) if body else None
        if reported:
            return reported
        upload = self.upload
        event.extra["usage_estimated"] = True
        return _estimate(self.ctx, size // 4, upload.size if upload is not None else 0)

    async def _fail(self, error: GatewayError) -> None:
        self.error = error
        self.status = error.status
        if self.response_started:
            return
        self.response_started = True
        self._done = True
        body = error.to_bytes() if self.inbound is None else self.inbound.error(error)
        headers = self._routing_headers()
        extra = getattr(error, "headers", None)  # a 429's retry-after and rate-limit headers
        if isinstance(extra, dict):
            headers.update(extra)
        await _http.send_bytes(self.send, error.status, body, headers)
        self.finished = time.perf_counter()
        self.sent = body

    async def _emit_log(self) -> None:
        if self.unlogged:
            return
        ctx, response = self.ctx, self.ctx.response
        now = time.perf_counter()
        error = self.error
        event = LogEvent.of_request(
            ctx,
            status=self.status,
            latency_ms=((self.finished or now) - ctx.started) * 1000,
            error=error,
            endpoint=ctx.state.get(LOGGED_ENDPOINT) or ctx.endpoint.value,
            stream=ctx.stream,
            cache_status=ctx.cache_status,
            retry_count=int(ctx.response_headers.get("x-portkey-retry-attempt-count", 0)),
            ttfb_ms=(self.ttfb - ctx.started) * 1000 if self.ttfb is not None else None,
        )
        prompt = ctx.state.get("portkey_mw.prompt")
        if isinstance(prompt, dict):
            prompt_id, version = prompt.get("id"), prompt.get("version")
            label = prompt.get("label")
            event.prompt_id = prompt_id if isinstance(prompt_id, str) else None
            event.prompt_version = version if isinstance(version, int) else None
            event.prompt_label = label if isinstance(label, str) else None
        bodies = self.pipeline.bodies
        if bodies.enabled(ctx):
            # References only: decoding, redaction and the cap wait for the sink's task.
            event.bodies = bodies
            event.request_bytes = ctx.raw_body
            event.sent_bytes = self.capture.data if self.capture is not None else self.sent
        if ctx.state.get(COALESCED):
            event.extra["coalesced"] = True
        if event.provider is None and ctx.cache_status in HIT_STATUSES and self.plan is not None:
            # A cache hit called no provider; the plan's (when it has one) priced the
            # answer it saved.
            event.provider = _single_provider(self.plan)
        if response is not None:
            if response.stream is not None:
                relay = self.relay
                # (a stream the client left has its tail only in the relay)
                event.response_bytes = (
                    self.final_usage or response.stream_tail or (relay.tail if relay else b"")
                )
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
        event.prices = self.pipeline.prices
        if ctx.limited:
            try:
                await self.pipeline.spend.settle(ctx, event, self._usage_estimate(event))
            except Exception as exc:  # never lose the log record over a charge
                log.error(
                    "charging the request's usage failed",
                    trace_id=ctx.trace_id,
                    exception=traceback_text(exc),
                )
        if ctx.cache_status is not None:
            # Only hits pay for working out a cost here (parsing the cached body's usage).
            saved = event.cost_saved_usd if ctx.cache_status in HIT_STATUSES else None
            self.pipeline.cache.stats.record(ctx.cache_status, saved)
        await self.pipeline.logs.emit(event)


#: ``ctx.state`` key: this request followed an identical one in flight (single-flight)
COALESCED = "portkey_mw.coalesced"
#: response header of a request answered by an identical one in flight
COALESCED_HEADER = "x-portkey-cache-coalesced"


def _follow_timeout(ctx: RequestContext, plan: PlanNode, default_ms: int | None) -> int | None:
    """Milliseconds a follower waits: its own request timeout (the header's, else the
    longest its config's targets give, else the server file's); ``None``: no limit."""
    header = ctx.headers.get("x-portkey-request-timeout")
    if number := whole_number(header):
        return number
    configured = [leaf.request_timeout for leaf in plan_leaves(plan) if leaf.request_timeout]
    return max(configured) if configured else default_ms


def _first_target(plan: PlanNode, *, streamed: bool) -> ResolvedTarget:
    """Where a files or batches call goes: the config's first target, as written. A file
    lives in one provider account, and a batch runs where its input file is: a load
    balancer or a fallback would scatter them across accounts where ids mean nothing.
    An upload streamed from the client cannot be sent twice, so it is not retried."""
    first = plan_leaves(plan)[0]
    return dataclasses.replace(first, retry=None) if streamed else first


def _single_provider(plan: PlanNode) -> str | None:
    """The provider of every target of ``plan``, when they share one."""
    if isinstance(plan, ResolvedTarget):
        return plan.provider
    providers = {leaf.provider for leaf in plan_leaves(plan)}
    return providers.pop() if len(providers) == 1 else None


def _asked_for_usage(body: dict[str, Any] | None) -> bool:
    """Whether the client's request asks for a stream's final usage chunk."""
    options = (body or {}).get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


async def _without_usage(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The stream without its usage-only chunk (``choices: []`` plus ``usage``), which the
    gateway asked for and the client did not."""
    decoder = SSEDecoder()
    async for raw in chunks:
        out = []
        for event in decoder.feed(raw):
            data = event_data(event)
            if data is not None and data.startswith(b"{") and b'"usage"' in data:
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    chunk = None
                if isinstance(chunk, dict) and chunk.get("usage") and not chunk.get("choices"):
                    continue
            out.append(event + b"\n\n")
        if out:
            yield b"".join(out)
    rest = decoder.flush()
    if rest:
        yield b"".join(event + b"\n\n" for event in rest)


#: the largest pass-through answer kept whole to read its usage (a chat completion's JSON
#: is far smaller; a larger answer is charged an estimate by its size)
PROXY_USAGE_BYTES = 256 * 1024

#: the endpoints whose complete answers without usage are estimated (the others: images and
#: image edits, moderations, models, token counts, are not priced by tokens); speech's audio
#: counts no completion tokens, its input text the prompt's
ESTIMATED_ENDPOINTS = frozenset(
    {
        Endpoint.CHAT_COMPLETIONS,
        Endpoint.COMPLETIONS,
        Endpoint.EMBEDDINGS,
        Endpoint.AUDIO_SPEECH,
        Endpoint.AUDIO_TRANSCRIPTIONS,
        Endpoint.AUDIO_TRANSLATIONS,
    }
)


def _json_usage(body: bytes) -> dict[str, int] | None:
    """The token counts of a complete JSON answer's ``usage`` (``None``: it has none)."""
    try:
        usage = orjson.loads(body).get("usage")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(usage, dict):
        return None
    counts = {k: v for k, v in usage.items() if type(v) is int and v >= 0}
    return counts if total_tokens(counts) else None


def _estimate(ctx: RequestContext, completion: int, sent: int = 0) -> dict[str, int]:
    """Usage for an answer that reported none: about 4 bytes of the request per prompt
    token (JSON included, so rather more than fewer), and ``completion`` tokens (a stream's
    events, one token each; a complete answer's size in 4-byte tokens). The
    request is the one the provider read (a config's ``override_params`` may have added a
    long prompt to a short body), or the ``sent`` bytes of a body streamed upstream unread."""
    size = max(len(ctx.raw_body), sent)
    if ctx.upstream_body is not None:
        size = max(size, len(orjson.dumps(ctx.upstream_body)))
    prompt = size // 4
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Tail:
    """Relays an OpenAI-format stream, keeping its last bytes (usage and ``[DONE]`` live
    there) for the log, before any translation for the client."""

    __slots__ = ("_chunks", "_counting", "events", "size", "tail")

    def __init__(self, chunks: AsyncIterator[bytes], counting: bool = False) -> None:
        self._chunks = chunks
        self._counting = counting
        self.tail = b""
        #: about how many events went by (``data:`` lines): for a stream that ended without
        #: its usage, roughly the tokens it carried
        self.events = 0
        #: bytes relayed (counted only for a charged stream, as ``events`` is)
        self.size = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        async for chunk in self._chunks:
            self.tail = (self.tail + chunk)[-TAIL_BYTES:]
            if self._counting:  # only a charged stream may need its estimate
                self.events += chunk.count(b"data:")
                self.size += len(chunk)
            yield chunk
