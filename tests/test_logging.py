"""One log event per request, off the hot path, none lost, no secrets in it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from portkey_mw import Gateway, LogEvent, LogSink, ServerSettings, hookimpl
from portkey_mw.plugin import PluginManager
from tests.conftest import in_process, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream


class ListSink(LogSink):
    name = "list"

    def __init__(self, fail_first: int = 0) -> None:
        self.events: list[LogEvent] = []
        self.batches = 0
        self.fail_first = fail_first

    async def write(self, events: Sequence[LogEvent]) -> None:
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("disk full")
        self.batches += 1
        self.events.extend(events)


class SinkPlugin:
    def __init__(self, sink: ListSink) -> None:
        self.sink = sink

    @hookimpl
    def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
        register(self.sink)


def serve(sink: ListSink, requests: Callable[[httpx.AsyncClient], Any]) -> None:
    async def scenario() -> None:
        manager = PluginManager()
        manager.load_entry_points()
        manager.register(SinkPlugin(sink), "list-sink")
        async with in_process(Gateway(ServerSettings(mock=True), plugins=manager)) as client:
            await requests(client)
        # lifespan exit drained the queue: every event is delivered by now

    asyncio.run(scenario())


MOCK = {"x-portkey-provider": "mock", "authorization": "Bearer sk-very-secret"}
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


def test_one_event_per_request_none_lost() -> None:
    sink = ListSink()

    async def requests(client: httpx.AsyncClient) -> None:
        await asyncio.gather(
            *(client.post("/v1/chat/completions", json=CHAT, headers=MOCK) for _ in range(300))
        )
        await client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=MOCK)
        await client.post("/v1/chat/completions", content=b"{", headers=MOCK)
        await client.get("/v1/models", headers={**MOCK, "x-portkey-metadata": '{"team": "a"}'})

    serve(sink, requests)
    assert len(sink.events) == 303
    assert sink.batches < 303  # delivered in batches, not one write per request
    assert len({event.trace_id for event in sink.events}) == 303
    by_status: dict[int, int] = {}
    for event in sink.events:
        by_status[event.status] = by_status.get(event.status, 0) + 1
    assert by_status == {200: 302, 400: 1}
    stream = next(e for e in sink.events if e.stream)
    assert stream.stream_complete is True and stream.ttfb_ms is not None
    assert stream.usage is None or stream.usage["total_tokens"] > 0
    plain = sink.events[0]
    assert plain.usage is not None and plain.usage["total_tokens"] > 0
    assert plain.provider == "mock" and plain.model == "mock-gpt"
    models = next(e for e in sink.events if e.endpoint == "models")
    assert models.metadata == {"team": "a"}
    bad = next(e for e in sink.events if e.status == 400)
    assert bad.error_type == "invalid_request_error"


def test_events_carry_no_secrets() -> None:
    sink = ListSink()

    async def requests(client: httpx.AsyncClient) -> None:
        config = orjson.dumps({"provider": "mock", "api_key": "sk-config-secret"}).decode()
        await client.post("/v1/chat/completions", json=CHAT, headers=MOCK)
        await client.post(
            "/v1/chat/completions", json=CHAT, headers={**MOCK, "x-portkey-config": config}
        )

    serve(sink, requests)
    dumped = orjson.dumps([event.to_dict() for event in sink.events])
    assert b"sk-very-secret" not in dumped and b"sk-config-secret" not in dumped


def test_a_failing_sink_is_retried_and_does_not_hurt_requests() -> None:
    sink = ListSink(fail_first=1)
    statuses: list[int] = []

    async def requests(client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=MOCK)
        statuses.append(response.status_code)

    serve(sink, requests)
    assert statuses == [200]
    assert len(sink.events) == 1  # the retry delivered it


def test_standalone_server_logs_one_json_line_per_request(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    with standalone_gateway(server_file(tmp_path, fake)) as running:
        for _ in range(3):
            response = httpx.post(
                running.base_url + "/chat/completions",
                json=CHAT,
                headers={**MOCK, "x-portkey-trace-id": "log-test"},
            )
            assert response.status_code == 200
    # The server has stopped; its shutdown drained the log queue.
    assert running.output is not None
    records = [
        orjson.loads(line)
        for line in running.output.read_text().splitlines()
        if line.startswith("{")
    ]
    requests = [r for r in records if r.get("event") == "request"]
    assert [r["trace_id"] for r in requests] == ["log-test"] * 3
    assert all(r["status"] == 200 and r["provider"] == "mock" for r in requests)
    assert "sk-very-secret" not in running.output.read_text()


def test_the_latency_logged_is_the_clients_not_the_cache_store_after_it() -> None:
    """A cache store runs after the client has its answer; a slow one must not show in the
    request's logged latency."""
    from portkey_mw_plugins.memory_cache import MemoryCache

    class SlowStore(MemoryCache):
        async def set(self, key: str, value: bytes, ttl: float | None) -> None:
            await asyncio.sleep(0.5)
            await super().set(key, value, ttl)

    sink = ListSink()

    async def scenario() -> None:
        manager = PluginManager()
        manager.load_entry_points()
        manager.register(SinkPlugin(sink), "list-sink")
        gateway = Gateway(ServerSettings(mock=True), plugins=manager)
        gateway.cache_backends["memory"] = SlowStore()
        config = orjson.dumps({"provider": "mock", "cache": {"mode": "simple"}}).decode()
        async with in_process(gateway) as client:
            answer = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"x-portkey-config": config}
            )
            assert answer.headers["x-portkey-cache-status"] == "MISS"
            await gateway.settled()

    asyncio.run(scenario())
    (event,) = sink.events
    assert event.cache_status == "MISS"
    assert event.latency_ms < 400, event.latency_ms
