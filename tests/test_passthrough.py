"""Pass-through: ``/v1/proxy/…`` and unmatched ``/v1/…`` paths forwarded untranslated to
the resolved provider (a fake upstream on 127.0.0.1), with the provider's credentials; and
the attacks on it -- paths that climb out of the base URL, a header steering a virtual
key's credential, the client's own ``Authorization`` riding along, an oversized body."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from portkey_mw import LogEvent
from portkey_mw.errors import InvalidRequest
from portkey_mw.passthrough import checked_suffix, upstream_url
from tests import planted
from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

VAULT_KEY = planted.plant("sk-planted-proxy-vault-2wE5rT8yU1")
CLIENT_KEY = "sk-client-own-key-9pO6iU3yT0"
LIMIT = 64 * 1024  # the suite's server.max_body_bytes (tests/conftest.py)
DEADLINE = 10.0


class Records:
    """Keeps every log event the gateway emits (beside its sinks)."""

    def __init__(self) -> None:
        self.events: list[LogEvent] = []


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp: Path = tmp_path_factory.mktemp("proxy")
    path = server_file(
        tmp,
        upstream_server,
        store={"url": f"sqlite+aiosqlite:///{tmp / 'control.db'}", "refresh_interval": 0.2},
        configs={
            "two-targets": {
                "strategy": {"mode": "fallback"},
                "targets": [
                    {"provider": "openai", "custom_host": upstream_server.base_url},
                    {"provider": "openai", "custom_host": upstream_server.base_url},
                ],
            },
            "anthropic-fake": {"provider": "anthropic", "custom_host": upstream_server.base_url},
        },
    )
    with mounted_gateway(path) as running:
        yield running


@pytest.fixture(scope="module")
def records(gateway: RunningGateway) -> Records:
    kept = Records()
    logs = gateway.app.logs
    emit = logs.emit

    async def keep(event: LogEvent) -> None:
        kept.events.append(event)
        await emit(event)

    logs.emit = keep
    return kept


@pytest.fixture(scope="module")
def virtual_key(gateway: RunningGateway, upstream_server: FakeUpstream) -> str:
    reply = httpx.post(
        f"{gateway.base_url}/virtual-keys",
        json={
            "name": "proxy",
            "provider": "openai",
            "key": VAULT_KEY,
            "custom_host": upstream_server.base_url,
        },
        headers=planted.ADMIN,
        timeout=DEADLINE,
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["slug"])


def own_key(fake: FakeUpstream) -> dict[str, str]:
    """A client that brings its own OpenAI key and host."""
    return {
        "authorization": f"Bearer {CLIENT_KEY}",
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": fake.base_url,
    }


def test_a_get_through_proxy_reaches_the_path_and_query(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/files/file-1", Reply(json={"id": "file-1", "object": "file"}))
    reply = httpx.get(
        f"{gateway.base_url}/proxy/files/file-1?limit=2&order=asc",
        headers={**own_key(fake), "openai-beta": "assistants=v2", "x-other": "no"},
        timeout=DEADLINE,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"id": "file-1", "object": "file"}
    sent = fake.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("GET", "/v1/files/file-1", "limit=2&order=asc")
    assert sent.headers["authorization"] == f"Bearer {CLIENT_KEY}"
    assert sent.headers["openai-beta"] == "assistants=v2"  # allow-listed
    assert "x-other" not in sent.headers  # not allow-listed
    assert not any(name.startswith("x-portkey-") for name in sent.headers)


def test_a_post_to_an_unmatched_route_streams_its_body_upstream(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/assistants", Reply(json={"id": "asst_1"}, headers={"x-request-id": "r-9"}))

    def body() -> Iterator[bytes]:  # chunked: no content-length, sent as it is produced
        yield b'{"model": "gpt-4o",'
        yield b' "name": "helper"}'

    reply = httpx.post(
        f"{gateway.base_url}/assistants",
        content=body(),
        headers={**own_key(fake), "content-type": "application/json"},
        timeout=DEADLINE,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"id": "asst_1"}
    assert reply.headers["x-request-id"] == "r-9"
    assert reply.headers["x-portkey-provider"] == "openai"
    sent = fake.requests[-1]
    assert (sent.method, sent.path) == ("POST", "/v1/assistants")
    assert sent.body == b'{"model": "gpt-4o", "name": "helper"}'
    assert sent.headers["content-type"] == "application/json"


def test_other_methods_and_an_upstream_error_pass_through(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/files/file-2", Reply(status=404, json={"error": {"message": "no file"}}))
    reply = httpx.delete(f"{gateway.base_url}/proxy/files/file-2", headers=own_key(fake))
    assert reply.status_code == 404
    assert reply.json() == {"error": {"message": "no file"}}  # untranslated
    assert fake.requests[-1].method == "DELETE"


def test_a_streamed_answer_is_relayed_as_it_arrives(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    gate = threading.Event()
    events: list[bytes | dict[str, Any]] = [
        {"type": "response.created"},
        {"type": "response.completed"},
    ]
    fake.script("/v1/threads/runs", Reply(stream=events, gate=gate))
    try:
        with httpx.stream(
            "POST",
            f"{gateway.base_url}/proxy/threads/runs",
            json={"stream": True},
            headers=own_key(fake),
            timeout=DEADLINE,
        ) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            chunks = reply.iter_raw()
            first = next(chunks)
            # the upstream holds the rest behind the gate: the first event came on its own
            assert b"response.created" in first
            assert b"response.completed" not in first
            gate.set()
            rest = b"".join(chunks)
    finally:
        gate.set()
    assert b"response.completed" in rest and rest.rstrip().endswith(b"[DONE]")


def test_a_virtual_keys_credential_is_used_and_the_clients_is_not_forwarded(
    gateway: RunningGateway, fake: FakeUpstream, virtual_key: str
) -> None:
    fake.script("/v1/batches", Reply(json={"object": "list", "data": []}))
    reply = httpx.get(
        f"{gateway.base_url}/proxy/batches",
        headers={
            "x-portkey-virtual-key": virtual_key,
            "authorization": f"Bearer {CLIENT_KEY}",
            "x-api-key": CLIENT_KEY,
            # a forward list naming the client's credentials changes nothing
            "x-portkey-forward-headers": "authorization,x-api-key",
        },
        timeout=DEADLINE,
    )
    assert reply.status_code == 200, reply.text
    sent = fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {VAULT_KEY}"
    assert CLIENT_KEY not in str(sent.headers)


def test_a_virtual_key_cannot_be_steered_by_a_custom_host_header(
    gateway: RunningGateway, fake: FakeUpstream, virtual_key: str
) -> None:
    made = httpx.post(
        f"{gateway.base_url}/virtual-keys",
        json={"name": "canonical", "provider": "openai", "key": VAULT_KEY},
        headers=planted.ADMIN,
        timeout=DEADLINE,
    )
    assert made.status_code == 200, made.text
    steer = {"x-portkey-custom-host": "http://127.0.0.2:1/v1"}
    reply = httpx.get(
        f"{gateway.base_url}/proxy/files",
        headers={"x-portkey-virtual-key": made.json()["slug"], **steer},
        timeout=DEADLINE,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "custom_host_not_allowed"
    assert fake.requests == []
    # A key the operator bound to a host goes there whatever the header says.
    fake.script("/v1/files", Reply(json={"data": []}))
    bound = httpx.get(
        f"{gateway.base_url}/proxy/files",
        headers={"x-portkey-virtual-key": virtual_key, **steer},
        timeout=DEADLINE,
    )
    assert bound.status_code == 200, bound.text
    assert fake.requests[-1].headers["authorization"] == f"Bearer {VAULT_KEY}"


@pytest.mark.parametrize(
    "suffix",
    [
        "/proxy/%2e%2e/%2e%2e/admin",
        "/proxy/files%2f..%2fadmin",
        "/proxy//evil.com/steal",
        "/proxy/@evil.com/steal",
        "/proxy/https:%2f%2fevil.com",
        "/proxy/http:evil.com",
        "/proxy/files%5c..%5cadmin",
        "/fine-tuning/..%2f..%2fadmin",
    ],
)
def test_a_path_leaving_the_base_url_is_refused_before_any_call(
    gateway: RunningGateway, fake: FakeUpstream, virtual_key: str, suffix: str
) -> None:
    # Sent raw: httpx would otherwise normalise the dots away before they left the test.
    url = httpx.URL(gateway.base_url).copy_with(
        raw_path=(httpx.URL(gateway.base_url).raw_path + suffix.encode())
    )
    reply = httpx.get(url, headers={"x-portkey-virtual-key": virtual_key}, timeout=DEADLINE)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["code"] == "invalid_proxy_path"
    assert fake.requests == []


@pytest.mark.parametrize(
    "suffix",
    [
        "/../../admin",
        "/a/..",
        "/a\\b",
        "/%2E%2E/x",
        "/x%252e",
        "//evil.com",
        "/u@evil.com",
        "/https://evil.com",
        "/javascript:x",
        "/a b",
        "/a\x00",
    ],
)
def test_the_suffix_check_refuses_every_way_out(suffix: str) -> None:
    # (a literal ``..`` is normalised by HTTP clients before it is sent: checked here)
    with pytest.raises(InvalidRequest) as refused:
        upstream_url("https://api.example.com/v1", suffix, "")
    assert refused.value.code == "invalid_proxy_path"


def test_the_suffix_check_keeps_ordinary_paths() -> None:
    assert checked_suffix("/models/gemini-pro:generateContent") == (
        "/models/gemini-pro:generateContent"
    )
    url = upstream_url("https://api.example.com/v1/", "/files/file-1/content", "a=1")
    assert url == "https://api.example.com/v1/files/file-1/content?a=1"


def test_a_body_over_the_limit_is_refused(gateway: RunningGateway, fake: FakeUpstream) -> None:
    declared = httpx.post(
        f"{gateway.base_url}/proxy/files",
        content=b"x" * (LIMIT + 1),
        headers=own_key(fake),
        timeout=DEADLINE,
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["type"]
    assert fake.requests == []  # refused on its content-length

    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // 1024 + 2):
            yield b"y" * 1024

    fake.script("/v1/uploads", Reply(json={"id": "never"}))
    streamed = httpx.post(
        f"{gateway.base_url}/proxy/uploads",
        content=chunks(),
        headers=own_key(fake),
        timeout=DEADLINE,
    )
    assert streamed.status_code == 413, streamed.text


def test_a_config_with_several_targets_is_refused(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    reply = httpx.get(
        f"{gateway.base_url}/proxy/files",
        headers={"x-portkey-config": "two-targets", "authorization": f"Bearer {CLIENT_KEY}"},
        timeout=DEADLINE,
    )
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "proxy_single_target"
    assert fake.requests == []


def test_anthropic_pass_through_sends_its_key_header(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/messages/batches", Reply(json={"data": []}))
    reply = httpx.get(
        f"{gateway.base_url}/proxy/messages/batches",
        headers={
            "x-portkey-config": "anthropic-fake",
            "authorization": f"Bearer {CLIENT_KEY}",
            "anthropic-beta": "message-batches-2024-09-24",
        },
        timeout=DEADLINE,
    )
    assert reply.status_code == 200, reply.text
    sent = fake.requests[-1]
    assert sent.headers["x-api-key"] == CLIENT_KEY
    assert sent.headers["anthropic-beta"] == "message-batches-2024-09-24"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in sent.headers


def test_a_provider_that_cannot_pass_through_is_named(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    reply = httpx.get(
        f"{gateway.base_url}/proxy/models",
        headers={"x-portkey-provider": "bedrock", "authorization": f"Bearer {CLIENT_KEY}"},
        timeout=DEADLINE,
    )
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert "bedrock" in error["message"] and "proxy" in error["message"]
    # a local server's entry has no public base URL: custom_host it is
    local = httpx.get(
        f"{gateway.base_url}/proxy/api/tags",
        headers={"x-portkey-provider": "ollama"},
        timeout=DEADLINE,
    )
    assert local.status_code == 400
    assert "'ollama' has no base URL for pass-through" in local.json()["error"]["message"]
    assert fake.requests == []


def test_one_log_record_per_request(
    gateway: RunningGateway, fake: FakeUpstream, records: Records
) -> None:
    fake.script("/v1/vector_stores", Reply(json={"data": []}))
    reply = httpx.get(f"{gateway.base_url}/vector_stores", headers=own_key(fake), timeout=DEADLINE)
    assert reply.status_code == 200, reply.text
    trace = reply.headers["x-portkey-trace-id"]
    end = time.monotonic() + DEADLINE
    while not [e for e in records.events if e.trace_id == trace]:
        assert time.monotonic() < end, "no log record"
        time.sleep(0.01)
    gateway.settle()
    [event] = [e for e in records.events if e.trace_id == trace]
    assert (event.endpoint, event.provider, event.status) == ("proxy", "openai", 200)
    assert event.path == "/v1/vector_stores"
    assert event.method == "GET"
    assert event.latency_ms > 0


def test_an_upstream_echoing_the_key_has_it_masked(
    gateway: RunningGateway, fake: FakeUpstream, virtual_key: str
) -> None:
    echo = {"error": {"message": f"key {VAULT_KEY} is revoked"}}
    fake.script("/v1/files", Reply(status=401, json=echo, headers={"x-request-id": VAULT_KEY}))
    reply = httpx.get(
        f"{gateway.base_url}/proxy/files",
        headers={"x-portkey-virtual-key": virtual_key},
        timeout=DEADLINE,
    )
    assert reply.status_code == 401
    assert "is revoked" in reply.text
    assert VAULT_KEY not in reply.text and VAULT_KEY not in str(reply.headers)
