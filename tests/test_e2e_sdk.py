"""End to end: the official SDKs against the gateway, mounted in FastAPI and standalone."""

from __future__ import annotations

import httpx
import openai
import orjson
import pytest

from tests.conftest import RunningGateway
from tests.fake_upstream import FakeUpstream, Reply

MESSAGES = [{"role": "user", "content": "hello gateway"}]

# (provider id, named config in the server file): openai plus an OpenAI-compatible provider
PROVIDERS = [("openai", "openai-fake"), ("together-ai", "together-fake")]


def client(gateway: RunningGateway, config: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-client-key",
        max_retries=0,
        default_headers={"x-portkey-config": config, **headers},
    )


@pytest.mark.parametrize(("provider", "config"), PROVIDERS)
def test_chat_completion(
    gateway: RunningGateway, fake: FakeUpstream, provider: str, config: str
) -> None:
    raw = client(gateway, config).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello gateway"
    assert completion.usage is not None and completion.usage.total_tokens > 0
    assert raw.headers["x-portkey-provider"] == provider
    assert raw.headers["x-portkey-last-used-option-index"] == "config"
    assert raw.headers["x-portkey-retry-attempt-count"] == "0"
    assert raw.headers["x-portkey-cache-status"] == "DISABLED"
    assert len(raw.headers["x-portkey-trace-id"]) == 32
    (seen,) = fake.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-client-key"
    assert seen.json()["messages"] == MESSAGES


@pytest.mark.parametrize(("provider", "config"), PROVIDERS)
def test_chat_stream_with_usage(
    gateway: RunningGateway, fake: FakeUpstream, provider: str, config: str
) -> None:
    stream = client(gateway, config).chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "echo: hello gateway"
    assert usage is not None and usage.completion_tokens > 0
    assert fake.requests[0].json()["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(("provider", "config"), PROVIDERS)
def test_embeddings(
    gateway: RunningGateway, fake: FakeUpstream, provider: str, config: str
) -> None:
    result = client(gateway, config).embeddings.create(
        model="text-embedding-3-small", input=["one", "two"]
    )
    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 8
    assert result.data[0].embedding != result.data[1].embedding
    assert fake.requests[0].path == "/v1/embeddings"


@pytest.mark.parametrize(("provider", "config"), PROVIDERS)
def test_model_list(
    gateway: RunningGateway, fake: FakeUpstream, provider: str, config: str
) -> None:
    models = client(gateway, config).models.list()
    assert [m.id for m in models] == ["fake-gpt", "fake-embed"]
    assert fake.requests[0].method == "GET"


def test_legacy_completions(gateway: RunningGateway, fake: FakeUpstream) -> None:
    result = client(gateway, "openai-fake").completions.create(
        model="gpt-3.5-turbo-instruct", prompt="say this"
    )
    assert result.choices[0].text
    assert fake.requests[0].path == "/v1/completions"


def test_provider_and_custom_host_headers(gateway: RunningGateway, fake: FakeUpstream) -> None:
    """No config: the provider and its host come from Portkey's headers, as the SDK sends them."""
    sdk = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-vllm",
        max_retries=0,
        default_headers={
            "x-portkey-provider": "vllm",
            "x-portkey-custom-host": fake.base_url,
            "x-portkey-trace-id": "trace-abc",
            "x-portkey-metadata": '{"_user": "ada"}',
            "x-portkey-forward-headers": "x-tenant",
            "x-tenant": "acme",
        },
    )
    raw = sdk.chat.completions.with_raw_response.create(model="llama", messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "echo: hello gateway"
    assert raw.headers["x-portkey-trace-id"] == "trace-abc"
    assert raw.headers["x-portkey-provider"] == "vllm"
    (seen,) = fake.requests
    assert seen.path == "/v1/chat/completions"  # custom host ends in /v1: not doubled
    assert seen.headers["x-tenant"] == "acme"
    assert seen.headers["authorization"] == "Bearer sk-vllm"
    # Portkey's own headers stay at the gateway.
    assert not [name for name in seen.headers if name.startswith("x-portkey-")]


def test_inline_config_with_override_params(gateway: RunningGateway, fake: FakeUpstream) -> None:
    config = {
        "provider": "groq",
        "custom_host": fake.base_url,
        "override_params": {"temperature": 0.1, "model": "llama-3.1-8b"},
    }
    sdk = client(gateway, orjson.dumps(config).decode())
    sdk.chat.completions.create(model="ignored", messages=MESSAGES, temperature=0.9)
    body = fake.requests[0].json()
    assert body["temperature"] == 0.1 and body["model"] == "llama-3.1-8b"


def test_upstream_headers_not_leaked(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v1/chat/completions",
        Reply(headers={"x-internal-secret": "s3cr3t", "x-ratelimit-remaining-requests": "99"}),
    )
    raw = client(gateway, "openai-fake").chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    )
    assert "x-internal-secret" not in raw.headers
    assert raw.headers["x-ratelimit-remaining-requests"] == "99"


def test_upstream_error_is_relayed_openai_style(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.script("/v1/chat/completions", Reply(status=404))
    with pytest.raises(openai.NotFoundError) as info:
        client(gateway, "openai-fake").chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.status_code == 404
    assert isinstance(info.value.body, dict) and info.value.body["message"]


def test_portkey_sdk(gateway: RunningGateway, fake: FakeUpstream) -> None:
    from portkey_ai import Portkey

    portkey = Portkey(
        base_url=gateway.base_url,
        provider="openai",
        Authorization="Bearer sk-from-portkey-sdk",
        custom_host=fake.base_url,
        trace_id="portkey-trace",
        metadata={"env": "test"},
        max_retries=0,
    )
    completion = portkey.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "echo: hello gateway"
    text = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in portkey.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True
        )
        if chunk.choices
    )
    assert text == "echo: hello gateway"
    assert all(r.headers["authorization"] == "Bearer sk-from-portkey-sdk" for r in fake.requests)


def test_portkey_sdk_config_dict(gateway: RunningGateway, fake: FakeUpstream) -> None:
    from portkey_ai import Portkey

    portkey = Portkey(
        base_url=gateway.base_url,
        config={"provider": "openai", "api_key": "sk-in-config", "custom_host": fake.base_url},
        max_retries=0,
    )
    result = portkey.embeddings.create(
        model="text-embedding-3-small", input="hi", encoding_format="float"
    )
    assert len(result.data[0].embedding) == 8
    assert fake.requests[0].headers["authorization"] == "Bearer sk-in-config"


def test_health(gateway: RunningGateway) -> None:
    response = httpx.get(gateway.root + "/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
