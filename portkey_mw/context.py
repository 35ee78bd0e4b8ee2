"""Per-request state handed to hooks, and the response the gateway sends."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import orjson

from portkey_mw.bounds import json_too_deep

if TYPE_CHECKING:
    from portkey_mw.config.schema import Config
    from portkey_mw.errors import GatewayError
    from portkey_mw.store.records import ApiKey
    from portkey_mw.streaming import ChunkFeed


class Endpoint(StrEnum):
    """The OpenAI-compatible operations the gateway serves."""

    CHAT_COMPLETIONS = "chat_completions"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    MODELS = "models"
    IMAGES = "images"
    MODERATIONS = "moderations"
    #: count a chat request's input tokens (``/v1/messages/count_tokens``)
    COUNT_TOKENS = "count_tokens"
    #: OpenAI's Responses API (``/v1/responses``), native or translated to chat
    RESPONSES = "responses"
    #: text to speech (``/v1/audio/speech``)
    AUDIO_SPEECH = "audio_speech"
    #: speech to text (``/v1/audio/transcriptions``, multipart)
    AUDIO_TRANSCRIPTIONS = "audio_transcriptions"
    #: speech to English text (``/v1/audio/translations``, multipart)
    AUDIO_TRANSLATIONS = "audio_translations"
    #: image edits (``/v1/images/edits``, multipart)
    IMAGE_EDITS = "image_edits"
    #: files (``/v1/files``: upload, list, retrieve, content, delete)
    FILES = "files"
    #: batches (``/v1/batches``: create, list, retrieve, cancel)
    BATCHES = "batches"
    #: rerank (``/v1/rerank``, Cohere's shape)
    RERANK = "rerank"
    #: the realtime WebSocket (``/v1/realtime``)
    REALTIME = "realtime"
    #: anything else under ``/v1/``, forwarded without translation (``/v1/proxy/…``)
    PROXY = "proxy"


@dataclass(slots=True)
class Attempt:
    """One try at one target, as the router saw it (reported in logs and errors)."""

    target: str
    provider: str
    status: int | None = None
    error_type: str | None = None
    error_code: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    #: for the stream an attempt committed to: how long it ran after its first event (the
    #: relay), so the upstream's time is ``latency_ms + stream_ms``
    stream_ms: float = 0.0

    def record_error(self, error: GatewayError) -> None:
        """Note the gateway error this attempt ended with."""
        self.status, self.error_type = error.status, error.type
        self.error_code, self.error = error.code, error.message

    def summary(self) -> dict[str, Any]:
        """The attempt as listed in error bodies and log records (no message, no keys)."""
        return {
            "target": self.target,
            "provider": self.provider,
            "status": self.status,
            "error_type": self.error_type,
            "error_code": self.error_code,
            "latency_ms": round(self.latency_ms, 3),
        }


class GatewayResponse:
    """A response on its way to the client: a complete body or a stream of bytes.

    Hooks may return one from ``on_request`` to answer without calling a provider, and may
    edit the one in ``ctx.response`` from ``on_response``.

    :param status: HTTP status.
    :param body: the complete body (JSON bytes), or ``None`` for a stream.
    :param headers: response headers (lower-case names) for the client.
    :param stream: for streamed responses, the body bytes as they come.
    """

    __slots__ = (
        "_close",
        "_json",
        "body",
        "chunks",
        "headers",
        "secrets",
        "status",
        "stream",
        "stream_complete",
        "stream_tail",
    )

    def __init__(
        self,
        status: int = 200,
        body: bytes | None = None,
        *,
        headers: dict[str, str] | None = None,
        stream: AsyncIterator[bytes] | None = None,
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = headers if headers is not None else {}
        self.stream = stream
        self._close = close
        self._json: Any = _UNPARSED
        #: set by the core once a stream ended with its terminal event
        self.stream_complete = False
        #: the last bytes of a stream, kept for the log (usage arrives in the final event)
        self.stream_tail = b""
        #: the stream's parsed chunks, published by whatever already parses them (the
        #: router's stream check); ``None`` while nothing does (see ``streaming.listen``)
        self.chunks: ChunkFeed | None = None
        #: the credentials the request behind a stream carried: an error built from the
        #: stream's words must not repeat them (set by the provider adapter)
        self.secrets: tuple[str, ...] = ()

    @classmethod
    def from_json(
        cls, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> GatewayResponse:
        """A complete JSON response."""
        response = cls(status, orjson.dumps(data), headers=headers)
        response._json = data
        return response

    @property
    def is_stream(self) -> bool:
        """True when the body is streamed."""
        return self.stream is not None

    def json(self) -> Any:
        """The body, parsed once; ``None`` for streams or bodies that are not JSON, and for
        JSON nested deeper than the gateway accepts anywhere (it could not be written out
        again: the gateway treats it as no JSON at all)."""
        if self._json is _UNPARSED:
            try:
                self._json = orjson.loads(self.body) if self.body is not None else None
            except orjson.JSONDecodeError:
                self._json = None
            if self.body is not None and json_too_deep(self.body, self._json):
                self._json = None
        return self._json

    def set_json(self, data: Any) -> None:
        """Replace the body with ``data``, serialised."""
        self._json = data
        self.body = orjson.dumps(data)

    async def aclose(self) -> None:
        """Release the upstream connection behind a stream (idempotent)."""
        close, self._close = self._close, None
        if close is not None:
            await close()


_UNPARSED: Any = object()


@dataclass(slots=True, eq=False)
class RequestContext:
    """Everything the pipeline knows about one request. Hooks read and edit it.

    ``state`` is free space for plugins for this request; ``gateway_state`` is the gateway's
    :attr:`~portkey_mw.Gateway.state`, shared by all requests (settings a plugin read at
    start-up, clients it opened). Keys in both should start with the plugin's name.
    """

    trace_id: str
    endpoint: Endpoint
    method: str
    path: str
    #: request headers, lower-case names; later values of repeated names win
    headers: dict[str, str]
    #: the parsed JSON body (``None`` for GET)
    body: dict[str, Any] | None
    #: the body exactly as received; forwarded as-is while ``body_modified`` is false
    raw_body: bytes
    config: Config | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    body_modified: bool = False
    response: GatewayResponse | None = None
    #: headers every response to this request carries (hooks may add their own)
    response_headers: dict[str, str] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    provider: str | None = None
    target_index: str | None = None
    cache_status: str | None = None
    #: the slug of the virtual key of the target that answered (or was tried last)
    virtual_key: str | None = None
    #: the saved config (slug) or server-file config (name) the request was routed by
    config_id: str | None = None
    #: the gateway API key the request was identified by (``None``: none, or auth off)
    api_key: ApiKey | None = None
    #: whose budgets and rate limits the request counts against (spend control sets it:
    #: :class:`portkey_mw.limits.subject.Subject` objects); charged after the response
    limited: list[Any] = field(default_factory=list)
    #: the body of the latest upstream call when it is not ``raw_body`` (a target's
    #: ``override_params``, a rewrite): what a stream cut before its usage is estimated on
    upstream_body: dict[str, Any] | None = None
    state: dict[str, Any] = field(default_factory=dict)
    gateway_state: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    started_at: float = field(default_factory=time.time)
    #: 32 hex characters, new for every request (``x-portkey-request-id``; the log record's
    #: id)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def stream(self) -> bool:
        """Whether the client asked for a streamed response."""
        return bool(self.body and self.body.get("stream"))

    @property
    def model(self) -> str | None:
        """The model named in the body, if any."""
        model = self.body.get("model") if self.body else None
        return model if isinstance(model, str) else None

    def set_body(self, body: dict[str, Any]) -> None:
        """Replace the request body; it is re-serialised before it goes upstream."""
        self.body = body
        self.body_modified = True

    def set_param(self, name: str, value: Any) -> None:
        """Set one top-level body parameter (e.g. ``model``, ``temperature``)."""
        if self.body is None:
            self.body = {}
        self.body[name] = value
        self.body_modified = True

    def body_bytes(self) -> bytes:
        """The body to send upstream: the original bytes unless something changed it."""
        if self.body_modified or not self.raw_body:
            return orjson.dumps(self.body) if self.body is not None else b""
        return self.raw_body
