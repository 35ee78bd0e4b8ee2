"""The ``jina`` provider plugin: Jina AI's embeddings behind OpenAI's ``/v1/embeddings``,
and its rerank API behind ``/v1/rerank`` (:mod:`.rerank`).

Jina's ``POST /v1/embeddings`` answers in OpenAI's shape, but takes its own options beside
OpenAI's: ``task`` (``retrieval.query``, ``retrieval.passage``, ``text-matching``, ...),
``late_chunking``, ``truncate`` and ``embedding_type``; inputs may be strings or, for the
multimodal models, ``{"text": ...}`` / ``{"image": ...}`` objects. The adapter passes those
through, drops what Jina does not take, and answers errors (``{"detail": ...}``) in
OpenAI's shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import (
    HTTPProvider,
    json_post,
    report_dropped,
)
from portkey_mw.translation import dropped_params
from portkey_mw.transport import UpstreamRequest

from .rerank import rerank_request, rerank_response

BASE_URL = "https://api.jina.ai/v1"
DEFAULT_MODEL = "jina-embeddings-v3"
#: OpenAI's fields and Jina's own options, passed as they are
PASSED = (
    "model",
    "input",
    "dimensions",
    "task",
    "late_chunking",
    "truncate",
    "embedding_type",
    "normalized",
)


def embed_request(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Jina embeddings request for an OpenAI one, and the parameters dropped."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, (str, dict)) for t in texts):
        raise InvalidRequest(
            "jina: 'input' must be a string, or a list of strings and {text|image} objects",
            param="input",
        )
    payload = {k: body[k] for k in PASSED if body.get(k) is not None}
    payload["input"] = texts
    payload.setdefault("model", DEFAULT_MODEL)
    # Jina spells OpenAI's encoding_format embedding_type; both encode base64 the same way
    # (little-endian float32), so the openai SDK decodes Jina's answer as OpenAI's.
    if body.get("encoding_format") in ("float", "base64") and "embedding_type" not in payload:
        payload["embedding_type"] = body["encoding_format"]
    return payload, dropped_params(body, (*PASSED, "encoding_format"))


class JinaProvider(HTTPProvider):
    """Text and multimodal embeddings, and rerank, with Jina AI's models."""

    id = "jina"
    endpoints = frozenset({Endpoint.EMBEDDINGS, Endpoint.RERANK, Endpoint.PROXY})

    proxy_base_url = BASE_URL

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        if call.endpoint is Endpoint.RERANK:
            return rerank_request(call, self.id)
        key = call.require_key(self.id)
        payload, dropped = embed_request(call.body or {})
        report_dropped(call, self.id, dropped)
        auth = {"authorization": f"Bearer {key}", "accept": "application/json"}
        return json_post(call, BASE_URL, "/embeddings", payload, auth)

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        if call.endpoint is Endpoint.RERANK:
            return rerank_response(call, status, headers, body, self.id)
        return super().map_body(call, status, headers, body, content_type)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the jina provider."""
    register(JinaProvider())
