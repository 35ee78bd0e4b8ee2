"""The ``vertex-ai`` provider: Gemini and Anthropic models on Google Cloud Vertex AI.

Target options (or ``x-portkey-vertex-*`` headers, as Portkey's): ``vertex_project_id``,
``vertex_region`` (default ``us-central1``), ``vertex_service_account_json`` (a service
account key). Without a key file, a client's ``Authorization: Bearer <access token>`` is
used as is, and failing that Application Default Credentials. ``gemini-*`` and other Google
models speak Gemini's format; ``claude-*`` models Anthropic's (``rawPredict``). Needs
google-auth for service accounts and ADC: ``pip install "portkey-mw[vertex]"``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers, report_dropped
from portkey_mw.transport import Transport, UpstreamRequest

from ..anthropic.provider import AnthropicProvider
from ..anthropic.translate import to_anthropic
from ..google.provider import GoogleProvider
from ..google.translate import to_gemini
from .auth import TokenSource

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"


class VertexAIProvider(HTTPProvider):
    """Chat on Vertex AI, in the format of the model's publisher (Google or Anthropic)."""

    id = "vertex-ai"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS})
    features = frozenset({"stream", "tools", "vision", "json"})

    def __init__(self, *, allow_private_image_urls: bool = False) -> None:
        self.tokens = TokenSource()
        self.gemini = GoogleProvider(allow_private_image_urls=allow_private_image_urls)
        self.claude = AnthropicProvider()

    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        account = call.option("vertex_service_account_json")
        if account or not call.target.api_key:
            token = await self.tokens.token(account)
        else:
            token = call.target.api_key  # the client's own access token
        body = call.body or {}
        if not _is_claude(body):
            body = await self.gemini._fetch_images(body, transport)
        upstream = await transport.send(self._request(call, body, token))
        return await self.build_response(call, upstream)

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        """The request when the client's bearer token is the access token."""
        return self._request(call, call.body or {}, call.target.api_key or "")

    def _request(self, call: ProviderCall, body: dict[str, Any], token: str) -> UpstreamRequest:
        model = str(body.get("model") or "")
        if not model:
            raise InvalidRequest("'model' is required for provider 'vertex-ai'", param="model")
        project = call.option("vertex_project_id")
        if not project:
            raise InvalidRequest(
                "provider 'vertex-ai' needs vertex_project_id: set it on the target or send "
                "x-portkey-vertex-project-id",
                param="vertex_project_id",
                code="missing_provider_option",
            )
        region = str(call.option("vertex_region") or "us-central1")
        host = (
            "aiplatform.googleapis.com"
            if region == "global"
            else f"{region}-aiplatform.googleapis.com"
        )
        base = custom_host(call) or f"https://{host}/v1"
        prefix = (
            f"{base}/projects/{quote(str(project), safe='')}/locations/{quote(region, safe='')}"
        )
        if _is_claude(body):
            payload, dropped = to_anthropic(body)
            payload.pop("model", None)
            payload["anthropic_version"] = VERTEX_ANTHROPIC_VERSION
            method = "streamRawPredict" if call.stream else "rawPredict"
            url = f"{prefix}/publishers/anthropic/models/{quote(model, safe='@')}:{method}"
        else:
            payload, dropped = to_gemini(body)
            method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
            url = f"{prefix}/publishers/google/models/{quote(model, safe='@')}:{method}"
        report_dropped(call, self.id, dropped)
        headers = forwarded_headers(call)
        headers["authorization"] = f"Bearer {token}"
        headers["content-type"] = "application/json"
        return UpstreamRequest(
            "POST",
            url,
            headers=headers,
            body=orjson.dumps(payload),
            timeout=call.timeout,
            stream=call.stream,
        )

    def _dialect(self, call: ProviderCall) -> HTTPProvider:
        return self.claude if _is_claude(call.body or {}) else self.gemini

    def map_stream(self, call: ProviderCall, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        return self._dialect(call).map_stream(call, chunks)

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        return self._dialect(call).map_body(call, status, headers, body, content_type)


def _is_claude(body: dict[str, Any]) -> bool:
    return str(body.get("model") or "").startswith("claude")


@hookimpl
def register_providers(register: Callable[[Provider], None], settings: ServerSettings) -> None:
    """Register the vertex-ai provider."""
    options = settings.plugins.settings.get("portkey-mw.vertex-ai", {})
    register(
        VertexAIProvider(allow_private_image_urls=bool(options.get("allow_private_image_urls")))
    )
