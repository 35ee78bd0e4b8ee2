"""The router: walks a request's plan -- strategies, retries, fallbacks -- to one response.

Resilience rules, each there so the gateway never makes an outage worse:

* a fallback moves on after connection errors, timeouts, 429 and 5xx, or exactly on
  ``strategy.on_status_codes`` when the config sets them;
* retries back off exponentially with full jitter, honour ``Retry-After`` up to a cap, and
  never repeat a 400, 401, 403, 404 or 422;
* one request makes at most ``routing.max_attempts`` upstream attempts, however retries
  and fallbacks nest;
* a target that keeps failing is skipped while its circuit is open;
* a stream is read up to its first event before the router commits to it, so a stream that
  fails before any byte reached the client falls back like any other failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from portkey_mw.auth.credentials import enforce_binding
from portkey_mw.auth.virtual_keys import check_usable
from portkey_mw.config.schema import StrategyMode
from portkey_mw.config.server import RoutingOptions
from portkey_mw.context import Attempt, Endpoint, GatewayResponse, RequestContext
from portkey_mw.errors import (
    GatewayError,
    InvalidConfig,
    InvalidRequest,
    UpstreamConnectionError,
    UpstreamTimeout,
)
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.limits.errors import BudgetExhausted, RateLimitExceeded
from portkey_mw.limits.subject import Subject
from portkey_mw.redact import mask_text
from portkey_mw.request_shape import check_body
from portkey_mw.routing.breaker import CircuitBreakers
from portkey_mw.routing.conditions import matches
from portkey_mw.routing.plan import PlanNode, ResolvedTarget, StrategyNode, plan_leaves
from portkey_mw.streaming import ChunkFeed, StreamGuard, is_event_stream
from portkey_mw.transport import ClientHostTransport, Transport, UpstreamRequest

#: Retried when ``retry.on_status_codes`` is not set (Portkey's list).
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Never retried, whatever a config says: retrying cannot change the answer.
NEVER_RETRIED = frozenset({400, 401, 403, 404, 422})
#: Codes of failures that stand for attempts never made; a fallback always moves past them.
REFUSALS = frozenset({"circuit_open", "attempt_budget"})


class _Failure(Exception):
    """A target failed in a way its parent strategy may act on."""

    def __init__(
        self,
        response: GatewayResponse | None,
        error: GatewayError | None,
        target: ResolvedTarget,
        retries: int = 0,
    ) -> None:
        super().__init__()
        self.response = response
        self.error = error
        self.target = target
        self.retries = retries

    @property
    def status(self) -> int:
        if self.response is not None:
            return self.response.status
        assert self.error is not None
        return self.error.status

    @property
    def unreachable(self) -> bool:
        """The provider never answered: a connection error or a timeout."""
        return isinstance(self.error, UpstreamConnectionError | UpstreamTimeout)

    @property
    def refused(self) -> bool:
        """No attempt was made: the circuit was open or the attempt budget spent."""
        return self.error is not None and self.error.code in REFUSALS

    @property
    def over_limit(self) -> bool:
        """No attempt was made: the target's virtual key is over its budget or rate limit
        (unlike :attr:`refused`, the client learns from it what to do)."""
        return isinstance(self.error, BudgetExhausted | RateLimitExceeded)

    def rank(self) -> int:
        """How much this failure tells the client; lower is more meaningful.

        A 4xx -- the provider's, or the gateway's verdict on the request or config -- says
        what to fix; a 429 says when to come back; a provider's 5xx beats the gateway's own
        verdicts on the upstream (timeout, unreachable) and attempts never made.
        """
        status = self.status
        if self.refused:
            return 5
        if self.unreachable:
            return 3 if isinstance(self.error, UpstreamTimeout) else 4
        return 1 if status == 429 else 0 if status < 500 else 2

    async def aclose(self) -> None:
        if self.response is not None:
            await self.response.aclose()


#: per-target work before the first call (guardrails); raising GatewayError refuses it
BeforeTarget = Callable[[RequestContext, ResolvedTarget], Awaitable[None]]
#: admits a request for a target's virtual key (spend control; None: the target has none
#: with limits); raises 412 or 429
AdmitTarget = Callable[[RequestContext, Subject | None], Awaitable[None]]


class _Walk:
    """One request's way through its plan: the failures seen and the attempts left."""

    __slots__ = ("attempts_left", "before_target", "failures")

    def __init__(self, max_attempts: int, before_target: BeforeTarget | None = None) -> None:
        self.attempts_left = max_attempts
        self.failures: list[_Failure] = []
        self.before_target = before_target


class Router:
    """Walks a plan for one request and returns the response that should be sent.

    :param providers: registered providers by id.
    :param transport: the process's upstream transport.
    :param options: the server file's ``routing`` section.
    :param rng: randomness for load balancing and jitter (seedable in tests).
    :param default_timeout_ms: per-attempt timeout when neither the config nor the
        ``x-portkey-request-timeout`` header sets one (the server file's ``request_timeout``).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        transport: Transport,
        *,
        options: RoutingOptions | None = None,
        rng: random.Random | None = None,
        default_timeout_ms: int | None = None,
        admit_target: AdmitTarget | None = None,
    ) -> None:
        self.providers = providers
        #: spend control's check of a target's virtual key, before it is called
        self.admit_target = admit_target
        self.transport = transport
        self.options = options or RoutingOptions()
        self.rng = rng or random.Random()
        self.default_timeout_ms = default_timeout_ms
        self.breakers = CircuitBreakers(self.options.circuit_breaker)
        # Hosts a client chose get their own connection pool (see ClientHostTransport).
        self._client_hosts = ClientHostTransport(transport)

    async def route(
        self, ctx: RequestContext, plan: PlanNode, before_target: BeforeTarget | None = None
    ) -> GatewayResponse:
        """Run ``plan`` and return the answering response (successful or not).

        :param before_target: awaited before a target is first called (its own input
            guardrails); a :class:`GatewayError` it raises is that target's failure.
        """
        if ctx.endpoint is Endpoint.MODELS and isinstance(plan, StrategyNode):
            return await self._list_models(ctx, plan)
        walk = _Walk(self.options.max_attempts, before_target)
        try:
            return await self._run(ctx, plan, walk)
        except _Failure:
            pass
        chosen = min(reversed(walk.failures), key=_Failure.rank)
        for failure in walk.failures:
            if failure is not chosen:
                await failure.aclose()
        # The response headers describe the failure the client receives.
        ctx.provider, ctx.target_index = chosen.target.provider, chosen.target.path
        ctx.virtual_key = chosen.target.virtual_key
        ctx.response_headers["x-portkey-retry-attempt-count"] = str(chosen.retries)
        listed = [a.summary() for a in ctx.attempts] if len(ctx.attempts) > 1 else None
        if chosen.response is not None:
            if listed:
                _add_attempts(chosen.response, listed)
            return chosen.response
        assert chosen.error is not None
        if listed:
            chosen.error.extra["attempts"] = listed
        raise chosen.error

    async def _run(self, ctx: RequestContext, node: PlanNode, walk: _Walk) -> GatewayResponse:
        if isinstance(node, ResolvedTarget):
            return await self._target(ctx, node, walk)
        if node.mode is StrategyMode.FALLBACK:
            for child in node.children:
                try:
                    return await self._run(ctx, child, walk)
                except _Failure as failure:
                    if not self._falls_back(node, failure):
                        raise
            raise walk.failures[-1]
        if node.mode is StrategyMode.LOADBALANCE:
            return await self._run(ctx, self._choose_weighted(ctx, node), walk)
        if node.mode is StrategyMode.CONDITIONAL:
            return await self._run(ctx, _choose_conditional(ctx, node), walk)
        return await self._run(ctx, node.children[0], walk)

    async def realtime(
        self, ctx: RequestContext, plan: PlanNode
    ) -> tuple[ResolvedTarget, UpstreamRequest, Transport]:
        """The target a realtime session connects to, its WebSocket handshake, and the
        transport to open it with, after the same checks as any attempt (the virtual key's
        state, workspace and limits; the credential's binding). A session is one long
        attempt: a strategy picks its target as for a request (weights, conditions; the
        first of a fallback), and nothing falls back once frames flow.

        :raises GatewayError: the refusal, before anything is sent upstream.
        """
        node = plan
        while isinstance(node, StrategyNode):
            if node.mode is StrategyMode.LOADBALANCE:
                node = self._choose_weighted(ctx, node)
            elif node.mode is StrategyMode.CONDITIONAL:
                node = _choose_conditional(ctx, node)
            else:
                node = node.children[0]
        target = node
        ctx.provider, ctx.target_index = target.provider, target.path
        ctx.virtual_key = target.virtual_key
        provider = self.providers[target.provider]
        if Endpoint.REALTIME not in provider.endpoints:
            raise InvalidRequest(
                f"provider {target.provider!r} does not serve realtime",
                code="unsupported_endpoint",
            )
        key = ctx.api_key
        check_usable(target, workspace_id=key.acting_workspace if key is not None else None)
        enforce_binding(ctx.headers, target, provider)
        if self.admit_target is not None and (target.spend is not None or ctx.limited):
            await self.admit_target(ctx, target.spend)  # (as _target admits an attempt)
        request = provider.realtime_request(_provider_call(ctx, target, self.default_timeout_ms))
        transport = self._client_hosts if _client_host(ctx, target) else self.transport
        return target, request, transport

    async def _list_models(self, ctx: RequestContext, plan: StrategyNode) -> GatewayResponse:
        """``GET /v1/models`` over a config with several targets: every provider's models.

        Each distinct upstream that serves a model list is asked once, concurrently; the
        lists are merged (first occurrence of an id wins) and each model names its provider.
        The request fails only when every upstream failed.
        """
        upstreams: dict[tuple[str, str | None], ResolvedTarget] = {}
        for leaf in plan_leaves(plan):
            provider = self.providers.get(leaf.provider)
            if provider is not None and Endpoint.MODELS in provider.endpoints:
                upstreams.setdefault((leaf.provider, leaf.custom_host), leaf)
        if not upstreams:
            raise InvalidRequest(
                "no provider in this config serves a model list", code="unsupported_endpoint"
            )

        async def one(target: ResolvedTarget) -> tuple[ResolvedTarget, GatewayResponse | None]:
            if target.spend is not None and self.admit_target is not None:
                try:
                    # A virtual key over its limits (or turned off by a limit of 0) is
                    # not called for its list either.
                    await self.admit_target(ctx, target.spend)
                except GatewayError:
                    return target, None
            response, _ = await self._attempt(ctx, target, _effective_upstream(ctx, target))
            if response is not None and response.status >= 400:
                await response.aclose()
                return target, None
            return target, response

        results = await asyncio.gather(*(one(t) for t in upstreams.values()))
        models: dict[str, dict[str, Any]] = {}
        answered = []
        for target, response in results:
            listing = response.json() if response is not None else None
            data = listing.get("data") if isinstance(listing, dict) else None
            if not isinstance(data, list):
                continue  # not a model list: as if this upstream had not answered
            answered.append(target.provider)
            for model in data:
                if isinstance(model, dict) and model.get("id") not in models:
                    models[str(model.get("id"))] = {**model, "provider": target.provider}
        if not answered:
            raise GatewayError(
                "no provider in this config answered with a model list",
                status=502,
                code="upstream_unreachable",
                extra={"attempts": [a.summary() for a in ctx.attempts]},
            )
        ctx.provider = ",".join(dict.fromkeys(answered))
        return GatewayResponse.from_json({"object": "list", "data": list(models.values())})

    @staticmethod
    def _falls_back(node: StrategyNode, failure: _Failure) -> bool:
        if failure.refused or failure.over_limit:
            return True  # nothing was tried; the next target may still answer
        if node.on_status_codes is not None:
            return failure.status in node.on_status_codes
        return failure.unreachable or failure.status == 429 or failure.status >= 500

    def _choose_weighted(self, ctx: RequestContext, node: StrategyNode) -> PlanNode:
        """Pick a child by weight, among those with a closed (or trial-ready) circuit."""
        healthy = [child for child in node.children if self._available(ctx, child)]
        pool = healthy or list(node.children)
        weights = [child.weight for child in pool]
        if not any(weights):
            pool, weights = list(node.children), [child.weight for child in node.children]
        return self.rng.choices(pool, weights=weights)[0]

    def _available(self, ctx: RequestContext, node: PlanNode) -> bool:
        if isinstance(node, ResolvedTarget):
            return self.breakers.available(_effective_upstream(ctx, node))
        return any(self._available(ctx, child) for child in node.children)

    # -- one target: circuit, retries, backoff ------------------------------------------

    async def _target(
        self, ctx: RequestContext, target: ResolvedTarget, walk: _Walk
    ) -> GatewayResponse:
        ctx.provider, ctx.target_index = target.provider, target.path
        ctx.virtual_key = target.virtual_key
        # Circuits follow the upstream actually called, header-chosen host included.
        upstream = _effective_upstream(ctx, target)
        retry = target.retry
        # A pass-through body streams to the upstream once: it cannot be sent again.
        retries_allowed = retry.attempts if retry and ctx.endpoint is not Endpoint.PROXY else 0
        retry_on = (
            frozenset(retry.on_status_codes)
            if retry and retry.on_status_codes
            else DEFAULT_RETRY_STATUSES
        ) - NEVER_RETRIED
        retries = 0
        # (ctx.limited: a virtual key an earlier target was admitted for is dropped)
        if self.admit_target is not None and (target.spend is not None or ctx.limited):
            try:
                await self.admit_target(ctx, target.spend)
            except GatewayError as over:
                attempt = Attempt(target=target.path, provider=target.provider)
                attempt.record_error(over)
                ctx.attempts.append(attempt)
                refused = _Failure(None, over, target, 0)
                walk.failures.append(refused)
                raise refused from None
        if walk.before_target is not None:
            try:
                await walk.before_target(ctx, target)
            except GatewayError as refusal:
                denied = _Failure(None, refusal, target, 0)
                walk.failures.append(denied)
                raise denied from None
        while True:
            failure = self._refuse(ctx, target, upstream, walk)
            if failure is not None:
                walk.failures.append(failure)
                raise failure
            walk.attempts_left -= 1
            response, error = await self._attempt(ctx, target, upstream)
            ctx.response_headers["x-portkey-retry-attempt-count"] = str(retries)
            if response is not None and response.status < 400:
                return response
            failure = _Failure(response, error, target, retries)
            retryable = failure.status in retry_on or failure.unreachable
            if (
                retries < retries_allowed
                and retryable
                and walk.attempts_left > 0
                # A circuit that opened on this failure ends the retries: the client gets
                # the real failure, not a refusal.
                and self.breakers.available(upstream)
            ):
                honour = retry is None or retry.use_retry_after_header
                delay = self._backoff(retries, response, honour)
                await failure.aclose()
                retries += 1
                await asyncio.sleep(delay)
                continue
            walk.failures.append(failure)
            raise failure

    def _refuse(
        self, ctx: RequestContext, target: ResolvedTarget, upstream: ResolvedTarget, walk: _Walk
    ) -> _Failure | None:
        """A failure standing for an attempt not made: budget spent or circuit open."""
        if walk.attempts_left <= 0:
            error = GatewayError(
                f"gave up: this request already made {self.options.max_attempts} upstream "
                "attempts (routing.max_attempts)",
                status=503,
                code="attempt_budget",
                provider=target.provider,
            )
        elif not self.breakers.acquire(upstream):
            error = GatewayError(
                f"{target.path} ({target.provider}) is skipped: its circuit is open after "
                f"repeated failures; next trial in {self.breakers.retry_in(upstream):.0f} s",
                status=503,
                code="circuit_open",
                provider=target.provider,
            )
        else:
            return None
        attempt = Attempt(target=target.path, provider=target.provider)
        attempt.record_error(error)
        ctx.attempts.append(attempt)
        return _Failure(None, error, target)

    def _backoff(self, retries: int, response: GatewayResponse | None, honour: bool) -> float:
        options = self.options
        if honour and response is not None:
            hinted = retry_after_seconds(response.headers)
            if hinted is not None:
                return min(hinted, options.max_retry_after)
        # Full jitter: spreads the retries of many clients instead of synchronising them.
        ceiling = min(options.retry_max_delay, options.retry_base_delay * 2**retries)
        return self.rng.uniform(0, ceiling)

    async def _attempt(
        self, ctx: RequestContext, target: ResolvedTarget, upstream: ResolvedTarget
    ) -> tuple[GatewayResponse | None, GatewayError | None]:
        """One upstream call; a stream is read up to its first event before it counts."""
        provider = self.providers[target.provider]
        attempt = Attempt(target=target.path, provider=target.provider)
        ctx.attempts.append(attempt)
        started = time.perf_counter()
        response: GatewayResponse | None = None
        call: ProviderCall | None = None
        try:
            if ctx.endpoint not in provider.endpoints:
                raise InvalidRequest(
                    f"provider {target.provider!r} does not serve {ctx.endpoint.value}",
                    code="unsupported_endpoint",
                )
            # Before anything is built: a server-held credential never follows a client's
            # choice of host, region or resource.
            key = ctx.api_key
            check_usable(target, workspace_id=key.acting_workspace if key is not None else None)
            enforce_binding(ctx.headers, target, provider)
            call = _provider_call(ctx, target, self.default_timeout_ms)
            # a pass-through's answer is relayed as it is, not read as OpenAI's events
            read_events = ctx.endpoint is not Endpoint.PROXY
            transport = self._client_hosts if _client_host(ctx, target) else self.transport
            try:
                # Every provider gets the deadline, not only those that go through the
                # transport (which enforces it too, naming the host).
                async with asyncio.timeout(call.timeout):
                    response = await provider.call(call, transport)
                    if (
                        response.stream is not None
                        and response.status < 400
                        and read_events
                        and is_event_stream(response)  # audio bytes have no events to wait for
                    ):
                        # Still inside the attempt's deadline: a slow first event times out.
                        await self._first_event(response, upstream, attempt)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"provider {target.provider!r} did not answer within "
                    f"{int((call.timeout or 0) * 1000)} ms"
                ) from None
        except GatewayError as error:
            if response is not None:
                await response.aclose()
                error.message = mask_text(error.message, response.secrets)  # from its stream
            if isinstance(error, UpstreamTimeout) and call is not None and call.client_timeout:
                self.breakers.release(upstream)  # the client's limit, not the upstream's fault
            else:
                self.breakers.record(upstream, healthy=not _provider_fault(error.status, error))
            error.provider = error.provider or target.provider
            attempt.record_error(error)
            return None, error
        except BaseException:
            # Cancelled (the client left) or a bug: no verdict on the upstream's health.
            self.breakers.release(upstream)
            if response is not None:
                await response.aclose()
            raise
        finally:
            attempt.latency_ms = (time.perf_counter() - started) * 1000
        if (
            response.stream is None
            or response.status >= 400
            or ctx.endpoint is Endpoint.PROXY
            or not is_event_stream(response)
        ):
            # (a pass-through's or audio's stream is not relayed by _relay: its answer is
            # the verdict)
            self.breakers.record(upstream, healthy=not _provider_fault(response.status, None))
        # else: a committed stream's health is known when it ends (see _relay)
        attempt.status = response.status
        return response, None

    async def _first_event(
        self, response: GatewayResponse, target: ResolvedTarget, attempt: Attempt
    ) -> None:
        """Guard the stream and read up to its first data event, so that early failures (keep-
        alive comments do not count as a start) can still fall back."""
        assert response.stream is not None
        guard = StreamGuard(
            response.stream,
            provider=target.provider,
            idle_timeout=self.options.stream_idle_timeout,
        )
        guarded = guard.__aiter__()
        first = b""
        while not guard.data_events and not guard.done:
            try:
                first += await anext(guarded)
            except StopAsyncIteration:
                break
        response.stream = self._relay(
            first, guarded, target, guard.chunks, response.secrets, attempt
        )
        # Consumers of the chunks (caching, guardrails) hear them from the guard's parse.
        response.chunks = guard.chunks

    async def _relay(
        self,
        first: bytes,
        rest: AsyncIterator[bytes],
        target: ResolvedTarget,
        chunks: ChunkFeed,
        secrets: tuple[str, ...],
        attempt: Attempt,
    ) -> AsyncIterator[bytes]:
        """The committed stream; how it ends is what counts for the target's circuit. An
        error it ends with never repeats a credential the request carried. Its duration is
        the attempt's ``stream_ms`` (the log's upstream time)."""
        chunks.seal()  # relaying starts: every listener has joined
        healthy: bool | None = None
        started = time.perf_counter()
        try:
            if first:
                yield first
            async for chunk in rest:
                yield chunk
            healthy = True
        except GatewayError as error:
            healthy = not _provider_fault(error.status, error)
            error.provider = error.provider or target.provider
            error.message = mask_text(error.message, secrets)
            raise
        finally:
            attempt.stream_ms = (time.perf_counter() - started) * 1000
            if healthy is None:
                self.breakers.release(target)  # the client left: no verdict
            else:
                self.breakers.record(target, healthy=healthy)


def _provider_fault(status: int, error: GatewayError | None) -> bool:
    """Whether an outcome counts against the upstream's health (circuit breaking)."""
    return status == 429 or status >= 500 or isinstance(error, UpstreamTimeout)


def _choose_conditional(ctx: RequestContext, node: StrategyNode) -> PlanNode:
    by_name = {child.name: child for child in node.children if child.name}
    for query, then in node.conditions:
        if matches(ctx, query):
            return by_name[then]
    if node.default is not None:
        return by_name[node.default]
    raise InvalidConfig(
        f"{node.path}: no condition matched this request and the strategy has no default"
    )


def _effective_upstream(ctx: RequestContext, target: ResolvedTarget) -> ResolvedTarget:
    """``target`` as its circuit sees it: with the host the request really goes to."""
    header_host = ctx.headers.get("x-portkey-custom-host")
    if target.custom_host or not header_host:
        return target
    return dataclasses.replace(target, custom_host=header_host.rstrip("/"))


def _add_attempts(response: GatewayResponse, attempts: list[dict[str, Any]]) -> None:
    """List every attempt inside a provider's error body (when it is OpenAI-shaped)."""
    body = response.json()
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body["error"]["attempts"] = attempts
        response.set_json(body)


def _provider_call(
    ctx: RequestContext, target: ResolvedTarget, default_timeout_ms: int | None
) -> ProviderCall:
    body, raw = ctx.body, (None if ctx.body_modified else ctx.raw_body)
    if target.default_params and body is not None:
        missing = {k: v for k, v in target.default_params.items() if k not in body}
        if missing:
            body, raw = {**body, **missing}, None
    if target.override_params and body is not None:
        body, raw = {**body, **target.override_params}, None
        check_body(ctx.endpoint, body)  # an override is a body field like any other
    if (
        ctx.limited
        and body is not None
        and body.get("stream") is True
        and ctx.endpoint is not Endpoint.RESPONSES  # its final event always has the usage
    ):
        options = body.get("stream_options")
        if not (isinstance(options, dict) and options.get("include_usage") is True):
            # Spend control charges a stream its final usage: no override turns that off
            # (the pipeline hides the usage chunk from a client that did not ask for it).
            kept = options if isinstance(options, dict) else {}
            body, raw = {**body, "stream_options": {**kept, "include_usage": True}}, None
    if raw is None:
        ctx.upstream_body = body
    # The header wins over the config, which wins over the server file's default.
    timeout_ms: int | None = target.request_timeout or default_timeout_ms
    client_timeout = bool(target.request_timeout) and not target.from_server
    header_timeout = ctx.headers.get("x-portkey-request-timeout")
    if header_timeout:
        timeout_ms = int(header_timeout)
        client_timeout = True
    return ProviderCall(
        ctx=ctx,
        target=target,
        endpoint=ctx.endpoint,
        body=body,
        raw_body=raw,
        timeout=timeout_ms / 1000 if timeout_ms else None,
        client_timeout=client_timeout,
    )


def _client_host(ctx: RequestContext, target: ResolvedTarget) -> bool:
    """Whether the client chose the host this target calls (a header, an inline config)."""
    if target.custom_host:
        return not (target.from_server or target.from_vault)
    return bool(ctx.headers.get("x-portkey-custom-host"))


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP-date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
