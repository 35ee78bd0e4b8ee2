"""The ``bedrock`` provider plugin: Amazon Bedrock's Converse API behind OpenAI's chat format.

Needs botocore for SigV4 signing and event-stream decoding: ``pip install
"portkey-mw[bedrock]"``. The plugin loads without it and says so when used. Plugin
settings: ``allow_private_image_urls`` (default false).
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.interfaces import Provider

from .provider import BedrockProvider

__all__ = ["BedrockProvider"]

PLUGIN_NAME = "portkey-mw.bedrock"


@hookimpl
def register_providers(register: Callable[[Provider], None], settings: ServerSettings) -> None:
    """Register the bedrock provider."""
    options = settings.plugins.settings.get(PLUGIN_NAME, {})
    register(
        BedrockProvider(allow_private_image_urls=bool(options.get("allow_private_image_urls")))
    )
