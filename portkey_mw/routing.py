"""The strategy tree: configs compiled into plans, and the router that walks them.

A config is validated and compiled once (see :mod:`portkey_mw.config.resolve`); each request
then walks the compiled plan. Settings flow from a node to its targets as in Portkey:
``override_params`` merge (the child wins), while ``retry``, ``cache``, ``request_timeout``,
``custom_host`` and ``forward_headers`` are inherited unless the child sets its own.
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portkey_mw.config.schema import Cache, Config, Retry, StrategyMode
from portkey_mw.context import Attempt, Endpoint, GatewayResponse, RequestContext
from portkey_mw.errors import GatewayError, InvalidConfig, InvalidRequest, UpstreamTimeout
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.transport import Transport

#: Statuses that move a fallback on when ``strategy.on_status_codes`` is not set.
DEFAULT_FALLBACK_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Statuses retried when ``retry.on_status_codes`` is not set (Portkey's list).
DEFAULT_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Never retried, whatever a config says: retrying cannot change the answer.
NEVER_RETRIED = frozenset({400, 401, 403, 404, 422})
RETRY_BASE_DELAY = 0.5
RETRY_MAX_DELAY = 8.0


@dataclass(frozen=True, slots=True)
class ResolvedTarget:
    """A leaf of the plan: one provider, with every inherited setting applied."""

    path: str
    provider: str
    name: str | None = None
    api_key: str | None = None
    custom_host: str | None = None
    override_params: Mapping[str, Any] | None = None
    forward_headers: tuple[str, ...] = ()
    request_timeout: int | None = None
    retry: Retry | None = None
    cache: Cache | None = None
    weight: float = 1.0
    options: Mapping[str, Any] | None = None
    #: the key comes from a config the server holds (named or default), not from the client:
    #: a client-chosen host must never receive it
    key_from_server: bool = False


@dataclass(frozen=True, slots=True)
class StrategyNode:
    """An inner node of the plan: a strategy over child nodes."""

    path: str
    mode: StrategyMode
    children: tuple[PlanNode, ...]
    weight: float = 1.0
    name: str | None = None
    on_status_codes: frozenset[int] | None = None
    conditions: tuple[tuple[dict[str, Any], str], ...] = ()
    default: str | None = None


PlanNode = ResolvedTarget | StrategyNode


@dataclass(frozen=True, slots=True)
class _Inherited:
    override_params: Mapping[str, Any] | None = None
    retry: Retry | None = None
    cache: Cache | None = None
    request_timeout: int | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] = ()


def compile_plan(
    config: Config, *, default_api_key: str | None = None, server_held: bool = False
) -> PlanNode:
    """Compile a validated config into a plan.

    :param default_api_key: the client's own key (``Authorization``), used for leaves that
        name no ``api_key`` -- only when the plan calls a single provider id, so a key meant
        for one provider is never sent to another.
    :param server_held: the config comes from the server file, so its keys are the server's.
    """
    providers = {leaf.provider for leaf in _leaves(config) if leaf.provider}
    key = default_api_key if len(providers) == 1 else None
    return _compile(config, "config", _Inherited(), key, server_held)


def _leaves(config: Config) -> list[Config]:
    if config.targets is None:
        return [config]
    return [leaf for child in config.targets for leaf in _leaves(child)]


def _compile(
    node: Config, path: str, parent: _Inherited, key: str | None, server_held: bool
) -> PlanNode:
    override = parent.override_params
    if node.override_params:
        override = {**(override or {}), **node.override_params}
    inherited = _Inherited(
        override_params=override,
        retry=node.retry or parent.retry,
        cache=node.cache or parent.cache,
        request_timeout=node.request_timeout or parent.request_timeout,
        custom_host=node.custom_host or parent.custom_host,
        forward_headers=tuple(node.forward_headers or parent.forward_headers),
    )
    weight = 1.0 if node.weight is None else node.weight
    if node.targets is not None:
        strategy = node.strategy
        return StrategyNode(
            path=path,
            mode=strategy.mode if strategy else StrategyMode.SINGLE,
            children=tuple(
                _compile(child, f"{path}.targets[{i}]", inherited, key, server_held)
                for i, child in enumerate(node.targets)
            ),
            weight=weight,
            name=node.name,
            on_status_codes=(
                frozenset(strategy.on_status_codes)
                if strategy and strategy.on_status_codes
                else None
            ),
            conditions=tuple((c.query, c.then) for c in (strategy.conditions or []))
            if strategy
            else (),
            default=strategy.default if strategy else None,
        )
    if node.provider is None:
        raise InvalidConfig(f"{path}: a target needs a provider")
    return ResolvedTarget(
        path=path,
        provider=node.provider,
        name=node.name,
        api_key=node.api_key or key,
        custom_host=inherited.custom_host,
        override_params=inherited.override_params,
        forward_headers=inherited.forward_headers,
        request_timeout=inherited.request_timeout,
        retry=inherited.retry,
        cache=inherited.cache,
        weight=weight,
        options=node.provider_options or None,
        key_from_server=server_held and bool(node.api_key),
    )


def plan_providers(plan: PlanNode) -> set[str]:
    """Every provider id a plan may call."""
    if isinstance(plan, ResolvedTarget):
        return {plan.provider}
    return set().union(*(plan_providers(child) for child in plan.children))


# -------------------------------------------------------------------------
# conditional routing
# -------------------------------------------------------------------------


def _lookup(ctx: RequestContext, key: str) -> Any:
    scope, _, rest = key.partition(".")
    if scope == "metadata":
        return ctx.metadata.get(rest)
    if scope == "params":
        value: Any = ctx.body
        for part in rest.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value
    if key == "url.pathname":
        return ctx.path
    return None


def _compare(op: str, actual: Any, expected: Any) -> bool:
    try:
        if op == "$eq":
            return bool(actual == expected)
        if op == "$ne":
            return bool(actual != expected)
        if op == "$in":
            return actual in expected
        if op == "$nin":
            return actual not in expected
        if op == "$regex":
            return actual is not None and re.search(str(expected), str(actual)) is not None
        if actual is None:
            return False
        if op == "$gt":
            return bool(actual > expected)
        if op == "$gte":
            return bool(actual >= expected)
        if op == "$lt":
            return bool(actual < expected)
        if op == "$lte":
            return bool(actual <= expected)
    except TypeError:
        return False
    raise InvalidConfig(f"unknown operator {op!r}")


def matches(ctx: RequestContext, query: dict[str, Any]) -> bool:
    """Whether ``query`` (Portkey's conditional-routing syntax) holds for this request."""
    for key, condition in query.items():
        if key == "$and":
            if not all(matches(ctx, q) for q in condition):
                return False
        elif key == "$or":
            if not any(matches(ctx, q) for q in condition):
                return False
        else:
            actual = _lookup(ctx, key)
            if isinstance(condition, dict):
                if not all(_compare(op, actual, exp) for op, exp in condition.items()):
                    return False
            elif actual != condition:
                return False
    return True


# -------------------------------------------------------------------------
# the router
# -------------------------------------------------------------------------


class _Failure(Exception):
    """A target failed in a way its parent strategy may act on."""

    def __init__(self, response: GatewayResponse | None, error: GatewayError | None) -> None:
        super().__init__()
        self.response = response
        self.error = error

    @property
    def status(self) -> int:
        if self.response is not None:
            return self.response.status
        assert self.error is not None
        return self.error.status


class Router:
    """Walks a plan for one request and returns the response that should be sent.

    :param providers: registered providers by id.
    :param transport: the process's upstream transport.
    :param rng: randomness for load balancing and jitter (seedable in tests).
    :param default_timeout_ms: per-attempt timeout when neither the config nor the
        ``x-portkey-request-timeout`` header sets one (the server file's ``request_timeout``).
    """

    def __init__(
        self,
        providers: Mapping[str, Provider],
        transport: Transport,
        *,
        rng: random.Random | None = None,
        default_timeout_ms: int | None = None,
    ) -> None:
        self.providers = providers
        self.transport = transport
        self.rng = rng or random.Random()
        self.default_timeout_ms = default_timeout_ms

    async def route(self, ctx: RequestContext, plan: PlanNode) -> GatewayResponse:
        """Run ``plan`` and return the answering response (successful or not)."""
        try:
            return await self._run(ctx, plan, fallback_on=None)
        except _Failure as failure:
            if failure.response is not None:
                return failure.response
            assert failure.error is not None
            if len(ctx.attempts) > 1:
                failure.error.extra["attempts"] = [
                    {
                        "target": a.target,
                        "provider": a.provider,
                        "status": a.status,
                        "error_type": a.error_type,
                    }
                    for a in ctx.attempts
                ]
            raise failure.error from None

    async def _run(
        self, ctx: RequestContext, node: PlanNode, fallback_on: frozenset[int] | None
    ) -> GatewayResponse:
        if isinstance(node, ResolvedTarget):
            return await self._attempt_with_retries(ctx, node)
        if node.mode is StrategyMode.FALLBACK:
            triggers = node.on_status_codes or DEFAULT_FALLBACK_STATUSES
            last: _Failure | None = None
            for child in node.children:
                try:
                    return await self._run(ctx, child, triggers)
                except _Failure as failure:
                    if last is not None and last.response is not None:
                        await last.response.aclose()
                    last = failure
                    if failure.response is not None and failure.status not in triggers:
                        raise
            assert last is not None
            raise last
        if node.mode is StrategyMode.LOADBALANCE:
            weights = [child.weight for child in node.children]
            chosen = self.rng.choices(node.children, weights=weights)[0]
            return await self._run(ctx, chosen, fallback_on)
        if node.mode is StrategyMode.CONDITIONAL:
            return await self._run(ctx, self._choose_conditional(ctx, node), fallback_on)
        return await self._run(ctx, node.children[0], fallback_on)

    def _choose_conditional(self, ctx: RequestContext, node: StrategyNode) -> PlanNode:
        by_name = {child.name: child for child in node.children if child.name}
        for query, then in node.conditions:
            if matches(ctx, query):
                return by_name[then]
        if node.default is not None:
            return by_name[node.default]
        raise InvalidConfig(
            f"{node.path}: no condition matched this request and the strategy has no default"
        )

    async def _attempt_with_retries(
        self, ctx: RequestContext, target: ResolvedTarget
    ) -> GatewayResponse:
        retry = target.retry
        attempts = retry.attempts if retry else 0
        retry_on = (
            frozenset(retry.on_status_codes)
            if retry and retry.on_status_codes
            else DEFAULT_RETRY_STATUSES
        ) - NEVER_RETRIED
        retries = 0
        while True:
            response, error = await self._attempt(ctx, target)
            status = response.status if response is not None else error.status if error else 0
            ctx.response_headers["x-portkey-retry-attempt-count"] = str(retries)
            if response is not None and status < 400:
                ctx.provider = target.provider
                ctx.target_index = target.path
                return response
            retryable = status in retry_on or (
                error is not None and response is None and error.status in (408, 502)
            )
            if retries < attempts and retryable:
                delay = self._backoff(retries, response, retry)
                if response is not None:
                    await response.aclose()
                retries += 1
                await asyncio.sleep(delay)
                continue
            ctx.provider = target.provider
            ctx.target_index = target.path
            raise _Failure(response, error)

    def _backoff(
        self, retries: int, response: GatewayResponse | None, retry: Retry | None
    ) -> float:
        if retry and retry.use_retry_after_header and response is not None:
            hinted = retry_after_seconds(response.headers)
            if hinted is not None:
                return min(hinted, RETRY_MAX_DELAY)
        # Full jitter: spreads retries of many clients instead of synchronising them.
        return self.rng.uniform(0, min(RETRY_MAX_DELAY, RETRY_BASE_DELAY * 2**retries))

    async def _attempt(
        self, ctx: RequestContext, target: ResolvedTarget
    ) -> tuple[GatewayResponse | None, GatewayError | None]:
        provider = self.providers[target.provider]
        attempt = Attempt(target=target.path, provider=target.provider)
        ctx.attempts.append(attempt)
        started = time.perf_counter()
        try:
            if ctx.endpoint not in provider.endpoints:
                raise InvalidRequest(
                    f"provider {target.provider!r} does not serve {ctx.endpoint.value}",
                    code="unsupported_endpoint",
                )
            call = _provider_call(ctx, target, self.default_timeout_ms)
            try:
                # Every provider gets the deadline, not only those that go through the
                # transport (which enforces it too, naming the host).
                async with asyncio.timeout(call.timeout):
                    response = await provider.call(call, self.transport)
            except TimeoutError:
                raise UpstreamTimeout(
                    f"provider {target.provider!r} did not answer within "
                    f"{int((call.timeout or 0) * 1000)} ms"
                ) from None
        except GatewayError as error:
            error.provider = error.provider or target.provider
            attempt.status, attempt.error_type, attempt.error = (
                error.status,
                error.type,
                error.message,
            )
            return None, error
        finally:
            attempt.latency_ms = (time.perf_counter() - started) * 1000
        attempt.status = response.status
        return response, None


def _provider_call(
    ctx: RequestContext, target: ResolvedTarget, default_timeout_ms: int | None
) -> ProviderCall:
    body, raw = ctx.body, (None if ctx.body_modified else ctx.raw_body)
    if target.override_params and body is not None:
        body, raw = {**body, **target.override_params}, None
    # The header wins over the config, which wins over the server file's default.
    timeout_ms: int | None = target.request_timeout or default_timeout_ms
    header_timeout = ctx.headers.get("x-portkey-request-timeout")
    if header_timeout:
        timeout_ms = int(header_timeout)
    return ProviderCall(
        ctx=ctx,
        target=target,
        endpoint=ctx.endpoint,
        body=body,
        raw_body=raw,
        timeout=timeout_ms / 1000 if timeout_ms else None,
    )


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
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


__all__ = [
    "Endpoint",
    "PlanNode",
    "ResolvedTarget",
    "Router",
    "StrategyNode",
    "compile_plan",
    "matches",
    "plan_providers",
    "retry_after_seconds",
]
