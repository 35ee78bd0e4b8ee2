"""The plugin framework: hook specifications and the typed manager over pluggy."""

from portkey_mw.plugin.hookspecs import hookimpl, hookspec
from portkey_mw.plugin.manager import (
    HookCall,
    PluginInfo,
    PluginManager,
    await_me_maybe,
    call_hook,
)

__all__ = [
    "HookCall",
    "PluginInfo",
    "PluginManager",
    "await_me_maybe",
    "call_hook",
    "hookimpl",
    "hookspec",
]
