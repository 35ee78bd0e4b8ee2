"""The ``anthropic`` provider: OpenAI chat completions served by Anthropic's Messages API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson

from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.files import operation, upstream_request
from portkey_mw.interfaces import ProviderCall
from portkey_mw.provider_http import (
    HTTPProvider,
    custom_host,
    forwarded_headers,
    report_dropped,
)
from portkey_mw.translation import json_object, reads_answer
from portkey_mw.transport import UpstreamRequest

from .stream import StreamTranslator
from .translate import ANTHROPIC_VERSION, JSON_TOOL, to_anthropic, to_openai

BASE_URL = "https://api.anthropic.com/v1"
#: what /v1/messages/count_tokens takes of a Messages request
COUNTED_KEYS = frozenset({"model", "messages", "system", "tools", "tool_choice"})
#: the client's headers a files call keeps (the API version, the betas it opts into)
CLIENT_HEADERS = ("anthropic-version", "anthropic-beta")


class AnthropicProvider(HTTPProvider):
    """Chat completions (plain and streamed, tools, images, JSON mode) over the Messages API.

    Options (config keys or ``x-portkey-<option>`` headers): ``anthropic_version``
    (default 2023-06-01) and ``anthropic_beta``.
    """

    id = "anthropic"
    endpoints = frozenset(
        {
            Endpoint.CHAT_COMPLETIONS,
            Endpoint.MODELS,
            Endpoint.COUNT_TOKENS,
            Endpoint.PROXY,
            Endpoint.FILES,
        }
    )
    features = frozenset({"stream", "tools", "vision", "json"})

    def proxy_base(self, call: ProviderCall) -> str | None:
        return BASE_URL

    def proxy_auth(self, call: ProviderCall) -> dict[str, str]:
        # A pass-through client may pick the API version and betas itself (its own headers,
        # forwarded); the options, else the default, stand in when it does not.
        sent = call.ctx.headers
        return {
            name: value
            for name, value in self._auth(call).items()
            if name == "x-api-key" or name not in sent
        }

    def _client_versioned(self, call: ProviderCall) -> dict[str, str]:
        """The credentials, with the client's own ``anthropic-version`` and
        ``anthropic-beta`` (the Files API is a beta the client opts into)."""
        sent = call.ctx.headers
        chosen = {name: sent[name] for name in CLIENT_HEADERS if name in sent}
        return {**chosen, **self.proxy_auth(call)}

    def _auth(self, call: ProviderCall) -> dict[str, str]:
        headers = {"x-api-key": call.require_key(self.id)}
        headers["anthropic-version"] = str(call.option("anthropic_version") or ANTHROPIC_VERSION)
        beta = call.option("anthropic_beta")
        if beta:
            headers["anthropic-beta"] = str(beta)
        return headers

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        headers = forwarded_headers(call)
        headers.update(self._auth(call))
        base = custom_host(call) or BASE_URL
        if call.endpoint is Endpoint.MODELS:
            return UpstreamRequest("GET", base + "/models", headers=headers, timeout=call.timeout)
        if call.endpoint is Endpoint.FILES:
            # Anthropic's Files API has OpenAI's paths (/files, /files/{id}, …/content):
            # the upload streams through unchanged, as for OpenAI
            headers = {**forwarded_headers(call), **self._client_versioned(call)}
            request = upstream_request(call, operation(call.ctx).url(base + "/files"), headers)
            request.secrets = (headers["x-api-key"],)
            return request
        payload, dropped = to_anthropic(call.body or {})
        if call.endpoint is Endpoint.COUNT_TOKENS:
            # The count takes the prompt only: no sampling, limits or streaming.
            counted = {k: v for k, v in payload.items() if k in COUNTED_KEYS}
            return UpstreamRequest(
                "POST",
                base + "/messages/count_tokens",
                headers={**headers, "content-type": "application/json"},
                body=orjson.dumps(counted),
                timeout=call.timeout,
            )
        report_dropped(call, self.id, dropped)
        headers["content-type"] = "application/json"
        headers["accept"] = "text/event-stream" if call.stream else "application/json"
        return UpstreamRequest(
            "POST",
            base + "/messages",
            headers=headers,
            body=orjson.dumps(payload),
            timeout=call.timeout,
            stream=call.stream,
        )

    @staticmethod
    def _json_mode(call: ProviderCall) -> bool:
        response_format = (call.body or {}).get("response_format")
        return isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )

    def map_stream(self, call: ProviderCall, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        if call.endpoint is Endpoint.FILES:
            return chunks  # a file's content, byte for byte
        body = call.body or {}
        translator = StreamTranslator(
            provider=self.id,
            model=body.get("model"),
            include_usage=call.include_usage,
            json_mode=self._json_mode(call),
        )
        return translator.translate(chunks)

    @reads_answer("anthropic")
    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        if call.endpoint is Endpoint.FILES:
            return super().map_body(call, status, headers, body, content_type)  # untranslated
        message = json_object(self.id, status, body)
        if call.endpoint is Endpoint.COUNT_TOKENS:
            count = {"input_tokens": int(message.get("input_tokens") or 0)}
            return GatewayResponse.from_json(count, status, headers)
        if call.endpoint is Endpoint.MODELS:
            models = [
                {"id": m.get("id"), "object": "model", "created": 0, "owned_by": "anthropic"}
                for m in message.get("data") or []
            ]
            return GatewayResponse.from_json({"object": "list", "data": models}, status, headers)
        return GatewayResponse.from_json(
            to_openai(message, json_mode=self._json_mode(call)), status, headers
        )


__all__ = ["JSON_TOOL", "AnthropicProvider"]
