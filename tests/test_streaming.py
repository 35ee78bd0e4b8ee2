"""Streams are relayed as they arrive, and a client that leaves closes the upstream request."""

from __future__ import annotations

import threading

import httpx
import openai
import pytest

from tests.conftest import RunningGateway
from tests.fake_upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "stream me a few words please"}]


def sdk(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-test",
        max_retries=0,
        default_headers={"x-portkey-config": "openai-fake"},
    )


def test_first_chunk_arrives_before_upstream_finishes(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    gate = threading.Event()  # the upstream holds the rest of its stream until this is set
    fake.script("/v1/chat/completions", Reply(gate=gate))
    try:
        stream = sdk(gateway).chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, timeout=10
        )
        first = next(iter(stream))
        assert first.choices[0].delta.role == "assistant"
        # The client holds a chunk while the upstream stream is still open.
        assert fake.completed_streams == 0 and not gate.is_set()
    finally:
        gate.set()
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
    assert text == "echo: stream me a few words please"
    fake.wait_for(lambda: fake.completed_streams == 1)


def test_client_disconnect_closes_upstream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    gate = threading.Event()
    fake.script("/v1/chat/completions", Reply(gate=gate))
    try:
        with (
            httpx.Client(timeout=10) as client,
            client.stream(
                "POST",
                gateway.base_url + "/chat/completions",
                headers={"x-portkey-config": "openai-fake", "authorization": "Bearer sk-test"},
                json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
            ) as response,
        ):
            assert response.status_code == 200
            first = next(response.iter_raw())
            assert first.startswith(b"data: ")
            # Leaving the block closes the client connection mid-stream.
        # The gateway notices and closes its upstream connection while the upstream still
        # has events to send: the fake sees its stream's client go away.
        fake.wait_for(lambda: fake.disconnects == 1, timeout=10)
        assert fake.completed_streams == 0
    finally:
        gate.set()


def test_upstream_dropping_mid_stream_ends_with_error_event(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """Bytes were already sent, so the client gets an OpenAI-style error event, not silence."""
    fake.script("/v1/chat/completions", Reply(drop="mid_stream"))
    received = []
    with sdk(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as stream:
        try:
            for chunk in stream:
                received.append(chunk)
        except openai.APIError as exc:
            assert "provider" in exc.message
        else:
            raise AssertionError("a truncated upstream stream must end with an error event")
    assert received, "the chunk sent before the drop reaches the client"


def test_client_leaving_a_pending_request_closes_upstream(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """Not only streams: a client that gives up on a slow answer frees the upstream too."""
    gate = threading.Event()
    fake.script("/v1/chat/completions", Reply(gate=gate))  # held until the gate opens
    try:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                gateway.base_url + "/chat/completions",
                headers={"x-portkey-config": "openai-fake", "authorization": "Bearer sk-test"},
                json={"model": "gpt-4o-mini", "messages": MESSAGES},
                timeout=httpx.Timeout(10, read=0.5),
            )
        fake.wait_for(lambda: fake.aborted == 1, timeout=10)
    finally:
        gate.set()
