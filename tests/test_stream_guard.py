"""StreamGuard: a stream is a success only when it ends properly with valid events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from portkey_mw.errors import GatewayError
from portkey_mw.streaming import StreamGuard


def event(content: str, finish: str | None = None) -> bytes:
    chunk = {"choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


async def upstream(*chunks: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    for chunk in chunks:
        if pause:
            await asyncio.sleep(pause)
        yield chunk


def relay(*chunks: bytes, idle: float = 5.0, pause: float = 0.0) -> tuple[bytes, str | None]:
    """Everything the guard let through, and the code of the failure that ended it."""

    async def run() -> tuple[bytes, str | None]:
        out = b""
        guard = StreamGuard(upstream(*chunks, pause=pause), provider="p", idle_timeout=idle)
        try:
            async for piece in guard:
                out += piece
        except GatewayError as failure:
            return out, failure.code
        return out, None

    return asyncio.run(run())


def test_complete_stream_passes_unchanged() -> None:
    body = event("a") + event("b", "stop") + b"data: [DONE]\n\n"
    assert relay(body[:7], body[7:30], body[30:]) == (body, None)


def test_good_events_before_a_bad_one_in_the_same_read_still_pass() -> None:
    out, code = relay(event("hello ") + b"data: {oops\n\n" + event("x", "stop"))
    assert out == event("hello ")
    assert code == "malformed_stream_chunk"


def test_truncated_stream_fails_after_relaying_what_came() -> None:
    out, code = relay(event("par"), event("tial"))
    assert out == event("par") + event("tial")
    assert code == "truncated_stream"


def test_empty_stream_is_truncated() -> None:
    assert relay() == (b"", "truncated_stream")


def test_finish_reason_without_done_gets_done() -> None:
    out, code = relay(event("x", "stop"))
    assert code is None and out == event("x", "stop") + b"data: [DONE]\n\n"


def test_error_event_fails_the_stream() -> None:
    out, code = relay(event("a"), b'data: {"error": {"message": "overloaded"}}\n\n')
    assert out == event("a") and code == "upstream_stream_error"


def test_silence_longer_than_the_idle_timeout() -> None:
    out, code = relay(event("a"), event("b", "stop"), idle=0.05, pause=0.5)
    assert (out, code) == (b"", "stream_idle_timeout")  # the first chunk came too late


def test_partial_event_is_held_until_complete() -> None:
    whole = event("abc", "stop")

    async def run() -> list[bytes]:
        guard = StreamGuard(upstream(whole[:10], whole[10:]), provider="p", idle_timeout=5)
        return [piece async for piece in guard]

    pieces = asyncio.run(run())
    assert pieces[0] == whole  # never the first 10 bytes alone


@pytest.mark.parametrize("keepalive", [b": ping\n\n", b"event: ping\ndata: \n\n"])
def test_comments_and_keepalives_pass(keepalive: bytes) -> None:
    out, code = relay(keepalive, event("x", "stop"), b"data: [DONE]\n\n")
    assert code is None and out.startswith(keepalive)


def test_steady_chunks_never_time_out_however_long_the_stream() -> None:
    chunks = [event(str(i)) for i in range(8)] + [event("end", "stop")]
    out, code = relay(*chunks, idle=0.2, pause=0.05)  # 0.45 s in all, 0.05 s apart
    assert code is None and out.endswith(b"data: [DONE]\n\n")


def test_a_slow_client_is_not_an_idle_upstream() -> None:
    async def run() -> str | None:
        guard = StreamGuard(
            upstream(event("a"), event("b", "stop")), provider="p", idle_timeout=0.05
        )
        try:
            async for _ in guard:
                await asyncio.sleep(0.2)  # the client is slow; the upstream had it all ready
        except GatewayError as failure:
            return failure.code
        return None

    assert asyncio.run(run()) is None


def test_cancellation_from_outside_is_not_a_timeout() -> None:
    async def run() -> bool:
        guard = StreamGuard(upstream(event("a"), pause=5), provider="p", idle_timeout=10)
        task = asyncio.ensure_future(anext(guard.__aiter__()))
        await asyncio.sleep(0.05)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return True
        return False

    assert asyncio.run(run())


def test_parsed_chunks_reach_listeners_that_join_after_the_first_event() -> None:
    from portkey_mw.streaming import split_done

    seen: list[str] = []

    async def run() -> bytes:
        guard = StreamGuard(
            upstream(event("a"), event("b", "stop"), b"data: [DONE]\n\n"),
            provider="p",
            idle_timeout=5,
        )
        chunks = guard.__aiter__()
        first = await anext(chunks)  # read before anyone listens, as the router does
        guard.chunks.add(lambda c: seen.append(c["choices"][0]["delta"].get("content", "")))
        guard.chunks.seal()
        return first + b"".join([chunk async for chunk in chunks])

    relayed = asyncio.run(run())
    assert seen == ["a", "b"]  # one parse, by the guard; the early chunk was kept for them
    body, done = split_done(relayed)
    assert done and body + b"data: [DONE]\n\n" == relayed
    assert split_done(event("a")) == (event("a"), False)
