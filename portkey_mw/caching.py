"""Exact response caching: keys over what changes the answer, replay, and stream recording.

A config turns caching on (``cache: {mode: simple, max_age: <seconds>}``); the server file
names the backend (``cache.backend``, the in-process ``memory`` one by default). The key
covers the endpoint, the request body except what cannot change the answer (``user``,
``metadata``, streaming options), and the route with its API keys (answers are not shared
across models a config overrides, or across keys); a namespace
(``x-portkey-cache-namespace``) partitions it further. Only successful responses are
stored; a streamed one only once it completed. A cached answer to a streamed request is
replayed as a proper SSE stream, usage included.

``mode: semantic`` adds a search by meaning after the exact lookup misses: the client's
last question is embedded and looked up in a :class:`~portkey_mw.SemanticIndex`, within a
scope that everything else in the request must match exactly (endpoint, model, system
prompt, tools, sampling, earlier turns), so a hit never crosses them.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from portkey_mw.context import Endpoint, GatewayResponse, RequestContext
from portkey_mw.interfaces import CacheBackend, SemanticIndex, SemanticMatch, SemanticVerifier
from portkey_mw.routing.plan import PlanNode, route_digest
from portkey_mw.streaming import DONE_EVENT, json_event

if TYPE_CHECKING:
    from portkey_mw.embedding import EmbeddingModel

log = structlog.get_logger("portkey_mw.cache")

NAMESPACE_HEADER = "x-portkey-cache-namespace"
REFRESH_HEADER = "x-portkey-cache-force-refresh"
CACHEABLE = frozenset(
    {Endpoint.CHAT_COMPLETIONS, Endpoint.COMPLETIONS, Endpoint.EMBEDDINGS, Endpoint.RERANK}
)
#: body parameters that do not change the answer, so they are not part of the key
IGNORED = frozenset({"user", "metadata", "stream", "stream_options", "store", "service_tier"})
HIT_STATUSES = frozenset({"HIT", "SEMANTIC_HIT"})
#: seconds a store may wait for a semantic index to open (a first import can take one)
OPEN_TIMEOUT = 10.0
#: the longest question compared by meaning: the embedding model reads its first 256 word
#: pieces only (about this many characters), so two longer questions differing past them
#: would look the same; and the verifiers' reading, on the event loop, stays short
MAX_SEMANTIC_QUESTION = 2000


#: ``x-portkey-*`` headers that cannot change the answer (or are already in the key some
#: other way); every other one is part of the key -- provider options such as an OpenAI
#: organisation, a custom host, strict mode -- so that no header that reaches the upstream
#: is left out. Unknown ones count: a new header shares nothing until it is listed here.
ANSWER_NEUTRAL = frozenset(
    {
        "x-portkey-trace-id",
        "x-portkey-span-id",
        "x-portkey-parent-span-id",
        "x-portkey-span-name",
        "x-portkey-request-timeout",
        NAMESPACE_HEADER,  # the key's prefix
        REFRESH_HEADER,
        "x-portkey-config",  # the plan's route digest covers what it decides
        "x-portkey-provider",
        "x-portkey-metadata",  # counted when a conditional strategy routes on it
        "x-portkey-forward-headers",  # the headers it names count instead
    }
)


def route_partition(plan: PlanNode, headers: Mapping[str, str]) -> str:
    """A digest of where a request goes, with whose key, and with what else reaches the
    upstream: every leaf's provider, host, ``override_params``, provider options and API
    key (as a digest), plus every header that is forwarded or mapped upstream (forwarded
    headers, ``x-portkey-*`` options, a client-chosen host). Answers are never shared
    across routes, keys (another tenant) or such headers (a tenant split by a forwarded
    header); cache, retry and timeout settings do not count.
    """
    route = route_digest(plan)  # computed once per config by the resolver
    varying = [(name, headers[name]) for name in plan.varies_on if name in headers]
    listed = headers.get("x-portkey-forward-headers")
    if listed:
        names = {name.strip().lower() for name in listed.split(",")}
        varying.extend((name, headers[name]) for name in sorted(names) if name in headers)
    varying.extend(
        (name, value)
        for name, value in headers.items()
        if name.startswith("x-portkey-") and name not in ANSWER_NEUTRAL
    )
    if not varying:
        return route
    digest = hashlib.sha256(orjson.dumps(sorted(set(varying)))).hexdigest()
    return f"{route}+{digest}"


def _scoped_digest(ctx: RequestContext, body: dict[str, Any], partition: str) -> str:
    canonical = orjson.dumps([ctx.endpoint.value, partition, body], option=orjson.OPT_SORT_KEYS)
    namespace = ctx.headers.get(NAMESPACE_HEADER, "default")
    return f"{namespace}:{hashlib.sha256(canonical).hexdigest()}"


def cache_key(ctx: RequestContext, partition: str = "") -> str:
    """``<namespace>:<sha256>`` over the endpoint, the route partition (see
    :func:`route_partition`) and the answer-shaping request body."""
    body = {k: v for k, v in (ctx.body or {}).items() if k not in IGNORED}
    return _scoped_digest(ctx, body, partition)


def semantic_question(ctx: RequestContext, partition: str = "") -> tuple[str, str] | None:
    """The text to embed and the scope to search in, or ``None`` when the request has no
    plain-text question to compare by meaning (images, a tool result, embeddings...).

    The question is the last user message of a chat (the prompt of a completion). The
    scope covers the rest of the request exactly, earlier turns included: two
    conversations that differ before the question never share answers.
    """
    body = {k: v for k, v in (ctx.body or {}).items() if k not in IGNORED}
    if ctx.endpoint is Endpoint.CHAT_COMPLETIONS:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return None
        question = _plain_text(last.get("content"))
        body["messages"] = [*messages[:-1], {**last, "content": None}]
    elif ctx.endpoint is Endpoint.COMPLETIONS:
        prompt = body.pop("prompt", None)
        question = prompt if isinstance(prompt, str) else None
    else:
        return None
    if not question or not question.strip() or len(question) > MAX_SEMANTIC_QUESTION:
        return None
    return question, _scoped_digest(ctx, body, partition)


def _plain_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in content
    ):
        return "\n".join(str(part.get("text", "")) for part in content)
    return None


def force_refresh(ctx: RequestContext) -> bool:
    """Whether the client asked to bypass the cache and refresh the entry."""
    return ctx.headers.get(REFRESH_HEADER, "").lower() == "true"


async def replay(completion: dict[str, Any], *, include_usage: bool) -> AsyncIterator[bytes]:
    """A stored chat or text completion as the SSE stream a streamed request expects."""
    chat = completion.get("object") == "chat.completion"
    base = {
        "id": completion.get("id"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": completion.get("created") or int(time.time()),
        "model": completion.get("model"),
    }
    out = b""
    for choice in completion.get("choices") or []:
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
            if message.get("tool_calls"):
                delta["tool_calls"] = [
                    {**call, "index": i} for i, call in enumerate(message["tool_calls"])
                ]
            parts = [{"index": index, "delta": delta, "finish_reason": None}]
            parts.append(
                {"index": index, "delta": {}, "finish_reason": choice.get("finish_reason")}
            )
        else:
            parts = [
                {"index": index, "text": choice.get("text", ""), "finish_reason": None},
                {"index": index, "text": "", "finish_reason": choice.get("finish_reason")},
            ]
        for part in parts:
            out += json_event({**base, "choices": [part]})
    if include_usage and completion.get("usage"):
        out += json_event({**base, "choices": [], "usage": completion["usage"]})
    yield out + DONE_EVENT


class StreamRecorder:
    """Rebuilds the complete chat completion from the OpenAI chunks of a stream.

    Listens to the stream's parsed chunks (:func:`~portkey_mw.streaming.listen`);
    :meth:`completion` gives what to cache.
    """

    def __init__(self) -> None:
        self._base: dict[str, Any] = {}
        self._content: dict[int, list[str]] = {}
        self._calls: dict[int, dict[int, dict[str, Any]]] = {}
        self._finish: dict[int, str | None] = {}
        self._usage: dict[str, Any] | None = None

    def take(self, chunk: dict[str, Any]) -> None:
        """Take the next parsed chunk of the stream.

        The chunk is JSON the stream check let through, of any shape: what is not an OpenAI
        chunk's is skipped (the stream itself is judged elsewhere; this only records it).
        """
        if not self._base:
            self._base = {k: chunk.get(k) for k in ("id", "created", "model")}
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage:
            self._usage = usage
        for choice in _objects(chunk.get("choices")):
            index = _index(choice.get("index"))
            delta = choice.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            content = delta.get("content")
            if isinstance(content, str) and content:
                self._content.setdefault(index, []).append(content)
            for call in _objects(delta.get("tool_calls")):
                self._take_call(self._calls.setdefault(index, {}), call)
            if choice.get("finish_reason"):
                self._finish[index] = choice["finish_reason"]
            else:
                self._finish.setdefault(index, None)

    @staticmethod
    def _take_call(calls: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
        slot = calls.setdefault(
            _index(call.get("index")),
            {"id": None, "type": "function", "function": {"name": None, "arguments": ""}},
        )
        slot["id"] = call.get("id") or slot["id"]
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        slot["function"]["name"] = function.get("name") or slot["function"]["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str):
            slot["function"]["arguments"] += arguments

    def completion(self) -> dict[str, Any]:
        """The chat completion the stream added up to."""
        choices = []
        for index in sorted(self._finish):
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(self._content.get(index, [])) or None,
            }
            calls = self._calls.get(index)
            if calls:
                message["tool_calls"] = [calls[i] for i in sorted(calls)]
            choices.append(
                {"index": index, "message": message, "finish_reason": self._finish[index]}
            )
        completion = {**self._base, "object": "chat.completion", "choices": choices}
        if self._usage:
            completion["usage"] = self._usage
        return completion


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects in ``value`` when it is an array (nothing otherwise)."""
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _index(value: Any) -> int:
    """A choice's or tool call's index; 0 when it has none that is an integer."""
    return value if type(value) is int else 0


class VerifierFailed(Exception):
    """A semantic verifier raised: the lookup is a miss (never a hit, never an error)."""

    def __init__(self, verifier: str, cause: BaseException) -> None:
        super().__init__(f"verifier {verifier!r} failed: {str(cause) or type(cause).__name__}")
        self.verifier = verifier


@dataclass(slots=True)
class SemanticUse:
    """The semantic half of a cache lookup: what to embed, where to search, how close,
    and what a candidate must pass to be served."""

    index: SemanticIndex
    embedder: EmbeddingModel
    question: str
    scope: str
    threshold: float
    timeout: float
    verifiers: Sequence[SemanticVerifier] = ()
    #: candidates at or above the threshold to verify, most similar first
    candidates: int = 1
    vector: list[float] | None = None

    async def search(self) -> bytes | None:
        """The most similar answer in scope at or above the threshold that every verifier
        accepts (embedding on the way).

        While the model is still loading (it starts at gateway start-up) the lookup waits
        for it, within the caller's ``timeout``: past it, a miss, and the load goes on.

        :raises VerifierFailed: a verifier raised (the caller's miss).
        """
        if not self.embedder.ready:
            await self.embedder.wait_ready()
        self.vector = await self.embedder.aembed(self.question)
        if not self.verifiers:
            match = await self.index.search(self.vector, self.scope, self.threshold)
            return match.value if match is not None else None
        found = await self.index.candidates(
            self.vector, self.scope, self.threshold, self.candidates
        )
        for match in found:
            if await self.verified(match):
                return match.value
        return None

    async def verified(self, match: SemanticMatch) -> bool:
        """Whether every verifier accepts ``match`` for this question (an entry stored
        without its question never is)."""
        if not match.question:
            return False
        for verifier in self.verifiers:
            try:
                accepted = await verifier.verify(self.question, match.question)
            except Exception as exc:
                raise VerifierFailed(verifier.name, exc) from exc
            if not accepted:
                log.debug("semantic candidate vetoed", verifier=verifier.name, score=match.score)
                return False
        return True

    async def add(self, body: bytes, ttl: float | None) -> None:
        """File ``body`` under the question's vector (embedded now if the lookup was skipped)."""
        if self.vector is None:
            self.vector = await self.embedder.aembed(self.question)
        await self.index.add(self.vector, self.scope, body, ttl, self.question)


@dataclass(slots=True)
class CacheStats:
    """Running totals since start: lookups by outcome and what the hits saved.

    Shown by ``GET /v1/admin/cache``; each request's own figures are in its log event.
    """

    hits: int = 0
    semantic_hits: int = 0
    misses: int = 0
    refreshes: int = 0
    cost_saved_usd: float = 0.0
    #: hits whose model has no listed price, so their saving is not in the total
    unpriced_hits: int = 0

    def record(self, status: str | None, saved: float | None) -> None:
        """Count one request's cache outcome (``saved``: dollars, for hits)."""
        if status == "HIT":
            self.hits += 1
        elif status == "SEMANTIC_HIT":
            self.semantic_hits += 1
        elif status == "MISS":
            self.misses += 1
        elif status == "REFRESH":
            self.refreshes += 1
        if status in HIT_STATUSES:
            if saved is None:
                self.unpriced_hits += 1
            else:
                self.cost_saved_usd += saved

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        lookups = self.hits + self.semantic_hits + self.misses
        return {
            "hits": self.hits,
            "semantic_hits": self.semantic_hits,
            "misses": self.misses,
            "refreshes": self.refreshes,
            "hit_rate": round((self.hits + self.semantic_hits) / lookups, 4) if lookups else None,
            "cost_saved_usd": round(self.cost_saved_usd, 8),
            "unpriced_hits": self.unpriced_hits,
        }


class CacheUse:
    """Caching for one request: where to look, under which key, for how long to keep.

    A cache fault never fails a request: a backend, index or embedding error, or a semantic
    lookup slower than its timeout, is a logged miss.
    """

    __slots__ = ("backend", "key", "refresh", "semantic", "ttl")

    def __init__(
        self,
        backend: CacheBackend,
        ctx: RequestContext,
        ttl: float | None,
        semantic: SemanticUse | None = None,
        partition: str = "",
    ) -> None:
        self.backend = backend
        self.key = cache_key(ctx, partition)
        self.ttl = ttl
        self.refresh = force_refresh(ctx)
        self.semantic = semantic

    async def lookup(self, ctx: RequestContext) -> GatewayResponse | None:
        """The cached answer, shaped for this request (replayed as a stream if streamed)."""
        if self.refresh:
            ctx.cache_status = "REFRESH"
            return None
        ctx.cache_status = "MISS"
        stored: bytes | None = None
        try:
            stored = await self.backend.get(self.key)
        except Exception as exc:
            log.warning(
                "cache lookup failed; treated as a miss", backend=self.backend.name, error=str(exc)
            )
        if stored is not None:
            ctx.cache_status = "HIT"
        elif self.semantic is not None:
            stored = await self._semantic_lookup(self.semantic)
            if stored is not None:
                ctx.cache_status = "SEMANTIC_HIT"
        if stored is None:
            return None
        if ctx.stream and ctx.endpoint is not Endpoint.EMBEDDINGS:
            include_usage = bool(
                ((ctx.body or {}).get("stream_options") or {}).get("include_usage")
            )
            stream = replay(orjson.loads(stored), include_usage=include_usage)
            return GatewayResponse(
                200, headers={"content-type": "text/event-stream"}, stream=stream
            )
        return GatewayResponse(200, stored, headers={"content-type": "application/json"})

    async def _semantic_lookup(self, semantic: SemanticUse) -> bytes | None:
        try:
            return await asyncio.wait_for(semantic.search(), semantic.timeout)
        except TimeoutError:
            log.warning(
                "semantic cache lookup timed out; treated as a miss",
                index=semantic.index.name,
                timeout=semantic.timeout,
                model_loading=not semantic.embedder.ready,
            )
            return None
        except VerifierFailed as exc:
            log.warning(
                "semantic verifier failed; treated as a miss",
                verifier=exc.verifier,
                error=str(exc),
            )
            return None
        except Exception as exc:
            log.warning(
                "semantic cache lookup failed; treated as a miss",
                index=semantic.index.name,
                error=str(exc) or type(exc).__name__,
            )
            return None

    async def store(self, body: bytes) -> None:
        """Keep a successful answer (the complete JSON body) for ``ttl`` seconds."""
        # The semantic entry goes first: once the exact one is visible, both are.
        if self.semantic is not None:
            try:
                # Storing runs after the client has its answer, so it may wait for the
                # model to load and the index to open; the timeout bounds the rest.
                await self.semantic.embedder.wait_ready()
                await asyncio.wait_for(self.semantic.index.open(), OPEN_TIMEOUT)
                await asyncio.wait_for(self.semantic.add(body, self.ttl), self.semantic.timeout)
            except Exception as exc:
                log.warning(
                    "semantic cache store failed",
                    index=self.semantic.index.name,
                    error=str(exc) or type(exc).__name__,
                )
        try:
            await self.backend.set(self.key, body, self.ttl)
        except Exception as exc:
            log.warning("cache store failed", backend=self.backend.name, error=str(exc))
