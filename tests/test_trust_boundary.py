"""Credentials the server holds stay with the destination the operator bound them to.

Through real HTTP against ``portkey-mw serve``: a server file holds credentials of every
kind (an OpenAI key, an Anthropic key, a Google API key, an Azure key and an Azure AD
token, AWS keys with a session token, a Vertex access token and a service account), and an
attacker with no key of their own tries every steering header on every one of them, and a
cross-origin redirect from the upstream. The detector (``tests/detector.py``) stands where
the credentials would land: it must see nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests import planted
from tests.conftest import RunningGateway, server_file, standalone_gateway
from tests.detector import Detector
from tests.fake_upstream import FakeUpstream, Reply
from tests.test_vertex_ai import service_account

CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
TOKEN = Reply(json={"access_token": planted.VERTEX_TOKEN, "expires_in": 3600})


@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    with Detector() as running:
        yield running


@pytest.fixture(scope="module")
def account(upstream_server: FakeUpstream) -> dict[str, str]:
    """The operator's service account; its token endpoint is on the fake upstream."""
    info = service_account(f"{upstream_server.host_url}/token")
    planted.plant(info["private_key"])
    return info


def held_configs(fake: FakeUpstream, account: dict[str, str]) -> dict[str, Any]:
    """Named configs holding server credentials, none bound to a custom host: the
    canonical host is where each credential belongs."""
    aws = {
        "aws_access_key_id": planted.AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": planted.AWS_SECRET_ACCESS_KEY,
        "aws_session_token": planted.AWS_SESSION_TOKEN,
    }
    return {
        "openai-held": {"provider": "openai", "api_key": planted.OPENAI_KEY},
        "anthropic-held": {"provider": "anthropic", "api_key": planted.ANTHROPIC_KEY},
        "google-held": {"provider": "google", "api_key": planted.GOOGLE_KEY},
        "azure-held": {"provider": "azure-openai", "api_key": planted.AZURE_KEY},
        "azure-ad-held": {
            "provider": "azure-openai",
            "azure_ad_token": planted.AZURE_AD_TOKEN,
            "deployment_id": "gpt-4o",
        },
        "bedrock-held": {"provider": "bedrock", **aws},
        "vertex-token-held": {"provider": "vertex-ai", "api_key": planted.VERTEX_TOKEN},
        "vertex-account-held": {"provider": "vertex-ai", "vertex_service_account_json": account},
    }


def bound_configs(fake: FakeUpstream, account: dict[str, str]) -> dict[str, Any]:
    """The same credentials bound by the operator to the fake upstream, for the redirect."""
    held = held_configs(fake, account)
    hosts = {
        "openai-held": fake.base_url,
        "anthropic-held": fake.base_url,
        "google-held": f"{fake.host_url}/v1beta",
        "azure-held": f"{fake.host_url}/openai",
        "azure-ad-held": f"{fake.host_url}/openai",
        "bedrock-held": fake.host_url,
        "vertex-token-held": f"{fake.host_url}/v1",
        "vertex-account-held": f"{fake.host_url}/v1",
    }
    bound = {}
    for name, config in held.items():
        extra: dict[str, Any] = {"custom_host": hosts[name]}
        if config["provider"] == "bedrock":
            extra["aws_region"] = "us-east-1"
        if config["provider"] == "vertex-ai":
            extra.update(vertex_project_id="proj-1", vertex_region="us-central1")
        if config["provider"] == "azure-openai":
            extra["deployment_id"] = "gpt-4o"
        bound[name.replace("held", "bound")] = {**config, **extra}
    return bound


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream,
    account: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RunningGateway]:
    refused = service_account(f"{upstream_server.host_url}/token-refused")
    planted.plant(refused["private_key"])
    configs = {
        **held_configs(upstream_server, account),
        **bound_configs(upstream_server, account),
        "vertex-refused": {
            "provider": "vertex-ai",
            "vertex_project_id": "proj-1",
            "custom_host": f"{upstream_server.host_url}/v1",
            "vertex_service_account_json": refused,
        },
    }
    path = server_file(
        tmp_path_factory.mktemp("trust"),
        upstream_server,
        configs=configs,
        # The fake upstream stands in for Google's token endpoint: the operator allows it.
        outbound={"allow": ["127.0.0.1"]},
    )
    with standalone_gateway(path) as running:
        yield running


def post(gateway: RunningGateway, config: str, headers: dict[str, str]) -> httpx.Response:
    """A chat request with no key of the client's own."""
    return httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT,
        headers={"x-portkey-config": config, **headers},
        timeout=20,
    )


HELD = [
    "openai-held",
    "anthropic-held",
    "google-held",
    "azure-held",
    "azure-ad-held",
    "bedrock-held",
    "vertex-token-held",
    "vertex-account-held",
]
#: (config, header, value): every header that would move a credential elsewhere; {to} is
#: the detector's URL, {at} its host and port
STEERING = [(config, "x-portkey-custom-host", "{to}/v1") for config in HELD] + [
    ("azure-held", "x-portkey-azure-resource-name", "{at}/x?"),
    ("azure-held", "x-portkey-azure-deployment-id", "../../steal"),
    ("azure-ad-held", "x-portkey-azure-resource-name", "{at}/x?"),
    ("bedrock-held", "x-portkey-aws-region", "x@{at}/?"),
    ("vertex-token-held", "x-portkey-vertex-region", "x@{at}/?"),
    ("vertex-token-held", "x-portkey-vertex-project-id", "attacker-project"),
    ("vertex-account-held", "x-portkey-vertex-region", "{at}/x?"),
    ("vertex-account-held", "x-portkey-vertex-project-id", "attacker-project"),
]


@pytest.mark.parametrize(("config", "header", "value"), STEERING)
def test_no_header_steers_a_server_held_credential(
    gateway: RunningGateway, detector: Detector, config: str, header: str, value: str
) -> None:
    value = value.format(to=detector.url, at=f"{detector.host}:{detector.port}")
    before = detector.hits
    reply = post(gateway, config, {header: value})
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["param"] == header
    assert error["code"] in {"custom_host_not_allowed", "destination_option_not_allowed"}
    assert header in error["message"] and "held by the server" in error["message"]
    assert detector.hits == before


def test_userinfo_and_forwarded_host_are_refused(
    gateway: RunningGateway, detector: Detector
) -> None:
    before = detector.hits
    with_userinfo = f"http://user:{planted.USERINFO_PASSWORD}@{detector.host}:{detector.port}"
    assert post(gateway, "openai-held", {"x-portkey-custom-host": with_userinfo}).status_code == 400
    forwarded = post(
        gateway,
        "openai-bound",
        {"x-portkey-forward-headers": "host", "host": f"{detector.host}:{detector.port}"},
    )
    assert forwarded.status_code == 400
    assert forwarded.json()["error"]["code"] == "invalid_forward_headers"
    framing = post(
        gateway, "openai-bound", {"x-portkey-forward-headers": "content-length,transfer-encoding"}
    )
    assert framing.status_code == 400 and "content-length" in framing.json()["error"]["message"]
    assert detector.hits == before


#: the path each bound config calls on the fake upstream
BOUND_PATHS = {
    "openai-bound": "/v1/chat/completions",
    "anthropic-bound": "/v1/messages",
    "google-bound": "/v1beta/models/gemini-2.5-flash:generateContent",
    "azure-bound": "/openai/deployments/gpt-4o/chat/completions",
    "azure-ad-bound": "/openai/deployments/gpt-4o/chat/completions",
    "bedrock-bound": "/model/gemini-2.5-flash/converse",
    "vertex-token-bound": (
        "/v1/projects/proj-1/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    ),
    "vertex-account-bound": (
        "/v1/projects/proj-1/locations/us-central1/publishers/google/models/"
        "gemini-2.5-flash:generateContent"
    ),
}


@pytest.mark.parametrize("config", sorted(BOUND_PATHS))
@pytest.mark.parametrize("status", [307, 302])
def test_a_redirect_to_another_origin_is_never_followed(
    gateway: RunningGateway, fake: FakeUpstream, detector: Detector, config: str, status: int
) -> None:
    fake.script("/token", TOKEN)
    location = {"location": f"{detector.url}/steal?from={config}"}
    fake.script(BOUND_PATHS[config], Reply(status=status, headers=location, json={}))
    before = detector.hits
    reply = post(gateway, config, {})
    assert reply.status_code == 502, reply.text
    error = reply.json()["error"]
    assert error["code"] == "upstream_redirect"
    assert "never follows" in error["message"]
    assert "from=" not in error["message"]  # query strings are not repeated
    assert any(r.path == BOUND_PATHS[config] for r in fake.requests)
    assert detector.hits == before


def test_the_clients_own_key_may_go_to_the_clients_host(
    gateway: RunningGateway, detector: Detector
) -> None:
    """The rule is about server-held credentials: a client's own key goes where it says."""
    before = detector.hits
    config = orjson.dumps({"provider": "openai"}).decode()
    reply = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT,
        headers={
            "x-portkey-config": config,
            "authorization": "Bearer sk-the-clients-own",
            "x-portkey-custom-host": f"{detector.url}/v1",
        },
        timeout=20,
    )
    assert reply.status_code < 500 or reply.status_code == 502
    detector.wait_for_hits(before + 1)
    assert detector.seen(b"sk-the-clients-own")


# -- service accounts and ambient credentials -------------------------------------------------


def test_a_client_service_account_may_only_name_googles_token_endpoint(
    gateway: RunningGateway, detector: Detector
) -> None:
    rogue = service_account(f"{detector.url}/token")
    vertex = {"provider": "vertex-ai", "vertex_project_id": "p", "custom_host": detector.url}
    before = detector.hits
    by_header = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT,
        headers={
            "x-portkey-config": orjson.dumps(vertex).decode(),
            "x-portkey-vertex-service-account-json": json.dumps(rogue),
        },
        timeout=20,
    )
    in_config = httpx.post(
        f"{gateway.base_url}/chat/completions",
        json=CHAT,
        headers={
            "x-portkey-config": orjson.dumps(
                {**vertex, "vertex_service_account_json": rogue}
            ).decode()
        },
        timeout=20,
    )
    for reply in (by_header, in_config):
        assert reply.status_code == 400, reply.text
        assert reply.json()["error"]["code"] == "invalid_token_uri"
        assert reply.json()["error"]["param"] == "vertex_service_account_json"
    assert detector.hits == before


def test_a_token_endpoints_answer_is_not_echoed(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """The operator's token endpoint refuses; the client learns the OAuth error code only."""
    internal = "internal-token-endpoint-detail-8472"
    fake.script(
        "/token-refused",
        Reply(status=400, json={"error": "invalid_grant", "error_description": internal}),
    )
    reply = post(gateway, "vertex-refused", {})
    assert reply.status_code == 401
    message = reply.json()["error"]["message"]
    assert message.endswith("could not get a Google access token: invalid_grant")
    assert internal not in reply.text


def test_an_operator_token_endpoint_still_passes_the_outbound_policy(
    tmp_path: Path, fake: FakeUpstream, detector: Detector
) -> None:
    """Even a service account in the server file cannot make the gateway POST to an
    address the policy refuses (127.0.0.2 is not allowed here)."""
    vertex = {
        "provider": "vertex-ai",
        "vertex_project_id": "p",
        "custom_host": fake.host_url,
        "vertex_service_account_json": service_account(f"{detector.url}/token"),
    }
    path = server_file(tmp_path, fake, configs={"vertex": vertex})
    before = detector.hits
    with standalone_gateway(path) as running:
        reply = post(running, "vertex", {})
    assert reply.status_code == 403, reply.text
    assert reply.json()["error"]["code"] == "destination_not_allowed"
    assert detector.hits == before


@pytest.fixture(scope="module")
def ambient(tmp_path_factory: pytest.TempPathFactory, detector: Detector) -> dict[str, str]:
    """An environment whose Application Default Credentials would call the detector."""
    path = tmp_path_factory.mktemp("adc") / "adc.json"
    path.write_text(json.dumps(service_account(f"{detector.url}/token")), encoding="utf-8")
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(path)}


def test_nothing_a_client_sends_uses_ambient_credentials(
    tmp_path: Path, fake: FakeUpstream, detector: Detector, ambient: dict[str, str]
) -> None:
    vertex = {"provider": "vertex-ai", "vertex_project_id": "p", "custom_host": fake.host_url}
    path = server_file(tmp_path, fake, configs={"no-credentials": vertex})
    before = detector.hits
    with standalone_gateway(path, env=ambient) as running:
        inline = orjson.dumps(vertex).decode()
        for config in (inline, "no-credentials"):
            reply = post(running, config, {})
            assert reply.status_code == 401, reply.text
            assert "application_default_credentials" in reply.json()["error"]["message"]
        header_only = httpx.post(
            f"{running.base_url}/chat/completions",
            json=CHAT,
            headers={"x-portkey-provider": "vertex-ai", "x-portkey-vertex-project-id": "p"},
            timeout=20,
        )
        assert header_only.status_code == 401
    assert detector.hits == before


def test_ambient_credentials_serve_server_targets_when_the_operator_opts_in(
    tmp_path: Path, fake: FakeUpstream, detector: Detector, ambient: dict[str, str]
) -> None:
    from tests.test_google import RESPONSE

    vertex = {
        "provider": "vertex-ai",
        "vertex_project_id": "proj-1",
        "custom_host": f"{fake.host_url}/v1",
    }
    path = server_file(
        tmp_path,
        fake,
        configs={"ambient": vertex},
        plugins={"settings": {"portkey-mw.vertex-ai": {"application_default_credentials": True}}},
    )
    fake.script(BOUND_PATHS["vertex-token-bound"], Reply(json=RESPONSE))
    before = detector.hits
    with standalone_gateway(path, env=ambient) as running:
        reply = post(running, "ambient", {})
        assert reply.status_code == 200, reply.text
        assert detector.hits == before + 1  # the token request, by the operator's choice
        assert fake.requests[-1].headers["authorization"] == "Bearer detector-token"
        # A client's own config still cannot reach for the gateway's identity.
        assert post(running, orjson.dumps(vertex).decode(), {}).status_code == 401
        # Nor can a client steer the operator's ambient credential elsewhere.
        steered = post(running, "ambient", {"x-portkey-vertex-region": "europe-west4"})
        assert steered.status_code == 400
    assert detector.hits == before + 1
