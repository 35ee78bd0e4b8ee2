"""The ``vertex-ai`` provider: Gemini and Anthropic models on Google Cloud Vertex AI.

Target options (or ``x-portkey-vertex-*`` headers, as Portkey's): ``vertex_project_id``,
``vertex_region`` (default ``us-central1``), ``vertex_service_account_json`` (a service
account key). Without a key file, a client's ``Authorization: Bearer <access token>`` is
used as is. The gateway's own Google identity (Application Default Credentials) is used
only for targets in the server file, and only when the operator turns it on with the
plugin setting ``application_default_credentials: true``; a client can never make the
gateway use it. ``gemini-*`` and other Google models speak Gemini's format; ``claude-*``
models Anthropic's (``rawPredict``). Needs google-auth for service accounts and ADC:
``pip install "portkey-mw[vertex]"``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson

from portkey_mw import hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import AuthenticationError, InvalidRequest
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.media import with_fetched_images
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers, report_dropped
from portkey_mw.routing.plan import ResolvedTarget
from portkey_mw.transport import Transport, UpstreamRequest

from ..anthropic.provider import AnthropicProvider
from ..anthropic.translate import to_anthropic
from ..google.provider import GoogleProvider
from ..google.translate import to_gemini
from .auth import TokenSource

VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
#: A region ("us-central1", "europe-west4", "global"); it becomes part of the host name.
REGION = re.compile(r"[a-z]+(?:-[a-z]+[0-9]*)*")


class VertexAIProvider(HTTPProvider):
    """Chat on Vertex AI, in the format of the model's publisher (Google or Anthropic).

    :param application_default_credentials: use the gateway's own Google credentials for
        server-file targets that carry none (the operator's opt-in).
    """

    id = "vertex-ai"
    endpoints = frozenset({Endpoint.CHAT_COMPLETIONS})
    features = frozenset({"stream", "tools", "vision", "json"})
    destination_options = frozenset({"vertex_project_id", "vertex_region"})
    secret_options = frozenset({"vertex_service_account_json"})

    def __init__(self, *, application_default_credentials: bool = False) -> None:
        self.tokens = TokenSource()
        self.application_default_credentials = application_default_credentials
        self.gemini = GoogleProvider()
        self.claude = AnthropicProvider()

    def holds_server_credentials(self, target: ResolvedTarget) -> bool:
        return super().holds_server_credentials(target) or self._ambient(target)

    def _ambient(self, target: ResolvedTarget) -> bool:
        """Whether ``target`` is answered with the gateway's own Google identity."""
        options = target.options or {}
        return (
            self.application_default_credentials
            and target.from_server
            and not options.get("vertex_service_account_json")
            and not target.api_key
        )

    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        token = await self._token(call, transport)
        body = call.body or {}
        if not _is_claude(body):
            body = await with_fetched_images(body, transport)
        upstream = await transport.send(self._request(call, body, token))
        return await self.build_response(call, upstream)

    async def _token(self, call: ProviderCall, transport: Transport) -> str:
        account = call.option("vertex_service_account_json")
        if account:
            client = call.option_from_client("vertex_service_account_json")
            return await self.tokens.token(account, transport, from_client=client)
        if call.target.api_key:
            return call.target.api_key  # an access token, the client's or the operator's
        if self._ambient(call.target):
            return await self.tokens.ambient_token()
        raise AuthenticationError(
            "vertex-ai: no credentials: give vertex_service_account_json or send an access "
            "token as 'Authorization: Bearer <token>' (the gateway's own Google credentials "
            "serve only server-file targets, when the operator enables "
            "application_default_credentials)",
            provider=self.id,
        )

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
        if not REGION.fullmatch(region):
            raise InvalidRequest(
                f"vertex-ai vertex_region {region[:40]!r} is not a Google Cloud region",
                param="vertex_region",
                code="invalid_provider_option",
            )
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
    """Register the vertex-ai provider (``application_default_credentials`` from the
    plugin's settings)."""
    options = settings.plugins.settings.get("portkey-mw.vertex-ai", {})
    ambient = options.get("application_default_credentials") is True
    register(VertexAIProvider(application_default_credentials=ambient))
