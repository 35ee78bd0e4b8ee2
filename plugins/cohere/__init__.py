"""The ``cohere`` provider plugin: Cohere's v2 chat and embed APIs behind OpenAI's format,
and its rerank API in its own shape (:mod:`portkey_mw.rerank`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import orjson

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers, report_dropped
from portkey_mw.rerank import COHERE, RerankRequest
from portkey_mw.translation import embeddings_response, json_object
from portkey_mw.transport import UpstreamRequest

from .stream import StreamTranslator
from .translate import embed_request, embed_vectors, to_cohere, to_openai

BASE_URL = "https://api.cohere.com"


class CohereProvider(HTTPProvider):
    """Chat (plain and streamed, tools, JSON output), embeddings and rerank over Cohere's
    v2 API."""

    id = "cohere"
    endpoints = frozenset(
        {Endpoint.CHAT_COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RERANK, Endpoint.PROXY}
    )
    features = frozenset({"stream", "tools", "vision", "json"})

    proxy_base_url = BASE_URL + "/v1"  # Portkey's base for cohere: /v1/proxy/v2/… not needed

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        headers = forwarded_headers(call)
        headers["authorization"] = f"Bearer {key}"
        headers["content-type"] = "application/json"
        base = custom_host(call) or BASE_URL
        body = call.body or {}
        if call.endpoint is Endpoint.EMBEDDINGS:
            payload = embed_request(body)
            path = "/v2/embed"
        elif call.endpoint is Endpoint.RERANK:
            payload = COHERE.request(RerankRequest.of(body))
            path = COHERE.path
        else:
            payload, dropped = to_cohere(body)
            report_dropped(call, self.id, dropped)
            path = "/v2/chat"
        return UpstreamRequest(
            "POST",
            base + path,
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

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        response = json_object(self.id, status, body)
        model = (call.body or {}).get("model")
        if call.endpoint is Endpoint.EMBEDDINGS:
            vectors, tokens = embed_vectors(response)
            return embeddings_response(vectors, model, tokens)
        if call.endpoint is Endpoint.RERANK:
            answer = COHERE.response(RerankRequest.of(call.body or {}), response)
            return GatewayResponse.from_json(answer, status, headers)
        return GatewayResponse.from_json(to_openai(response, model), status, headers)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the cohere provider."""
    register(CohereProvider())
