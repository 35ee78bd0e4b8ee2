"""The ``bedrock`` provider plugin: Amazon Bedrock's Converse API behind OpenAI's chat format.

Needs botocore for SigV4 signing and event-stream decoding: ``pip install
"portkey-mw[bedrock]"``. The plugin loads without it and says so when used.
"""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.interfaces import Provider

from .provider import BedrockProvider

__all__ = ["BedrockProvider"]


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the bedrock provider."""
    register(BedrockProvider())
