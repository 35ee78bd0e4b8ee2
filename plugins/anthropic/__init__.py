"""The ``anthropic`` provider plugin: Anthropic's Messages API behind OpenAI's chat format."""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.interfaces import Provider

from .provider import AnthropicProvider

__all__ = ["AnthropicProvider"]


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the anthropic provider."""
    register(AnthropicProvider())
