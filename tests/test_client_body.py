"""The client's streamed request body (portkey_mw.client_body): its limits, its single use,
and the transport reporting its failure instead of the upstream abort it causes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from portkey_mw.client_body import UPLOAD_LIMIT, ClientBody, declared_length
from portkey_mw.errors import GatewayError, PayloadTooLarge
from portkey_mw.transport import AiohttpTransport, UpstreamRequest
from portkey_mw.types import Message
from tests.fake_upstream import FakeUpstream


def messages(*items: Message) -> Callable[[], Awaitable[Message]]:
    """An ASGI ``receive`` giving ``items`` in order, then waiting forever."""
    queue = list(items)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


def chunk(data: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": data, "more_body": more}


async def drain(body: ClientBody) -> list[bytes]:
    return [piece async for piece in body]


async def test_the_body_arrives_chunk_by_chunk_and_is_counted() -> None:
    body = ClientBody(messages(chunk(b"ab"), chunk(b""), chunk(b"cd", more=False)), 4, None)
    assert await drain(body) == [b"ab", b"cd"]
    assert body.size == 4 and body.failure is None and body.done.is_set()


async def test_past_the_limit_is_a_413_naming_the_setting() -> None:
    body = ClientBody(messages(chunk(b"abc"), chunk(b"de")), 4, None, setting=UPLOAD_LIMIT)
    with pytest.raises(PayloadTooLarge, match=r"limit of 4 bytes \(server.max_upload_bytes\)"):
        await drain(body)
    assert body.failure is not None and body.failure.status == 413
    assert body.done.is_set()  # the disconnect watcher may read from here on


async def test_a_client_that_leaves_is_a_499() -> None:
    body = ClientBody(messages(chunk(b"ab"), {"type": "http.disconnect"}), 100, None)
    with pytest.raises(GatewayError) as raised:
        await drain(body)
    assert raised.value.status == 499 and body.failure is raised.value


async def test_the_deadline_counts_from_the_request_arrival() -> None:
    body = ClientBody(messages(chunk(b"ab")), 100, 0.2)
    await asyncio.sleep(0.3)  # the time before an upstream starts reading counts too
    with pytest.raises(GatewayError) as raised:
        await drain(body)
    assert raised.value.status == 408 and raised.value.code == "body_timeout"


async def test_a_second_reading_is_refused_keeping_the_first_reason() -> None:
    body = ClientBody(messages(chunk(b"ab", more=False)), 100, None)
    assert await drain(body) == [b"ab"]
    with pytest.raises(GatewayError) as raised:
        await drain(body)
    assert raised.value.code == "upload_spent" and body.failure is raised.value

    failed = ClientBody(messages(chunk(b"abc")), 2, None)
    with pytest.raises(PayloadTooLarge):
        await drain(failed)
    with pytest.raises(PayloadTooLarge):  # a retry reports why the first attempt stopped
        await drain(failed)


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    assert declared_length({"content-length": "10"}, 10) == 10
    assert declared_length({"content-length": "ten"}, 10) is None
    assert declared_length({}, 10) is None
    with pytest.raises(PayloadTooLarge, match=r"server.max_body_bytes"):
        declared_length({"content-length": "11"}, 10)


async def test_the_transport_reports_the_body_failure_not_the_abort(
    fake: FakeUpstream,
) -> None:
    transport = AiohttpTransport()
    await transport.open()
    try:
        for ending, status in (({"type": "http.disconnect"}, 499), (chunk(b"x" * 64), 413)):
            body = ClientBody(messages(chunk(b"x" * 32), ending), 64, None)
            request = UpstreamRequest(
                "POST", fake.base_url + "/files", body=body, timeout=10, stream=True
            )
            with pytest.raises(GatewayError) as raised:
                answer = await transport.send(request)
                await answer.aclose()
            assert raised.value is body.failure and raised.value.status == status
    finally:
        await transport.aclose()
