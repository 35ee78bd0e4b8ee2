"""The ``nomic`` provider plugin: Nomic Atlas text embeddings behind OpenAI's
``/v1/embeddings``.

Nomic's ``POST /v1/embedding/text`` takes ``texts`` (a list), ``task_type``
(``search_document``, ``search_query``, ``classification``, ``clustering``) and
``dimensionality`` (Matryoshka truncation: OpenAI's ``dimensions``), and answers
``{"embeddings": [[...]], "usage": {...}}``. Its errors are FastAPI's ``{"detail": ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import (
    HTTPProvider,
    json_post,
    report_dropped,
)
from portkey_mw.translation import (
    dropped_params,
    embedding_texts,
    embeddings_response,
    json_object,
    reads_answer,
)
from portkey_mw.transport import UpstreamRequest

BASE_URL = "https://api-atlas.nomic.ai/v1"
DEFAULT_MODEL = "nomic-embed-text-v1.5"
_PASSED = ("model", "input", "dimensions", "encoding_format", "task_type", "long_text_mode")


def embed_request(body: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Nomic request for an OpenAI embeddings request, and the parameters dropped."""
    payload: dict[str, Any] = {
        "model": body.get("model") or DEFAULT_MODEL,
        "texts": embedding_texts(body, "nomic"),
        "task_type": body.get("task_type") or "search_document",
    }
    if body.get("dimensions"):
        payload["dimensionality"] = body["dimensions"]
    if body.get("long_text_mode"):
        payload["long_text_mode"] = body["long_text_mode"]
    # encoding_format is taken and answered with floats, as the other native adapters do:
    # the openai SDK asks for base64 by default and reads floats as well.
    return payload, dropped_params(body, _PASSED)


@reads_answer("nomic")
def embed_vectors(response: dict[str, Any]) -> tuple[list[Any], int]:
    """The vectors of a Nomic answer, and the tokens it counted."""
    vectors = list(response["embeddings"])
    tokens = int((response.get("usage") or {}).get("total_tokens") or 0)
    return vectors, tokens


class NomicProvider(HTTPProvider):
    """Text embeddings with Nomic's ``nomic-embed-text`` models."""

    id = "nomic"
    endpoints = frozenset({Endpoint.EMBEDDINGS, Endpoint.PROXY})

    proxy_base_url = BASE_URL

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        key = call.require_key(self.id)
        payload, dropped = embed_request(call.body or {})
        report_dropped(call, self.id, dropped)
        auth = {"authorization": f"Bearer {key}"}
        return json_post(call, BASE_URL, "/embedding/text", payload, auth)

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        vectors, tokens = embed_vectors(json_object(self.id, status, body))
        response = embeddings_response(vectors, (call.body or {}).get("model"), tokens)
        response.headers.update(headers)
        return response


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the nomic provider."""
    register(NomicProvider())
