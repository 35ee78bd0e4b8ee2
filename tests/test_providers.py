"""Provider adapters: the OpenAI-compatible catalogue and the mock provider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from portkey_mw import Gateway, ServerSettings
from tests.conftest import RunningGateway
from tests.fake_upstream import FakeUpstream

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
PORTKEY_IDS = [
    "openai",
    "groq",
    "together-ai",
    "fireworks-ai",
    "mistral-ai",
    "deepseek",
    "perplexity-ai",
    "x-ai",
    "openrouter",
    "ollama",
    "vllm",
    "lm-studio",
    "mock",
]


# Providers whose base URL ends in its version path (e.g. https://api.groq.com/openai/v1).
VERSIONED_BASE_URL = {"openai", "groq", "fireworks-ai", "mistral-ai", "x-ai", "perplexity-ai"}


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=15) as client:
        yield client


def via(config: dict[str, Any], key: str | None = "sk-test") -> dict[str, str]:
    headers = {"x-portkey-config": orjson.dumps(config).decode()}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def test_every_provider_id_is_registered() -> None:
    assert set(PORTKEY_IDS) <= set(Gateway(ServerSettings(mock=True)).providers)
    assert "mock" not in Gateway().providers  # only a server file that asks gets it


@pytest.mark.parametrize("provider", [p for p in PORTKEY_IDS if p != "mock"])
@pytest.mark.parametrize("host_form", ["host", "host/v1"])
def test_custom_host_replaces_the_base_url(
    http: httpx.Client, fake: FakeUpstream, provider: str, host_form: str
) -> None:
    """custom_host replaces the provider's base URL, version path included (as in Portkey)."""
    host = fake.host_url if host_form == "host" else fake.base_url
    config = {"provider": provider, "custom_host": host}
    response = http.post("/chat/completions", json=CHAT, headers=via(config))
    (seen,) = fake.requests
    if provider in VERSIONED_BASE_URL and host_form == "host":
        # Their paths are relative to a versioned base URL: a bare host gets the bare path,
        # which this fake upstream does not serve.
        assert seen.path == "/chat/completions"
        assert response.status_code == 404
    else:
        # Paths that carry /v1 themselves, or a host ending in /v1 (not doubled).
        assert seen.path == "/v1/chat/completions"
        assert response.status_code == 200, response.text


def test_local_servers_need_a_custom_host(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=CHAT, headers={"x-portkey-provider": "ollama"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "missing_custom_host"


def test_ollama_sends_no_key_and_vllm_key_is_optional(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    http.post(
        "/chat/completions",
        json=CHAT,
        headers=via({"provider": "ollama", "custom_host": fake.host_url}),
    )
    http.post(
        "/chat/completions",
        json=CHAT,
        headers=via({"provider": "vllm", "custom_host": fake.host_url}, key=None),
    )
    assert [r.headers.get("authorization") for r in fake.requests] == [None, None]


def test_quirks_rename_params_and_developer_role(http: httpx.Client, fake: FakeUpstream) -> None:
    body = {
        "model": "m",
        "max_completion_tokens": 5,
        "messages": [
            {"role": "developer", "content": "be brief"},
            {"role": "user", "content": "hi"},
        ],
    }
    config = {"provider": "together-ai", "custom_host": fake.host_url}
    assert http.post("/chat/completions", json=body, headers=via(config)).status_code == 200
    sent = fake.requests[0].json()
    assert sent["max_tokens"] == 5 and "max_completion_tokens" not in sent
    assert sent["messages"][0]["role"] == "system"


def test_untouched_body_is_forwarded_byte_for_byte(http: httpx.Client, fake: FakeUpstream) -> None:
    raw = b'{"model":"m",  "messages":[{"role":"user","content":"hi"}], "vendor_extra": {"x": 1}}'
    config = {"provider": "openai", "custom_host": fake.base_url}
    headers = {**via(config), "content-type": "application/json"}
    assert http.post("/chat/completions", content=raw, headers=headers).status_code == 200
    assert fake.requests[0].body == raw


def test_openai_option_headers(http: httpx.Client, fake: FakeUpstream) -> None:
    config = {"provider": "openai", "custom_host": fake.base_url, "openai_organization": "org-1"}
    headers = {**via(config), "x-portkey-openai-project": "proj-9"}
    http.post("/chat/completions", json=CHAT, headers=headers)
    seen = fake.requests[0].headers
    assert seen["openai-organization"] == "org-1" and seen["openai-project"] == "proj-9"


def test_endpoint_a_provider_lacks_is_a_clear_400(http: httpx.Client, fake: FakeUpstream) -> None:
    config = {"provider": "groq", "custom_host": fake.base_url}
    response = http.post("/embeddings", json={"model": "e", "input": "x"}, headers=via(config))
    assert response.status_code == 400
    assert "groq" in response.json()["error"]["message"]
    assert fake.requests == []


# -- mock -------------------------------------------------------------------------------------


def test_mock_is_deterministic(http: httpx.Client) -> None:
    headers = {"x-portkey-provider": "mock"}
    first = http.post("/chat/completions", json=CHAT, headers=headers).json()
    second = http.post("/chat/completions", json=CHAT, headers=headers).json()
    assert first["choices"] == second["choices"]
    assert first["choices"][0]["message"]["content"] == "Mock reply to: hi"
    embed = {"model": "mock-embed", "input": "same"}
    assert (
        http.post("/embeddings", json=embed, headers=headers).json()["data"]
        == http.post("/embeddings", json=embed, headers=headers).json()["data"]
    )


def test_mock_options_shape_the_reply(http: httpx.Client) -> None:
    config = {"provider": "mock", "mock_reply": "fixed", "mock_latency_ms": 50}
    response = http.post("/chat/completions", json=CHAT, headers=via(config))
    assert response.json()["choices"][0]["message"]["content"] == "fixed"
    assert response.elapsed.total_seconds() >= 0.05
    failing = http.post(
        "/chat/completions", json=CHAT, headers=via({"provider": "mock", "mock_status": 429})
    )
    assert failing.status_code == 429 and failing.json()["error"]["message"]


def test_mock_streams_with_usage(http: httpx.Client) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    text = http.post("/chat/completions", json=body, headers={"x-portkey-provider": "mock"}).text
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == "Mock reply to: hi"
    )


def test_voyage_embeddings(http: httpx.Client, fake: FakeUpstream) -> None:
    config = {"provider": "voyage", "custom_host": fake.base_url}
    response = http.post(
        "/embeddings",
        json={"model": "voyage-3.5", "input": ["a", "b"], "encoding_format": "float"},
        headers=via(config),
    )
    assert response.status_code == 200
    assert len(response.json()["data"]) == 2
    assert fake.requests[0].path == "/v1/embeddings"
    chat = http.post("/chat/completions", json=CHAT, headers=via(config))
    assert chat.status_code == 400  # voyage serves embeddings only
