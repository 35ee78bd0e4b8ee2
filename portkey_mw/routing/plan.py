"""Configs compiled into plans: the strategy tree a request walks.

A config is validated and compiled once (see :mod:`portkey_mw.config.resolve`); each request
then walks the compiled plan. Settings flow from a node to its targets as in Portkey:
``override_params`` merge (the child wins), while ``retry``, ``cache``, ``request_timeout``,
``custom_host``, ``forward_headers`` and the hook lists (``before_request_hooks``,
``after_request_hooks``, ``input_guardrails``, ``output_guardrails``) are inherited unless
the child sets its own, which replaces the parent's whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from portkey_mw.config.schema import Cache, Config, Retry, StrategyMode
from portkey_mw.errors import InvalidConfig
from portkey_mw.guardrails.spec import NO_HOOKS, HookSet
from portkey_mw.limits.subject import Subject


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
    #: hook and guardrail references for this target (run by the guardrails feature)
    hooks: Hooks = field(default_factory=lambda: Hooks())
    request_timeout: int | None = None
    retry: Retry | None = None
    cache: Cache | None = None
    weight: float = 1.0
    options: Mapping[str, Any] | None = None
    #: the key comes from a config the server holds (named or default), not from the client:
    #: a client-chosen host must never receive it
    key_from_server: bool = False
    #: the target comes from a config the server holds (its options are the operator's)
    from_server: bool = False
    #: the provider, credentials, options and host come from a virtual key (the
    #: operator's), even inside a config the client sent
    from_vault: bool = False
    #: the virtual key's slug, when a virtual key supplies this target
    virtual_key: str | None = None
    #: the virtual key's status (``active``, ``disabled``...), checked before each attempt
    virtual_key_status: str = "active"
    #: when the virtual key stops working (epoch seconds), checked before each attempt
    expires_at: float | None = None
    #: the virtual key's workspace (``None``: the organisation's): a workspace API key may
    #: use only its own workspace's virtual keys, checked before each attempt
    virtual_key_workspace: str | None = None
    #: body parameters applied when the request does not set them (a virtual key's
    #: default ``model``)
    default_params: Mapping[str, Any] | None = None
    #: the virtual key's rate limits and budget (a :class:`portkey_mw.limits.Subject`),
    #: admitted before the target is called and charged after; None: it has none
    spend: Subject | None = None
    #: ``hooks`` compiled and validated against the registered guardrails (by the resolver)
    guardrails: HookSet = NO_HOOKS
    #: :func:`route_digest` of this plan when it is the root, computed once per config by
    #: the resolver ("" when not computed)
    route: str = ""
    #: :func:`answer_headers` of this plan when it is the root (set by the resolver)
    varies_on: tuple[str, ...] = ()


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
    #: the node's (possibly inherited) cache settings: the plan root's decide caching
    cache: Cache | None = None
    #: the hooks every target below shares, or ``None`` when targets carry different ones
    #: (set by the resolver, which compiles them)
    guardrails: HookSet | None = NO_HOOKS
    #: :func:`route_digest` of this plan when it is the root (see ResolvedTarget.route)
    route: str = ""
    #: :func:`answer_headers` of this plan when it is the root (see ResolvedTarget)
    varies_on: tuple[str, ...] = ()


PlanNode = ResolvedTarget | StrategyNode


@dataclass(frozen=True, slots=True)
class VirtualKeyBinding:
    """What a virtual key puts into a target: everything that decides where a request goes
    and with which credentials."""

    slug: str
    provider: str
    api_key: str | None = None
    options: Mapping[str, Any] | None = None
    custom_host: str | None = None
    override_params: Mapping[str, Any] | None = None
    default_params: Mapping[str, Any] | None = None
    status: str = "active"
    expires_at: float | None = None
    #: its rate limits and budget (:class:`portkey_mw.limits.Subject`), or None
    spend: Subject | None = None
    #: the workspace it belongs to (``None``: the organisation's)
    workspace_id: str | None = None


#: looks a virtual key up by slug for the target at a path (raises when there is none)
BindVirtualKey = Callable[[str, str], VirtualKeyBinding]


@dataclass(frozen=True, slots=True)
class Hooks:
    """The hook and guardrail references a target carries, as the config wrote them."""

    before_request: tuple[Any, ...] = ()
    after_request: tuple[Any, ...] = ()
    input_guardrails: tuple[Any, ...] = ()
    output_guardrails: tuple[Any, ...] = ()

    def child(self, node: Config) -> Hooks:
        """The hooks of ``node``: each list it sets replaces the parent's."""
        return Hooks(
            before_request=_own(node.before_request_hooks, self.before_request),
            after_request=_own(node.after_request_hooks, self.after_request),
            input_guardrails=_own(node.input_guardrails, self.input_guardrails),
            output_guardrails=_own(node.output_guardrails, self.output_guardrails),
        )


def _own(value: list[Any] | None, inherited: tuple[Any, ...]) -> tuple[Any, ...]:
    return inherited if value is None else tuple(value)


@dataclass(frozen=True, slots=True)
class _Inherited:
    override_params: Mapping[str, Any] | None = None
    retry: Retry | None = None
    cache: Cache | None = None
    request_timeout: int | None = None
    custom_host: str | None = None
    forward_headers: tuple[str, ...] = ()
    hooks: Hooks = field(default_factory=lambda: Hooks())


def compile_plan(
    config: Config,
    *,
    default_api_key: str | None = None,
    server_held: bool = False,
    bind: BindVirtualKey | None = None,
) -> PlanNode:
    """Compile a validated config into a plan.

    :param default_api_key: the client's own key (``Authorization``), used for leaves that
        name no ``api_key`` -- only when the plan calls a single provider id, so a key meant
        for one provider is never sent to another.
    :param server_held: the config comes from the server file, so its keys are the server's.
    :param bind: looks up the virtual keys targets name (``virtual_key``).
    """
    providers = {leaf.provider for leaf in _leaves(config) if leaf.provider}
    key = default_api_key if len(providers) == 1 else None
    return _compile(config, "config", _Inherited(), key, _Origin(server_held, bind))


@dataclass(frozen=True, slots=True)
class _Origin:
    server_held: bool
    bind: BindVirtualKey | None


def _leaves(config: Config) -> list[Config]:
    if config.targets is None:
        return [config]
    return [leaf for child in config.targets for leaf in _leaves(child)]


def _compile(
    node: Config, path: str, parent: _Inherited, key: str | None, origin: _Origin
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
        hooks=parent.hooks.child(node),
    )
    weight = 1.0 if node.weight is None else node.weight
    if node.targets is not None:
        strategy = node.strategy
        return StrategyNode(
            path=path,
            mode=strategy.mode if strategy else StrategyMode.SINGLE,
            children=tuple(
                _compile(child, f"{path}.targets[{i}]", inherited, key, origin)
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
            cache=inherited.cache,
        )
    if node.virtual_key is not None:
        return _bound_target(node, path, inherited, weight, origin)
    server_held = origin.server_held
    if node.provider is None:
        raise InvalidConfig(f"{path}: a target needs a provider")
    return _leaf(
        node,
        path,
        inherited,
        weight,
        provider=node.provider,
        api_key=node.api_key or key,
        custom_host=inherited.custom_host,
        override_params=inherited.override_params,
        options=node.provider_options or None,
        key_from_server=server_held and bool(node.api_key),
        from_server=server_held,
    )


def _leaf(
    node: Config, path: str, inherited: _Inherited, weight: float, **own: Any
) -> ResolvedTarget:
    """A leaf with the settings every target inherits; ``own`` holds where it goes and
    with which credentials."""
    return ResolvedTarget(
        path=path,
        name=node.name,
        forward_headers=inherited.forward_headers,
        hooks=inherited.hooks,
        request_timeout=inherited.request_timeout,
        retry=inherited.retry,
        cache=inherited.cache,
        weight=weight,
        **own,
    )


def _bound_target(
    node: Config, path: str, inherited: _Inherited, weight: float, origin: _Origin
) -> ResolvedTarget:
    """A target a virtual key supplies: its provider, credentials, options and host are the
    virtual key's; a client's config may not add any of those to it."""
    slug = node.virtual_key
    assert slug is not None
    if origin.bind is None:
        raise InvalidConfig(
            f"{path}: virtual_key {slug!r} needs the control plane (store.enabled)",
            code="virtual_key_not_found",
        )
    vk = origin.bind(slug, path)
    options = dict(vk.options or {})
    host = vk.custom_host
    if origin.server_held:
        options.update(node.provider_options)
        host = host or inherited.custom_host
    else:
        added = sorted(node.provider_options)
        if inherited.custom_host:
            added.append("custom_host")
        if node.api_key:
            added.append("api_key")
        if node.provider and node.provider != vk.provider:
            added.append("provider")
        if added:
            raise InvalidConfig(
                f"{path}: the target uses virtual key {slug!r}, which decides its provider, "
                f"credentials, host and options; remove {', '.join(added)}",
                code="virtual_key_override_not_allowed",
            )
    override = {**(vk.override_params or {}), **(inherited.override_params or {})}
    return _leaf(
        node,
        path,
        inherited,
        weight,
        provider=vk.provider,
        api_key=vk.api_key,
        custom_host=host,
        override_params=override or None,
        options=options or None,
        key_from_server=True,
        from_server=origin.server_held,
        from_vault=True,
        virtual_key=slug,
        virtual_key_status=vk.status,
        expires_at=vk.expires_at,
        virtual_key_workspace=vk.workspace_id,
        default_params=vk.default_params,
        spend=vk.spend,
    )


def plan_leaves(plan: PlanNode) -> list[ResolvedTarget]:
    """Every target of the plan, in order."""
    if isinstance(plan, ResolvedTarget):
        return [plan]
    return [leaf for child in plan.children for leaf in plan_leaves(child)]


def plan_providers(plan: PlanNode) -> set[str]:
    """Every provider id a plan may call."""
    if isinstance(plan, ResolvedTarget):
        return {plan.provider}
    return set().union(*(plan_providers(child) for child in plan.children))


def route_digest(plan: PlanNode) -> str:
    """A digest of where a plan sends requests and with whose key: every target's provider,
    host, ``override_params``, provider options and API key (as a digest). Cache, retry,
    timeout and hook settings do not count."""
    if plan.route:
        return plan.route
    leaves: list[Any] = []
    pending: list[PlanNode] = [plan]
    while pending:
        node = pending.pop()
        if isinstance(node, StrategyNode):
            pending.extend(node.children)
            continue
        key = hashlib.sha256(node.api_key.encode()).hexdigest() if node.api_key else None
        leaves.append([node.provider, node.custom_host, node.override_params, node.options, key])
    canonical = orjson.dumps(leaves, option=orjson.OPT_SORT_KEYS, default=dict)
    return hashlib.sha256(canonical).hexdigest()


def answer_headers(plan: PlanNode) -> tuple[str, ...]:
    """The client headers this plan's configs make part of the answer: every header its
    targets forward (``forward_headers``), and ``x-portkey-metadata`` when a conditional
    strategy routes on it."""
    names: set[str] = set()
    pending: list[PlanNode] = [plan]
    while pending:
        node = pending.pop()
        if isinstance(node, StrategyNode):
            if node.mode is StrategyMode.CONDITIONAL:
                names.add("x-portkey-metadata")
            pending.extend(node.children)
        else:
            names.update(name.lower() for name in node.forward_headers)
    return tuple(sorted(names))
