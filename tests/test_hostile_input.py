"""Hostile input stays a 4xx: whatever a client sends, through whichever provider, the
gateway answers a clear error of its own or the provider's answer -- never a 5xx, never a
traceback.

Bodies come from hypothesis (any bytes, any JSON, and near-valid bodies of every endpoint,
see ``tests/hostile_bodies.py``) and go through a real gateway in process, whose upstream
(``tests/native_upstream.py``) answers every provider correctly in its own wire format:
any 5xx is the gateway's own fault.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portkey_mw import Gateway
from portkey_mw.config.server import ServerSettings
from tests import hostile_bodies as bodies
from tests.conftest import in_process
from tests.hostile_bodies import CHECKED
from tests.native_upstream import PROVIDER_HEADERS, PROVIDERS, handler

#: the routes with the most to translate get more examples
EXAMPLES = {"/v1/chat/completions": 300, "/v1/messages": 200}

CHAT_PROVIDERS = tuple(p for p in PROVIDERS if p != "stability-ai")
#: route -> (body strategy, providers that serve it)
ROUTES: dict[str, tuple[st.SearchStrategy[Any], tuple[str, ...]]] = {
    "/v1/chat/completions": (bodies.CHAT, CHAT_PROVIDERS),
    "/v1/completions": (bodies.COMPLETIONS, ("openai", "together-ai", "azure-openai")),
    "/v1/embeddings": (
        bodies.EMBEDDINGS,
        ("openai", "azure-openai", "google", "bedrock", "cohere"),
    ),
    "/v1/images/generations": (bodies.IMAGES, ("openai", "azure-openai", "stability-ai")),
    "/v1/moderations": (bodies.MODERATIONS, ("openai",)),
    "/v1/messages": (bodies.MESSAGES, CHAT_PROVIDERS),
    "/v1/messages/count_tokens": (bodies.MESSAGES, ("anthropic", "google")),
}
ANTHROPIC_ROUTES = frozenset({"/v1/messages", "/v1/messages/count_tokens"})


@dataclass
class InProcessGateway:
    """A started gateway and a client for it, on an event loop of their own that every
    example reuses (starting a gateway per example would be most of the test's time)."""

    loop: asyncio.AbstractEventLoop
    client: httpx.AsyncClient

    def post(self, path: str, content: bytes, headers: dict[str, str]) -> httpx.Response:
        """One request, its whole body read (streams included)."""
        request = self.client.post(
            path, content=content, headers={"content-type": "application/json", **headers}
        )
        return self.loop.run_until_complete(request)


@pytest.fixture(scope="module")
def gateway() -> Iterator[InProcessGateway]:
    server = ServerSettings.from_mapping(
        # A refused request is a 4xx, which never opens a circuit; this keeps the examples
        # independent all the same.
        {"routing": {"circuit_breaker": {"enabled": False}}}
    )
    loop = asyncio.new_event_loop()
    stack = contextlib.AsyncExitStack()
    upstream = httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def start() -> httpx.AsyncClient:
        await stack.enter_async_context(upstream)
        return await stack.enter_async_context(in_process(Gateway(server, http_client=upstream)))

    try:
        yield InProcessGateway(loop, loop.run_until_complete(start()))
    finally:
        loop.run_until_complete(stack.aclose())
        loop.close()


def assert_handled(response: httpx.Response, path: str) -> None:
    """Not a 5xx; an error is in the route's error shape; a stream ran to its end."""
    anthropic = path in ANTHROPIC_ROUTES
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        body = response.json()
        if anthropic:
            assert body["type"] == "error", body
            assert isinstance(body["error"]["message"], str) and body["error"]["message"]
        else:
            error = body["error"]
            assert set(error) >= {"message", "type", "code", "param"}, body
            assert isinstance(error["message"], str) and error["message"]
            assert error["param"] is None or isinstance(error["param"], str)
    elif response.headers["content-type"].startswith("text/event-stream"):
        text = response.text
        if anthropic:
            assert "event: error" not in text and text.rstrip().endswith('{"type":"message_stop"}')
        else:
            assert 'data: {"error"' not in text and text.rstrip().endswith("data: [DONE]"), text


def send(gateway: InProcessGateway, path: str, provider: str, body: bytes) -> None:
    response = gateway.post(path, body, PROVIDER_HEADERS[provider])
    assert_handled(response, path)


@st.composite
def routed_bodies(draw: st.DrawFn, path: str) -> tuple[str, Any]:
    strategy, providers = ROUTES[path]
    return draw(st.sampled_from(providers)), draw(strategy)


@pytest.mark.parametrize("path", list(ROUTES))
def test_near_valid_bodies_are_answered_or_refused_with_a_4xx(
    gateway: InProcessGateway, path: str
) -> None:
    @settings(CHECKED, max_examples=EXAMPLES.get(path, CHECKED.max_examples))
    @given(routed_bodies(path))
    def one(routed: tuple[str, Any]) -> None:
        provider, body = routed
        send(gateway, path, provider, orjson.dumps(body))

    one()


KNOWN_FIELDS = sorted(
    {"messages", "prompt", "input", "model", "stream", "stream_options", "tools", "tool_choice"}
    | {"response_format", "stop", "n", "max_tokens", "temperature", "system", "size"}
)
ANY_BODY = st.one_of(
    st.binary(max_size=64),
    bodies.JSON.map(orjson.dumps),
    st.dictionaries(st.sampled_from(KNOWN_FIELDS) | bodies.TEXT, bodies.JSON, max_size=6).map(
        orjson.dumps
    ),
)


@CHECKED
@given(
    path=st.sampled_from(list(ROUTES)),
    provider=st.sampled_from(PROVIDERS),
    body=ANY_BODY,
)
def test_any_bytes_are_refused_with_a_4xx(
    gateway: InProcessGateway, path: str, provider: str, body: bytes
) -> None:
    send(gateway, path, provider, body)


def test_the_upstream_fixture_answers_every_route(gateway: InProcessGateway) -> None:
    """The happy path through each provider works, so the properties above test refusals
    and answers, not a broken fixture."""
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    for provider in CHAT_PROVIDERS:
        for stream in (False, True):
            response = gateway.post(
                "/v1/chat/completions",
                orjson.dumps({**chat, "stream": stream}),
                PROVIDER_HEADERS[provider],
            )
            assert response.status_code == 200, (provider, response.text)
            assert_handled(response, "/v1/chat/completions")
    messages = {"model": "claude-x", "max_tokens": 5, "messages": chat["messages"]}
    response = gateway.post("/v1/messages", orjson.dumps(messages), PROVIDER_HEADERS["anthropic"])
    assert response.status_code == 200 and response.json()["type"] == "message"


def test_odd_parameter_names_are_listed_safely_as_dropped(gateway: InProcessGateway) -> None:
    """A key a native provider drops is named in x-portkey-dropped-params; one that is not
    plain ASCII (or holds a comma or a line break) is percent-encoded, not sent raw."""
    body = {
        "model": "claude-x",
        "messages": [{"role": "user", "content": "hi"}],
        "café": 1,
        "a,b\r\nset-cookie: x": 2,
        "seed": 3,
    }
    response = gateway.post(
        "/v1/chat/completions", orjson.dumps(body), PROVIDER_HEADERS["anthropic"]
    )
    assert response.status_code == 200, response.text
    dropped = response.headers["x-portkey-dropped-params"].split(",")
    assert sorted(dropped) == ["a%2Cb%0D%0Aset-cookie%3A%20x", "caf%C3%A9", "seed"]
    assert "set-cookie" not in response.headers
