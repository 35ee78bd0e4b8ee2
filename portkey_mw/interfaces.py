"""The kinds of object plugins register: providers, caches, semantic indexes, log sinks.

Each is an abstract class with async methods; a plugin subclasses one and hands instances to
the core from a registration hook (see :mod:`portkey_mw.hookspecs`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from portkey_mw.context import Endpoint, GatewayResponse, RequestContext
from portkey_mw.errors import AuthenticationError, InvalidRequest

if TYPE_CHECKING:
    from portkey_mw.logevents import LogEvent
    from portkey_mw.routing import ResolvedTarget
    from portkey_mw.transport import Transport, UpstreamRequest


@dataclass(slots=True)
class ProviderCall:
    """One attempt at one provider: the request as this target should receive it.

    ``body`` already has the target's ``override_params`` applied; ``raw_body`` holds the
    client's original bytes when nothing changed them, so they can be forwarded untouched.
    """

    ctx: RequestContext
    target: ResolvedTarget
    endpoint: Endpoint
    body: dict[str, Any] | None
    raw_body: bytes | None
    #: seconds for this attempt (``request_timeout``), or ``None`` for no limit
    timeout: float | None
    #: the client chose that limit (``x-portkey-request-timeout``, an inline config): a
    #: timeout then says nothing about the upstream's health
    client_timeout: bool = False

    @property
    def stream(self) -> bool:
        """Whether this call asks for a streamed response."""
        return bool(self.body and self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        """Whether a streamed answer should end with a usage chunk."""
        return bool(((self.body or {}).get("stream_options") or {}).get("include_usage"))

    def option(self, name: str, header: str | None = None) -> Any:
        """A provider option: the target's, else the ``x-portkey-<name>`` request header
        (Portkey's spelling: underscores become dashes) or the ``header`` given."""
        value = (self.target.options or {}).get(name)
        if value:
            return value
        return self.ctx.headers.get(header or option_header(name))

    def option_from_client(self, name: str, header: str | None = None) -> bool:
        """Whether option ``name`` comes from the client: a request header, or a config the
        client sent (not one from the server file)."""
        if (self.target.options or {}).get(name):
            return not (self.target.from_server or self.target.from_vault)
        return bool(self.ctx.headers.get(header or option_header(name)))

    def require_key(self, provider: str) -> str:
        """The API key for this attempt; a 401 saying how to give one when there is none."""
        key = self.target.api_key
        if not key:
            raise AuthenticationError(
                f"no API key for provider {provider!r}: send 'Authorization: Bearer <key>' "
                "or set api_key on the target in the config",
                provider=provider,
            )
        return key

    def body_bytes(self) -> bytes:
        """The body to send: the client's bytes when nothing changed them."""
        if self.raw_body is not None:
            return self.raw_body
        return orjson.dumps(self.body) if self.body is not None else b""


#: Chat features a provider may declare, with the column title docs/providers.md gives them.
FEATURES = {"stream": "stream", "tools": "tools", "vision": "vision", "json": "JSON mode"}


def option_header(name: str) -> str:
    """The request header that carries provider option ``name`` by default (Portkey's
    spelling: ``x-portkey-`` and the name with dashes)."""
    return "x-portkey-" + name.replace("_", "-")


class Provider(ABC):
    """An LLM provider adapter.

    ``call`` receives an OpenAI-format request and returns an OpenAI-format response (a
    complete JSON body, or an SSE stream of OpenAI chunks). Failures are raised as
    :class:`~portkey_mw.errors.GatewayError` or returned as error responses carrying the
    provider's status; the router decides what to do next.

    Two declarations let the core keep the server's credentials where the operator bound
    them (see ``docs/security.md``): ``secret_options`` name the options that are
    credentials, ``destination_options`` the options that decide where requests go. When a
    target's credential is held by the server, a client may change neither the host
    (``x-portkey-custom-host``) nor any destination option (by its header); the core
    refuses the request before the provider is called.
    """

    #: the id configs and ``x-portkey-provider`` use (Portkey's ids where one exists)
    id: str
    #: the operations this provider serves
    endpoints: frozenset[Endpoint] = frozenset(
        {Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.MODELS}
    )
    #: what it can do within chat, as listed in docs/providers.md (see ``FEATURES``)
    features: frozenset[str] = frozenset()
    #: options that decide where requests go: a region, resource, deployment, endpoint
    destination_options: frozenset[str] = frozenset()
    #: options that hold credentials (keys, tokens, service accounts)
    secret_options: frozenset[str] = frozenset()
    #: the distribution that registered it (filled in by the core)
    plugin_name: str = ""

    def option_header(self, name: str) -> str:
        """The request header a client sets option ``name`` with."""
        return option_header(name)

    def holds_server_credentials(self, target: ResolvedTarget) -> bool:
        """Whether a call to ``target`` uses a credential the server holds: its API key, or
        a secret option, set in a config from the server file. Providers that can fall back
        on ambient credentials (a cloud's default credentials) say so here too."""
        if target.key_from_server:
            return True
        if not target.from_server:
            return False
        options = target.options or {}
        return any(options.get(name) for name in self.secret_options)

    @abstractmethod
    async def call(self, call: ProviderCall, transport: Transport) -> GatewayResponse:
        """Perform one attempt and return the OpenAI-format response."""

    def realtime_request(self, call: ProviderCall) -> UpstreamRequest:
        """The WebSocket handshake for ``/v1/realtime`` (``call.body`` holds the ``model``):
        an http(s) URL and headers, credentials included. Providers that declare
        :attr:`Endpoint.REALTIME <portkey_mw.context.Endpoint.REALTIME>` override it; the
        core relays the frames."""
        raise InvalidRequest(
            f"provider {self.id!r} does not serve realtime", code="unsupported_endpoint"
        )


class CacheBackend(ABC):
    """A store for cached responses, addressed by opaque keys built by the core."""

    name: str
    plugin_name: str = ""

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The stored value, or ``None`` when absent or expired."""

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        """Store ``value`` for ``ttl`` seconds (``None``: the backend's default)."""

    @abstractmethod
    async def clear(self, prefix: str = "") -> int:
        """Remove entries whose key starts with ``prefix``; return how many."""

    async def aclose(self) -> None:  # noqa: B027 - optional for backends holding nothing
        """Release connections."""


@dataclass(frozen=True, slots=True)
class SemanticMatch:
    """A cached answer a :class:`SemanticIndex` found: the answer, its similarity, and the
    question it was stored under (``""`` when the index keeps none: such an entry never
    passes verification, so it is never served while verifiers are configured)."""

    value: bytes
    score: float
    question: str = ""


class SemanticIndex(ABC):
    """A vector store for the semantic cache.

    The core embeds the question and hands over unit vectors. ``scope`` is an opaque
    ``<namespace>:<digest>`` string covering everything that must match exactly (endpoint,
    model, system prompt, tools, sampling, earlier turns): a search never leaves its scope.
    Each entry keeps the question's text beside the answer, so that the core's verifiers
    (:class:`SemanticVerifier`) can compare the two questions before serving the answer.
    """

    name: str
    plugin_name: str = ""

    @abstractmethod
    async def search(
        self, vector: Sequence[float], scope: str, threshold: float
    ) -> SemanticMatch | None:
        """The most similar live entry in ``scope`` scoring at least ``threshold``."""

    async def candidates(
        self, vector: Sequence[float], scope: str, threshold: float, limit: int
    ) -> list[SemanticMatch]:
        """Up to ``limit`` live entries of ``scope`` scoring at least ``threshold``, most
        similar first; the core verifies them in that order and serves the first that
        passes. The default asks :meth:`search` for one: override it to offer more."""
        best = await self.search(vector, scope, threshold)
        return [] if best is None else [best]

    @abstractmethod
    async def add(
        self,
        vector: Sequence[float],
        scope: str,
        value: bytes,
        ttl: float | None,
        question: str = "",
    ) -> None:
        """Store ``value`` under ``vector`` in ``scope`` for ``ttl`` seconds, with the
        ``question`` it answers (returned in :attr:`SemanticMatch.question`)."""

    @abstractmethod
    async def clear(self, namespace: str | None = None) -> int:
        """Remove the entries of one namespace (``None``: all); return how many."""

    async def open(self) -> None:  # noqa: B027 - optional for indexes with nothing to open
        """Connect or load now; the core calls it at start-up when a config needs the index,
        and before storing. Must be idempotent; without it, the first use opens."""

    async def aclose(self) -> None:  # noqa: B027 - optional for indexes holding nothing
        """Release connections and files."""


class SemanticVerifier(ABC):
    """A check between a new question and a cached one the index found similar.

    A semantic hit needs the similarity threshold *and* every configured verifier's
    consent: embeddings score "flights from Denver to Boston" and "... Boston to Denver"
    as near-identical, a verifier sees the swap. :meth:`verify` runs on the event loop for
    every candidate, inside the lookup's ``semantic_timeout``: keep it well under a
    millisecond, or make it truly asynchronous (a cross-encoder on a thread, an LLM judge
    over HTTP). Raising, or running past the timeout, makes the lookup a miss.
    """

    #: the name configs use (``cache.verifiers``)
    name: str
    plugin_name: str = ""

    @abstractmethod
    async def verify(self, question: str, cached: str) -> bool:
        """Whether the answer cached for ``cached`` also answers ``question``."""


class LogSink(ABC):
    """Receives request log events in batches, from a background task, never per chunk."""

    name: str
    plugin_name: str = ""

    @abstractmethod
    async def write(self, events: Sequence[LogEvent]) -> None:
        """Persist or forward ``events``. Raising makes the core keep the batch and write it
        again, with backoff, until a write succeeds: write a batch whole or not at all."""

    async def aclose(self) -> None:  # noqa: B027 - optional for sinks holding nothing
        """Flush and release resources."""
