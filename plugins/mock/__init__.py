"""The ``mock`` provider: deterministic OpenAI-format replies, in process, no network.

For the demo, for load tests of the gateway itself, and for users' own tests. A target's
options shape it (all optional)::

    {"provider": "mock",
     "mock_reply": "fixed text",        # default: "Mock reply to: <last user message>"
     "mock_latency_ms": 20,             # wait before answering
     "mock_chunk_delay_ms": 5,          # wait between streamed chunks
     "mock_status": 503}                # answer with this error status instead

The server file's ``plugins.settings["portkey-mw.mock"]`` gives defaults for the same keys.
The provider is registered only when the server file says ``mock: true`` (or ``portkey-mw
serve --mock``): a production gateway does not answer for a provider that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import Provider

from .provider import MockProvider

__all__ = ["MockProvider"]

PLUGIN_NAME = "portkey-mw.mock"


@hookimpl
def register_providers(register: Callable[[Provider], None], settings: ServerSettings) -> None:
    """Register the mock provider with the server file's defaults, when enabled."""
    if settings.mock:
        register(MockProvider(defaults=settings.plugins.settings.get(PLUGIN_NAME, {})))
