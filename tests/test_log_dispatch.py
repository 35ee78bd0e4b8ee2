"""The log dispatcher loses nothing silently: a sink that fails holds its records and
retries them in order while the other sinks go on; a full queue drops, counts (in
``/metrics``) and says so, without making requests wait; shutdown, SIGTERM to ``portkey-mw
serve`` included, writes out what is held, and gives up on a dead sink after its deadline
with a log line naming the loss."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

import portkey_mw.logevents
from portkey_mw import Gateway, LogEvent, LogSink, ServerSettings, hookimpl
from portkey_mw.logevents import LogDispatcher
from portkey_mw.plugin import PluginManager
from tests.conftest import DEADLINE, in_process, standalone_gateway
from tests.log_sinks import PLUGIN_NAME
from tests.planted import ADMIN_KEY

ROOT = Path(__file__).resolve().parent.parent
ADMIN = {"x-portkey-api-key": ADMIN_KEY}
CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}


# -- sinks ------------------------------------------------------------------------------


class ListSink(LogSink):
    """Keeps what it is given; ``fail`` first writes raise, and every write raises while
    ``down`` is set."""

    def __init__(self, name: str = "list", *, fail: int = 0, down: bool = False) -> None:
        self.name = name
        self.fail = fail
        self.down = down
        self.events: list[LogEvent] = []
        self.attempts: list[list[str]] = []  # trace ids of each batch tried

    async def write(self, events: Sequence[LogEvent]) -> None:
        self.attempts.append([event.trace_id for event in events])
        if self.fail:
            self.fail -= 1
            raise OSError("disk full")
        if self.down:
            raise OSError("database is locked")
        self.events.extend(events)

    @property
    def trace_ids(self) -> list[str]:
        return [event.trace_id for event in self.events]


class StuckSink(ListSink):
    """A write that does not return until ``release`` is set (a hung database)."""

    def __init__(self, name: str = "stuck") -> None:
        super().__init__(name)
        self.release = asyncio.Event()

    async def write(self, events: Sequence[LogEvent]) -> None:
        await self.release.wait()
        await super().write(events)


class SlowSink(ListSink):
    """Each batch takes ``delay`` seconds."""

    def __init__(self, delay: float, name: str = "slow") -> None:
        super().__init__(name)
        self.delay = delay

    async def write(self, events: Sequence[LogEvent]) -> None:
        await asyncio.sleep(self.delay)
        await super().write(events)


class SinksPlugin:
    def __init__(self, sinks: Sequence[LogSink]) -> None:
        self.sinks = sinks

    @hookimpl
    def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
        for sink in self.sinks:
            register(sink)


# -- helpers ----------------------------------------------------------------------------


def event(n: int) -> LogEvent:
    return LogEvent(
        trace_id=f"t{n}",
        started_at=0.0,
        endpoint="chat_completions",
        method="POST",
        path="/v1/chat/completions",
        status=200,
        latency_ms=1.0,
    )


async def until(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        await asyncio.sleep(0.01)


def gateway_with(*sinks: LogSink, **settings: Any) -> Gateway:
    manager = PluginManager()
    manager.load_entry_points()
    manager.register(SinksPlugin(sinks), "test-sinks")
    return Gateway(ServerSettings.model_validate({"mock": True, **settings}), plugins=manager)


@asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[httpx.AsyncClient]:
    async with in_process(gateway) as client:
        yield client


async def chat(client: httpx.AsyncClient, trace_id: str) -> httpx.Response:
    return await client.post(
        "/v1/chat/completions",
        json=CHAT,
        headers={"x-portkey-provider": "mock", "x-portkey-trace-id": trace_id},
    )


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    """The log-delivery samples of ``/metrics``, by name and sink."""
    response = await client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if "sink" in sample.labels:
                found[(sample.name, sample.labels["sink"])] = sample.value
    return found


def lines(logs: list[dict[str, Any]], start: str, sink: str) -> list[dict[str, Any]]:
    return [e for e in logs if str(e["event"]).startswith(start) and e.get("sink") == sink]


# -- tests ------------------------------------------------------------------------------


async def test_a_sink_that_fails_then_recovers_loses_nothing_and_keeps_order() -> None:
    sink = ListSink(fail=4)
    dispatcher = LogDispatcher([sink], retry_first=0.01, retry_max=0.04)
    dispatcher.start()
    for n in range(600):  # more than one batch
        await dispatcher.emit(event(n))
    await until(lambda: sink.fail < 4, "the first write failed")
    for n in range(600, 700):  # arriving while the sink is failing
        await dispatcher.emit(event(n))
    async with asyncio.timeout(DEADLINE):
        await dispatcher.flush()
    assert sink.trace_ids == [f"t{n}" for n in range(700)]
    # the failed batch was retried whole, as it was, until it went through
    assert sink.attempts[0] == sink.attempts[4] and len(sink.attempts[0]) == 256
    (stats,) = dispatcher.stats()
    assert (stats.failures, stats.dropped, stats.depth, stats.delivered) == (4, 0, 0, 700)
    await dispatcher.aclose()


async def test_a_sink_that_is_down_does_not_hold_up_the_others() -> None:
    down, up = ListSink("db", down=True), ListSink("lines")
    gateway = gateway_with(down, up)
    gateway.logs.retry_max = 0.2  # keep the test short once the sink is back
    async with running(gateway) as client:
        for n in range(10):
            assert (await chat(client, f"r{n}")).status_code == 200
        await until(lambda: len(up.events) == 10, "the working sink got every record")
        await until(lambda: len(down.attempts) >= 2, "the down sink was retried")

        found = await scrape(client)
        assert found[("portkey_mw_log_queue_depth", "db")] == 10  # held, not dropped
        assert found[("portkey_mw_log_sink_failures_total", "db")] >= 2
        assert found[("portkey_mw_log_records_dropped_total", "db")] == 0
        assert found[("portkey_mw_log_sink_failures_total", "lines")] == 0
        # /metrics' own sink is not held up either: every request is counted
        response = await client.get("/metrics", headers=ADMIN)
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "portkey_mw_requests_total"
        )
        assert counted == 10

        down.down = False
        await until(lambda: len(down.events) == 10, "the recovered sink got every record")
        assert down.trace_ids == up.trace_ids
        found = await scrape(client)
        assert found[("portkey_mw_log_queue_depth", "db")] == 0


async def test_a_full_queue_drops_counts_and_warns_without_slowing_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(portkey_mw.logevents, "DROP_REPORT_INTERVAL", 0.1)
    stuck = StuckSink()
    gateway = gateway_with(stuck, logging={"queue_size": 5})
    with capture_logs() as logs:
        async with running(gateway) as client:
            for n in range(20):
                started = time.monotonic()
                async with asyncio.timeout(DEADLINE):  # the old dispatcher waited forever here
                    response = await chat(client, f"r{n}")
                assert response.status_code == 200
                assert time.monotonic() - started < 2.0
            await gateway.settled()
            found = await scrape(client)
            assert found[("portkey_mw_log_records_dropped_total", "stuck")] == 15
            assert found[("portkey_mw_log_queue_depth", "stuck")] == 5

            def reported() -> int:
                return sum(e["dropped"] for e in lines(logs, "log records dropped", "stuck"))

            await until(lambda: reported() == 15, "every drop reported in a warning line")
            warnings = lines(logs, "log records dropped", "stuck")
            assert all(e["log_level"] == "warning" and e["queue_size"] == 5 for e in warnings)
            assert warnings[-1]["dropped_total"] == 15
            stuck.release.set()
            await until(lambda: len(stuck.events) == 5, "the held records were written")
    assert stuck.trace_ids == [f"r{n}" for n in range(5)]  # the first ones, kept in order


async def test_drop_warnings_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(portkey_mw.logevents, "DROP_REPORT_INTERVAL", 0.3)
    stuck = StuckSink()
    dispatcher = LogDispatcher([stuck], queue_size=1, drain_timeout=0.1)
    dispatcher.start()
    with capture_logs() as logs:
        for n in range(100):  # one burst: emit never yields to the loop
            await dispatcher.emit(event(n))
        assert [e["dropped"] for e in lines(logs, "log records dropped", "stuck")] == [1]
        await until(
            lambda: len(lines(logs, "log records dropped", "stuck")) == 2,
            "the burst's other drops reported once the interval passed",
        )
        assert [e["dropped"] for e in lines(logs, "log records dropped", "stuck")] == [1, 98]
        stuck.release.set()
        await dispatcher.aclose()
    assert stuck.trace_ids == ["t0"]
    assert dispatcher.stats()[0].dropped == 99


async def test_shutdown_writes_out_every_held_record() -> None:
    slow = SlowSink(0.3)
    gateway = gateway_with(slow)
    with capture_logs() as logs:
        async with running(gateway) as client:
            responses = await asyncio.gather(*(chat(client, f"r{n}") for n in range(30)))
            assert {response.status_code for response in responses} == {200}
            await gateway.settled()
            assert gateway.logs.stats()[0].depth > 0  # still held when shutdown starts
    assert sorted(slow.trace_ids) == sorted(f"r{n}" for n in range(30))
    assert not [e for e in logs if str(e["event"]).startswith("log records lost")]


@pytest.mark.parametrize("dead", ["failing", "hanging"])
async def test_shutdown_gives_up_on_a_dead_sink_after_its_deadline(dead: str) -> None:
    sink: ListSink = ListSink("db", down=True) if dead == "failing" else StuckSink("db")
    lines_sink = ListSink("lines")
    gateway = gateway_with(sink, lines_sink, logging={"drain_timeout": 0.5})
    with capture_logs() as logs:
        async with running(gateway) as client:
            for n in range(3):
                assert (await chat(client, f"r{n}")).status_code == 200
            await until(lambda: len(lines_sink.events) == 3, "the working sink got them")
            stopping = time.monotonic()
        took = time.monotonic() - stopping
    assert took < 0.5 + 2.5, took  # the deadline, plus the rest of shutdown
    (lost,) = lines(logs, "log records lost at shutdown", "db")
    assert lost["lost"] == 3 and lost["log_level"] == "error"
    assert gateway.logs.stats()[0].dropped == 3
    assert not lines(logs, "log records lost at shutdown", "lines")


def test_sigterm_to_serve_writes_out_every_queued_record(tmp_path: Path) -> None:
    """``portkey-mw serve`` gets SIGTERM while a slow sink still holds most records: the
    lifespan shutdown writes every one of them out before the process exits."""
    site = tmp_path / "site"  # installs tests/log_sinks.py as an entry-point plugin
    dist = site / "portkey_mw_test_sinks-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: portkey-mw-test-sinks\n")
    (dist / "entry_points.txt").write_text(f"[portkey_mw]\n{PLUGIN_NAME} = tests.log_sinks\n")
    records = tmp_path / "records.jsonl"
    settings = {
        "mock": True,
        "store": {"enabled": False},
        # a second per batch: the records of requests sent in a burst are still held
        "plugins": {"settings": {PLUGIN_NAME: {"path": str(records), "delay": 1.0}}},
    }
    path = tmp_path / "portkey-mw.yaml"
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    pythonpath = [str(site), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    sent = [f"sigterm-{n}" for n in range(20)]

    def written() -> list[dict[str, Any]]:
        if not records.exists():
            return []
        return [orjson.loads(line) for line in records.read_bytes().splitlines()]

    with standalone_gateway(path, env={"PYTHONPATH": os.pathsep.join(pythonpath)}) as server:
        with httpx.Client(base_url=server.root, timeout=DEADLINE) as client:
            for trace_id in sent:
                response = client.post(
                    "/v1/chat/completions",
                    json=CHAT,
                    headers={"x-portkey-provider": "mock", "x-portkey-trace-id": trace_id},
                )
                assert response.status_code == 200
        assert len(written()) < len(sent)  # records are still queued
        signalled = time.time()
    # Leaving the block sent SIGTERM (Popen.terminate) and waited for the process to end.
    got = written()
    assert sorted(record["trace_id"] for record in got) == sorted(sent)
    assert max(record["written"] for record in got) > signalled  # written out at shutdown
    assert server.output is not None
    output = server.output.read_text()
    assert "Application shutdown complete" in output
    assert "log records lost" not in output
    requests = [
        orjson.loads(line)
        for line in output.splitlines()
        if line.startswith("{") and '"event":"request"' in line
    ]
    assert sorted(r["trace_id"] for r in requests) == sorted(sent)  # the structlog lines too
