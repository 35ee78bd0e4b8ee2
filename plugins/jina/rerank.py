"""Jina AI's rerank API (``POST https://api.jina.ai/v1/rerank``), Cohere's shape.

Kept apart from the provider class so that the jina plugin's other endpoints (embeddings)
and this one merge without touching each other: the provider calls these two functions
for :attr:`~portkey_mw.context.Endpoint.RERANK`.
"""

from __future__ import annotations

from portkey_mw.context import GatewayResponse
from portkey_mw.interfaces import ProviderCall
from portkey_mw.provider_http import json_post
from portkey_mw.rerank import JINA, RerankRequest
from portkey_mw.translation import json_object
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api.jina.ai/v1"


def rerank_request(call: ProviderCall, provider: str = "jina") -> UpstreamRequest:
    """The upstream request for a rerank call (bearer key, Jina's body)."""
    auth = {"authorization": f"Bearer {call.require_key(provider)}", "accept": "application/json"}
    payload = JINA.request(RerankRequest.of(call.body or {}))
    return json_post(call, BASE_URL, JINA.path, payload, auth)


def rerank_response(
    call: ProviderCall, status: int, headers: dict[str, str], body: bytes, provider: str = "jina"
) -> GatewayResponse:
    """Cohere's answer from Jina's."""
    answer = JINA.response(RerankRequest.of(call.body or {}), json_object(provider, status, body))
    return GatewayResponse.from_json(answer, status, headers)
