"""portkey-mw: a self-hosted AI gateway as pure-ASGI middleware plus a pluggy plugin framework."""

from portkey_mw.app import Gateway
from portkey_mw.config import Config, ServerSettings
from portkey_mw.context import Endpoint, GatewayResponse, RequestContext
from portkey_mw.errors import GatewayError, RequestDenied
from portkey_mw.guardrails.api import Guardrail, GuardrailInput, GuardrailVerdict
from portkey_mw.interfaces import (
    CacheBackend,
    LogSink,
    Provider,
    ProviderCall,
    SemanticIndex,
    SemanticMatch,
    SemanticVerifier,
)
from portkey_mw.logevents import LogEvent
from portkey_mw.middleware import GatewayMiddleware
from portkey_mw.plugin import PluginManager, hookimpl
from portkey_mw.provider_http import HTTPProvider
from portkey_mw.services import GatewayServices
from portkey_mw.transport import AiohttpTransport, HttpxTransport, Transport

__version__ = "0.1.0"

__all__ = [
    "AiohttpTransport",
    "CacheBackend",
    "Config",
    "Endpoint",
    "Gateway",
    "GatewayError",
    "GatewayMiddleware",
    "GatewayResponse",
    "GatewayServices",
    "Guardrail",
    "GuardrailInput",
    "GuardrailVerdict",
    "HTTPProvider",
    "HttpxTransport",
    "LogEvent",
    "LogSink",
    "PluginManager",
    "Provider",
    "ProviderCall",
    "RequestContext",
    "RequestDenied",
    "SemanticIndex",
    "SemanticMatch",
    "SemanticVerifier",
    "ServerSettings",
    "Transport",
    "__version__",
    "hookimpl",
]
