"""OpenAI and the OpenAI-compatible providers (groq, together-ai, ollama, vllm, ...).

Each provider is a row of data in ``providers.toml``; the server file's ``providers``
section adds more (any OpenAI-compatible server, under an id of your choosing).
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import Provider

from .provider import OpenAICompatibleProvider
from .spec import ProviderSpec, load_catalog

__all__ = ["OpenAICompatibleProvider", "ProviderSpec", "load_catalog"]


@hookimpl
def register_providers(register: Callable[[Provider], None], settings: ServerSettings) -> None:
    """Register one adapter per catalog entry."""
    for spec in load_catalog(settings.providers).values():
        register(OpenAICompatibleProvider(spec))
