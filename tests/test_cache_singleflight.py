"""Single-flight: identical cacheable misses in flight together make one upstream call.

Through the gateway, in process, against the fake upstream; the upstream holds its answer
behind a gate until every request of the burst is waiting, so the burst really overlaps.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest

from portkey_mw import Gateway, LogSink, ServerSettings, hookimpl
from portkey_mw.plugin import PluginManager
from portkey_mw.singleflight import HANDOVER, Flights
from tests.conftest import in_process
from tests.fake_upstream import FakeUpstream, Reply
from tests.test_logging import ListSink

BURST = 50
DEADLINE = 20.0
CHAT = "/v1/chat/completions"


def headers(fake: FakeUpstream, api_key: str = "sk-burst", **extra: str) -> dict[str, str]:
    config = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "cache": {"mode": "simple", "max_age": 60},
    }
    return {
        "authorization": f"Bearer {api_key}",
        "x-portkey-config": orjson.dumps(config).decode(),
        **extra,
    }


def chat(question: str = "what is single-flight?", **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": question}], **extra}


Scenario = Callable[[httpx.AsyncClient, Gateway], Awaitable[None]]


def run(scenario: Scenario, **settings: Any) -> ListSink:
    """Run ``scenario`` against an in-process gateway; the log records it wrote."""
    sink = ListSink()

    class SinkPlugin:
        @hookimpl
        def register_log_sinks(self, register: Callable[[LogSink], None]) -> None:
            register(sink)

    async def main() -> None:
        manager = PluginManager()
        manager.load_entry_points()
        manager.register(SinkPlugin(), "list-sink")
        options = {"routing": {"circuit_breaker": {"enabled": False}}, **settings}
        gateway = Gateway(ServerSettings.from_mapping(options), plugins=manager)
        async with in_process(gateway) as client:
            client.timeout = httpx.Timeout(DEADLINE)
            await scenario(client, gateway)

    asyncio.run(main())
    return sink


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (never a fixed sleep) until it holds, or fail after DEADLINE."""
    end = time.monotonic() + DEADLINE
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


def flights(gateway: Gateway) -> Flights:
    assert gateway.cache.flights is not None
    return gateway.cache.flights


def content(reply: httpx.Response) -> str:
    """The answer's text, from a complete body or an SSE stream."""
    assert reply.status_code == 200, reply.text
    if reply.headers["content-type"].startswith("text/event-stream"):
        text = ""
        for line in reply.text.splitlines():
            if line.startswith("data: {"):
                for choice in orjson.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
        assert reply.text.rstrip().endswith("data: [DONE]")
        return text
    return str(reply.json()["choices"][0]["message"]["content"])


def statuses(replies: list[httpx.Response]) -> list[str]:
    return sorted(reply.headers["x-portkey-cache-status"] for reply in replies)


def test_a_burst_of_identical_misses_makes_one_upstream_call(fake: FakeUpstream) -> None:
    gate = threading.Event()
    fake.script(CHAT, Reply(gate=gate))
    replies: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        burst = [
            asyncio.create_task(client.post(CHAT, json=chat(), headers=headers(fake)))
            for _ in range(BURST)
        ]
        await until(lambda: flights(gateway).followers == BURST - 1, "the burst to wait")
        await until(lambda: len(fake.requests) == 1, "the leader's upstream call")
        gate.set()
        replies.extend(await asyncio.gather(*burst))
        gateway_settled = await client.post(CHAT, json=chat(), headers=headers(fake))
        assert gateway_settled.headers["x-portkey-cache-status"] == "HIT"
        assert "x-portkey-cache-coalesced" not in gateway_settled.headers

    sink = run(scenario)
    assert len(fake.requests) == 1
    assert len({content(reply) for reply in replies}) == 1
    assert statuses(replies) == ["HIT"] * (BURST - 1) + ["MISS"]
    followers = [r for r in replies if r.headers.get("x-portkey-cache-coalesced") == "true"]
    assert len(followers) == BURST - 1
    records = [event.to_dict() for event in sink.events]
    coalesced = [record for record in records if record.get("coalesced")]
    assert len(coalesced) == BURST - 1
    assert all(r["cache_status"] == "HIT" and r["cost_usd"] in (0.0, None) for r in coalesced)


def test_a_streamed_burst_makes_one_upstream_call(fake: FakeUpstream) -> None:
    # The upstream sends its first event, then holds the rest: followers join mid-stream.
    gate = threading.Event()
    fake.script(CHAT, Reply(gate=gate))
    replies: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        leader = asyncio.create_task(
            client.post(CHAT, json=chat(stream=True), headers=headers(fake))
        )
        await until(lambda: len(fake.requests) == 1, "the leader's upstream call")
        # Most followers stream too; some ask for the complete answer.
        followers = [
            asyncio.create_task(
                client.post(CHAT, json=chat(stream=i % 5 != 0), headers=headers(fake))
            )
            for i in range(BURST - 1)
        ]
        await until(lambda: flights(gateway).followers == BURST - 1, "the burst to wait")
        gate.set()
        replies.extend(await asyncio.gather(leader, *followers))

    run(scenario)
    assert len(fake.requests) == 1
    answers = {content(reply) for reply in replies}
    assert len(answers) == 1 and answers != {""}
    assert statuses(replies) == ["HIT"] * (BURST - 1) + ["MISS"]
    streamed = [r for r in replies if r.headers["content-type"].startswith("text/event-stream")]
    assert len(streamed) == 1 + (BURST - 1) - len(range(0, BURST - 1, 5))


def test_different_keys_and_tenants_do_not_coalesce(fake: FakeUpstream) -> None:
    gate = threading.Event()
    fake.script(CHAT, *(Reply(gate=gate) for _ in range(4)))
    variants = [
        (chat(), headers(fake)),
        (chat("another question"), headers(fake)),  # another key
        (chat(), headers(fake, api_key="sk-other-tenant")),  # another tenant's credentials
        (chat(), headers(fake, **{"x-portkey-cache-namespace": "tenant-b"})),
    ]
    replies: list[httpx.Response] = []

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        tasks = [
            asyncio.create_task(client.post(CHAT, json=body, headers=sent))
            for body, sent in variants
        ]
        # Each of them reaches the upstream while the others are still in flight.
        await until(lambda: len(fake.requests) == len(variants), "every variant upstream")
        assert flights(gateway).followers == 0
        gate.set()
        replies.extend(await asyncio.gather(*tasks))

    run(scenario)
    assert statuses(replies) == ["MISS"] * len(variants)
    assert len(fake.requests) == len(variants)


def test_followers_of_a_failed_leader_go_upstream_themselves(fake: FakeUpstream) -> None:
    gate = threading.Event()
    fake.script(CHAT, Reply(status=500, gate=gate))
    replies: list[httpx.Response] = []
    burst = 5

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        tasks = [
            asyncio.create_task(client.post(CHAT, json=chat(), headers=headers(fake)))
            for _ in range(burst)
        ]
        await until(lambda: flights(gateway).followers == burst - 1, "the burst to wait")
        gate.set()
        replies.extend(await asyncio.gather(*tasks))

    sink = run(scenario)
    codes = sorted(reply.status_code for reply in replies)
    assert codes == [200] * (burst - 1) + [500]  # the leader's failure was not shared
    assert len(fake.requests) == burst  # the leader's call, then one each, unqueued
    assert not any(event.to_dict().get("coalesced") for event in sink.events)


def test_a_follower_times_out_on_its_own_timeout(fake: FakeUpstream) -> None:
    gate = threading.Event()
    fake.script(CHAT, Reply(gate=gate))
    timeout_ms = 300

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        leader = asyncio.create_task(client.post(CHAT, json=chat(), headers=headers(fake)))
        await until(lambda: len(fake.requests) == 1, "the leader's upstream call")
        started = time.monotonic()
        short = headers(fake, **{"x-portkey-request-timeout": str(timeout_ms)})
        follower = await client.post(CHAT, json=chat(), headers=short)
        waited = time.monotonic() - started
        assert follower.status_code == 408, follower.text
        assert follower.json()["error"]["code"] == "request_timeout"
        assert timeout_ms / 1000 <= waited < timeout_ms / 1000 + 5
        assert not leader.done()  # the leader is still in flight
        gate.set()
        assert (await leader).status_code == 200

    sink = run(scenario)
    assert len(fake.requests) == 1
    timed_out = [e.to_dict() for e in sink.events if e.status == 408]
    assert len(timed_out) == 1 and timed_out[0]["coalesced"] is True


def test_coalescing_can_be_turned_off(fake: FakeUpstream) -> None:
    gate = threading.Event()
    burst = 5
    fake.script(CHAT, *(Reply(gate=gate) for _ in range(burst)))

    async def scenario(client: httpx.AsyncClient, gateway: Gateway) -> None:
        assert gateway.cache.flights is None
        tasks = [
            asyncio.create_task(client.post(CHAT, json=chat(), headers=headers(fake)))
            for _ in range(burst)
        ]
        await until(lambda: len(fake.requests) == burst, "every request upstream")
        gate.set()
        assert all(reply.status_code == 200 for reply in await asyncio.gather(*tasks))

    run(scenario, cache={"coalesce": False})
    assert len(fake.requests) == burst


@pytest.mark.parametrize("stream", [False, True])
def test_a_leader_whose_client_left_hands_the_flight_over(stream: bool) -> None:
    async def scenario() -> None:
        registry = Flights()
        leader, leading = registry.join("k")
        assert leader is not None and leading
        waiting = [
            asyncio.create_task(leader.follow(stream=stream, include_usage=False)) for _ in range(3)
        ]
        await until(lambda: leader.followers == 3, "the followers to wait")
        leader.abandon()
        assert all(outcome is HANDOVER for outcome in await asyncio.gather(*waiting))
        successor, leading = registry.join("k")  # the first follower back leads anew
        assert successor is not None and successor is not leader and leading
        again, leading = registry.join("k")
        assert again is successor and not leading
        registry.land(successor)
        assert len(registry) == 0

    asyncio.run(scenario())


def test_a_stream_past_the_replay_bound_takes_no_new_followers() -> None:
    async def scenario() -> None:
        registry = Flights(max_stream_bytes=10)

        async def upstream() -> Any:
            for _ in range(3):
                yield b"data: 12345\n\n"

        flight, _ = registry.join("k")
        assert flight is not None
        relayed = [chunk async for chunk in flight.tee(upstream())]
        assert len(relayed) == 3  # the leader's own stream is never cut
        assert registry.join("k") == (None, False)  # the start is gone: go alone
        flight.complete(b'{"choices": []}')
        joined, leading = registry.join("k")
        assert joined is flight and not leading  # done: the complete answer replays

    asyncio.run(scenario())
