"""Bounds: what a client or an upstream can make the gateway hold, walk or wait for.

Each bound is hit through real HTTP (``portkey-mw serve`` unless the bound belongs to the
gateway mounted in someone else's server), and the gateway answers a normal request
afterwards. The request heads of ``serve`` (header timeout and sizes) are tested in
``tests/test_server_bounds.py``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from portkey_mw import ServerSettings
from portkey_mw.config.resolve import INLINE_CACHE_BYTES, ConfigResolver
from tests.conftest import (
    RunningGateway,
    mounted_gateway,
    server_file,
    standalone_gateway,
)
from tests.detector import read_message
from tests.fake_upstream import FakeUpstream, Reply

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(
        tmp_path_factory.mktemp("bounds"),
        upstream_server,
        server={"max_body_bytes": 64 * 1024, "body_timeout": 0.5, "max_config_bytes": 2048},
    )
    with standalone_gateway(path) as running:
        yield running


def chat(
    gateway: RunningGateway, body: Any = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT if body is None else body,
        headers={
            "x-portkey-config": "openai-fake",
            "authorization": "Bearer sk-client",
            **(headers or {}),
        },
        timeout=30,
    )


def still_answers(gateway: RunningGateway) -> None:
    reply = chat(gateway)
    assert reply.status_code == 200, reply.text


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def test_json_nesting_is_bounded_everywhere(gateway: RunningGateway) -> None:
    body = httpx.post(
        f"{gateway.base_url}/chat/completions",
        content=b'{"model": "m", "messages": [], "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        headers={"x-portkey-config": "openai-fake", "content-type": "application/json"},
        timeout=30,
    )
    assert body.status_code == 400 and body.json()["error"]["code"] in {
        "json_too_deep",
        "invalid_json",
    }
    just_over = chat(gateway, {**CHAT, "x": nested(64)})
    assert just_over.status_code == 400, just_over.text
    assert just_over.json()["error"]["code"] == "json_too_deep"
    assert chat(gateway, {**CHAT, "x": nested(60)}).status_code == 200
    config = '{"provider": "openai", "override_params": {"x": ' + "[" * 100 + "]" * 100 + "}}"
    in_config = chat(gateway, headers={"x-portkey-config": config})
    assert in_config.status_code == 400 and in_config.json()["error"]["code"] == "json_too_deep"
    metadata = chat(
        gateway, headers={"x-portkey-metadata": orjson.dumps({"a": nested(100)}).decode()}
    )
    assert metadata.status_code == 400 and metadata.json()["error"]["code"] == "json_too_deep"
    still_answers(gateway)


def test_inline_configs_are_bounded(gateway: RunningGateway) -> None:
    config = {"provider": "openai", "override_params": {"padding": "p" * 3000}}
    reply = chat(gateway, headers={"x-portkey-config": orjson.dumps(config).decode()})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "config_too_large"
    assert "server.max_config_bytes" in reply.json()["error"]["message"]
    still_answers(gateway)


async def test_the_compiled_config_cache_is_bounded_by_bytes() -> None:
    """Clients choose config texts: many distinct large ones cannot grow the cache."""
    resolver = ConfigResolver(ServerSettings(), {"openai"})
    size = ServerSettings().server.max_config_bytes - 200
    for index in range(1500):
        config = {"provider": "openai", "override_params": {"pad": f"{index}" + "p" * size}}
        await resolver.resolve({"x-portkey-config": orjson.dumps(config).decode()})
    assert resolver._inline_bytes <= INLINE_CACHE_BYTES
    assert len(resolver._inline) <= INLINE_CACHE_BYTES // size + 1


def test_a_slow_body_is_timed_out(gateway: RunningGateway) -> None:
    host, port = gateway.host_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b'x-portkey-config: openai-fake\r\ncontent-length: 1000\r\n\r\n{"model":'
        )
        started = time.monotonic()
        answer = read_message(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"body_timeout" in answer
    assert time.monotonic() - started < 5
    still_answers(gateway)


def test_forward_headers_never_name_framing_or_credentials(gateway: RunningGateway) -> None:
    for names in (
        "host",
        "Content-Length",
        "transfer-encoding",
        "keep-alive",
        "x-portkey-config",
    ):
        reply = chat(gateway, headers={"x-portkey-forward-headers": names})
        assert reply.status_code == 400, names
        assert reply.json()["error"]["code"] == "invalid_forward_headers"
    config = {"provider": "openai", "custom_host": "http://x", "forward_headers": ["connection"]}
    reply = chat(gateway, headers={"x-portkey-config": orjson.dumps(config).decode()})
    assert reply.status_code == 400 and "never forwards" in reply.json()["error"]["message"]
    still_answers(gateway)


def test_an_oversized_upstream_event_is_an_error(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    event = b"data: " + b"x" * (9 * 1024 * 1024) + b"\n\n"
    fake.script("/v1/chat/completions", Reply(stream=[event]))
    reply = chat(gateway, {**CHAT, "stream": True})
    assert reply.status_code == 502, reply.text[:300]
    assert reply.json()["error"]["code"] == "upstream_event_too_large"
    still_answers(gateway)


def test_an_oversized_upstream_body_is_an_error(tmp_path: Path, fake: FakeUpstream) -> None:
    path = server_file(tmp_path, fake, server={"max_upstream_body_bytes": 1024})
    with standalone_gateway(path) as running:
        fake.script("/v1/chat/completions", Reply(json={"padding": "x" * 5000}))
        reply = chat(running)
        assert reply.status_code == 502
        assert reply.json()["error"]["code"] == "upstream_body_too_large"
        still_answers(running)


# -- headers, for a gateway mounted in another app's server -------------------------------------


def test_mounted_gateway_bounds_headers(tmp_path: Path, fake: FakeUpstream) -> None:
    path = server_file(
        tmp_path, fake, server={"max_header_bytes": 16384, "max_header_value_bytes": 4096}
    )
    with mounted_gateway(path) as running:
        one = chat(running, headers={"x-big": "v" * 5000})
        assert one.status_code == 431 and "x-big" in one.json()["error"]["message"]
        many = chat(running, headers={f"x-h{i}": "v" * 3000 for i in range(8)})
        assert many.status_code == 431
        assert many.json()["error"]["code"] == "request_header_fields_too_large"
        still_answers(running)


# -- the mock provider --------------------------------------------------------------------------


def test_serve_loads_the_mock_only_when_the_server_file_enables_it(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    path = server_file(tmp_path, fake, mock=False)
    with standalone_gateway(path) as running:
        reply = httpx.post(
            f"{running.base_url}/chat/completions",
            json=CHAT,
            headers={"x-portkey-provider": "mock"},
            timeout=10,
        )
        assert reply.status_code == 400
        assert reply.json()["error"]["code"] == "unknown_provider"
        still_answers(running)


@pytest.mark.parametrize(
    ("endpoint", "body", "param"),
    [
        ("embeddings", {"model": "mock-embed", "input": "x", "dimensions": 200000}, "dimensions"),
        ("embeddings", {"model": "mock-embed", "input": ["x"] * 2048, "dimensions": 4096}, "input"),
        ("images/generations", {"prompt": "p", "n": 10000}, "n"),
    ],
)
def test_the_mock_is_bounded(
    gateway: RunningGateway, endpoint: str, body: dict[str, Any], param: str
) -> None:
    started = time.monotonic()
    reply = httpx.post(
        f"{gateway.base_url}/{endpoint}",
        json=body,
        headers={"x-portkey-provider": "mock"},
        timeout=30,
    )
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["param"] == param
    assert time.monotonic() - started < 2  # refused, not computed
    config = {"provider": "mock", "mock_latency_ms": 10**9}
    slow = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT,
        headers={"x-portkey-config": orjson.dumps(config).decode()},
        timeout=30,
    )
    assert slow.status_code == 400 and slow.json()["error"]["param"] == "mock_latency_ms"
    still_answers(gateway)


# -- the upstream pool --------------------------------------------------------------------------


def test_one_slow_host_cannot_take_the_pool(tmp_path: Path, fake: FakeUpstream) -> None:
    """Streams held open to one host use up its share of the pool, not everyone's."""
    with FakeUpstream() as other:
        configs = {"other": {"provider": "openai", "custom_host": other.base_url}}
        path = server_file(
            tmp_path,
            fake,
            configs=configs,
            server={"max_connections": 8, "max_connections_per_host": 2, "connect_timeout": 1},
        )
        gate = threading.Event()
        with standalone_gateway(path) as running:
            for _ in range(2):
                fake.script("/v1/chat/completions", Reply(gate=gate))
            held = [
                threading.Thread(target=chat, args=(running, {**CHAT, "stream": True}))
                for _ in range(2)
            ]
            try:
                for thread in held:
                    thread.start()
                fake.wait_for(lambda: len(fake.requests) == 2)
                started = time.monotonic()
                elsewhere = chat(running, headers={"x-portkey-config": "other"})
                assert elsewhere.status_code == 200
                assert time.monotonic() - started < 1
                # The slow host's third request waits for a free slot, boundedly.
                third = chat(running)
                assert third.status_code in (502, 504, 408), third.text
            finally:
                gate.set()
                for thread in held:
                    thread.join(20)
            still_answers(running)
