"""The Redis cache backend against a real ``redis-server`` on loopback."""

from __future__ import annotations

from pathlib import Path

import openai
import orjson

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream
from tests.redis_server import RedisServer


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
