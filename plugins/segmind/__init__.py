"""The ``segmind`` provider plugin: Segmind's serverless image models behind OpenAI's
``POST /v1/images/generations``.

Each Segmind model has its own URL (``POST /v1/<model>``, e.g. ``/v1/sdxl1.0-txt2img``) and
takes its own fields; the common ones are mapped from OpenAI's: ``n`` becomes ``samples``,
``size`` becomes ``img_width`` / ``img_height``, and ``base64: true`` asks for JSON with the
image (or images) in base64. Model-specific fields (``negative_prompt``, ``steps``,
``guidance_scale``, ``seed``, ``scheduler``, ...) pass through. A model that answers the
image bytes themselves is answered as ``b64_json`` too.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest, UpstreamBadResponse
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import (
    HTTPProvider,
    json_post,
    report_dropped,
)
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api.segmind.com/v1"
DEFAULT_MODEL = "sdxl1.0-txt2img"
#: a model is one path segment of the URL: nothing that could leave or extend it
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
#: OpenAI fields with no Segmind equivalent
UNSUPPORTED = ("quality", "style", "user", "response_format", "moderation", "background")
_MAPPED = ("model", "prompt", "n", "size")


def segmind_request(body: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """The model path segment and Segmind body for an OpenAI images request, and the
    parameters dropped."""
    model = str(body.get("model") or DEFAULT_MODEL)
    if not MODEL_NAME.match(model) or ".." in model:
        raise InvalidRequest(
            f"segmind: model {model[:80]!r} is not a Segmind model name", param="model"
        )
    payload: dict[str, Any] = {
        k: v for k, v in body.items() if k not in _MAPPED and k not in UNSUPPORTED
    }
    payload["prompt"] = str(body.get("prompt", ""))
    payload["samples"] = int(body.get("n") or 1)
    size = body.get("size")
    if size and size != "auto":
        match = _SIZE.match(str(size).lower())
        if not match:
            raise InvalidRequest("segmind: size must be '<width>x<height>'", param="size")
        payload["img_width"], payload["img_height"] = int(match[1]), int(match[2])
    payload["base64"] = True
    dropped = [name for name in UNSUPPORTED if name in body]
    if body.get("response_format") in (None, "b64_json"):
        dropped = [name for name in dropped if name != "response_format"]
    return model, payload, dropped


class SegmindProvider(HTTPProvider):
    """Text-to-image with Segmind's hosted models (SDXL, Flux, ...)."""

    id = "segmind"
    endpoints = frozenset({Endpoint.IMAGES, Endpoint.PROXY})

    def proxy_base(self, call: ProviderCall) -> str | None:
        return BASE_URL

    def proxy_auth(self, call: ProviderCall) -> dict[str, str]:
        return {"x-api-key": call.require_key(self.id)}

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        model, payload, dropped = segmind_request(call.body or {})
        report_dropped(call, self.id, dropped)
        return json_post(call, BASE_URL, f"/{model}", payload, {"x-api-key": key})

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        if content_type.startswith("image/"):
            images: list[Any] = [base64.b64encode(body).decode()]
        else:
            try:
                answer = orjson.loads(body)
            except orjson.JSONDecodeError:
                answer = None
            image = answer.get("image") if isinstance(answer, dict) else None
            images = image if isinstance(image, list) else [image]
            if not image or not all(isinstance(i, str) and i for i in images):
                raise UpstreamBadResponse(
                    f"segmind answered {status} without an image", provider=self.id
                )
        data = [{"b64_json": image} for image in images]
        return GatewayResponse.from_json(
            {"created": int(time.time()), "data": data}, status, headers
        )


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the segmind provider."""
    register(SegmindProvider())
