"""The ``google`` provider plugin: the Gemini API behind OpenAI's chat format."""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.interfaces import Provider

from .provider import GoogleProvider

__all__ = ["GoogleProvider"]


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the google provider."""
    register(GoogleProvider())
