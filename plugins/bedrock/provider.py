"""The ``bedrock`` provider: OpenAI chat completions over Bedrock's Converse API (SigV4)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson

from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import (
    AuthenticationError,
    InvalidRequest,
    PluginMissingDependency,
)
from portkey_mw.interfaces import ProviderCall
from portkey_mw.media import with_fetched_images
from portkey_mw.provider_http import (
    HTTPProvider,
    custom_host,
    forwarded_headers,
    passthrough_headers,
    report_dropped,
)
from portkey_mw.translation import (
    embedding_texts,
    embeddings_response,
    json_object,
)
from portkey_mw.transport import Transport, UpstreamRequest, UpstreamResponse

from .stream import StreamTranslator
from .translate import embedding_answer, json_mode, to_converse, to_openai

_CREDENTIALS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token", "aws_region")
#: An AWS region name; it becomes part of the host name, so nothing else may pass.
REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


class BedrockProvider(HTTPProvider):
    """Chat (plain and streamed, tools, images) over Converse / ConverseStream.

    Credentials come from the target (``aws_access_key_id``, ``aws_secret_access_key``,
    optional ``aws_session_token``, ``aws_region``) or the matching ``x-portkey-aws-*``
    headers, as in Portkey. Requests are signed with SigV4 by botocore
    (``pip install "portkey-mw[bedrock]"``).
    """

    id = "bedrock"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS, Endpoint.EMBEDDINGS})
    features = frozenset({"stream", "tools", "vision", "json"})
    destination_options = frozenset({"aws_region"})
    secret_options = frozenset({"aws_access_key_id", "aws_secret_access_key", "aws_session_token"})

    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        if call.endpoint is Endpoint.EMBEDDINGS:
            return await self._embed(call, transport)
        body = await with_fetched_images(call.body or {}, transport)
        upstream = await transport.send(self._request(call, body))
        return await self.build_response(call, upstream)

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        return self._request(call, call.body or {})

    async def _embed(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        """Embeddings with InvokeModel: Titan takes one text per request, Cohere a batch."""
        body = call.body or {}
        model = str(body.get("model") or "")
        texts = embedding_texts(body, "bedrock")
        if model.startswith("cohere."):
            payloads = [{"texts": texts, "input_type": body.get("input_type") or "search_document"}]
        elif model.startswith("amazon.titan-embed"):
            extra = {"dimensions": body["dimensions"]} if body.get("dimensions") else {}
            payloads = [{"inputText": text, **extra} for text in texts]
        else:
            raise InvalidRequest(
                "bedrock embeddings support amazon.titan-embed-* and cohere.embed-* models, "
                f"not {model!r}",
                param="model",
            )
        vectors: list[Any] = []
        tokens = 0
        for payload in payloads:
            request = self._signed_request(call, f"/model/{quote(model, safe=':')}/invoke", payload)
            upstream = await transport.send(request)
            try:
                raw = await upstream.read()
            finally:
                await upstream.aclose()
            if upstream.status >= 400:
                headers = passthrough_headers(upstream.headers)
                return self.map_error(call, upstream.status, headers, raw, "")
            found, counted = embedding_answer(json_object(self.id, upstream.status, raw))
            vectors.extend(found)
            tokens += counted
        return embeddings_response(vectors, model, tokens)

    def _credentials(self, call: ProviderCall) -> dict[str, Any]:
        credentials = {name: call.option(name) for name in _CREDENTIALS}
        missing = [
            n
            for n in ("aws_access_key_id", "aws_secret_access_key", "aws_region")
            if not credentials[n]
        ]
        if missing:
            names = ", ".join("x-portkey-" + n.replace("_", "-") for n in missing)
            raise AuthenticationError(
                f"provider 'bedrock' is missing {', '.join(missing)}: set them on the target "
                f"or send {names}",
                provider=self.id,
            )
        return credentials

    def _signed_request(
        self, call: ProviderCall, path: str, payload: dict[str, Any]
    ) -> UpstreamRequest:
        credentials = self._credentials(call)
        region = str(credentials["aws_region"])
        if not REGION.fullmatch(region):
            raise InvalidRequest(
                f"bedrock aws_region {region[:40]!r} is not an AWS region (e.g. us-east-1)",
                param="aws_region",
                code="invalid_provider_option",
            )
        base = custom_host(call) or f"https://bedrock-runtime.{region}.amazonaws.com"
        url = base + path
        data = orjson.dumps(payload)
        headers = {**forwarded_headers(call), **_signed(url, data, credentials)}
        return UpstreamRequest(
            "POST", url, headers=headers, body=data, timeout=call.timeout, stream=call.stream
        )

    def _request(self, call: ProviderCall, body: dict[str, Any]) -> UpstreamRequest:
        self._credentials(call)  # missing credentials are a 401 before anything else
        model = str(body.get("model") or "")
        if not model:
            raise InvalidRequest("'model' is required for provider 'bedrock'", param="model")
        payload, dropped = to_converse(body)
        report_dropped(call, self.id, dropped)
        operation = "converse-stream" if call.stream else "converse"
        # ':' stays literal: the HTTP client sends it so, and the signature must cover the
        # path exactly as sent.
        return self._signed_request(call, f"/model/{quote(model, safe=':')}/{operation}", payload)

    async def build_response(
        self, call: ProviderCall, upstream: UpstreamResponse
    ) -> GatewayResponse:
        content_type = upstream.headers.get("content-type", "")
        if upstream.status < 400 and "amazon.eventstream" in content_type:
            body = call.body or {}
            translator = StreamTranslator(
                json=json_mode(body),
                model=body.get("model"),
                include_usage=call.include_usage,
            )
            response = GatewayResponse(
                upstream.status,
                headers={"content-type": "text/event-stream"},
                stream=translator.translate(upstream.iter_chunks()),
                close=upstream.aclose,
            )
            response.secrets = tuple(upstream.request.credentials())  # for its errors
            return response
        return await super().build_response(call, upstream)

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        response = json_object(self.id, status, body)
        return GatewayResponse.from_json(
            to_openai(response, body_model(call), json=json_mode(call.body or {})), status, headers
        )


def body_model(call: ProviderCall) -> str | None:
    model = (call.body or {}).get("model")
    return str(model) if model else None


def _signed(url: str, body: bytes, credentials: dict[str, Any]) -> dict[str, str]:
    """SigV4 headers for a Bedrock runtime request (botocore does the signing)."""
    try:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials
    except ImportError as exc:
        raise PluginMissingDependency("bedrock", "bedrock", exc) from exc
    request = AWSRequest(
        method="POST", url=url, data=body, headers={"content-type": "application/json"}
    )
    keys = Credentials(
        credentials["aws_access_key_id"],
        credentials["aws_secret_access_key"],
        credentials["aws_session_token"],
    )
    SigV4Auth(keys, "bedrock", str(credentials["aws_region"])).add_auth(request)
    return {name.lower(): str(value) for name, value in request.headers.items()}


__all__ = ["BedrockProvider"]
