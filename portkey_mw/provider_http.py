"""A base class for providers reached over HTTP: build a request, map the response.

Provider plugins subclass :class:`HTTPProvider` and implement :meth:`build_request`; those
that speak another wire format also override :meth:`map_body` and :meth:`map_stream`.
Nothing here knows any particular provider.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from portkey_mw import passthrough
from portkey_mw.auth.api_keys import is_gateway_key
from portkey_mw.context import Endpoint, GatewayResponse
from portkey_mw.errors import GatewayError, InvalidRequest, UpstreamBadResponse
from portkey_mw.files import OPERATION, operation, output_file, streams_answer
from portkey_mw.forwarding import NEVER_FORWARDED
from portkey_mw.interfaces import Provider, ProviderCall
from portkey_mw.redact import CREDENTIAL_HEADERS, mask_text
from portkey_mw.transport import Transport, UpstreamRequest, UpstreamResponse

#: Upstream response headers a client may see; everything else stays behind the gateway
#: (cookies, server banners, internal routing headers, hop-by-hop headers).
PASSTHROUGH_HEADERS = frozenset(
    {"retry-after", "retry-after-ms", "x-request-id", "openai-processing-ms", "openai-version"}
)
PASSTHROUGH_PREFIXES = ("x-ratelimit-",)
#: endpoints whose answer may be text rather than JSON (``response_format`` text, srt, vtt)
TEXT_ANSWERS = frozenset({Endpoint.AUDIO_TRANSCRIPTIONS, Endpoint.AUDIO_TRANSLATIONS})


def passthrough_headers(headers: Mapping[str, str], secrets: Sequence[str] = ()) -> dict[str, str]:
    """The upstream headers a client may see, lower-cased, with ``secrets`` masked."""
    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower in PASSTHROUGH_HEADERS or lower.startswith(PASSTHROUGH_PREFIXES):
            kept[lower] = mask_text(value, secrets) if secrets else value
    return kept


def custom_host(call: ProviderCall) -> str | None:
    """The base URL that replaces the provider's: the target's ``custom_host``, else the
    ``x-portkey-custom-host`` header.

    The router has already refused the header when the target's credentials are held by
    the server (:func:`~portkey_mw.auth.credentials.enforce_binding`).
    """
    if call.target.custom_host:
        return call.target.custom_host.rstrip("/")
    header = call.ctx.headers.get("x-portkey-custom-host")
    return header.rstrip("/") if header else None


DROPPED_HEADER = "x-portkey-dropped-params"
STRICT_HEADER = "x-portkey-strict-open-ai-compliance"


def report_dropped(call: ProviderCall, provider: str, dropped: list[str]) -> None:
    """Say which request parameters a native provider could not take.

    By default they are dropped and named in the ``x-portkey-dropped-params`` response
    header; with ``x-portkey-strict-open-ai-compliance: true`` the request is refused instead.
    """
    if not dropped:
        return
    names = ",".join(sorted(dropped))
    if call.ctx.headers.get(STRICT_HEADER, "").lower() == "true":
        raise InvalidRequest(
            f"provider {provider!r} cannot take these parameters: {names} (strict mode: "
            f"{STRICT_HEADER} is true)",
            param=sorted(dropped)[0],
            code="unsupported_parameter",
        )
    call.ctx.response_headers[DROPPED_HEADER] = names


def forwarded_headers(call: ProviderCall) -> dict[str, str]:
    """Client headers to pass on: ``x-portkey-forward-headers`` plus the config's list.

    Both lists were checked when they arrived (:mod:`portkey_mw.forwarding`); the test here
    keeps a plugin-built target from forwarding what no list may name. A header carrying a
    gateway API key (``Authorization: Bearer pk-mw-…``, ``x-api-key``) is never forwarded:
    that key identifies the client to the gateway and goes nowhere else.
    """
    headers = call.ctx.headers
    names = list(call.target.forward_headers)
    listed = headers.get("x-portkey-forward-headers")
    if listed:
        names.extend(name.strip() for name in listed.split(","))
    forwarded = {}
    for name in names:
        lower = name.lower()
        if (
            lower
            and lower in headers
            and lower not in NEVER_FORWARDED
            and not lower.startswith("x-portkey-")
            and not _carries_gateway_key(headers[lower])
        ):
            forwarded[lower] = headers[lower]
    return forwarded


def json_post(
    call: ProviderCall,
    base_url: str,
    path: str,
    payload: Any,
    auth: Mapping[str, str],
    *,
    stream: bool = False,
) -> UpstreamRequest:
    """A JSON ``POST`` to ``path`` below the admin's custom host, else ``base_url``: the
    client's forwarded headers, then ``auth`` (the provider's key header) and the JSON
    content type. What most native adapters send."""
    headers = forwarded_headers(call)
    headers.update(auth)
    headers["content-type"] = "application/json"
    return UpstreamRequest(
        "POST",
        (custom_host(call) or base_url) + path,
        headers=headers,
        body=orjson.dumps(payload),
        timeout=call.timeout,
        stream=stream,
    )


def _carries_gateway_key(value: str) -> bool:
    token = value.strip()
    scheme, _, rest = token.partition(" ")
    return is_gateway_key(token) or (scheme.lower() == "bearer" and is_gateway_key(rest.strip()))


class HTTPProvider(Provider):
    """A provider whose API is reached with one HTTP request per attempt."""

    @abstractmethod
    def build_request(self, call: ProviderCall) -> UpstreamRequest:
        """The upstream request for this call (URL, auth headers, body bytes)."""

    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        if call.endpoint is Endpoint.PROXY:
            return await self.forward(call, transport)
        if call.ctx.state.get(OPERATION) is not None and operation(call.ctx).name == "output":
            return await self._batch_output(call, transport)
        upstream = await transport.send(self.build_request(call))
        return await self.build_response(call, upstream)

    async def _batch_output(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        """``GET /v1/batches/{id}/output`` (Portkey's): the batch, then its output file's
        content, both from this provider with the same credentials."""
        ctx, wanted = call.ctx, operation(call.ctx)
        ctx.state[OPERATION] = wanted.batch()
        try:
            batch = await self.build_response(call, await transport.send(self.build_request(call)))
            if batch.status >= 400:
                return batch
            ctx.state[OPERATION] = output_file(batch.json())
            content = dataclasses.replace(call, endpoint=Endpoint.FILES)
            return await self.build_response(
                content, await transport.send(self.build_request(content))
            )
        finally:
            ctx.state[OPERATION] = wanted  # the log names the client's operation

    #: the base URL pass-through paths go below, for a provider with a fixed one
    proxy_base_url: str | None = None
    #: the header a pass-through request carries the key in, and the text before the key
    key_header: tuple[str, str] = ("authorization", "Bearer ")

    def proxy_base(self, call: ProviderCall) -> str | None:
        """The base URL pass-through paths go below (``None``: the provider has none):
        :attr:`proxy_base_url`, unless a provider's base depends on the call."""
        return self.proxy_base_url

    def proxy_auth(self, call: ProviderCall) -> dict[str, str]:
        """The headers that carry this call's credentials (and any the provider always
        sends) on a pass-through request: the key in :attr:`key_header`."""
        name, prefix = self.key_header
        return {name: prefix + call.require_key(self.id)}

    async def forward(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        """A pass-through request (:mod:`portkey_mw.passthrough`): the client's allowed
        headers and ``forward_headers``, then the provider's credentials, below the
        admin's custom host, else :meth:`proxy_base`."""
        base = custom_host(call) or self.proxy_base(call)
        if not base:
            raise InvalidRequest(
                f"provider {self.id!r} has no base URL for pass-through: set custom_host on "
                "the target",
                code="unsupported_endpoint",
            )
        headers = passthrough.client_headers(call.ctx.headers)
        headers.update(forwarded_headers(call))
        if self.holds_server_credentials(call.target):
            # The client's own credentials go nowhere beside the server's key.
            for name in CREDENTIAL_HEADERS:
                headers.pop(name, None)
        headers.update(self.proxy_auth(call))
        return await passthrough.forward(
            call.ctx,
            transport,
            base_url=base,
            headers=headers,
            upstream_timeout=call.timeout,
            keep_headers=passthrough_headers,
        )

    async def build_response(
        self, call: ProviderCall, upstream: UpstreamResponse
    ) -> GatewayResponse:
        """Turn the upstream response into an OpenAI-format one, streaming or complete.

        Nothing the upstream says repeats a credential the request carried: the headers a
        client sees, error bodies (masked when read) and the messages of errors built from
        the answer are masked; a stream carries the credentials for its errors to be.
        """
        secrets = tuple(upstream.request.credentials())
        headers = passthrough_headers(upstream.headers, secrets)
        content_type = upstream.headers.get("content-type", "")
        if upstream.status < 400 and "text/event-stream" in content_type:
            headers["content-type"] = "text/event-stream"
            response = GatewayResponse(
                upstream.status,
                headers=headers,
                stream=self.map_stream(call, upstream.iter_chunks()),
                close=upstream.aclose,
            )
            response.secrets = secrets
            return response
        if upstream.status < 400 and (
            call.endpoint is Endpoint.AUDIO_SPEECH or streams_answer(call.ctx)
        ):
            # Audio, or a file's bytes, relayed as they come with their own type (never
            # read whole).
            headers["content-type"] = content_type or "application/octet-stream"
            response = GatewayResponse(
                upstream.status,
                headers=headers,
                stream=upstream.iter_chunks(),
                close=upstream.aclose,
            )
            response.secrets = secrets
            return response
        try:
            body = await upstream.read()
        finally:
            await upstream.aclose()
        headers["content-type"] = "application/json"
        try:
            if upstream.status >= 400:
                return self.map_error(call, upstream.status, headers, body, content_type)
            return self.map_body(call, upstream.status, headers, body, content_type)
        except GatewayError as error:
            error.message = mask_text(error.message, secrets)
            raise

    def map_stream(self, call: ProviderCall, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """Translate the upstream SSE bytes; the default relays them untouched."""
        return chunks

    def map_body(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        """Translate a successful body; the default checks that it is JSON and keeps it."""
        if call.endpoint in TEXT_ANSWERS and content_type.startswith("text/"):
            # A transcript asked for as text, srt or vtt: kept as it is, with its type.
            headers["content-type"] = content_type
            return GatewayResponse(status, body, headers=headers)
        # A cheap look, not a parse: the body is forwarded as bytes and parsed only if a hook
        # or the log needs it.
        if body.lstrip()[:1] not in (b"{", b"["):
            raise UpstreamBadResponse(
                f"{self.id} answered {status} with a body that is not JSON "
                f"(content-type {content_type or 'missing'!r})",
                provider=self.id,
            )
        return GatewayResponse(status, body, headers=headers)

    def map_error(
        self,
        call: ProviderCall,
        status: int,
        headers: dict[str, str],
        body: bytes,
        content_type: str,
    ) -> GatewayResponse:
        """Turn a provider error into an OpenAI-style error with the provider's status.

        A body with an ``error`` object keeps its message, type, param and code; anything else
        is wrapped, with the provider's text kept (shortened) in the message.
        """
        parsed = _loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            # OpenAI's shape, or one close to it (Anthropic wraps the same fields in
            # {"type": "error", "error": {...}}): keep the provider's words, in OpenAI's keys.
            error = parsed["error"]
            return GatewayResponse.from_json(
                {
                    "error": {
                        "message": str(error.get("message") or f"{self.id} error {status}"),
                        "type": error.get("type") or "upstream_error",
                        "param": error.get("param"),
                        "code": error.get("code"),
                    },
                    "provider": self.id,
                },
                status,
                headers,
            )
        message = _error_text(parsed) if parsed is not None else body.decode("utf-8", "replace")
        message = " ".join(message.split())[:500] or "(empty body)"
        return GatewayResponse.from_json(
            {
                "error": {
                    "message": f"{self.id} error: {message}",
                    "type": "upstream_error",
                    "param": None,
                    "code": str(status),
                },
                "provider": self.id,
            },
            status,
            headers,
        )


def _loads(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _error_text(parsed: Any) -> str:
    if isinstance(parsed, dict):
        for key in ("error", "message", "detail", "msg"):
            value = parsed.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return orjson.dumps(parsed).decode()
