"""The adapter for every OpenAI-compatible provider: a URL, a key, and a few quirks."""

from __future__ import annotations

from typing import Any

import orjson

from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.interfaces import ProviderCall
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers
from portkey_mw.rerank import DIALECTS, RerankRequest
from portkey_mw.translation import json_object
from portkey_mw.transport import UpstreamRequest

from .spec import ProviderSpec


class OpenAICompatibleProvider(HTTPProvider):
    """Forwards OpenAI-format requests to a provider that speaks OpenAI's API.

    The client's body bytes go upstream untouched unless something had to change them
    (``override_params``, a hook, or one of the provider's renames).
    """

    def __init__(self, spec: ProviderSpec) -> None:
        self.spec = spec
        self.id = spec.id
        self.endpoints = spec.endpoints
        self.features = spec.features
        # An option the operator sets travels to the upstream as a header: it may be a
        # token (a server-file provider's option_headers), so it is bound like a key.
        self.secret_options = frozenset(spec.option_headers)

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        spec = self.spec
        headers = forwarded_headers(call)
        headers["accept"] = "text/event-stream" if call.stream else "application/json"
        key = call.require_key(spec.id) if spec.auth == "bearer" else call.target.api_key
        if key and spec.auth != "none":
            headers["authorization"] = f"Bearer {key}"
        sent: list[str] = []
        for option, header in spec.option_headers.items():
            value = call.option(option)
            if value:
                headers[header.lower()] = str(value)
                sent.append(str(value))
        body: bytes | None = None
        if call.body is not None:
            headers["content-type"] = "application/json"
            body = self._body(call)
        return UpstreamRequest(
            method="GET" if call.body is None else "POST",
            url=self._url(call),
            headers=headers,
            body=body,
            timeout=call.timeout,
            stream=call.stream,
            secrets=tuple(sent),  # masked wherever the upstream repeats them
        )

    def _url(self, call: ProviderCall) -> str:
        base = custom_host(call) or self.spec.base_url
        if not base:
            raise InvalidRequest(
                f"provider {self.id!r} has no public endpoint: set custom_host in the config "
                "or send x-portkey-custom-host (e.g. http://localhost:11434)",
                code="missing_custom_host",
                param="custom_host",
            )
        path = self.spec.paths[call.endpoint]
        if base.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        return base + path

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        if call.endpoint is not Endpoint.RERANK:
            return super().map_body(call, status, headers, body, content_type)
        rerank = RerankRequest.of(call.body or {})
        answer = DIALECTS[self.spec.rerank].response(rerank, json_object(self.id, status, body))
        return GatewayResponse.from_json(answer, status, headers)

    def _body(self, call: ProviderCall) -> bytes:
        body = call.body
        assert body is not None
        if call.endpoint is Endpoint.RERANK:
            # Cohere's shape in, the provider's out (Voyage says top_k)
            return orjson.dumps(DIALECTS[self.spec.rerank].request(RerankRequest.of(body)))
        changed: dict[str, Any] | None = None
        for old, new in self.spec.renames.items():
            if old in body and new not in body:
                changed = changed if changed is not None else dict(body)
                changed[new] = changed.pop(old)
        if self.spec.developer_role_as_system and _has_developer_message(body):
            changed = changed if changed is not None else dict(body)
            changed["messages"] = [
                {**m, "role": "system"} if m.get("role") == "developer" else m
                for m in body["messages"]
            ]
        if changed is not None:
            return orjson.dumps(changed)
        return call.body_bytes()


def _has_developer_message(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    return isinstance(messages, list) and any(
        isinstance(m, dict) and m.get("role") == "developer" for m in messages
    )
