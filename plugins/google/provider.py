"""The ``google`` provider: OpenAI chat completions served by the Gemini API (API key)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson

from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import ProviderCall
from portkey_mw.media import with_fetched_images
from portkey_mw.provider_http import (
    HTTPProvider,
    custom_host,
    forwarded_headers,
    report_dropped,
)
from portkey_mw.translation import embeddings_response, json_object, reads_answer
from portkey_mw.transport import Transport, UpstreamRequest

from .stream import StreamTranslator
from .translate import embed_request, to_gemini, to_openai

BASE_URL = "https://generativelanguage.googleapis.com/v1beta"


class GoogleProvider(HTTPProvider):
    """Chat (plain and streamed, tools, images, JSON output) over ``generateContent``.

    Image URLs are fetched through the outbound policy (``outbound.allow`` in the server
    file lets images come from an internal network).
    """

    id = "google"
    endpoints = frozenset(
        {
            Endpoint.CHAT_COMPLETIONS,
            Endpoint.EMBEDDINGS,
            Endpoint.MODELS,
            Endpoint.COUNT_TOKENS,
            Endpoint.PROXY,
        }
    )
    features = frozenset({"stream", "tools", "vision", "json"})

    proxy_base_url = BASE_URL
    key_header = ("x-goog-api-key", "")

    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        if call.endpoint is Endpoint.PROXY:
            return await self.forward(call, transport)
        body = await with_fetched_images(call.body or {}, transport)
        upstream = await transport.send(self._request(call, body))
        return await self.build_response(call, upstream)

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        return self._request(call, call.body or {})

    def _request(self, call: ProviderCall, body: dict[str, Any]) -> UpstreamRequest:
        key = call.require_key(self.id)
        headers = forwarded_headers(call)
        headers["x-goog-api-key"] = key
        base = custom_host(call) or BASE_URL
        if call.endpoint is Endpoint.MODELS:
            return UpstreamRequest("GET", f"{base}/models", headers=headers, timeout=call.timeout)
        model = str(body.get("model") or "").removeprefix("models/")
        if not model:
            raise InvalidRequest("'model' is required for provider 'google'", param="model")
        headers["content-type"] = "application/json"
        if call.endpoint is Endpoint.EMBEDDINGS:
            return UpstreamRequest(
                "POST",
                f"{base}/models/{quote(model, safe='')}:batchEmbedContents",
                headers=headers,
                body=orjson.dumps(embed_request(body, model)),
                timeout=call.timeout,
            )
        payload, dropped = to_gemini(body)
        if call.endpoint is Endpoint.COUNT_TOKENS:
            request = {"model": f"models/{model}", **payload}
            request.pop("generationConfig", None)
            return UpstreamRequest(
                "POST",
                f"{base}/models/{quote(model, safe='')}:countTokens",
                headers=headers,
                body=orjson.dumps({"generateContentRequest": request}),
                timeout=call.timeout,
            )
        method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        report_dropped(call, self.id, dropped)
        return UpstreamRequest(
            "POST",
            f"{base}/models/{quote(model, safe='')}:{method}",
            headers=headers,
            body=orjson.dumps(payload),
            timeout=call.timeout,
            stream=call.stream,
        )

    def map_stream(self, call: ProviderCall, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        body = call.body or {}
        include_usage = call.include_usage
        return StreamTranslator(model=body.get("model"), include_usage=include_usage).translate(
            chunks
        )

    @reads_answer("google")
    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        response = json_object(self.id, status, body)
        if call.endpoint is Endpoint.MODELS:
            models = [
                {
                    "id": str(m.get("name", "")).removeprefix("models/"),
                    "object": "model",
                    "created": 0,
                    "owned_by": "google",
                }
                for m in response.get("models") or []
            ]
            return GatewayResponse.from_json({"object": "list", "data": models}, status, headers)
        model = str((call.body or {}).get("model") or "").removeprefix("models/")
        if call.endpoint is Endpoint.COUNT_TOKENS:
            count = {"input_tokens": int(response.get("totalTokens") or 0)}
            return GatewayResponse.from_json(count, status, headers)
        if call.endpoint is Endpoint.EMBEDDINGS:
            # Gemini reports no token counts for embeddings.
            vectors = [item.get("values") or [] for item in response.get("embeddings") or []]
            return embeddings_response(vectors, model)
        return GatewayResponse.from_json(to_openai(response, model), status, headers)
