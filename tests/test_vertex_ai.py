"""The vertex-ai provider: service-account tokens through google-auth, Gemini and Claude.

The service account's ``token_uri`` points at the fake upstream, so google-auth's real
JWT-bearer flow runs against loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs

import openai
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.test_anthropic import MESSAGE
from tests.test_google import RESPONSE

PREFIX = "/v1/projects/proj-1/locations/us-central1/publishers"
#: The operator's service account names a token endpoint on the fake upstream (loopback),
#: which the outbound policy refuses unless allowed.
LOOPBACK_TOKEN_ENDPOINT = {"allow": ["127.0.0.1"]}


def service_account(token_uri: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "proj-1",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "gateway@proj-1.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    vertex = {
        "provider": "vertex-ai",
        "custom_host": f"{upstream_server.host_url}/v1",
        "vertex_project_id": "proj-1",
        "vertex_region": "us-central1",
        "vertex_service_account_json": service_account(f"{upstream_server.host_url}/token"),
    }
    path = server_file(
        tmp_path_factory.mktemp("vertex"),
        upstream_server,
        configs={"vertex": vertex},
        outbound=LOOPBACK_TOKEN_ENDPOINT,
    )
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str = "vertex") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="OPENAI_API_KEY",  # the portkey-ai SDK's placeholder: no client key
        max_retries=0,
        default_headers={"x-portkey-config": config},
    )


TOKEN = Reply(json={"access_token": "ya29.fake-token", "expires_in": 3600, "token_type": "Bearer"})


def test_gemini_on_vertex_with_a_service_account(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/token", TOKEN)
    fake.script(f"{PREFIX}/google/models/gemini-2.5-flash:generateContent", Reply(json=RESPONSE))
    fake.script(f"{PREFIX}/google/models/gemini-2.5-flash:generateContent", Reply(json=RESPONSE))
    for _ in range(2):
        completion = sdk(gateway).chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "Weather?"}]
        )
        assert completion.choices[0].finish_reason == "tool_calls"
    token_request, first, second = fake.requests  # one token, reused for both calls
    assert token_request.path == "/token"
    grant = parse_qs(token_request.body.decode())
    assert grant["grant_type"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
    assert first.headers["authorization"] == "Bearer ya29.fake-token"
    assert second.headers["authorization"] == "Bearer ya29.fake-token"


def test_claude_on_vertex(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/token", TOKEN)
    fake.script(f"{PREFIX}/anthropic/models/claude-fake-1@20250101:rawPredict", Reply(json=MESSAGE))
    completion = sdk(gateway).chat.completions.create(
        model="claude-fake-1@20250101", messages=[{"role": "user", "content": "Weather?"}]
    )
    assert completion.choices[0].message.content == "I'll check the weather."
    sent = fake.requests[-1].json()
    assert sent["anthropic_version"] == "vertex-2023-10-16" and "model" not in sent


def test_client_access_token_without_key_file(gateway: RunningGateway, fake: FakeUpstream) -> None:
    config = orjson.dumps(
        {
            "provider": "vertex-ai",
            "custom_host": f"{fake.host_url}/v1",
            "vertex_project_id": "proj-1",
        }
    ).decode()
    fake.script(f"{PREFIX}/google/models/gemini-2.5-flash:generateContent", Reply(json=RESPONSE))
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="ya29.client-token",
        max_retries=0,
        default_headers={"x-portkey-config": config},
    )
    client.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}]
    )
    (seen,) = fake.requests
    assert seen.headers["authorization"] == "Bearer ya29.client-token"


def test_token_endpoint_refusal_is_a_401(tmp_path: object, fake: FakeUpstream) -> None:
    from pathlib import Path

    vertex = {
        "provider": "vertex-ai",
        "custom_host": f"{fake.host_url}/v1",
        "vertex_project_id": "proj-1",
        "vertex_service_account_json": service_account(f"{fake.host_url}/token"),
    }
    fake.script("/token", Reply(status=400, json={"error": "invalid_grant"}))
    path = server_file(
        Path(str(tmp_path)), fake, configs={"vertex": vertex}, outbound=LOOPBACK_TOKEN_ENDPOINT
    )
    with (
        mounted_gateway(path) as running,
        pytest.raises(
            openai.AuthenticationError, match=r"could not get a Google access token: invalid_grant$"
        ),
    ):
        sdk(running).chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "Hi"}]
        )


def test_claude_stream_on_vertex(gateway: RunningGateway, fake: FakeUpstream) -> None:
    from tests.test_anthropic import TEXT_AND_TOOL_STREAM

    fake.script("/token", TOKEN)
    fake.script(
        f"{PREFIX}/anthropic/models/claude-fake-1:streamRawPredict",
        Reply(stream=TEXT_AND_TOOL_STREAM, done=False),
    )
    chunks = list(
        sdk(gateway).chat.completions.create(
            model="claude-fake-1", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    names = [
        call.function.name
        for c in chunks
        if c.choices
        for call in c.choices[0].delta.tool_calls or []
        if call.function is not None and call.function.name
    ]
    assert text == "Let me check." and names == ["get_weather", "get_weather"]
