"""The ``google`` provider plugin: the Gemini API behind OpenAI's chat format.

Plugin settings (server file, ``plugins.settings["portkey-mw.google"]``):
``allow_private_image_urls`` (default false).
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import Provider

from .provider import GoogleProvider

__all__ = ["GoogleProvider"]

PLUGIN_NAME = "portkey-mw.google"


@hookimpl
def register_providers(register: Callable[[Provider], None], settings: ServerSettings) -> None:
    """Register the google provider."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    register(GoogleProvider(allow_private_image_urls=bool(options.get("allow_private_image_urls"))))
