"""The ``stability-ai`` provider plugin: Stability AI's image generation behind OpenAI's
``POST /v1/images/generations``.

``model`` picks the service: ``stable-image-ultra`` (``/v2beta/stable-image/generate/ultra``),
``stable-image-core`` (the default), or an ``sd3*`` model (``.../sd3``, the model named in
the form). ``size`` becomes the nearest ``aspect_ratio``; images come back as ``b64_json``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import UpstreamBadResponse
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers, report_dropped
from portkey_mw.translation import dropped_params
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api.stability.ai"
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "2:3", "3:2", "4:5", "5:4", "9:16", "9:21")
_PASSED = {"model", "prompt", "size", "response_format", "negative_prompt", "seed", "style_preset"}


class StabilityAIProvider(HTTPProvider):
    """Text-to-image with Stable Image (Ultra, Core) and Stable Diffusion 3."""

    id = "stability-ai"
    endpoints = frozenset({Endpoint.IMAGES})

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        body = call.body or {}
        model = str(body.get("model") or "stable-image-core")
        if model.startswith("sd3"):
            service, fields = "sd3", {"model": model}
        elif model == "stable-image-ultra":
            service, fields = "ultra", {}
        else:
            service, fields = "core", {}
        fields["prompt"] = str(body.get("prompt", ""))
        fields["output_format"] = "png"
        if body.get("size"):
            fields["aspect_ratio"] = _aspect_ratio(str(body["size"]))
        for name in ("negative_prompt", "seed", "style_preset"):
            if body.get(name) is not None:
                fields[name] = str(body[name])
        dropped = dropped_params(body, _PASSED)
        if body.get("response_format") == "url":
            dropped.append("response_format")  # Stability returns bytes: b64_json only
        report_dropped(call, self.id, dropped)
        boundary = uuid.uuid4().hex
        headers = forwarded_headers(call)
        headers["authorization"] = f"Bearer {key}"
        headers["accept"] = "application/json"
        headers["content-type"] = f"multipart/form-data; boundary={boundary}"
        base = custom_host(call) or BASE_URL
        return UpstreamRequest(
            "POST",
            f"{base}/v2beta/stable-image/generate/{service}",
            headers=headers,
            body=_multipart(fields, boundary),
            timeout=call.timeout,
        )

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or not answer.get("image"):
            raise UpstreamBadResponse(
                f"stability-ai answered {status} without an image", provider=self.id
            )
        image: dict[str, Any] = {"b64_json": answer["image"]}
        return GatewayResponse.from_json(
            {"created": int(time.time()), "data": [image]}, status, headers
        )


def _aspect_ratio(size: str) -> str:
    """The supported aspect ratio closest to an OpenAI ``size`` such as ``1792x1024``."""
    try:
        width, height = (int(part) for part in size.lower().split("x", 1))
        wanted = width / height
    except (ValueError, ZeroDivisionError, OverflowError):  # "9...9x1" overflows a float
        return "1:1"

    def distance(ratio: str) -> float:
        w, h = (int(part) for part in ratio.split(":"))
        return abs(w / h - wanted)

    return min(ASPECT_RATIOS, key=distance)


def _multipart(fields: dict[str, str], boundary: str) -> bytes:
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the stability-ai provider."""
    register(StabilityAIProvider())
