"""The ``recraft-ai`` provider plugin: Recraft's image generation behind OpenAI's
``POST /v1/images/generations``.

Recraft's ``POST /v1/images/generations`` takes OpenAI's ``prompt``, ``n``, ``size``,
``model`` and ``response_format`` plus its own ``style``, ``substyle``, ``style_id``,
``negative_prompt``, ``controls``, ``text_layout`` and ``artistic_level``, and answers in
OpenAI's shape (``data`` of ``url`` or ``b64_json``). The adapter passes what Recraft takes,
drops and reports the rest (``quality``, ``user``, ...), and keeps the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import (
    HTTPProvider,
    json_post,
    report_dropped,
)
from portkey_mw.translation import dropped_params
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://external.api.recraft.ai/v1"
PASSED = (
    "prompt",
    "n",
    "size",
    "model",
    "response_format",
    "style",
    "substyle",
    "style_id",
    "negative_prompt",
    "controls",
    "text_layout",
    "artistic_level",
)


def recraft_request(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Recraft request for an OpenAI images request, and the parameters dropped."""
    payload = {k: body[k] for k in PASSED if body.get(k) is not None}
    return payload, dropped_params(body, PASSED)


class RecraftProvider(HTTPProvider):
    """Text-to-image (raster and vector styles) with Recraft's models."""

    id = "recraft-ai"
    endpoints = frozenset({Endpoint.IMAGES, Endpoint.PROXY})

    proxy_base_url = BASE_URL

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        payload, dropped = recraft_request(call.body or {})
        report_dropped(call, self.id, dropped)
        auth = {"authorization": f"Bearer {key}"}
        return json_post(call, BASE_URL, "/images/generations", payload, auth)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the recraft-ai provider."""
    register(RecraftProvider())
