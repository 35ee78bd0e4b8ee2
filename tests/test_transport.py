"""The transport seam: the default aiohttp pool, or a caller's httpx.AsyncClient."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson

from portkey_mw import Gateway
from tests.conftest import in_process
from tests.fake_upstream import FakeUpstream, Reply

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def through(
    upstream: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any] = CHAT
) -> httpx.Response:
    """One request through a gateway that sends upstream with ``upstream`` (closed after)."""

    async def scenario() -> httpx.Response:
        async with (
            upstream,  # the caller's client: the gateway does not close it
            in_process(Gateway(http_client=upstream)) as client,
        ):
            response = await client.post("/v1/chat/completions", json=body, headers=headers)
            await response.aread()
            return response

    return asyncio.run(scenario())


OPENAI = {
    "x-portkey-provider": "openai",
    "x-portkey-custom-host": "http://upstream.test/v1",
    "authorization": "Bearer sk-x",
}


def test_httpx_mock_transport() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "c1", "object": "chat.completion", "choices": []})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    response = through(client, OPENAI)
    assert response.status_code == 200 and response.json()["id"] == "c1"
    (request,) = seen
    assert str(request.url) == "http://upstream.test/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer sk-x"
    assert orjson.loads(request.content) == CHAT


def test_httpx_errors_map_to_gateway_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    refused = through(httpx.AsyncClient(transport=httpx.MockTransport(refuse)), OPENAI)
    assert refused.status_code == 502 and refused.json()["error"]["code"] == "upstream_unreachable"
    timed_out = through(httpx.AsyncClient(transport=httpx.MockTransport(slow)), OPENAI)
    assert timed_out.status_code == 408 and timed_out.json()["error"]["type"] == "timeout_error"


def test_real_httpx_client_streams_from_the_fake(fake: FakeUpstream) -> None:
    fake.script("/v1/chat/completions", Reply())
    headers = {**OPENAI, "x-portkey-custom-host": fake.base_url}
    response = through(httpx.AsyncClient(), headers, {**CHAT, "stream": True})
    assert response.status_code == 200
    assert response.text.rstrip().endswith("data: [DONE]")
    text = "".join(
        choice["delta"].get("content") or ""
        for line in response.text.splitlines()
        if line.startswith("data: {")
        for choice in orjson.loads(line[6:])["choices"]
    )
    assert text == "echo: hi"
