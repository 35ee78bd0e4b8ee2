"""``/v1/realtime``: the WebSocket relayed to a fake realtime upstream on 127.0.0.1.

The official ``openai`` SDK's realtime client talks to ``portkey-mw serve``; the hostile
cases (no credentials, a redirected server-held key, an oversized frame, an upstream
redirect) check that nothing reaches an upstream it should not.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
import yaml
from aiohttp import WSMsgType, web
from openai import AsyncOpenAI
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from portkey_mw import Gateway, ServerSettings
from tests import planted
from tests.conftest import (
    DEADLINE,
    RunningGateway,
    ThreadedServer,
    free_port,
    standalone_gateway,
)
from tests.detector import Detector

MODEL = "fake-realtime-1"
USAGE = {
    "total_tokens": 18,
    "input_tokens": 11,
    "output_tokens": 7,
    "input_token_details": {"cached_tokens": 0, "text_tokens": 11, "audio_tokens": 0},
    "output_token_details": {"text_tokens": 7, "audio_tokens": 0},
}
#: words a session sends: they must never reach a log
SECRET_WORDS = "the-words-of-the-conversation-4kq"


class FakeRealtime:
    """A minimal realtime upstream (aiohttp, in a thread): ``session.created`` on connect,
    an answer to each client event, a ``response.done`` with usage per ``response.create``,
    binary frames echoed. ``/redirect/…`` answers the handshake with a 302; ``/big/…``
    sends a message of ``big_bytes`` after ``session.created``."""

    def __init__(self) -> None:
        self.port = free_port()
        #: every handshake that reached a socket: path, query, headers
        self.connections: list[dict[str, Any]] = []
        #: every handshake request, redirects included
        self.handshakes: list[str] = []
        self.big_bytes = 4096
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/v1/realtime", self._socket)
        app.router.add_get("/openai/realtime", self._socket)
        app.router.add_get("/big/v1/realtime", self._socket)
        app.router.add_get("/redirect/v1/realtime", self._redirect)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._started.set()
        self._loop.run_forever()

    def __enter__(self) -> FakeRealtime:
        self._thread.start()
        assert self._started.wait(DEADLINE)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(DEADLINE)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(DEADLINE)
        self._loop.close()

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(request.path)
        raise web.HTTPFound(f"{self.base_url}/v1/realtime?{request.query_string}")

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        self.handshakes.append(request.path)
        self.connections.append(
            {
                "path": request.path,
                "query": dict(request.query),
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
        ws = web.WebSocketResponse(max_msg_size=64 * 1024 * 1024)
        await ws.prepare(request)
        await ws.send_str(orjson.dumps({"type": "session.created", "session": {}}).decode())
        if request.path.startswith("/big/"):
            await ws.send_str("x" * self.big_bytes)
        async for message in ws:
            if message.type is WSMsgType.BINARY:
                await ws.send_bytes(message.data)
                continue
            if message.type is not WSMsgType.TEXT:
                break
            event = orjson.loads(message.data)
            kind = event.get("type")
            if kind == "test.close":  # the upstream ends the session with its own code
                await ws.close(code=4001)
                break
            if kind == "session.update":
                answer = {"type": "session.updated", "session": event.get("session", {})}
                await ws.send_str(orjson.dumps(answer).decode())
            elif kind == "conversation.item.create":
                item = {"type": "conversation.item.created", "item": event.get("item", {})}
                await ws.send_str(orjson.dumps(item).decode())
            elif kind == "response.create":
                await ws.send_str(orjson.dumps({"type": "response.created"}).decode())
                delta = {"type": "response.output_text.delta", "delta": "hi there"}
                await ws.send_str(orjson.dumps(delta).decode())
                done = {
                    "type": "response.done",
                    "response": {"status": "completed", "usage": USAGE},
                }
                await ws.send_str(orjson.dumps(done).decode())
        return ws


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeRealtime]:
    with FakeRealtime() as fake:
        yield fake


@pytest.fixture
def realtime(upstream: FakeRealtime) -> FakeRealtime:
    upstream.connections.clear()
    upstream.handshakes.clear()
    return upstream


def realtime_file(tmp_path: Path, upstream: FakeRealtime, **extra: Any) -> Path:
    settings: dict[str, Any] = {
        "mock": True,
        "routing": {"circuit_breaker": {"enabled": False}},
        "pricing": {MODEL: {"input": 5.0, "output": 20.0}},
        "configs": {
            "rt": {
                "provider": "openai",
                "api_key": planted.OPENAI_KEY,
                "custom_host": upstream.base_url + "/v1",
            },
            "rt-redirect": {
                "provider": "openai",
                "api_key": planted.OPENAI_KEY,
                "custom_host": upstream.base_url + "/redirect/v1",
            },
            "rt-big": {
                "provider": "openai",
                "api_key": planted.OPENAI_KEY,
                "custom_host": upstream.base_url + "/big/v1",
            },
            "rt-azure-no-deployment": {
                "provider": "azure-openai",
                "api_key": planted.AZURE_KEY,
                "custom_host": upstream.base_url + "/openai",
            },
            "rt-azure": {
                "provider": "azure-openai",
                "api_key": planted.AZURE_KEY,
                "custom_host": upstream.base_url + "/openai",
                "deployment_id": "my-realtime",
            },
        },
        **extra,
    }
    path = tmp_path / "portkey-mw.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path


def records(running: RunningGateway) -> list[dict[str, Any]]:
    assert running.output is not None
    lines = running.output.read_text().splitlines()
    parsed = [orjson.loads(line) for line in lines if line.startswith("{")]
    return [r for r in parsed if r.get("event") == "request"]


def ws_url(running: RunningGateway, model: str = MODEL) -> str:
    return running.base_url.replace("http://", "ws://") + f"/realtime?model={model}"


async def sdk_session(
    client: Any, responses: int = 1, headers: dict[str, str] | None = None
) -> list[str]:
    """A session as an app runs one: configure, add a message, ask for a response
    (``headers``: sent with the handshake, for an SDK whose realtime client leaves its
    default headers out)."""
    kinds: list[str] = []
    # (the GA client; SDKs before it had the beta one)
    resource: Any = getattr(client, "realtime", None) or client.beta.realtime
    async with resource.connect(model=MODEL, extra_headers=headers or {}) as connection:
        await connection.session.update(session={"type": "realtime", "instructions": "be brief"})
        await connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": SECRET_WORDS}],
            }
        )
        for _ in range(responses):
            await connection.response.create()
            async for event in connection:
                kinds.append(event.type)
                if event.type == "response.done":
                    break
    return kinds


def test_the_openai_sdk_holds_a_session_through_serve(
    tmp_path: Path, realtime: FakeRealtime
) -> None:
    with standalone_gateway(realtime_file(tmp_path, realtime)) as running:
        client = AsyncOpenAI(
            api_key="sk-client-not-used",
            base_url=running.base_url,
            default_headers={"x-portkey-config": "rt", "x-portkey-trace-id": "rt-trace"},
        )
        kinds = asyncio.run(sdk_session(client, responses=2))
        answer = ["response.created", "response.output_text.delta", "response.done"]
        assert kinds == [
            "session.created",
            "session.updated",
            "conversation.item.created",
            *answer,
            *answer,
        ]
        # plain HTTP on the route says what it is
        reply = httpx.get(running.base_url + "/realtime?model=m")
        assert reply.status_code == 426
        assert reply.json()["error"]["code"] == "websocket_required"
        end = time.monotonic() + DEADLINE
        while not any(r["trace_id"] == "rt-trace" for r in records(running)):
            assert time.monotonic() < end, "no log record for the session"
            time.sleep(0.05)
    (seen,) = realtime.connections
    assert seen["path"] == "/v1/realtime"
    assert seen["query"] == {"model": MODEL}
    # the server-held key went where the operator bound it; the client's did not
    assert seen["headers"]["authorization"] == f"Bearer {planted.OPENAI_KEY}"
    assert "sk-client-not-used" not in str(seen["headers"])
    (record,) = [r for r in records(running) if r["trace_id"] == "rt-trace"]
    assert record["endpoint"] == "realtime"
    assert record["provider"] == "openai" and record["model"] == MODEL
    assert record["status"] == 101 and record["error_code"] is None
    # usage summed over both response.done events, and priced
    assert record["tokens"]["input"] == 22 and record["tokens"]["output"] == 14
    assert record["tokens"]["total"] == 36
    assert record["cost_usd"] == pytest.approx((22 * 5.0 + 14 * 20.0) / 1e6)
    assert record["realtime"]["closed_by"] == "client"
    assert record["realtime"]["client_frames"] == 4
    assert record["realtime"]["upstream_frames"] == 9
    assert record["realtime"]["responses"] == 2
    assert record["latency_ms"] > 0
    assert running.output is not None
    assert SECRET_WORDS not in running.output.read_text()  # frames' content is never logged


def test_the_portkey_sdk_holds_a_session_through_serve(
    tmp_path: Path, realtime: FakeRealtime
) -> None:
    from portkey_ai import AsyncPortkey, createHeaders

    with standalone_gateway(realtime_file(tmp_path, realtime)) as running:
        client = AsyncPortkey(api_key="pk-not-used", base_url=running.base_url)
        # The SDK's realtime client sends neither its config nor its other x-portkey-*
        # headers with the handshake: they go as extra_headers, built by createHeaders.
        headers = createHeaders(config="rt", trace_id="pk-rt")  # type: ignore[no-untyped-call]
        kinds = asyncio.run(sdk_session(client, headers=headers))
        assert kinds == [
            "session.created",
            "session.updated",
            "conversation.item.created",
            "response.created",
            "response.output_text.delta",
            "response.done",
        ]
        end = time.monotonic() + DEADLINE
        while not any(r["trace_id"] == "pk-rt" for r in records(running)):
            assert time.monotonic() < end, "no log record for the session"
            time.sleep(0.05)
    (seen,) = realtime.connections
    assert seen["headers"]["authorization"] == f"Bearer {planted.OPENAI_KEY}"
    assert not any(name.startswith("x-portkey") for name in seen["headers"])
    (record,) = [r for r in records(running) if r["trace_id"] == "pk-rt"]
    assert record["endpoint"] == "realtime" and record["config_id"] == "rt"


def test_auth_required_refuses_without_credentials_and_binds_virtual_keys(
    tmp_path: Path, realtime: FakeRealtime
) -> None:
    store = {"url": f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"}
    path = realtime_file(tmp_path, realtime, store=store)
    with (
        Detector() as detector,
        standalone_gateway(path, env={"PORTKEY_MW_AUTH": "required"}) as running,
    ):

        def made(route: str, body: dict[str, Any]) -> dict[str, Any]:
            reply = httpx.post(running.base_url + route, json=body, headers=planted.ADMIN)
            assert reply.status_code == 200, reply.text
            answer: dict[str, Any] = reply.json()
            return answer

        hosted = made(
            "/virtual-keys",
            {
                "name": "rt",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": realtime.base_url + "/v1",
            },
        )["slug"]
        canonical = made(
            "/virtual-keys", {"name": "c", "provider": "openai", "key": planted.OPENAI_KEY}
        )["slug"]
        body = {"name": "k", "scopes": ["completions.write"]}
        key = planted.plant(str(made("/api-keys/organisation/service", body)["key"]))

        async def refused(headers: dict[str, str]) -> Any:
            with pytest.raises(InvalidStatus) as caught:
                async with websockets.connect(ws_url(running), additional_headers=headers):
                    pass
            return caught.value.response

        # no credentials at all: 401 on the handshake, the upstream never hears of it
        answer = asyncio.run(refused({"x-portkey-virtual-key": hosted}))
        assert answer.status_code == 401
        assert orjson.loads(answer.body)["error"]["code"] == "api_key_required"
        # the SDK's way (a bearer key that is not a gateway key) is refused the same way
        client = AsyncOpenAI(
            api_key="sk-not-a-gateway-key",
            base_url=running.base_url,
            default_headers={"x-portkey-virtual-key": hosted},
        )
        with pytest.raises(InvalidStatus) as caught:
            asyncio.run(sdk_session(client))
        assert caught.value.response.status_code == 401
        assert realtime.handshakes == []

        # a client header trying to send a server-held key elsewhere: refused, nothing sent
        answer = asyncio.run(
            refused(
                {
                    "authorization": f"Bearer {key}",
                    "x-portkey-virtual-key": canonical,
                    "x-portkey-custom-host": detector.url + "/v1",
                }
            )
        )
        assert answer.status_code == 400
        assert orjson.loads(answer.body)["error"]["code"] == "custom_host_not_allowed"
        # with the operator's host on the virtual key, the header is ignored: the key goes
        # to the operator's host only
        client = AsyncOpenAI(
            api_key=key,
            base_url=running.base_url,
            default_headers={
                "x-portkey-virtual-key": hosted,
                "x-portkey-custom-host": detector.url + "/v1",
            },
        )
        assert asyncio.run(sdk_session(client))[-1] == "response.done"
        assert detector.hits == 0
        assert len(realtime.connections) == 1

        # a browser's way: the gateway key as a subprotocol, and the virtual key in the query
        # is not possible (browsers set no headers), so a default config would be used; here
        # the virtual key comes as a model reference
        async def browser() -> tuple[str | None, str]:
            async with websockets.connect(
                ws_url(running, model=f"@{hosted}/{MODEL}"),
                subprotocols=[
                    Subprotocol("realtime"),
                    Subprotocol(f"openai-insecure-api-key.{key}"),
                    Subprotocol("openai-beta.realtime-v1"),
                ],
            ) as ws:
                first = await ws.recv()
                return ws.subprotocol, str(first)

        protocol, first = asyncio.run(browser())
        assert protocol == "realtime"
        assert orjson.loads(first)["type"] == "session.created"
        assert realtime.connections[-1]["query"] == {"model": MODEL}
        assert realtime.connections[-1]["headers"]["authorization"] == (
            f"Bearer {planted.OPENAI_KEY}"
        )
        assert realtime.connections[-1]["headers"]["openai-beta"] == "realtime=v1"
        assert "sec-websocket-protocol" not in realtime.connections[-1]["headers"]
        # the gateway key never travels upstream, in a header or a subprotocol
        assert key not in str(realtime.connections[-1]["headers"])
        assert detector.hits == 0


@pytest.fixture(scope="module")
def inproc(
    upstream: FakeRealtime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """The gateway mounted at /llm of a FastAPI app, served by uvicorn in a thread, with a
    small frame limit."""
    from fastapi import FastAPI

    path = realtime_file(
        tmp_path_factory.mktemp("rt"), upstream, realtime={"max_frame_bytes": 2048}
    )
    gateway = Gateway(ServerSettings.from_file(path))
    app = FastAPI(lifespan=gateway.lifespan)
    app.mount("/llm", gateway)
    with ThreadedServer(app) as server:
        yield RunningGateway("mounted", server.url + "/llm", server.url, app=gateway)


def test_an_oversized_client_frame_closes_the_session_with_1009(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    async def session() -> int | None:
        async with websockets.connect(
            ws_url(inproc), additional_headers={"x-portkey-config": "rt"}
        ) as ws:
            assert orjson.loads(await ws.recv())["type"] == "session.created"
            await ws.send(b"\x01\x02")  # binary frames are relayed too
            assert await ws.recv() == b"\x01\x02"
            await ws.send("y" * 4096)
            with pytest.raises(ConnectionClosed):
                while True:
                    await ws.recv()
            return ws.close_code

    assert asyncio.run(session()) == 1009
    assert len(realtime.connections) == 1


def test_an_oversized_upstream_frame_closes_the_session_with_1009(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    async def session() -> int | None:
        async with websockets.connect(
            ws_url(inproc), additional_headers={"x-portkey-config": "rt-big"}
        ) as ws:
            assert orjson.loads(await ws.recv())["type"] == "session.created"
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(session()) == 1009


def test_an_upstream_redirect_is_not_followed(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    async def session() -> Any:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(
                ws_url(inproc), additional_headers={"x-portkey-config": "rt-redirect"}
            ):
                pass
        return caught.value.response

    answer = asyncio.run(session())
    assert answer.status_code == 502
    assert orjson.loads(answer.body)["error"]["code"] == "upstream_redirect"
    assert realtime.handshakes == ["/redirect/v1/realtime"]  # the target was never asked
    assert realtime.connections == []


def test_azure_openai_gets_its_deployment_and_api_key(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    async def session() -> str:
        async with websockets.connect(
            ws_url(inproc), additional_headers={"x-portkey-config": "rt-azure"}
        ) as ws:
            return str(await ws.recv())

    assert orjson.loads(asyncio.run(session()))["type"] == "session.created"
    (seen,) = realtime.connections
    assert seen["path"] == "/openai/realtime"
    assert seen["query"] == {"api-version": "2024-10-01-preview", "deployment": "my-realtime"}
    assert seen["headers"]["api-key"] == planted.AZURE_KEY
    assert "authorization" not in seen["headers"]


@pytest.mark.parametrize(
    ("headers", "path", "status", "code"),
    [
        ({"x-portkey-provider": "mock"}, f"/realtime?model={MODEL}", 400, "unsupported_endpoint"),
        ({"x-portkey-config": "rt"}, "/realtime", 400, "missing_model"),
        ({"x-portkey-config": "rt"}, "/realtime?model=" + "m" * 300, 400, "invalid_model"),
        ({"x-portkey-config": "rt"}, "/not-realtime?model=m", 404, None),
    ],
)
def test_refusals_answer_the_handshake(
    inproc: RunningGateway,
    realtime: FakeRealtime,
    headers: dict[str, str],
    path: str,
    status: int,
    code: str | None,
) -> None:
    url = inproc.base_url.replace("http://", "ws://") + path

    async def session() -> Any:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(url, additional_headers=headers):
                pass
        return caught.value.response

    answer = asyncio.run(session())
    assert answer.status_code == status
    error = orjson.loads(answer.body)["error"]
    if code is not None:
        assert error["code"] == code
    if code == "unsupported_endpoint":
        assert "'mock'" in error["message"] and "realtime" in error["message"]
    assert realtime.handshakes == []


def test_a_transport_without_websockets_refuses_cleanly() -> None:
    """An httpx transport (tests, apps that own a client) cannot open WebSockets: a 501
    naming why, not a crash."""
    from portkey_mw.errors import GatewayError
    from portkey_mw.transport import HttpxTransport, UpstreamRequest

    async def check() -> GatewayError:
        async with httpx.AsyncClient() as client:
            transport = HttpxTransport(client)
            with pytest.raises(GatewayError) as caught:
                await transport.websocket(UpstreamRequest("GET", "http://127.0.0.1:9/x"), 1024)
            return caught.value

    error = asyncio.run(check())
    assert error.status == 501 and error.code == "realtime_unavailable"


def test_the_upstream_closing_closes_the_client_with_its_code(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    async def session() -> int | None:
        async with websockets.connect(
            ws_url(inproc), additional_headers={"x-portkey-config": "rt"}
        ) as ws:
            await ws.recv()
            await ws.send(orjson.dumps({"type": "test.close"}).decode())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            return ws.close_code

    assert asyncio.run(session()) == 4001


def test_the_outbound_policy_applies_to_the_upstream_socket(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    """A client's own key and host: the host still passes the outbound policy (cloud
    metadata is refused before any connection)."""

    async def session() -> Any:
        with pytest.raises(InvalidStatus) as caught:
            async with websockets.connect(
                ws_url(inproc),
                additional_headers={
                    "x-portkey-provider": "openai",
                    "authorization": "Bearer sk-client-own",
                    "x-portkey-custom-host": "http://169.254.169.254/v1",
                },
            ):
                pass
        return caught.value.response

    answer = asyncio.run(session())
    assert answer.status_code == 403
    assert "169.254.169.254" in orjson.loads(answer.body)["error"]["message"]


def test_middleware_mount_and_the_session_length_limit(
    upstream: FakeRealtime, realtime: FakeRealtime, tmp_path: Path
) -> None:
    """Under GatewayMiddleware too; a session past realtime.max_session_seconds is closed
    with 1008 and logged as such."""
    from fastapi import FastAPI

    from portkey_mw import GatewayMiddleware, LogEvent, LogSink, hookimpl
    from portkey_mw.plugin import PluginManager

    events: list[LogEvent] = []

    class Sink(LogSink):
        name = "list"

        async def write(self, batch: Any) -> None:
            events.extend(batch)

    class Plugin:
        @hookimpl
        def register_log_sinks(self, register: Any) -> None:
            register(Sink())

    path = realtime_file(tmp_path, upstream, realtime={"max_session_seconds": 0.5})
    settings = ServerSettings.from_file(path)
    plugins = PluginManager(settings.plugins)
    plugins.load_entry_points()
    plugins.register(Plugin(), "list-sink")
    gateway = Gateway(settings, plugins=plugins)
    app = FastAPI(lifespan=gateway.lifespan)
    app.add_middleware(GatewayMiddleware, prefix="/llm", gateway=gateway)  # type: ignore[arg-type]

    async def session(url: str) -> int | None:
        async with websockets.connect(url, additional_headers={"x-portkey-config": "rt"}) as ws:
            await ws.recv()
            with pytest.raises(ConnectionClosed):
                await ws.recv()  # nothing more comes until the limit closes the session
            return ws.close_code

    with ThreadedServer(app) as server:
        url = server.url.replace("http://", "ws://") + f"/llm/v1/realtime?model={MODEL}"
        assert asyncio.run(session(url)) == 1008
        end = time.monotonic() + DEADLINE
        while not events:
            assert time.monotonic() < end, "no log event"
            time.sleep(0.02)
    (event,) = events
    record = event.to_dict()
    assert record["error_code"] == "session_too_long"
    assert record["realtime"]["closed_by"] == "gateway"
    assert record["realtime"]["close_code"] == 1008
    assert record["tokens"]["input"] == 0


def test_azure_takes_the_deployment_from_the_model_only_with_the_clients_own_key(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    async def connect(headers: dict[str, str]) -> Any:
        try:
            async with websockets.connect(ws_url(inproc), additional_headers=headers) as ws:
                return str(await ws.recv())
        except InvalidStatus as refused:
            return refused.response

    # the operator's key, no deployment_id: the client's model does not pick one
    answer = asyncio.run(connect({"x-portkey-config": "rt-azure-no-deployment"}))
    assert answer.status_code == 400
    assert orjson.loads(answer.body)["error"]["param"] == "deployment_id"
    assert realtime.handshakes == []
    # the client's own key and host: its model names the deployment (Azure's SDK way)
    first = asyncio.run(
        connect(
            {
                "x-portkey-provider": "azure-openai",
                "x-portkey-custom-host": realtime.base_url + "/openai",
                "authorization": "Bearer azure-client-own-key",
            }
        )
    )
    assert orjson.loads(first)["type"] == "session.created"
    (seen,) = realtime.connections
    assert seen["query"]["deployment"] == MODEL
    assert seen["headers"]["api-key"] == "azure-client-own-key"


def test_the_upstream_sockets_address_is_checked_at_connect_time() -> None:
    """The URL's host name passes the URL check; the address it resolves to (private) is
    refused inside the pool's resolver, before any connection."""
    from aiohttp.abc import AbstractResolver, ResolveResult

    from portkey_mw.errors import DestinationNotAllowed
    from portkey_mw.transport import AiohttpTransport, UpstreamRequest

    class Private(AbstractResolver):
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[ResolveResult]:
            address = ResolveResult(
                hostname=host, host="10.0.0.7", port=port, family=2, proto=0, flags=0
            )
            return [address]

        async def close(self) -> None:
            return None

    async def scenario() -> None:
        transport = AiohttpTransport(resolver=Private(), dns_cache=None)
        await transport.open()
        try:
            request = UpstreamRequest("GET", "http://internal.example/v1/realtime?model=m")
            with pytest.raises(DestinationNotAllowed, match="resolves to a private address"):
                await transport.websocket(request, 1024)
        finally:
            await transport.aclose()

    asyncio.run(scenario())


def test_forwarded_headers_cannot_stand_in_for_the_handshakes_own(
    inproc: RunningGateway, realtime: FakeRealtime
) -> None:
    headers = {
        "x-portkey-config": "rt",
        "x-portkey-forward-headers": "sec-websocket-extensions,x-team",
        "x-team": "blue",
    }

    async def session() -> str:
        async with websockets.connect(ws_url(inproc), additional_headers=headers) as ws:
            return str(await ws.recv())

    assert orjson.loads(asyncio.run(session()))["type"] == "session.created"
    (seen,) = realtime.connections
    assert seen["headers"]["x-team"] == "blue"  # forwarding works as for any call
    # the client's permessage-deflate offer was its own handshake's, not the upstream's
    assert "sec-websocket-extensions" not in seen["headers"]
