"""Plugin discovery and the typed facade over pluggy's manager (tox style: the core calls
``plugins.register_providers(settings)``, never a hook by its name as a string).

Plugins are modules (or objects) with ``@hookimpl`` functions, found through the
``portkey_mw`` entry-point group -- the first-party ones included. Two environment variables
narrow what loads, like llm's ``LLM_LOAD_PLUGINS``:

* ``PORTKEY_MW_LOAD_PLUGINS``: comma-separated entry-point names; only these load
  (an empty value loads none);
* ``PORTKEY_MW_BLOCK_PLUGINS``: comma-separated entry-point names that never load.

The server file's ``plugins.load`` / ``plugins.block`` do the same; the environment wins.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy
import structlog

from portkey_mw.config.server import PluginOptions
from portkey_mw.plugin import hookspecs

if TYPE_CHECKING:
    from portkey_mw.config.server import ServerSettings
    from portkey_mw.guardrails.api import Guardrail
    from portkey_mw.interfaces import (
        CacheBackend,
        LogSink,
        Provider,
        SemanticIndex,
        SemanticVerifier,
    )
    from portkey_mw.services import GatewayServices

ENTRY_POINT_GROUP = "portkey_mw"
LOAD_ENV = "PORTKEY_MW_LOAD_PLUGINS"
BLOCK_ENV = "PORTKEY_MW_BLOCK_PLUGINS"

log = structlog.get_logger("portkey_mw.plugins")


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """A loaded plugin: its registered name, and where it came from."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    hooks: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HookCall:
    """One implementation of a per-request hook, ready to call on the hot path."""

    plugin: str
    function: Callable[..., Any]
    argnames: tuple[str, ...]


async def await_me_maybe(value: Any) -> Any:
    """Await ``value`` if it is awaitable (datasette's idiom), else return it."""
    if inspect.isawaitable(value):
        return await value
    return value


def _env_list(name: str) -> list[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


class PluginManager:
    """The gateway's plugin manager: pluggy underneath, a typed API on top.

    :param options: the server file's ``plugins`` section.
    """

    def __init__(self, options: PluginOptions | None = None) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._pm.add_hookspecs(hookspecs)
        self._options = options or PluginOptions()
        self._infos: dict[str, PluginInfo] = {}
        self._hook_cache: dict[str, tuple[HookCall, ...]] = {}

    @property
    def pluggy(self) -> pluggy.PluginManager:
        """The underlying pluggy manager, for what this facade does not cover."""
        return self._pm

    # -- loading -------------------------------------------------------------

    def load_entry_points(self) -> list[PluginInfo]:
        """Register every allowed plugin of the ``portkey_mw`` entry-point group."""
        allow = _env_list(LOAD_ENV)
        if allow is None:
            allow = self._options.load
        block = set(_env_list(BLOCK_ENV) or []) | set(self._options.block)
        loaded = []
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if (allow is not None and ep.name not in allow) or ep.name in block:
                continue
            if self._pm.get_plugin(ep.name) is not None:
                # pluggy would skip it silently; say which distribution lost.
                log.warning("duplicate plugin name skipped", plugin=ep.name, value=ep.value)
                continue
            plugin = ep.load()
            dist = ep.dist
            loaded.append(
                self.register(
                    plugin,
                    ep.name,
                    distribution=dist.name if dist else None,
                    version=dist.version if dist else None,
                )
            )
        self._pm.check_pending()
        return loaded

    def register(
        self,
        plugin: object,
        name: str | None = None,
        *,
        distribution: str | None = None,
        version: str | None = None,
    ) -> PluginInfo:
        """Register a plugin object (module, class or instance with ``@hookimpl`` methods).

        Tests and embedding apps use this to add inline plugins.
        """
        registered = self._pm.register(plugin, name)
        assert registered is not None
        try:
            # A misspelled hook name would otherwise be ignored silently.
            self._pm.check_pending()
        except pluggy.PluginValidationError:
            self._pm.unregister(plugin)
            raise
        self._hook_cache.clear()
        hooks = tuple(sorted(h.name for h in (self._pm.get_hookcallers(plugin) or [])))
        info = PluginInfo(
            name=registered,
            module=getattr(plugin, "__name__", type(plugin).__module__),
            distribution=distribution,
            version=version,
            hooks=hooks,
        )
        self._infos[registered] = info
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin by name."""
        self._pm.unregister(name=name)
        self._infos.pop(name, None)
        self._hook_cache.clear()

    def plugins(self) -> list[PluginInfo]:
        """The loaded plugins, by name."""
        return sorted(self._infos.values(), key=lambda info: info.name)

    def settings_for(self, name: str) -> dict[str, Any]:
        """The server file's ``plugins.settings`` entry for a plugin name."""
        return dict(self._options.settings.get(name, {}))

    # -- registration hooks (typed) ---------------------------------------------

    def register_providers(self, settings: ServerSettings) -> list[tuple[str, Provider]]:
        """Every plugin's providers, as ``(plugin name, provider)`` pairs."""
        return self._collect("register_providers", settings=settings)

    def register_guardrails(self, settings: ServerSettings) -> list[tuple[str, Guardrail]]:
        """Every plugin's guardrail checks."""
        return self._collect("register_guardrails", settings=settings)

    def register_cache_backends(self, settings: ServerSettings) -> list[tuple[str, CacheBackend]]:
        """Every plugin's exact-cache backends."""
        return self._collect("register_cache_backends", settings=settings)

    def register_semantic_indexes(
        self, settings: ServerSettings
    ) -> list[tuple[str, SemanticIndex]]:
        """Every plugin's semantic-cache indexes."""
        return self._collect("register_semantic_indexes", settings=settings)

    def register_semantic_verifiers(
        self, settings: ServerSettings
    ) -> list[tuple[str, SemanticVerifier]]:
        """Every plugin's semantic-cache verifiers."""
        return self._collect("register_semantic_verifiers", settings=settings)

    def register_log_sinks(self, settings: ServerSettings) -> list[tuple[str, LogSink]]:
        """Every plugin's log sinks."""
        return self._collect("register_log_sinks", settings=settings)

    async def gateway_startup(self, gateway: GatewayServices) -> None:
        """Run every plugin's ``gateway_startup``."""
        await self._broadcast("gateway_startup", gateway=gateway)

    async def gateway_shutdown(self, gateway: GatewayServices) -> None:
        """Run every plugin's ``gateway_shutdown``."""
        await self._broadcast("gateway_shutdown", gateway=gateway)

    # -- per-request hooks (typed) ---------------------------------------------

    @property
    def on_request(self) -> tuple[HookCall, ...]:
        """The ``on_request`` implementations, in call order."""
        return self._hook_calls("on_request")

    @property
    def on_response(self) -> tuple[HookCall, ...]:
        """The ``on_response`` implementations, in call order."""
        return self._hook_calls("on_response")

    @property
    def on_stream_chunk(self) -> tuple[HookCall, ...]:
        """The ``on_stream_chunk`` implementations, in call order."""
        return self._hook_calls("on_stream_chunk")

    # -- the calls underneath ----------------------------------------------------

    def _collect(self, hook_name: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a ``register_*`` hook and return ``(plugin name, object)`` pairs."""
        collected: list[tuple[str, Any]] = []
        hook = getattr(self._pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            plugin_name = impl.plugin_name

            def register(obj: Any, _plugin: str = plugin_name) -> None:
                collected.append((_plugin, obj))

            call_args = {"register": register, **kwargs}
            impl.function(*[call_args[arg] for arg in impl.argnames])
        return collected

    async def _broadcast(self, hook_name: str, **kwargs: Any) -> None:
        """Call a lifecycle hook on every plugin and await what each returns."""
        for result in getattr(self._pm.hook, hook_name)(**kwargs):
            await await_me_maybe(result)

    def _hook_calls(self, hook_name: str) -> tuple[HookCall, ...]:
        """The implementations of a per-request hook, in call order.

        Computed once per registration change: on the hot path this is a dict lookup.
        """
        calls = self._hook_cache.get(hook_name)
        if calls is None:
            impls = getattr(self._pm.hook, hook_name).get_hookimpls()
            for impl in impls:
                if impl.hookwrapper or impl.wrapper:
                    raise TypeError(
                        f"plugin {impl.plugin_name!r}: per-request hook {hook_name} does not "
                        "support wrappers; use tryfirst/trylast to order it"
                    )
            calls = tuple(
                HookCall(impl.plugin_name, impl.function, tuple(impl.argnames))
                for impl in reversed(impls)
            )
            self._hook_cache[hook_name] = calls
        return calls


def call_hook(call: HookCall, kwargs: dict[str, Any]) -> Any:
    """Call one hook implementation with the arguments it declared."""
    return call.function(*[kwargs[arg] for arg in call.argnames])
