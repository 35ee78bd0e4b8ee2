"""Near-valid and random ``/v1/responses`` bodies through every translated provider: each is
answered (a Responses object, or a stream ending in its terminal event) or refused with an
OpenAI-style 4xx, never a 5xx (see ``tests/hostile_bodies.py`` for the idea)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkey_mw import Gateway, ServerSettings
from tests import hostile_bodies as bodies
from tests.conftest import in_process
from tests.hostile_bodies import CHECKED, JSON, TEXT, sometimes_junk
from tests.native_upstream import PROVIDER_HEADERS, PROVIDERS, handler

#: the providers /v1/responses is translated for (openai and azure-openai forward it)
TRANSLATED = tuple(p for p in PROVIDERS if p not in ("stability-ai", "openai", "azure-openai"))

PART = st.one_of(
    st.fixed_dictionaries({"type": st.just("input_text"), "text": sometimes_junk(TEXT)}),
    st.fixed_dictionaries({"type": st.just("output_text"), "text": sometimes_junk(TEXT)}),
    st.fixed_dictionaries(
        {"type": st.just("input_image")},
        optional={
            "image_url": sometimes_junk(bodies.IMAGE_URLS),
            "detail": sometimes_junk(st.sampled_from(["low", "high", "auto"])),
            "file_id": TEXT,
        },
    ),
    st.fixed_dictionaries({"type": sometimes_junk(st.sampled_from(["input_file", "refusal"]))}),
)
CONTENT = TEXT | st.lists(sometimes_junk(PART), max_size=3)
CALL_IDS = st.sampled_from(["call_1", "call_2", ""])
ITEM = st.one_of(
    st.fixed_dictionaries(
        {
            "role": sometimes_junk(st.sampled_from(["user", "assistant", "system", "developer"])),
            "content": sometimes_junk(CONTENT),
        },
        optional={"type": st.just("message")},
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call"),
            "call_id": sometimes_junk(CALL_IDS),
            "name": sometimes_junk(st.sampled_from(["f", ""])),
            "arguments": sometimes_junk(bodies.ARGUMENTS),
        }
    ),
    st.fixed_dictionaries(
        {
            "type": st.just("function_call_output"),
            "call_id": sometimes_junk(CALL_IDS),
            "output": sometimes_junk(CONTENT),
        }
    ),
    st.fixed_dictionaries(
        {"type": sometimes_junk(st.sampled_from(["reasoning", "item_reference", "web_search"]))}
    ),
)
TOOL = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("function"), "name": sometimes_junk(st.sampled_from(["f", "g"]))},
        optional={
            "parameters": sometimes_junk(st.just({"type": "object"}) | bodies.JSON_OBJECTS),
            "strict": sometimes_junk(st.booleans()),
            "description": TEXT,
        },
    ),
    st.fixed_dictionaries({"type": st.sampled_from(["web_search_preview", "file_search"])}),
)
RESPONSES = st.fixed_dictionaries(
    {
        "model": sometimes_junk(bodies.MODELS),
        "input": sometimes_junk(
            st.text(min_size=1, max_size=16)
            | st.lists(sometimes_junk(ITEM), min_size=1, max_size=4)
        ),
    },
    optional={
        "instructions": sometimes_junk(TEXT),
        "stream": sometimes_junk(st.booleans()),
        "store": sometimes_junk(st.booleans()),
        "previous_response_id": sometimes_junk(st.sampled_from(["resp_x", ""])),
        "max_output_tokens": sometimes_junk(st.integers(1, 300)),
        "temperature": sometimes_junk(bodies.NUMBERS),
        "top_p": sometimes_junk(bodies.NUMBERS),
        "user": TEXT,
        "metadata": bodies.JSON_OBJECTS,
        "parallel_tool_calls": sometimes_junk(st.booleans()),
        "tools": sometimes_junk(st.lists(TOOL, max_size=2)),
        "tool_choice": sometimes_junk(
            st.sampled_from(["auto", "none", "required"])
            | st.fixed_dictionaries(
                {"type": st.sampled_from(["function", "file_search"])},
                optional={"name": sometimes_junk(TEXT)},
            )
        ),
        "text": sometimes_junk(
            st.fixed_dictionaries(
                {},
                optional={
                    "format": sometimes_junk(
                        st.fixed_dictionaries(
                            {"type": st.sampled_from(["text", "json_object", "json_schema"])},
                            optional={"name": TEXT, "schema": bodies.JSON_OBJECTS},
                        )
                    )
                },
            )
        ),
        "reasoning": sometimes_junk(
            st.fixed_dictionaries({}, optional={"effort": st.sampled_from(["low", "high"])})
        ),
    },
)


@pytest.fixture(scope="module")
def client() -> Iterator[tuple[asyncio.AbstractEventLoop, httpx.AsyncClient]]:
    server = ServerSettings.from_mapping(
        {"routing": {"circuit_breaker": {"enabled": False}}, "responses": {"store": "memory"}}
    )
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    upstream = httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def start() -> httpx.AsyncClient:
        await stack.enter_async_context(upstream)
        return await stack.enter_async_context(in_process(Gateway(server, http_client=upstream)))

    try:
        yield loop, loop.run_until_complete(start())
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


def post(
    client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient], provider: str, body: bytes
) -> None:
    loop, http = client
    headers = {"content-type": "application/json", **PROVIDER_HEADERS[provider]}
    response = loop.run_until_complete(http.post("/v1/responses", content=body, headers=headers))
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()["error"]
        assert set(error) >= {"message", "type", "code", "param"}, error
        assert isinstance(error["message"], str) and error["message"]
    elif response.headers["content-type"].startswith("text/event-stream"):
        text = response.text
        assert "event: error" not in text, text
        assert "event: response.completed" in text or "event: response.incomplete" in text
    else:
        answer: dict[str, Any] = response.json()
        assert answer["object"] == "response" and answer["id"].startswith("resp_")


def test_near_valid_bodies_are_answered_or_refused_with_a_4xx(
    client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient],
) -> None:
    @settings(CHECKED, max_examples=300)
    @given(st.sampled_from(TRANSLATED), RESPONSES)
    def one(provider: str, body: dict[str, Any]) -> None:
        post(client, provider, orjson.dumps(body))

    one()


def test_any_json_is_refused_or_answered(
    client: tuple[asyncio.AbstractEventLoop, httpx.AsyncClient],
) -> None:
    @settings(CHECKED)
    @given(st.sampled_from(TRANSLATED), JSON.map(orjson.dumps) | st.binary(max_size=32))
    def one(provider: str, body: bytes) -> None:
        post(client, provider, body)

    one()
