"""Each provider's translation, fed hostile input directly.

* Request side: a body ``check_body`` accepts never makes a translator raise anything but a
  4xx :class:`GatewayError` (a body it refuses is not the translators' business).
* Response side: whatever a provider answers -- any JSON in place of its answer, any bytes
  or events in its stream -- the translation answers or fails with a 5xx
  :class:`GatewayError` (``UpstreamBadResponse``); never another exception.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from portkey_mw_plugins.anthropic import translate as anthropic
from portkey_mw_plugins.anthropic.stream import StreamTranslator as AnthropicStream
from portkey_mw_plugins.bedrock import translate as bedrock
from portkey_mw_plugins.bedrock.stream import StreamTranslator as BedrockStream
from portkey_mw_plugins.cohere import translate as cohere
from portkey_mw_plugins.cohere.stream import StreamTranslator as CohereStream
from portkey_mw_plugins.google import translate as google
from portkey_mw_plugins.google.stream import StreamTranslator as GoogleStream

from portkey_mw.caching import StreamRecorder
from portkey_mw.context import Endpoint
from portkey_mw.errors import GatewayError, InvalidRequest
from portkey_mw.guardrails.flow import _StreamText
from portkey_mw.inbound.anthropic import AnthropicMessages
from portkey_mw.request_shape import check_body
from portkey_mw.streaming import SSEDecoder, event_data
from portkey_mw.translation import embedding_texts
from tests import hostile_bodies as bodies
from tests.hostile_bodies import CHECKED
from tests.native_upstream import event_frame


def accepted(endpoint: Endpoint, body: Any) -> bool:
    """Whether the gateway would hand ``body`` to a translator at all."""
    if not isinstance(body, dict):
        return False
    try:
        check_body(endpoint, body)
    except InvalidRequest:
        return False
    return True


def assert_refuses_with_a_4xx(translate: Callable[[], Any]) -> None:
    """``translate()`` returns something the gateway can send, or raises a 4xx."""
    try:
        result = translate()
    except GatewayError as error:
        assert 400 <= error.status < 500, error.to_dict()
        return
    orjson.dumps(result)  # what is sent upstream must serialise


def assert_fails_with_a_5xx(translate: Callable[[], Any]) -> None:
    """``translate()`` returns something the gateway can send, or raises a 5xx."""
    try:
        result = translate()
    except GatewayError as error:
        assert error.status >= 500, error.to_dict()
        return
    if isinstance(result, bytes):  # a translated stream: every event's data is JSON
        for event in SSEDecoder().feed(result + b"\n\n"):
            data = event_data(event)
            if data is not None and data != b"[DONE]":
                orjson.loads(data)
    else:
        orjson.dumps(result)


# -- requests -------------------------------------------------------------------------------------

CHAT_TRANSLATORS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "anthropic": anthropic.to_anthropic,
    "google": google.to_gemini,
    "bedrock": bedrock.to_converse,
    "cohere": cohere.to_cohere,
}


@pytest.mark.parametrize("provider", list(CHAT_TRANSLATORS))
def test_chat_translation_of_an_accepted_body_is_a_4xx_at_worst(provider: str) -> None:
    translate = CHAT_TRANSLATORS[provider]

    @CHECKED
    @given(bodies.CHAT)
    def one(body: Any) -> None:
        if accepted(Endpoint.CHAT_COMPLETIONS, body):
            assert_refuses_with_a_4xx(lambda: translate(body))

    one()


@CHECKED
@given(bodies.EMBEDDINGS)
def test_embedding_translation_of_an_accepted_body_is_a_4xx_at_worst(body: Any) -> None:
    if accepted(Endpoint.EMBEDDINGS, body):
        assert_refuses_with_a_4xx(lambda: google.embed_request(body, "text-embedding-004"))
        assert_refuses_with_a_4xx(lambda: cohere.embed_request(body))
        assert_refuses_with_a_4xx(lambda: embedding_texts(body, "bedrock"))


@CHECKED
@given(bodies.MESSAGES)
def test_anthropic_inbound_request_is_a_4xx_or_a_body_check_body_accepts(body: Any) -> None:
    """The Messages request either is refused (4xx) or becomes a chat body that passes
    ``check_body``: a misfit is named as the client wrote it, never in translated terms."""
    if not isinstance(body, dict) or "messages" not in body:
        return
    try:
        chat = AnthropicMessages().request(body)
    except GatewayError as error:
        assert 400 <= error.status < 500, error.to_dict()
        return
    if chat["messages"]:  # an Anthropic turn may translate to nothing (only empty content)
        check_body(Endpoint.CHAT_COMPLETIONS, chat)


# -- complete answers -----------------------------------------------------------------------------

#: near-valid answers: the right keys, any JSON below them now and then
ANSWERS = st.one_of(
    bodies.JSON_OBJECTS,
    st.fixed_dictionaries(
        {},
        optional={
            key: bodies.sometimes_junk(bodies.JSON)
            for key in ("content", "candidates", "output", "message", "usage", "usageMetadata")
        },
    ),
    st.fixed_dictionaries(
        {
            "content": st.lists(
                st.fixed_dictionaries(
                    {"type": st.sampled_from(["text", "tool_use"])},
                    optional={"text": bodies.JSON, "name": bodies.JSON, "input": bodies.JSON},
                ),
                max_size=3,
            ),
            "stop_reason": bodies.JSON,
            "usage": bodies.sometimes_junk(
                st.dictionaries(st.sampled_from(["input_tokens", "output_tokens"]), bodies.JSON)
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "candidates": st.lists(
                st.fixed_dictionaries(
                    {
                        "content": bodies.sometimes_junk(
                            st.fixed_dictionaries({"parts": bodies.JSON})
                        )
                    },
                    optional={"finishReason": bodies.JSON, "index": bodies.JSON},
                ),
                max_size=2,
            ),
            "usageMetadata": bodies.JSON,
        }
    ),
    st.fixed_dictionaries(
        {
            "choices": st.lists(
                st.fixed_dictionaries(
                    {"message": bodies.sometimes_junk(bodies.JSON_OBJECTS)},
                    optional={"finish_reason": bodies.JSON},
                ),
                max_size=2,
            ),
            "usage": bodies.JSON,
        }
    ),
)
ANSWER_TRANSLATORS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "anthropic": lambda answer: anthropic.to_openai(answer, json_mode=False),
    "anthropic json": lambda answer: anthropic.to_openai(answer, json_mode=True),
    "google": lambda answer: google.to_openai(answer, "gemini"),
    "bedrock": lambda answer: bedrock.to_openai(answer, "m", json=True),
    "bedrock embeddings": bedrock.embedding_answer,
    "cohere": lambda answer: cohere.to_openai(answer, "command"),
    "cohere embeddings": cohere.embed_vectors,
}


@pytest.mark.parametrize("translator", list(ANSWER_TRANSLATORS))
def test_an_answer_of_any_shape_is_translated_or_a_5xx(translator: str) -> None:
    translate = ANSWER_TRANSLATORS[translator]

    @CHECKED
    @given(ANSWERS)
    def one(answer: dict[str, Any]) -> None:
        assert_fails_with_a_5xx(lambda: translate(answer))

    one()


@CHECKED
@given(ANSWERS)
def test_the_anthropic_inbound_answer_never_fails(completion: dict[str, Any]) -> None:
    """By the time it runs, the response has started: it must take any answer."""
    message = AnthropicMessages().response(completion)
    assert message["type"] == "message"
    orjson.dumps(message)


@CHECKED
@given(st.lists(ANSWERS, max_size=3))
def test_the_stream_listeners_take_any_chunks(chunks: list[dict[str, Any]]) -> None:
    """The cache's recorder and the output guardrails' text hear every chunk the stream
    check lets through: JSON objects of any shape."""
    recorder, text = StreamRecorder(), _StreamText()
    for chunk in chunks:
        recorder.take(chunk)
        text.take(chunk)
    orjson.dumps(recorder.completion())


# -- streams --------------------------------------------------------------------------------------


def drain(stream: AsyncIterator[bytes]) -> bytes:
    """Everything a translated stream yields."""

    async def collect() -> bytes:
        return b"".join([chunk async for chunk in stream])

    return asyncio.run(collect())


async def arrive(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts``, as a network might deliver it."""
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def sse(events: list[Any]) -> bytes:
    return b"".join(b"data: " + orjson.dumps(event) + b"\n\n" for event in events)


EVENT_TYPES = [
    # anthropic
    "message_start",
    "content_block_start",
    "content_block_delta",
    "message_delta",
    "error",
    # cohere
    "message-start",
    "content-delta",
    "tool-call-start",
    "tool-call-delta",
    "message-end",
]
NATIVE_EVENTS = st.one_of(
    bodies.JSON,
    st.fixed_dictionaries(
        {"type": st.sampled_from(EVENT_TYPES)},
        optional={
            key: bodies.JSON
            for key in ("message", "index", "content_block", "delta", "usage", "error", "id")
        },
    ),
    st.fixed_dictionaries(  # gemini's partial responses
        {},
        optional={
            "candidates": bodies.JSON,
            "usageMetadata": bodies.JSON,
            "error": bodies.JSON,
            "responseId": bodies.JSON,
        },
    ),
)
SSE_STREAMS = st.one_of(
    st.lists(NATIVE_EVENTS, max_size=5).map(sse),
    st.binary(max_size=80),
    st.lists(
        st.sampled_from([b"data: ", b"\n\n", b"{", b"}", b"[DONE]", b"event: x\n"])
        | st.binary(max_size=8),
        max_size=8,
    ).map(b"".join),
)
CUTS = st.lists(st.integers(0, 400), max_size=4)

STREAM_TRANSLATORS: dict[str, Callable[[], Any]] = {
    "anthropic": lambda: AnthropicStream(
        provider="anthropic", model="m", include_usage=True, json_mode=True
    ),
    "google": lambda: GoogleStream(model="m", include_usage=True),
    "cohere": lambda: CohereStream(model="m", include_usage=True),
}


@pytest.mark.parametrize("provider", list(STREAM_TRANSLATORS))
def test_a_stream_of_anything_is_translated_or_a_5xx(provider: str) -> None:
    make = STREAM_TRANSLATORS[provider]

    @CHECKED
    @given(SSE_STREAMS, CUTS)
    def one(data: bytes, cuts: list[int]) -> None:
        assert_fails_with_a_5xx(lambda: drain(make().translate(arrive(split(data, cuts)))))

    one()


BEDROCK_EVENT_TYPES = [
    "messageStart",
    "contentBlockStart",
    "contentBlockDelta",
    "messageStop",
    "metadata",
]
BEDROCK_FRAMES = st.lists(
    st.tuples(st.sampled_from(BEDROCK_EVENT_TYPES), bodies.JSON_OBJECTS | ANSWERS),
    max_size=4,
).map(lambda frames: b"".join(event_frame(kind, payload) for kind, payload in frames))


@CHECKED
@given(BEDROCK_FRAMES | st.binary(max_size=80), CUTS)
def test_a_bedrock_event_stream_of_anything_is_translated_or_a_5xx(
    data: bytes, cuts: list[int]
) -> None:
    translator = BedrockStream(model="m", include_usage=True, json=True)
    assert_fails_with_a_5xx(lambda: drain(translator.translate(arrive(split(data, cuts)))))


OPENAI_CHUNKS = st.lists(
    st.one_of(
        bodies.JSON,
        st.fixed_dictionaries(
            {
                "choices": bodies.sometimes_junk(
                    st.lists(
                        st.fixed_dictionaries(
                            {"delta": bodies.sometimes_junk(bodies.JSON_OBJECTS)},
                            optional={"finish_reason": bodies.JSON, "index": bodies.JSON},
                        ),
                        max_size=2,
                    )
                )
            },
            optional={"usage": bodies.JSON, "id": bodies.JSON},
        ),
    ),
    max_size=5,
).map(lambda chunks: sse(chunks) + b"data: [DONE]\n\n")


@CHECKED
@given(OPENAI_CHUNKS | SSE_STREAMS, CUTS)
def test_the_anthropic_inbound_stream_of_anything_is_translated_or_a_5xx(
    data: bytes, cuts: list[int]
) -> None:
    stream = AnthropicMessages().stream(arrive(split(data, cuts)))
    assert_fails_with_a_5xx(lambda: drain(stream))
