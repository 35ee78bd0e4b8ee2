"""The adapter for every OpenAI-compatible provider: a URL, a key, and a few quirks."""

from __future__ import annotations

import dataclasses
import re
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import InvalidRequest
from portkey_mw.files import FILE_ENDPOINTS, operation, upstream_request
from portkey_mw.interfaces import ProviderCall
from portkey_mw.multipart import MULTIPART_ENDPOINTS, form_of
from portkey_mw.provider_http import HTTPProvider, custom_host, forwarded_headers
from portkey_mw.rerank import DIALECTS, RerankRequest
from portkey_mw.translation import json_object
from portkey_mw.transport import StreamedBody, UpstreamRequest

from .spec import BODY_PLACEHOLDERS, ProviderSpec

# What a templated base URL takes from an option or the body: one path segment (an account
# id, a tenant) that cannot climb out of its place (no "/", no leading dot), or for the
# model, such segments joined by "/" (Hugging Face's "org/name").
_SEGMENT = re.compile(r"[A-Za-z0-9@][A-Za-z0-9._~:@+-]{0,199}")


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
        # Options that pick the host or the account in its URL: bound like custom_host.
        self.destination_options = spec.destination_options

    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        headers = forwarded_headers(call)
        if call.stream:
            headers["accept"] = "text/event-stream"
        else:
            # speech answers with audio; everything else with JSON
            speech = call.endpoint is Endpoint.AUDIO_SPEECH
            headers["accept"] = "*/*" if speech else "application/json"
        auth, sent = self._auth(call)
        headers.update(auth)
        if call.endpoint in FILE_ENDPOINTS:
            # /files/{id}/content and the like below the provider's files or batches path
            request = upstream_request(call, self._url(call, files=True), headers)
            request.secrets = tuple(sent)
            return request
        body: bytes | StreamedBody | None = None
        if call.endpoint in MULTIPART_ENDPOINTS:
            # the client's files, with the fields after the config's overrides
            body, headers["content-type"] = form_of(call.ctx).encode(call.body or {})
        elif call.body is not None:
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

    def _auth(self, call: ProviderCall) -> tuple[dict[str, str], list[str]]:
        """The catalogue's fixed headers, the key and the option headers; and the option
        values sent (masked wherever the upstream repeats them)."""
        spec = self.spec
        headers = dict(spec.headers)
        key = call.require_key(spec.id) if spec.auth == "bearer" else call.target.api_key
        if key and spec.auth != "none":
            headers["authorization"] = f"Bearer {key}"
        sent: list[str] = []
        for option, header in spec.option_headers.items():
            value = call.option(option)
            if value:
                headers[header.lower()] = str(value)
                sent.append(str(value))
        return headers, sent

    def proxy_base(self, call: ProviderCall) -> str | None:
        return self._base_from_option(call) or self._base_url(call)

    def proxy_auth(self, call: ProviderCall) -> dict[str, str]:
        return self._auth(call)[0]

    def realtime_request(self, call: ProviderCall) -> UpstreamRequest:
        """``GET <base>/realtime?model=…``, upgraded to a WebSocket, with the same key and
        option headers as any other call. The client's ``OpenAI-Beta`` (which picks the
        beta or the GA protocol) goes along; nothing else of its handshake does."""
        if Endpoint.REALTIME not in self.endpoints:
            return super().realtime_request(call)
        request = self.build_request(dataclasses.replace(call, body=None, raw_body=None))
        request.headers.pop("accept", None)
        beta = call.ctx.headers.get("openai-beta")
        if beta and "openai-beta" not in request.headers:
            request.headers["openai-beta"] = beta
        model = (call.body or {}).get("model")
        if isinstance(model, str) and model:
            request.url += ("&" if "?" in request.url else "?") + urlencode({"model": model})
        request.stream = True
        return request

    def _url(self, call: ProviderCall, *, files: bool = False) -> str:
        base = custom_host(call) or self._base_from_option(call) or self._base_url(call)
        if not base:
            where = f"set {self.spec.base_url_option} or " if self.spec.base_url_option else "set "
            raise InvalidRequest(
                f"provider {self.id!r} has no public endpoint: {where}custom_host in the "
                "config or send x-portkey-custom-host (e.g. http://localhost:11434)",
                code="missing_custom_host",
                param="custom_host",
            )
        path = self.spec.paths[call.endpoint]
        if base.endswith("/v1") and path.startswith("/v1/"):
            path = path[3:]
        query = {
            param: str(call.option(option))
            for option, param in self.spec.query_options.items()
            if call.option(option)
        }
        if files:
            return operation(call.ctx).url(base + path, query)
        return base + path + ("?" + urlencode(query) if query else "")

    def _base_from_option(self, call: ProviderCall) -> str | None:
        name = self.spec.base_url_option
        value = call.option(name) if name else None
        if not value:
            return None
        base = str(value).rstrip("/")
        if not base.startswith(("https://", "http://")):
            raise InvalidRequest(
                f"provider {self.id!r}: {name} must be an http(s) URL",
                code="invalid_provider_option",
                param=name,
            )
        return base  # the outbound policy checks the host like any other

    def _base_url(self, call: ProviderCall) -> str | None:
        """The catalogue's base URL with its ``{placeholders}`` filled in."""
        template = self.spec.base_url
        if not template or "{" not in template:
            return template
        values = {name: self._placeholder(call, name) for name in self.spec.placeholders}
        return template.format_map(values)

    def _placeholder(self, call: ProviderCall, name: str) -> str:
        if name in BODY_PLACEHOLDERS:
            model = (call.body or {}).get("model")
            if not isinstance(model, str) or not model:
                raise InvalidRequest(
                    f"provider {self.id!r} needs the model in the request body: its URL "
                    "names the model",
                    code="missing_model",
                    param="model",
                )
            value = model.split(":", 1)[0] if name == "model_base" else model
            segments = value.split("/")
        else:
            option = call.option(name)
            if not option:
                raise InvalidRequest(
                    f"provider {self.id!r} needs option {name!r}: set it on the target in the "
                    f"config, or send x-portkey-{name.replace('_', '-')}",
                    code="missing_provider_option",
                    param=name,
                )
            value = str(option)
            segments = [value]
        if not all(_SEGMENT.fullmatch(s) for s in segments):
            raise InvalidRequest(
                f"provider {self.id!r}: {name} {value[:80]!r} cannot be part of a URL "
                "(letters, digits and . _ ~ : @ + - only)",
                code="invalid_provider_option",
                param=name,
            )
        return quote(value, safe="/:@+~")

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
