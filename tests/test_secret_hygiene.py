"""Nothing secret is returned or logged: echoed credentials are masked, logs carry no text.

Through ``portkey-mw serve``. The planted-secret scan (``tests/secret_scan.py``) runs over
every test of the suite; the tests here provoke the places a secret would escape: an
upstream error that echoes the key it was sent, a guardrail whose results quote the
request, and error messages that name URLs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.fake_upstream import FakeUpstream, Reply
from tests.secret_scan import SCANNER

AWS = {
    "aws_access_key_id": planted.AWS_ACCESS_KEY_ID,
    "aws_secret_access_key": planted.AWS_SECRET_ACCESS_KEY,
    "aws_session_token": planted.AWS_SESSION_TOKEN,
    "aws_region": "us-east-1",
}
#: config name -> (config without custom_host, custom host suffix, upstream path, the
#: credentials it sends)
ECHOES = {
    "openai": (
        {"provider": "openai", "api_key": planted.OPENAI_KEY},
        "/v1",
        "/v1/chat/completions",
        [planted.OPENAI_KEY],
    ),
    "anthropic": (
        {"provider": "anthropic", "api_key": planted.ANTHROPIC_KEY},
        "/v1",
        "/v1/messages",
        [planted.ANTHROPIC_KEY],
    ),
    "google": (
        {"provider": "google", "api_key": planted.GOOGLE_KEY},
        "/v1beta",
        "/v1beta/models/m:generateContent",
        [planted.GOOGLE_KEY],
    ),
    "azure": (
        {"provider": "azure-openai", "api_key": planted.AZURE_KEY, "deployment_id": "d"},
        "/openai",
        "/openai/deployments/d/chat/completions",
        [planted.AZURE_KEY],
    ),
    "azure-ad": (
        {
            "provider": "azure-openai",
            "azure_ad_token": planted.AZURE_AD_TOKEN,
            "deployment_id": "d",
        },
        "/openai",
        "/openai/deployments/d/chat/completions",
        [planted.AZURE_AD_TOKEN],
    ),
    "bedrock": (
        {"provider": "bedrock", **AWS},
        "",
        "/model/m/converse",
        [planted.AWS_SESSION_TOKEN, planted.AWS_ACCESS_KEY_ID],
    ),
    "vertex": (
        {"provider": "vertex-ai", "api_key": planted.VERTEX_TOKEN, "vertex_project_id": "p"},
        "/v1",
        "/v1/projects/p/locations/us-central1/publishers/google/models/m:generateContent",
        [planted.VERTEX_TOKEN],
    ),
}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    configs = {
        name: {**config, "custom_host": upstream_server.host_url + suffix}
        for name, (config, suffix, _, _) in ECHOES.items()
    }
    configs["guarded"] = {
        "provider": "openai",
        "api_key": planted.OPENAI_KEY,
        "custom_host": upstream_server.base_url,
        "input_guardrails": [{"default.regexMatch": {"rule": "hunter"}}],
    }
    path = server_file(tmp_path_factory.mktemp("hygiene"), upstream_server, configs=configs)
    with standalone_gateway(path) as running:
        yield running


def chat(gateway: RunningGateway, config: str, text: str = "hi") -> httpx.Response:
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": text}]},
        headers={"x-portkey-config": config},
        timeout=20,
    )


@pytest.mark.parametrize("config", sorted(ECHOES))
@pytest.mark.parametrize("shape", ["json", "text"])
def test_an_upstream_that_echoes_the_credential_gets_it_masked(
    gateway: RunningGateway, fake: FakeUpstream, config: str, shape: str
) -> None:
    _, _, path, sent = ECHOES[config]
    words = "Incorrect API key provided: " + " and ".join(sent)
    if shape == "json":
        fake.script(path, Reply(status=401, json={"error": {"message": words, "type": "x"}}))
    else:
        fake.script(path, Reply(status=401, body=words.encode(), content_type="text/plain"))
    reply = chat(gateway, config)
    assert reply.status_code == 401, reply.text
    for secret in sent:
        assert secret not in reply.text
    assert "[redacted]" in reply.json()["error"]["message"]
    # The upstream did receive the credential: it was masked on the way back, not withheld.
    received = fake.requests[-1].headers
    assert any(sent[0] in value for value in received.values())


def test_logs_carry_no_request_text(gateway: RunningGateway, fake: FakeUpstream) -> None:
    secret_text = "my password is hunter2-do-not-log-me"
    reply = chat(gateway, "guarded", secret_text)
    assert reply.status_code == 200
    check = reply.json()["hook_results"]["before_request_hooks"][0]["checks"][0]
    # The client sees what the check found in its own text ...
    assert check["data"]["matchDetails"]["matchedText"] == "hunter"
    assert "hunter2-do-not-log-me" in check["data"]["textExcerpt"]
    # ... the log does not.
    record = logged(gateway, reply.headers["x-portkey-trace-id"])
    assert gateway.output is not None
    assert "hunter2-do-not-log-me" not in gateway.output.read_text(errors="replace")
    logged_check = record["hook_results"]["before_request_hooks"][0]["checks"][0]
    assert logged_check["verdict"] is True and "matchDetails" not in (logged_check["data"] or {})


def logged(gateway: RunningGateway, trace_id: str, deadline: float = 10.0) -> dict[str, Any]:
    """The request log line of ``trace_id`` (written after the response, in a batch)."""
    assert gateway.output is not None
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        for line in gateway.output.read_text(errors="replace").splitlines():
            if trace_id in line and '"request"' in line:
                record: dict[str, Any] = orjson.loads(line)
                return record
        time.sleep(0.02)
    raise AssertionError(f"no log line for {trace_id}")


def test_the_scan_finds_a_planted_value() -> None:
    """The suite-wide scan is live: a planted value in a response is a leak."""
    SCANNER.take()
    SCANNER.scan("a response", b'{"error": "' + planted.AZURE_KEY.encode() + b'"}')
    SCANNER.scan("a log line", orjson.dumps({"key": planted.AWS_SECRET_ACCESS_KEY}))
    found = SCANNER.take()
    assert len(found) == 2 and found[0].startswith("a response")


def test_the_scan_sees_every_http_response(gateway: RunningGateway) -> None:
    SCANNER.take()
    with httpx.stream("GET", f"{gateway.root}/health", headers={"x-probe": "1"}) as reply:
        reply.read()
    # A response carrying a planted value would be recorded: try one from the fake.
    from tests.fake_upstream import FakeUpstream as Fake

    with Fake() as echo:
        echo.script("/leak", Reply(json={"oops": planted.GOOGLE_KEY}))
        httpx.post(f"{echo.host_url}/leak", json={})
    leaks = SCANNER.take()
    assert leaks and "/leak" in leaks[0]
