"""Shared pieces of provider adapters that translate a native API to and from OpenAI's.

Every native adapter (anthropic, google, bedrock, cohere, vertex-ai) streams OpenAI chunks
the same way, parses tool-call arguments the same way and answers embeddings in the same
shape; those parts live here, once.
"""

from __future__ import annotations

import functools
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Collection
from typing import Any, ParamSpec, TypeVar
from urllib.parse import quote

import orjson

from portkey_mw.context import GatewayResponse
from portkey_mw.errors import SHAPE_ERRORS, GatewayError, InvalidRequest, UpstreamBadResponse
from portkey_mw.media import DATA_URL, image_url_of
from portkey_mw.streaming import DONE_EVENT, SSEDecoder, event_data, json_event


class ChunkTranslator(ABC):
    """Base of the stream translators: native events in, OpenAI chunk events out.

    A subclass turns one native event into OpenAI SSE bytes (:meth:`event`) and keeps
    ``usage`` (native shape) and ``finished``; this class frames the chunks, relays the good
    events before a failing one, and ends a finished stream with the usage chunk (when the
    client asked for it) and ``[DONE]``.

    :param provider: the provider id, for error messages.
    :param model: the model named in the request (until the stream names its own).
    :param include_usage: ``stream_options.include_usage`` of the request.
    :param usage: turns the native usage into OpenAI's.
    """

    def __init__(
        self,
        *,
        provider: str,
        model: str | None,
        include_usage: bool,
        usage: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        self.provider = provider
        self.id = f"chatcmpl-{provider}"
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.usage: dict[str, Any] = {}
        self.finished = False
        self._usage = usage

    @abstractmethod
    def event(self, data: bytes) -> bytes:
        """OpenAI SSE bytes for one native event's data (may be empty)."""

    async def translate(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """OpenAI SSE bytes for the native SSE bytes in ``chunks``."""
        decoder = SSEDecoder()
        async for chunk in chunks:
            out, failure = self.events(decoder.feed(chunk))
            if out:
                yield out  # what came before a failing event still reaches the client
            if failure is not None:
                raise failure
        out, failure = self.events(decoder.flush())
        if out and failure is not None:
            yield out
            out = b""
        if failure is not None:
            raise failure
        out += self.ending()
        if out:
            yield out

    def events(self, events: list[bytes]) -> tuple[bytes, GatewayError | None]:
        """Translate SSE events in order; stop at the first that fails."""
        out = b""
        for raw in events:
            data = event_data(raw)
            if not data or data == b"[DONE]":
                continue
            try:
                out += self.event(data)
            except GatewayError as failure:
                return out, failure
            except SHAPE_ERRORS as exc:
                # JSON, but not what the provider's stream format promises.
                return out, self.malformed(f"{exc} in {data[:80]!r}")
        return out, None

    def ending(self) -> bytes:
        """The usage chunk and ``[DONE]`` of a finished stream (nothing otherwise)."""
        if not self.finished:
            return b""
        out = b""
        if self.include_usage and self.usage:
            try:
                usage = self._usage(self.usage)
            except SHAPE_ERRORS as exc:
                raise self.malformed(f"its usage {exc}") from None
            out += json_event(self.chunk([], usage=usage))
        return out + DONE_EVENT

    def malformed(self, detail: str) -> UpstreamBadResponse:
        """The failure for a stream event of a shape this translation cannot read."""
        return UpstreamBadResponse(
            f"{self.provider} sent a stream event this gateway cannot read: {detail}",
            code="malformed_stream_chunk",
            provider=self.provider,
        )

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """One ``chat.completion.chunk`` object."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        """One chunk event for choice 0."""
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return json_event(self.chunk([choice]))

    def parse(self, data: bytes) -> Any:
        """One native event's JSON, or a ``malformed_stream_chunk`` failure."""
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamBadResponse(
                f"{self.provider} sent a stream event that is not JSON: {data[:80]!r}",
                code="malformed_stream_chunk",
                provider=self.provider,
            ) from None


_P = ParamSpec("_P")
_R = TypeVar("_R")


def reads_answer(provider: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a function that reads a provider's (parsed) answer: a shape it cannot read
    is a 502 naming the provider, not a crash.

    An answer can be any JSON; checking the type of every field an adapter reads would
    bury the translation, and a field of the wrong type means the provider broke its API.
    """

    def decorate(read: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(read)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return read(*args, **kwargs)
            except SHAPE_ERRORS as exc:
                raise UpstreamBadResponse(
                    f"{provider} answered with a body this gateway cannot read: "
                    f"{type(exc).__name__}: {exc}",
                    provider=provider,
                ) from None

        return guarded

    return decorate


def json_object(provider: str, status: int, body: bytes) -> dict[str, Any]:
    """A native response body that must be a JSON object, or a 502 saying it was not."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamBadResponse(
            f"{provider} answered {status} with a body that is not a JSON object",
            provider=provider,
        )
    return parsed


def tool_arguments(function: dict[str, Any], index: int) -> Any:
    """The parsed arguments of an OpenAI tool call in ``messages[index]`` (400 if not JSON)."""
    arguments = function.get("arguments") or "{}"
    if not isinstance(arguments, str):
        return arguments
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise InvalidRequest(
            f"messages[{index}].tool_calls: the arguments of {function.get('name')!r} are not "
            "valid JSON",
            param=f"messages.{index}.tool_calls",
            code="invalid_tool_arguments",
        ) from None


def embedding_texts(body: dict[str, Any], provider: str) -> list[str]:
    """The texts of an OpenAI embeddings request (providers that embed text only)."""
    texts = body.get("input")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest(
            f"{provider} embeds text: 'input' must be a string or a list of strings",
            param="input",
        )
    return texts


def embeddings_response(vectors: list[Any], model: str | None, tokens: int = 0) -> GatewayResponse:
    """An OpenAI embeddings response for ``vectors``, in input order."""
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return GatewayResponse.from_json(
        {"object": "list", "data": data, "model": model, "usage": usage}
    )


def append_turn(
    turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str = "content"
) -> None:
    """Add ``items`` to the conversation, merging into the last turn when it has ``role``.

    Native APIs that alternate roles (Anthropic, Gemini, Bedrock) want consecutive turns of
    one role -- several tool results, or tool results and a user message -- as one turn.
    """
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key].extend(items)
    else:
        turns.append({"role": role, key: items})


def stop_list(stop: Any) -> list[str]:
    """OpenAI's ``stop`` (a string or a list) as a list."""
    return [stop] if isinstance(stop, str) else list(stop)


def dropped_params(
    body: dict[str, Any], passed: Collection[str], unsupported: Collection[str] = ()
) -> list[str]:
    """The request parameters an adapter does not carry over (for ``report_dropped``),
    spelled so that they can be listed in a response header."""
    return [_header_safe(name) for name in body if name in unsupported or name not in passed]


def _header_safe(name: str) -> str:
    # The names are listed, comma-separated, in x-portkey-dropped-params: a client's odd key
    # (not ASCII, a comma, a line break) is percent-encoded rather than breaking the response
    # or forging a header.
    if name.isascii() and name.isprintable() and "," not in name:
        return name
    return quote(name, safe="")


def openai_usage(
    input_tokens: Any, output_tokens: Any, cache_read: Any = 0, cache_write: Any = 0
) -> dict[str, Any]:
    """OpenAI's usage object from a provider's counts.

    OpenAI counts cached prompt tokens inside ``prompt_tokens``; providers that report
    cache reads and writes apart (Anthropic, Bedrock) have them added back, and both are
    reported in ``prompt_tokens_details``.
    """
    cached, written = int(cache_read or 0), int(cache_write or 0)
    prompt = int(input_tokens or 0) + cached + written
    completion = int(output_tokens or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "cache_creation_tokens": written},
    }


def content_text(content: Any) -> str:
    """The text of OpenAI message content: the string, or its text parts joined (a tool
    result, which native APIs take as text)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return ""
    return "".join(
        part["text"]
        for part in content
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
    )


def text_and_images(
    content: Any,
    index: int,
    provider: str,
    image: Callable[[str, str], dict[str, Any]],
) -> list[dict[str, Any]]:
    """OpenAI message content as ``{"text": ...}`` items and the provider's image items.

    ``image(media_type, base64_data)`` builds one image item (it may refuse a type). Image
    parts must already be ``data:`` URLs: providers that need bytes fetch http(s) images
    before translating.
    """
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequest(
            f"messages[{index}].content must be a string or a list of parts",
            param=f"messages.{index}.content",
        )
    items: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            items.append({"text": part.get("text", "")})
        elif kind == "image_url":
            url = image_url_of(part) or ""
            match = DATA_URL.match(url)
            if not match:
                raise InvalidRequest(
                    f"messages[{index}]: an image must be a data: URL or an http(s) URL",
                    param=f"messages.{index}.content",
                )
            items.append(image(match["media"], match["data"]))
        else:
            raise InvalidRequest(
                f"messages[{index}]: content part type {kind!r} is not supported by {provider}",
                param=f"messages.{index}.content",
            )
    return items
