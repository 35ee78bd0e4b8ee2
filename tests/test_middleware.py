"""GatewayMiddleware: the gateway serves a path prefix, the host app keeps everything else."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from portkey_mw import GatewayMiddleware, ServerSettings
from tests.conftest import ThreadedServer

MOCK = {"x-portkey-provider": "mock"}


def fastapi_app(prefix: str) -> FastAPI:
    app = FastAPI()
    app.add_middleware(GatewayMiddleware, prefix=prefix, settings=ServerSettings(mock=True))

    @app.get("/")
    def root() -> dict[str, str]:
        return {"app": "host"}

    @app.post("/v1/notes")
    async def notes(request: Request) -> dict[str, object]:
        # Only reachable when the gateway owns a prefix other than the root.
        return {"note": await request.json()}

    return app


@pytest.fixture(scope="module")
def llm_prefix() -> Iterator[str]:
    with ThreadedServer(fastapi_app("/llm")) as server:
        yield server.url


def test_prefix_serves_the_gateway(llm_prefix: str) -> None:
    sdk = openai.OpenAI(
        base_url=llm_prefix + "/llm/v1", api_key="x", max_retries=0, default_headers=MOCK
    )
    reply = sdk.chat.completions.create(
        model="mock-gpt", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "Mock reply to: hi"
    chunks = list(
        sdk.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Mock reply to: hi"
    )


def test_host_routes_pass_through_untouched(llm_prefix: str) -> None:
    assert httpx.get(llm_prefix + "/").json() == {"app": "host"}
    response = httpx.post(llm_prefix + "/v1/notes", json={"a": 1})
    assert response.status_code == 200 and response.json() == {"note": {"a": 1}}
    assert "x-portkey-trace-id" not in response.headers
    assert httpx.get(llm_prefix + "/missing").json() == {"detail": "Not Found"}


def test_gateway_errors_stay_inside_the_prefix(llm_prefix: str) -> None:
    response = httpx.post(llm_prefix + "/llm/v1/chat/completions", content=b"{", headers=MOCK)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"


def test_root_prefix_in_starlette() -> None:
    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("home")

    app = Starlette(routes=[Route("/", home)])
    # prefix "" serves /v1/*
    app.add_middleware(GatewayMiddleware, settings=ServerSettings(mock=True))
    with ThreadedServer(app) as server:
        assert httpx.get(server.url + "/").text == "home"
        models = httpx.get(server.url + "/v1/models", headers=MOCK).json()
        assert [m["id"] for m in models["data"]] == ["mock-gpt", "mock-embed"]
