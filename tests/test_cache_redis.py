"""The Redis cache backend against a real ``redis-server`` on loopback."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import orjson
import pytest

from tests.conftest import RunningGateway, free_port, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream

REDIS = shutil.which("redis-server")


class RedisServer:
    """``redis-server`` in a subprocess, with no persistence, restartable on its port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert REDIS is not None, "redis-server is not installed (.ci/run installs it)"
        self.proc = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 0.2) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if REDIS is None:
        # CI installs redis-server (.ci/run) and must run these; a developer's machine
        # without it skips them, saying what to install.
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server is not installed; .ci/run installs it")
        pytest.skip("needs redis-server (Debian package redis-server)")
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def gateway_settings(tmp_path: Path, fake: FakeUpstream, port: int, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    return server_file(
        folder,
        fake,
        cache={"backend": "redis"},
        plugins={"settings": {"portkey-mw.redis-cache": {"url": f"redis://127.0.0.1:{port}/0"}}},
    )


def ask(gateway: RunningGateway, fake: FakeUpstream) -> str:
    config = {
        "provider": "openai",
        "custom_host": fake.base_url,
        "cache": {"mode": "simple", "max_age": 60},
    }
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk",
        max_retries=0,
        default_headers={"x-portkey-config": orjson.dumps(config).decode()},
    )
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "shared cache"}]
    )
    assert raw.parse().choices[0].message.content == "echo: shared cache"
    return str(raw.headers["x-portkey-cache-status"])


def test_two_gateways_share_the_cache(
    tmp_path: Path, fake: FakeUpstream, redis_server: RedisServer
) -> None:
    first = gateway_settings(tmp_path, fake, redis_server.port, "a")
    second = gateway_settings(tmp_path, fake, redis_server.port, "b")
    with mounted_gateway(first) as gateway_a, mounted_gateway(second) as gateway_b:
        assert ask(gateway_a, fake) == "MISS"
        assert ask(gateway_b, fake) == "HIT"  # stored by the other gateway
    assert len(fake.requests) == 1


def test_redis_going_away_never_fails_a_request(
    tmp_path: Path, fake: FakeUpstream, redis_server: RedisServer
) -> None:
    with mounted_gateway(gateway_settings(tmp_path, fake, redis_server.port, "a")) as gateway:
        assert ask(gateway, fake) == "MISS"
        assert ask(gateway, fake) == "HIT"
        redis_server.stop()
        assert ask(gateway, fake) == "MISS"  # answered by the provider, not an error
        assert ask(gateway, fake) == "MISS"
        redis_server.start()  # back, empty: the cache works again
        assert ask(gateway, fake) == "MISS"
        assert ask(gateway, fake) == "HIT"
    assert len(fake.requests) == 4  # the two hits cost nothing upstream
