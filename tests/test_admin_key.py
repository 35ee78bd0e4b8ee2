"""Every ``/v1/admin/*`` route needs the admin key; without a configured key they are closed.

Through ``portkey-mw serve``. The suite's gateways get the planted admin key from
``PORTKEY_MW_ADMIN_KEY`` (see ``conftest.py``); the tests here also run a gateway with no
key at all, and one with only the key's SHA-256 in its server file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner

from portkey_mw.auth.admin import hash_key
from portkey_mw.cli import main
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream
from tests.planted import ADMIN, ADMIN_KEY

ROUTES = [
    ("GET", "/v1/admin/circuits"),
    ("GET", "/v1/admin/cache"),
    ("DELETE", "/v1/admin/cache"),
    ("GET", "/v1/admin/guardrails"),
    ("GET", "/v1/admin/no-such-route"),
    ("POST", "/v1/admin"),
]


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    path = server_file(tmp_path_factory.mktemp("admin"), upstream_server)
    with standalone_gateway(path) as running:
        yield running


def call(
    gateway: RunningGateway, method: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.request(method, gateway.root + path, headers=headers or {}, timeout=10)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_admin_routes_refuse_without_the_key(
    gateway: RunningGateway, method: str, path: str
) -> None:
    for headers in (
        {},
        {"x-portkey-api-key": "wrong-key-wrong-key-wrong"},
        {"authorization": "Bearer wrong-key-wrong-key-wrong"},
        {"authorization": f"Basic {ADMIN_KEY}"},  # only Bearer carries it
        {"x-portkey-api-key": ADMIN_KEY[:-1]},
    ):
        reply = call(gateway, method, path, headers)
        assert reply.status_code == 401, (headers, reply.text)
        error = reply.json()["error"]
        assert error["code"] in {"admin_key_required", "invalid_admin_key"}
        assert set(error) >= {"message", "type", "code"}


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_admin_routes_answer_with_the_key(gateway: RunningGateway, method: str, path: str) -> None:
    for headers in (ADMIN, {"authorization": f"Bearer {ADMIN_KEY}"}):
        reply = call(gateway, method, path, headers)
        expected = 404 if path.endswith(("no-such-route", "admin")) else 200
        assert reply.status_code == expected, reply.text


def test_without_a_configured_key_the_admin_api_is_closed(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    path = server_file(tmp_path, fake)
    with standalone_gateway(path, unset=("PORTKEY_MW_ADMIN_KEY",)) as running:
        for method, route in ROUTES:
            reply = call(running, method, route, ADMIN)
            assert reply.status_code == 403, reply.text
            error = reply.json()["error"]
            assert error["code"] == "admin_key_not_configured"
            assert "PORTKEY_MW_ADMIN_KEY" in error["message"]
            assert "admin.key_sha256" in error["message"]
        # The data plane is not affected.
        assert httpx.get(running.root + "/health").status_code == 200


def test_the_server_file_may_hold_only_the_keys_hash(tmp_path: Path, fake: FakeUpstream) -> None:
    key = "another-admin-key-from-a-hash-0001"
    path = server_file(tmp_path, fake, admin={"key_sha256": hash_key(key)})
    assert key not in path.read_text()
    with standalone_gateway(path, unset=("PORTKEY_MW_ADMIN_KEY",)) as running:
        assert (
            call(running, "GET", "/v1/admin/cache", {"x-portkey-api-key": key}).status_code == 200
        )
        assert call(running, "GET", "/v1/admin/cache", ADMIN).status_code == 401


def test_a_short_admin_key_stops_the_gateway_from_starting(tmp_path: Path) -> None:
    from portkey_mw import Gateway
    from portkey_mw.errors import InvalidConfig

    os.environ["PORTKEY_MW_ADMIN_KEY"] = "short"
    try:
        with pytest.raises(InvalidConfig, match="at least 16 characters"):
            Gateway()
    finally:
        os.environ["PORTKEY_MW_ADMIN_KEY"] = ADMIN_KEY


def test_the_cli_sends_the_admin_key(gateway: RunningGateway) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["cache", "stats", "--url", gateway.root])
    assert ok.exit_code == 0, ok.output
    wrong = runner.invoke(
        main, ["cache", "stats", "--url", gateway.root, "--admin-key", "wrong-wrong-wrong-wrong"]
    )
    assert wrong.exit_code == 1 and "401" in wrong.output
    hashed = runner.invoke(main, ["admin", "hash-key", "--key", "k" * 20])
    assert hashed.exit_code == 0 and hashed.output.strip() == hash_key("k" * 20)
    assert runner.invoke(main, ["admin", "hash-key", "--key", "short"]).exit_code == 1


def test_admin_output_never_shows_userinfo_keys_or_queries(
    tmp_path: Path, fake: FakeUpstream
) -> None:
    """A failing custom host opens a circuit; the circuit's listing shows no query string
    (a key may live there) and userinfo is refused before it could get that far."""
    from tests.conftest import free_port
    from tests.planted import OPENAI_KEY

    closed = f"http://127.0.0.1:{free_port()}/v1?key={OPENAI_KEY}"
    path = server_file(
        tmp_path,
        fake,
        routing={"circuit_breaker": {"enabled": True, "failure_threshold": 1}},
        configs={"closed": {"provider": "openai", "api_key": OPENAI_KEY, "custom_host": closed}},
    )
    with standalone_gateway(path) as running:
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(
            f"{running.base_url}/chat/completions",
            json=chat,
            headers={"x-portkey-config": "closed"},
            timeout=20,
        )
        assert reply.status_code == 502
        circuits = call(running, "GET", "/v1/admin/circuits", ADMIN).json()["circuits"]
        assert circuits and all("?" not in c["base_url"] for c in circuits)
        userinfo = {
            "provider": "openai",
            "custom_host": f"http://user:pw@127.0.0.1:{fake.port}/v1",
        }
        refused = httpx.post(
            f"{running.base_url}/chat/completions",
            json=chat,
            headers={"x-portkey-config": orjson.dumps(userinfo).decode()},
            timeout=20,
        )
        assert refused.status_code == 400 and "user name or password" in refused.text
