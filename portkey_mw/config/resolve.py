"""From request headers to a compiled plan, validating each distinct config only once."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import replace

import orjson
from pydantic import ValidationError

from portkey_mw.auth.outbound import check_client_host
from portkey_mw.bounds import check_json_depth
from portkey_mw.config.schema import Config
from portkey_mw.config.server import ServerSettings, describe_validation_error
from portkey_mw.errors import InvalidConfig, InvalidRequest
from portkey_mw.guardrails.api import Guardrail
from portkey_mw.guardrails.spec import HookCompiler, HookSet
from portkey_mw.routing import (
    PlanNode,
    ResolvedTarget,
    compile_plan,
    plan_leaves,
    plan_providers,
)
from portkey_mw.routing.plan import StrategyNode, answer_headers, route_digest

#: Distinct inline configs kept compiled; clients send a handful, so this bound is generous.
INLINE_CACHE_SIZE = 1024
#: The header text the compiled-config cache may hold in all (a compiled plan is about as
#: large as its text): clients choose these texts, so their memory is bounded by bytes too.
INLINE_CACHE_BYTES = 8 * 1024 * 1024
#: The literal key the portkey-ai SDK sends when the user gave none: it means "no key".
SDK_PLACEHOLDER_KEYS = frozenset({"OPENAI_API_KEY", ""})


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The client's ``Authorization: Bearer`` token; other schemes carry no provider key.

    Without ``Authorization``, the ``x-api-key`` header (what the anthropic SDK sends) is
    the key.
    """
    value = headers.get("authorization")
    if not value:
        key = headers.get("x-api-key", "").strip()
        return key if key and key not in SDK_PLACEHOLDER_KEYS else None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return None if token in SDK_PLACEHOLDER_KEYS else token


def validate_config(raw: object, source: str = "config") -> Config:
    """Validate a parsed config, raising :class:`InvalidConfig` naming each broken rule."""
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{source} must be a JSON object")
    if "options" in raw and "targets" not in raw:
        raise InvalidConfig(f"{source}: the old 'options' config format is not supported")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise InvalidConfig(f"{source} is invalid: {describe_validation_error(exc)}") from exc


class ConfigResolver:
    """Turns ``x-portkey-config`` / ``x-portkey-provider`` headers into a compiled plan.

    Inline JSON configs are cached by their exact header text, so a client that sends the
    same config on every request pays for JSON parsing and pydantic validation once.

    :param settings: the server file (named configs, default config).
    :param known_providers: registered provider ids, to reject unknown ones up front.
    """

    def __init__(
        self,
        settings: ServerSettings,
        known_providers: Collection[str],
        guardrails: Mapping[str, Guardrail] | None = None,
    ) -> None:
        self._known = known_providers
        self._hooks = HookCompiler(guardrails or {}, settings.guardrails)
        self._hooks.validate_named()
        self._named: dict[str, Config] = dict(settings.configs)
        default = settings.default_config
        self._default = self._named[default] if isinstance(default, str) else default
        self._inline: OrderedDict[tuple[str, str | None, str | None], PlanNode] = OrderedDict()
        self._inline_bytes = 0
        self._max_config_bytes = settings.server.max_config_bytes
        for name, config in self._named.items():
            self._check(compile_plan(config), f"config {name!r}")
        if isinstance(default, Config):
            self._check(compile_plan(default), "default_config")

    def resolve(self, headers: Mapping[str, str]) -> PlanNode:
        """The plan for a request with these (lower-cased) headers."""
        key = bearer_token(headers)
        header_config = headers.get("x-portkey-config")
        if header_config:
            if len(header_config) > self._max_config_bytes:
                raise InvalidConfig(
                    f"x-portkey-config is larger than the gateway's limit of "
                    f"{self._max_config_bytes} bytes (server.max_config_bytes); save large "
                    "configs in the server file and send their id",
                    code="config_too_large",
                )
            # The provider header is part of the key: a config without a provider uses it.
            return self._cached((header_config, key, headers.get("x-portkey-provider")), headers)
        provider = headers.get("x-portkey-provider")
        if provider:
            return self._single(provider, headers.get("x-portkey-custom-host"), key)
        if self._default is not None:
            return self._cached(("\0default", key, None), headers)
        raise InvalidRequest(
            "no provider given: send an x-portkey-provider header or an x-portkey-config "
            "header (inline JSON or the id of a config in the server file)",
            code="missing_provider",
        )

    def _single(self, provider: str, custom_host: str | None, key: str | None) -> PlanNode:
        self._check_known(provider, "x-portkey-provider")
        return ResolvedTarget(
            path="config",
            provider=provider,
            api_key=key,
            custom_host=custom_host.rstrip("/") if custom_host else None,
        )

    def _cached(
        self, cache_key: tuple[str, str | None, str | None], headers: Mapping[str, str]
    ) -> PlanNode:
        plan = self._inline.get(cache_key)
        if plan is not None:
            self._inline.move_to_end(cache_key)
            return plan
        plan = self._build(cache_key[0], headers, cache_key[1])
        self._inline[cache_key] = plan
        self._inline_bytes += _size(cache_key)
        while len(self._inline) > INLINE_CACHE_SIZE or self._inline_bytes > INLINE_CACHE_BYTES:
            evicted, _ = self._inline.popitem(last=False)
            self._inline_bytes -= _size(evicted)
        return plan

    def _build(self, text: str, headers: Mapping[str, str], key: str | None) -> PlanNode:
        if text == "\0default":
            assert self._default is not None
            config, source = self._default, "default_config"
        elif text.lstrip().startswith("{"):
            try:
                raw = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise InvalidConfig(f"x-portkey-config is not valid JSON: {exc}") from exc
            check_json_depth(text, raw, "x-portkey-config")
            # Portkey: a config without provider or targets takes the header's provider.
            header_provider = headers.get("x-portkey-provider")
            if (
                isinstance(raw, dict)
                and header_provider
                and "provider" not in raw
                and "targets" not in raw
            ):
                raw = {**raw, "provider": header_provider}
            config, source = validate_config(raw, "x-portkey-config"), "x-portkey-config"
        else:
            named = self._named.get(text)
            if named is None:
                raise InvalidConfig(
                    f"x-portkey-config names config {text!r}, which the server does not define",
                    status=404,
                    code="config_not_found",
                )
            config, source = named, f"config {text!r}"
        server_held = source != "x-portkey-config"
        plan = compile_plan(config, default_api_key=key, server_held=server_held)
        if not server_held:
            for leaf in plan_leaves(plan):
                if leaf.custom_host:
                    check_client_host(leaf.custom_host, f"{leaf.path}.custom_host")
        return self._check(plan, source)

    def _check(self, plan: PlanNode, source: str) -> PlanNode:
        """Reject unknown providers; compile and validate every target's hooks."""
        for provider in sorted(plan_providers(plan)):
            self._check_known(provider, source)
        plan = self._with_guardrails(plan, source, {})
        return replace(plan, route=route_digest(plan), varies_on=answer_headers(plan))

    def _with_guardrails(
        self, node: PlanNode, source: str, compiled: dict[int, HookSet]
    ) -> PlanNode:
        if isinstance(node, StrategyNode):
            children = tuple(self._with_guardrails(c, source, compiled) for c in node.children)
            # What each request would otherwise work out again: do targets share hooks?
            sets = [c.guardrails for c in children]
            shared = sets[0] if all(s is not None and s == sets[0] for s in sets) else None
            return replace(node, children=children, guardrails=shared)
        hooks = node.hooks
        if not (
            hooks.before_request
            or hooks.after_request
            or hooks.input_guardrails
            or hooks.output_guardrails
        ):
            return node
        # Inherited lists are the same objects in every target: compile each once.
        if id(hooks) not in compiled:
            compiled[id(hooks)] = self._hooks.compile(
                before_request_hooks=hooks.before_request,
                after_request_hooks=hooks.after_request,
                input_guardrails=hooks.input_guardrails,
                output_guardrails=hooks.output_guardrails,
                where=source if node.path == "config" else f"{source} at {node.path}",
            )
        return replace(node, guardrails=compiled[id(hooks)])

    def _check_known(self, provider: str, source: str) -> None:
        if provider not in self._known:
            known = ", ".join(sorted(self._known))
            raise InvalidRequest(
                f"unknown provider {provider!r} in {source} (known: {known})",
                code="unknown_provider",
                param="provider",
            )


def _size(cache_key: tuple[str, str | None, str | None]) -> int:
    return sum(len(part) for part in cache_key if part)
