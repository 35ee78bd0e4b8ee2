"""From request headers to a compiled plan, validating each distinct config only once."""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

import orjson
from pydantic import ValidationError

from portkey_mw.auth.api_keys import is_gateway_key
from portkey_mw.auth.catalog import Catalog
from portkey_mw.auth.outbound import check_client_host
from portkey_mw.auth.virtual_keys import binding
from portkey_mw.auth.virtual_keys import not_found as vk_not_found
from portkey_mw.bounds import check_json_depth
from portkey_mw.config.schema import Config
from portkey_mw.config.server import ServerSettings, describe_validation_error
from portkey_mw.errors import InvalidConfig, InvalidRequest, NotFound, PermissionDenied
from portkey_mw.guardrails.api import Guardrail
from portkey_mw.guardrails.spec import HookCompiler, HookSet
from portkey_mw.retired import refuse_retired
from portkey_mw.routing import (
    PlanNode,
    ResolvedTarget,
    compile_plan,
    plan_leaves,
    plan_providers,
)
from portkey_mw.routing.plan import (
    StrategyNode,
    VirtualKeyBinding,
    answer_headers,
    route_digest,
)
from portkey_mw.store.records import ACTIVE, ApiKey

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
    the key. A gateway API key (``pk-mw-…``) is never a provider key.
    """
    value = headers.get("authorization")
    if not value:
        key = headers.get("x-api-key", "").strip()
        usable = key and key not in SDK_PLACEHOLDER_KEYS and not is_gateway_key(key)
        return key if usable else None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    # A gateway API key identifies the client to the gateway: it never goes upstream.
    return None if token in SDK_PLACEHOLDER_KEYS or is_gateway_key(token) else token


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


#: headers that choose where a request goes; an API key that does not allow config
#: override refuses them
ROUTING_HEADERS = (
    "x-portkey-config",
    "x-portkey-provider",
    "x-portkey-virtual-key",
    "x-portkey-custom-host",
)
_DEFAULT = "\0default"
_CacheKey = tuple[str, str | None, str | None, str | None]


class ConfigResolver:
    """Turns a request's routing headers (and its API key's defaults) into a compiled plan.

    Sources, first match wins: the API key's own config when it does not allow override;
    ``x-portkey-config`` (inline JSON, a named config of the server file, or a saved
    config's slug); ``x-portkey-virtual-key``; ``x-portkey-provider`` (a provider id, or
    ``@slug`` for a virtual key); a model spelled ``@slug/model``; the API key's
    ``config_id``; the server file's ``default_config``.

    Compiled plans are cached by the text that produced them, so a client that sends the
    same config on every request pays for JSON parsing and pydantic validation once; the
    cache is dropped whenever the control plane's records change.

    :param settings: the server file (named configs, default config, enforced hooks).
    :param known_providers: registered provider ids, to reject unknown ones up front.
    :param guardrails: registered guardrail checks.
    :param catalog: the control plane's virtual keys and saved configs (``None``: none).
    :param secret_options: the option names registered providers declare secret: a saved
        config may not hold them (nor an ``api_key``).
    :param known_verifiers: registered semantic verifier names, to reject unknown ones up
        front (``None``: not checked).
    """

    def __init__(
        self,
        settings: ServerSettings,
        known_providers: Collection[str],
        guardrails: Mapping[str, Guardrail] | None = None,
        catalog: Catalog | None = None,
        secret_options: Collection[str] = (),
        known_verifiers: Collection[str] | None = None,
    ) -> None:
        self._known = known_providers
        self._verifiers = known_verifiers
        self._secrets = frozenset({"api_key", *secret_options})
        self._hooks = HookCompiler(guardrails or {}, settings.guardrails)
        self._hooks.validate_named()
        self._enforced = settings.enforced
        self._named: dict[str, Config] = dict(settings.configs)
        default = settings.default_config
        self._settings_default = default
        self._default = self._named[default] if isinstance(default, str) else default
        self._inline: OrderedDict[_CacheKey, PlanNode] = OrderedDict()
        self._inline_bytes = 0
        self._max_config_bytes = settings.server.max_config_bytes
        self._catalog = catalog
        self._bind = self._bind_virtual_key if catalog is not None else None
        if catalog is not None:
            catalog.on_change(self._forget_plans)
        if self._enforced.any:
            # The enforced hooks must name registered checks: say so at start-up.
            self._hooks.compile(**self._enforced.model_dump(), where="enforced")
        for name, config in self._named.items():
            self._check(compile_plan(config, server_held=True, bind=self._bind), f"config {name!r}")
        if isinstance(default, Config):
            self._check(compile_plan(default, server_held=True, bind=self._bind), "default_config")

    def _forget_plans(self) -> None:
        """Compiled plans hold virtual keys' credentials: a change drops them all."""
        self._inline.clear()
        self._inline_bytes = 0

    async def resolve(
        self,
        headers: Mapping[str, str],
        api_key: ApiKey | None = None,
        model_ref: str | None = None,
    ) -> PlanNode:
        """The plan for a request with these (lower-cased) headers.

        :param api_key: the request's gateway API key, when it has one.
        :param model_ref: the slug of a model spelled ``@slug/model``.
        """
        return (await self.resolve_request(headers, api_key, model_ref))[0]

    async def resolve_request(
        self,
        headers: Mapping[str, str],
        api_key: ApiKey | None = None,
        model_ref: str | None = None,
    ) -> tuple[PlanNode, str | None]:
        """:meth:`resolve`, and the id of the config the plan comes from, for the log: a
        saved config's slug, a server-file config's name; ``None`` for an inline config,
        a virtual key or provider header, or an unnamed ``default_config``."""
        plan = await self._resolve(headers, api_key, model_ref)
        return plan, self._config_id(headers, api_key, model_ref)

    def _config_id(
        self, headers: Mapping[str, str], api_key: ApiKey | None, model_ref: str | None
    ) -> str | None:
        """Which stored config :meth:`_resolve` used (called once it succeeded)."""
        defaults = api_key.defaults if api_key is not None else {}
        key_config = defaults.get("config_id") if isinstance(defaults, Mapping) else None
        forced = api_key is not None and defaults.get("allow_config_override") is False
        text = None if forced else headers.get("x-portkey-config")
        if text:
            return None if text.lstrip().startswith("{") else self._config_name(text)
        if not forced and (
            headers.get("x-portkey-virtual-key")
            or headers.get("x-portkey-provider")
            or model_ref is not None
        ):
            return None  # a virtual key or a provider: no stored config
        if isinstance(key_config, str) and key_config:
            return self._config_name(key_config)
        default = self._settings_default
        return default if isinstance(default, str) else None

    def _config_name(self, text: str) -> str:
        """A stored config's name in the log: the server file's name, or the saved config's
        slug (whether the request sent its slug or its id)."""
        if text in self._named or self._catalog is None:
            return text
        saved = self._catalog.saved_config(text)
        return saved.slug if saved is not None else text

    async def _resolve(
        self,
        headers: Mapping[str, str],
        api_key: ApiKey | None,
        model_ref: str | None,
    ) -> PlanNode:
        key = bearer_token(headers)
        defaults = api_key.defaults if api_key is not None else {}
        key_config = defaults.get("config_id") if isinstance(defaults, Mapping) else None
        if api_key is not None and defaults.get("allow_config_override") is False:
            return await self._forced(headers, key, key_config, model_ref)
        header_config = headers.get("x-portkey-config")
        vk_header = headers.get("x-portkey-virtual-key") or None
        provider = headers.get("x-portkey-provider") or None
        if header_config:
            if len(header_config) > self._max_config_bytes:
                raise InvalidConfig(
                    f"x-portkey-config is larger than the gateway's limit of "
                    f"{self._max_config_bytes} bytes (server.max_config_bytes); save large "
                    "configs in the store or the server file and send their id",
                    code="config_too_large",
                )
            await self._ensure_config(header_config)
            # The provider headers are part of the key: a config without one uses them.
            return self._cached((header_config, key, provider, vk_header), headers)
        if vk_header:
            return await self._virtual(vk_header, "x-portkey-virtual-key", headers)
        if provider:
            if provider.startswith("@"):
                return await self._virtual(provider[1:], "x-portkey-provider", headers)
            if model_ref is None:
                return self._single(provider, headers.get("x-portkey-custom-host"), key, headers)
        if model_ref is not None:
            return await self._virtual(model_ref, "model", headers)
        if isinstance(key_config, str) and key_config:
            return await self._saved(key_config, key, headers)
        if self._default is not None:
            return self._cached((_DEFAULT, key, None, None), headers)
        raise InvalidRequest(
            "no provider given: send an x-portkey-provider header, an x-portkey-virtual-key "
            "header or an x-portkey-config header (inline JSON, or the id of a saved config "
            "or of a config in the server file)",
            code="missing_provider",
        )

    async def _forced(
        self,
        headers: Mapping[str, str],
        key: str | None,
        key_config: object,
        model_ref: str | None,
    ) -> PlanNode:
        """An API key that does not allow config override: its config, whatever is sent."""
        for name in ROUTING_HEADERS:
            if headers.get(name):
                raise PermissionDenied(
                    f"this API key does not allow config override: its own config decides "
                    f"the routing, so {name} is not accepted",
                    code="config_override_not_allowed",
                    param=name,
                )
        if model_ref is not None:
            raise PermissionDenied(
                f"this API key does not allow config override: model '@{model_ref}/…' "
                "chooses a provider; send the model name alone",
                code="config_override_not_allowed",
                param="model",
            )
        if isinstance(key_config, str) and key_config:
            return await self._saved(key_config, key, headers)
        if self._default is not None:
            return self._cached((_DEFAULT, key, None, None), headers)
        raise InvalidConfig(
            "this API key does not allow config override but names no config_id, and the "
            "server has no default_config",
            code="missing_provider",
        )

    async def _saved(self, slug: str, key: str | None, headers: Mapping[str, str]) -> PlanNode:
        await self._ensure_config(slug)
        return self._cached((slug, key, None, None), headers)

    async def _ensure_config(self, text: str) -> None:
        """Bring a saved config into the catalog if the text may be a slug not seen yet."""
        if self._catalog is None or text.lstrip().startswith("{") or text in self._named:
            return
        await self._catalog.config(text)

    async def _virtual(self, slug: str, where: str, headers: Mapping[str, str]) -> PlanNode:
        if self._catalog is None:
            raise vk_not_found(slug, where)
        if await self._catalog.virtual_key(slug) is None:
            raise vk_not_found(slug, where, slug in self._catalog.deleted_slugs)
        return self._cached(("\0vk", slug, where, None), headers)

    def _bind_virtual_key(self, slug: str, path: str) -> VirtualKeyBinding:
        assert self._catalog is not None
        vk = self._catalog.virtual_keys.get(slug)
        if vk is None:
            raise vk_not_found(slug, path, slug in self._catalog.deleted_slugs)
        return binding(vk)

    def _single(
        self,
        provider: str,
        custom_host: str | None,
        key: str | None,
        headers: Mapping[str, str],
    ) -> PlanNode:
        self._check_known(provider, "x-portkey-provider")
        # Cached like a config's plan: building a target costs more than the lookup (about
        # 7 µs against 0.3), and enforced hooks are compiled onto it once.
        return self._cached(("\0single", key, provider, custom_host), headers)

    def _cached(self, cache_key: _CacheKey, headers: Mapping[str, str]) -> PlanNode:
        plan = self._inline.get(cache_key)
        if plan is not None:
            self._inline.move_to_end(cache_key)
            return plan
        plan = self._build(cache_key, headers)
        self._inline[cache_key] = plan
        self._inline_bytes += _size(cache_key)
        while len(self._inline) > INLINE_CACHE_SIZE or self._inline_bytes > INLINE_CACHE_BYTES:
            evicted, _ = self._inline.popitem(last=False)
            self._inline_bytes -= _size(evicted)
        return plan

    def _build(self, cache_key: _CacheKey, headers: Mapping[str, str]) -> PlanNode:
        text, key = cache_key[0], cache_key[1]
        server_held = True
        if text == _DEFAULT:
            assert self._default is not None
            config, source = self._default, "default_config"
        elif text == "\0vk":
            slug, where = cache_key[1] or "", cache_key[2] or ""
            config, source, key = Config(virtual_key=slug), where, None
        elif text == "\0single":
            provider, host = cache_key[2] or "", cache_key[3]
            single = ResolvedTarget(
                path="config",
                provider=provider,
                api_key=key,
                custom_host=host.rstrip("/") if host else None,
            )
            return self._check(single, "x-portkey-provider")
        elif text.lstrip().startswith("{"):
            try:
                raw = orjson.loads(text)
            except orjson.JSONDecodeError as exc:
                raise InvalidConfig(f"x-portkey-config is not valid JSON: {exc}") from exc
            check_json_depth(text, raw, "x-portkey-config")
            # Portkey: a config without provider or targets takes the header's provider.
            header_provider, vk_header = cache_key[2], cache_key[3]
            if (
                isinstance(raw, dict)
                and (header_provider or vk_header)
                and not {"provider", "targets", "virtual_key", "virtualKey"} & raw.keys()
            ):
                if header_provider and header_provider.startswith("@"):
                    raw = {**raw, "virtual_key": header_provider[1:]}
                elif vk_header:
                    raw = {**raw, "virtual_key": vk_header}
                elif header_provider:
                    raw = {**raw, "provider": header_provider}
            config, source = validate_config(raw, "x-portkey-config"), "x-portkey-config"
            server_held = False
        else:
            config, source, server_held = self._stored(text)
        plan = compile_plan(config, default_api_key=key, server_held=server_held, bind=self._bind)
        if not server_held:
            for leaf in plan_leaves(plan):
                if leaf.custom_host and not leaf.from_vault:
                    check_client_host(leaf.custom_host, f"{leaf.path}.custom_host")
        return self._check(plan, source)

    def validate_saved(self, raw: Mapping[str, Any], source: str = "config") -> None:
        """Check a config before the store saves it, as requests will use it: schema,
        provider ids, guardrail ids, the virtual keys it names; and that it holds no
        credential (saved configs are plain JSON that every ``configs.read`` key reads).

        :raises InvalidConfig: naming the fault.
        """
        check_json_depth(orjson.dumps(raw).decode(), raw, source)
        config = validate_config(dict(raw), source)
        self._refuse_credentials(config, source)
        try:
            # As a client's config: whoever may save configs may not touch virtual keys.
            self._check(compile_plan(config, server_held=False, bind=self._bind), source)
        except InvalidRequest as exc:
            if isinstance(exc, InvalidConfig):
                raise
            raise InvalidConfig(exc.message, param=exc.param) from exc
        except NotFound as exc:
            raise InvalidConfig(exc.message, param=exc.param) from exc

    def _stored(self, slug: str) -> tuple[Config, str, bool]:
        """A config the server holds: named in the server file (which wins over a saved
        config of the same slug or id), or saved in the store; and whether it is the
        server file's (only those may set a virtual key's host or options, or hold keys)."""
        named = self._named.get(slug)
        if named is not None:
            return named, f"config {slug!r}", True
        saved = None
        if self._catalog is not None:
            saved = self._catalog.saved_config(slug)
        if saved is None:
            deleted = self._catalog is not None and slug in self._catalog.deleted_slugs
            raise InvalidConfig(
                f"x-portkey-config names config {slug!r}, which "
                + ("was deleted" if deleted else "neither the store nor the server file has"),
                status=404,
                code="config_not_found",
            )
        if saved.status != ACTIVE:
            raise PermissionDenied(
                f"saved config {slug!r} is {saved.status}", code=f"config_{saved.status}"
            )
        source = f"saved config {slug!r}"
        config = validate_config(dict(saved.config), source)
        # Saved by an API key with configs.create (or before this rule): never trusted to
        # hold credentials or to steer a virtual key, as a client's own config is not.
        self._refuse_credentials(config, source)
        return config, source, False

    def _refuse_credentials(self, config: Config, source: str, path: str = "config") -> None:
        """Refuse a credential anywhere in a saved config.

        :raises InvalidConfig: ``credentials_in_config``, naming where it is.
        """
        named = [n for n in config.provider_options if _snake(n) in self._secrets]
        if config.api_key is not None:
            named.insert(0, "api_key")
        if named:
            raise InvalidConfig(
                f"{source}: {path} holds a credential ({', '.join(sorted(named))}): a saved "
                "config is stored as plain JSON and shown to every key with configs.read; "
                "create a virtual key for the credential and name it with virtual_key",
                code="credentials_in_config",
                param=f"{path}.{named[0]}",
            )
        for index, child in enumerate(config.targets or ()):
            self._refuse_credentials(child, source, f"{path}.targets[{index}]")

    def _check(self, plan: PlanNode, source: str) -> PlanNode:
        """Reject unknown providers; compile and validate every target's hooks."""
        for provider in sorted(plan_providers(plan)):
            self._check_known(provider, source)
        self._check_verifiers(plan, source)
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
        enforced = self._enforced
        if not (
            hooks.before_request
            or hooks.after_request
            or hooks.input_guardrails
            or hooks.output_guardrails
            or enforced.any
        ):
            return node
        # Inherited lists are the same objects in every target: compile each once.
        if id(hooks) not in compiled:
            # The server's enforced hooks run first, whatever the config says.
            compiled[id(hooks)] = self._hooks.compile(
                before_request_hooks=[*enforced.before_request_hooks, *hooks.before_request],
                after_request_hooks=[*enforced.after_request_hooks, *hooks.after_request],
                input_guardrails=[*enforced.input_guardrails, *hooks.input_guardrails],
                output_guardrails=[*enforced.output_guardrails, *hooks.output_guardrails],
                where=source if node.path == "config" else f"{source} at {node.path}",
            )
        return replace(node, guardrails=compiled[id(hooks)])

    def _check_verifiers(self, plan: PlanNode, source: str) -> None:
        named = plan.cache.verifiers if plan.cache is not None else None
        if not named or self._verifiers is None:
            return
        unknown = [name for name in named if name not in self._verifiers]
        if unknown:
            known = ", ".join(sorted(self._verifiers)) or "none"
            raise InvalidConfig(
                f"unknown semantic verifier {unknown[0]!r} in {source} (known: {known})",
                code="unknown_verifier",
                param="cache.verifiers",
            )

    def _check_known(self, provider: str, source: str) -> None:
        if provider not in self._known:
            refuse_retired(provider)
            known = ", ".join(sorted(self._known))
            raise InvalidRequest(
                f"unknown provider {provider!r} in {source} (known: {known})",
                code="unknown_provider",
                param="provider",
            )


def _snake(name: str) -> str:
    """``awsSecretAccessKey`` -> ``aws_secret_access_key`` (configs take both spellings)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _size(cache_key: _CacheKey) -> int:
    return sum(len(part) for part in cache_key if part)
