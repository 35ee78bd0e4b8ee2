"""Configuration: Portkey's routing config, the server file, and header resolution."""

from portkey_mw.config.schema import Cache, Config, Retry, Strategy, StrategyMode, Target
from portkey_mw.config.server import PluginOptions, ServerOptions, ServerSettings

__all__ = [
    "Cache",
    "Config",
    "PluginOptions",
    "Retry",
    "ServerOptions",
    "ServerSettings",
    "Strategy",
    "StrategyMode",
    "Target",
]
