"""The ``jina`` provider plugin: Jina AI's rerank API (:mod:`.rerank`)."""

from __future__ import annotations

from collections.abc import Callable

from portkey_mw import hookimpl
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.provider_http import HTTPProvider
from portkey_mw.transport import UpstreamRequest

from .rerank import rerank_request, rerank_response


class JinaProvider(HTTPProvider):
    """Rerank over Jina AI's API."""

    id = "jina"
    endpoints = frozenset({Endpoint.RERANK})

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        return rerank_request(call, self.id)

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        return rerank_response(call, status, headers, body, self.id)


@hookimpl
def register_providers(register: Callable[[Provider], None]) -> None:
    """Register the jina provider."""
    register(JinaProvider())
