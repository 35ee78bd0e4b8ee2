"""The plugin framework: entry-point discovery, allow/deny lists, and the per-request hooks."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pluggy
import pytest
from structlog.testing import capture_logs

from portkey_mw import Endpoint, Gateway, GatewayResponse, RequestContext, hookimpl
from portkey_mw.config.server import ServerSettings
from portkey_mw.errors import RequestDenied
from portkey_mw.interfaces import Provider
from portkey_mw.plugin import PluginManager
from tests.conftest import RunningGateway, in_process

EXAMPLE = "portkey-mw-example-plugin"
MOCK = {"x-portkey-provider": "mock"}
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}


# -- the contrib example, installed as its own distribution --------------------------------


def test_example_plugin_is_its_own_distribution() -> None:
    dist = importlib.metadata.distribution(EXAMPLE)
    (entry_point,) = [ep for ep in dist.entry_points if ep.group == "portkey_mw"]
    assert entry_point.name == EXAMPLE and entry_point.value == "portkey_mw_example"


def test_example_plugin_is_discovered() -> None:
    plugins = {info.name: info for info in Gateway().plugins.plugins()}
    info = plugins[EXAMPLE]
    assert info.distribution == EXAMPLE
    assert info.version == importlib.metadata.version(EXAMPLE)
    assert "on_request" in info.hooks
    # First-party plugins come through the same entry-point group.
    assert {"portkey-mw.openai", "portkey-mw.mock", "portkey-mw.structlog-sink"} <= set(plugins)


def test_example_plugin_request_hook_runs(gateway: RunningGateway) -> None:
    sdk = openai.OpenAI(
        base_url=gateway.base_url, api_key="unused", max_retries=0, default_headers=MOCK
    )
    raw = sdk.chat.completions.with_raw_response.create(
        model="mock-gpt", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw.headers["x-example-plugin"] == "seen"
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "say forbidden-word"}]
        )
    assert info.value.status_code == 446
    assert isinstance(info.value.body, dict)
    assert info.value.body["code"] == "request_denied"
    assert "'forbidden-word'" in info.value.body["message"]


def test_example_plugin_reads_its_settings() -> None:
    settings = ServerSettings.from_mapping(
        {"mock": True, "plugins": {"settings": {EXAMPLE: {"blocked_words": ["Sprouts"]}}}}
    )

    async def scenario() -> tuple[int, int]:
        gateway = Gateway(settings)
        async with in_process(gateway) as client:
            ok = await client.post("/v1/chat/completions", json=CHAT, headers=MOCK)
            denied = await client.post(
                "/v1/chat/completions",
                json={**CHAT, "messages": [{"role": "user", "content": "I like sprouts"}]},
                headers=MOCK,
            )
            return ok.status_code, denied.status_code

    assert asyncio.run(scenario()) == (200, 446)


def test_plugins_command_lists_distribution_and_version() -> None:
    from click.testing import CliRunner

    from portkey_mw.cli import main

    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0, result.output
    import orjson

    rows = {row["name"]: row for row in orjson.loads(result.output)}
    assert rows[EXAMPLE]["distribution"] == EXAMPLE
    assert rows[EXAMPLE]["version"] == "0.1.0"
    assert "openai" in rows["portkey-mw.openai"]["providers"]


# -- allow and deny lists ----------------------------------------------------------------------


def loaded_names(monkeypatch: pytest.MonkeyPatch, **env: str) -> set[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    manager = PluginManager()
    manager.load_entry_points()
    return {info.name for info in manager.plugins()}


def test_block_list(monkeypatch: pytest.MonkeyPatch) -> None:
    names = loaded_names(monkeypatch, PORTKEY_MW_BLOCK_PLUGINS=f"{EXAMPLE}, portkey-mw.mock")
    assert EXAMPLE not in names and "portkey-mw.mock" not in names
    assert "portkey-mw.openai" in names


def test_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    assert loaded_names(monkeypatch, PORTKEY_MW_LOAD_PLUGINS="portkey-mw.mock") == {
        "portkey-mw.mock"
    }
    assert loaded_names(monkeypatch, PORTKEY_MW_LOAD_PLUGINS="") == set()


def test_allow_list_from_server_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTKEY_MW_LOAD_PLUGINS", raising=False)
    settings = ServerSettings.from_mapping({"mock": True, "plugins": {"load": ["portkey-mw.mock"]}})
    gateway = Gateway(settings)
    assert [info.name for info in gateway.plugins.plugins()] == ["portkey-mw.mock"]
    assert list(gateway.providers) == ["mock"]


def test_misspelled_hook_is_rejected() -> None:
    class Typo:
        @hookimpl
        def on_requests(self, ctx: RequestContext) -> None:
            """Not a hook the gateway has."""

    manager = PluginManager()
    with pytest.raises(pluggy.PluginValidationError, match="on_requests"):
        manager.register(Typo(), "typo")
    assert manager.plugins() == []


# -- per-request hooks, through inline plugins ----------------------------------------------


def run_with(*plugins: object, request: Callable[[httpx.AsyncClient], Any]) -> Any:
    """Serve one scenario through a gateway with the mock provider plus ``plugins``."""

    async def scenario() -> Any:
        manager = PluginManager()
        manager.load_entry_points()
        for index, plugin in enumerate(plugins):
            manager.register(plugin, f"inline-{index}")
        gateway = Gateway(ServerSettings(mock=True), plugins=manager)
        async with in_process(gateway) as client:
            return await request(client)

    return asyncio.run(scenario())


def post_chat(body: dict[str, Any] | None = None, **headers: str) -> Callable[..., Any]:
    async def request(client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/v1/chat/completions", json=body or CHAT, headers={**MOCK, **headers}
        )

    return request


def test_async_request_hook_can_answer() -> None:
    class Answer:
        @hookimpl
        async def on_request(self, ctx: RequestContext) -> GatewayResponse:
            await asyncio.sleep(0)  # really awaited, not a dangling coroutine
            return GatewayResponse.from_json({"answered": ctx.model})

    response = run_with(Answer(), request=post_chat())
    assert response.status_code == 200
    assert response.json() == {"answered": "mock-gpt"}


def test_request_hook_can_rewrite() -> None:
    class Rewrite:
        @hookimpl
        def on_request(self, ctx: RequestContext) -> None:
            ctx.set_param("messages", [{"role": "user", "content": "rewritten"}])

    response = run_with(Rewrite(), request=post_chat())
    assert response.json()["choices"][0]["message"]["content"] == "Mock reply to: rewritten"


def test_request_hook_can_deny() -> None:
    class Deny:
        @hookimpl
        async def on_request(self, ctx: RequestContext) -> None:
            raise RequestDenied("no requests on Sundays")

    response = run_with(Deny(), request=post_chat())
    assert response.status_code == 446
    assert response.json()["error"]["message"] == "no requests on Sundays"


def test_tryfirst_orders_request_hooks() -> None:
    order: list[str] = []

    class Late:
        @hookimpl
        def on_request(self, ctx: RequestContext) -> None:
            order.append("late")

    class Early:
        @hookimpl(tryfirst=True)
        def on_request(self, ctx: RequestContext) -> None:
            order.append("early")

    run_with(Late(), Early(), request=post_chat())
    assert order == ["early", "late"]


def test_response_hook_can_transform() -> None:
    class Shout:
        @hookimpl
        async def on_response(self, ctx: RequestContext) -> None:
            assert ctx.response is not None
            data = ctx.response.json()
            message = data["choices"][0]["message"]
            message["content"] = message["content"].upper()
            ctx.response.set_json(data)

    response = run_with(Shout(), request=post_chat())
    assert response.json()["choices"][0]["message"]["content"] == "MOCK REPLY TO: HELLO"


def test_stream_chunk_hook_transforms_each_chunk() -> None:
    seen: list[str] = []

    class Upper:
        @hookimpl
        def on_stream_chunk(self, ctx: RequestContext, chunk: dict[str, Any]) -> None:
            for choice in chunk.get("choices", []):
                content = choice.get("delta", {}).get("content")
                if content:
                    seen.append(content)
                    choice["delta"]["content"] = content.upper()

    async def request(client: httpx.AsyncClient) -> str:
        response = await client.post(
            "/v1/chat/completions", json={**CHAT, "stream": True}, headers=MOCK
        )
        return response.text

    text = run_with(Upper(), request=request)
    assert len(seen) > 1
    assert "MOCK" in text and "Mock" not in text
    assert text.rstrip().endswith("data: [DONE]")


def test_broken_hook_gives_a_clean_500() -> None:
    class Broken:
        @hookimpl
        def on_request(self, ctx: RequestContext) -> None:
            raise KeyError("secret-internal-detail")

    response = run_with(Broken(), request=post_chat())
    assert response.status_code == 500
    error = response.json()["error"]
    assert "inline-0" in error["message"]
    assert "secret-internal-detail" not in response.text


def test_a_broken_hook_is_logged_without_the_locals_in_its_frames() -> None:
    """A renderer that shows locals (structlog's console one, with rich installed) must not
    get the exception itself: only a plain traceback text, so the keys in scope stay out."""
    key_in_scope = "sk-planted-local-" + "9" * 12

    class Broken:
        @hookimpl
        def on_request(self, ctx: RequestContext) -> None:
            credential = key_in_scope  # a local a traceback with locals would print
            raise KeyError(len(credential))

    with capture_logs() as logs:
        response = run_with(Broken(), request=post_chat())
    assert response.status_code == 500
    (event,) = [e for e in logs if e["event"] == "plugin hook failed"]
    assert "exc_info" not in event
    assert "on_request" in event["exception"] and "KeyError" in event["exception"]
    assert key_in_scope not in repr(logs)


def test_a_plugin_can_add_a_provider() -> None:
    class Echo(Provider):
        id = "echo"
        endpoints = frozenset({Endpoint.CHAT_COMPLETIONS})

        async def call(self, call: Any, transport: Any) -> GatewayResponse:
            return GatewayResponse.from_json({"echo": call.ctx.body["messages"]})

    class RegistersEcho:
        @hookimpl
        def register_providers(self, register: Callable[[Provider], None]) -> None:
            register(Echo())

    response = run_with(RegistersEcho(), request=post_chat(**{"x-portkey-provider": "echo"}))
    assert response.status_code == 200, response.text
    assert response.json() == {"echo": CHAT["messages"]}
