"""The azure-openai provider: deployment URLs, api-version, api-key or Entra ID token."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import orjson
import pytest

from portkey_mw.context import Endpoint, RequestContext
from portkey_mw.interfaces import ProviderCall
from portkey_mw.routing import ResolvedTarget
from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

COMPLETION = {
    "id": "chatcmpl-az",
    "object": "chat.completion",
    "created": 0,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "from azure"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
CHAT_PATH = "/openai/deployments/gpt4o-prod/chat/completions"


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    azure = {
        "provider": "azure-openai",
        "custom_host": f"{upstream_server.host_url}/openai",
        "deployment_id": "gpt4o-prod",
        "api_version": "2024-10-21",
    }
    path = server_file(tmp_path_factory.mktemp("azure"), upstream_server, configs={"azure": azure})
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="azure-key",
        max_retries=0,
        default_headers={"x-portkey-config": "azure", **headers},
    )


def test_chat_goes_to_the_deployment(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(CHAT_PATH, Reply(json=COMPLETION))
    reply = sdk(gateway).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content == "from azure"
    (seen,) = fake.requests
    assert seen.path == CHAT_PATH and seen.query == "api-version=2024-10-21"
    assert seen.headers["api-key"] == "azure-key"
    assert "authorization" not in seen.headers


def test_stream_passes_through(gateway: RunningGateway, fake: FakeUpstream) -> None:
    chunk = {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"content": "streamed"}, "finish_reason": "stop"}],
    }
    fake.script(CHAT_PATH, Reply(stream=[chunk]))
    text = "".join(
        c.choices[0].delta.content or ""
        for c in sdk(gateway).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        if c.choices
    )
    assert text == "streamed"


def test_entra_token_is_a_bearer_token(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(CHAT_PATH, Reply(json=COMPLETION))
    sdk(gateway, **{"x-portkey-azure-ad-token": "eyJ.entra"}).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    seen = fake.requests[0].headers
    assert seen["authorization"] == "Bearer eyJ.entra" and "api-key" not in seen


def test_resource_and_deployment_are_required(gateway: RunningGateway, fake: FakeUpstream) -> None:
    config = orjson.dumps({"provider": "azure-openai"}).decode()
    with pytest.raises(openai.BadRequestError, match="resource_name"):
        sdk(gateway, **{"x-portkey-config": config}).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    assert fake.requests == []


def test_credentials_are_required(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key="OPENAI_API_KEY", max_retries=0)
    with pytest.raises(openai.AuthenticationError, match="no credentials for provider"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-portkey-config": "azure"},
        )
    assert fake.requests == []


def test_tools_pass_through(gateway: RunningGateway, fake: FakeUpstream) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    reply = {
        **COMPLETION,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}],
    }
    fake.script(CHAT_PATH, Reply(json=reply))
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    completion = sdk(gateway).chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "call f"}],
        tools=[tool],  # type: ignore[list-item]
        tool_choice="required",
    )
    assert completion.choices[0].message.tool_calls is not None
    sent = fake.requests[0].json()
    assert sent["tools"] == [tool] and sent["tool_choice"] == "required"


# --- a server-held key stays on the deployment the operator bound ------------------------


def _azure_call(endpoint: Endpoint, *, server_key: bool, model: str) -> ProviderCall:

    body = {"model": model, "input": "hi"}
    raw = orjson.dumps(body)
    ctx = RequestContext(
        trace_id="t", endpoint=endpoint, method="POST", path="/v1/responses",
        headers={}, body=body, raw_body=raw,
    )  # fmt: skip
    target = ResolvedTarget(
        path="config",
        provider="azure-openai",
        api_key="az-key",
        options={"resource_name": "res", "deployment_id": "dep"},
        key_from_server=server_key,
        from_server=server_key,
    )
    return ProviderCall(ctx, target, Endpoint.RESPONSES, body, raw, timeout=None)


def test_a_server_held_key_answers_responses_from_its_bound_deployment() -> None:
    from plugins.azure_openai import AzureOpenAIProvider

    provider = AzureOpenAIProvider()
    # Azure takes the Responses deployment from the body's model: the client's model cannot
    # move the operator's key to another deployment of the resource.
    held = provider.build_request(_azure_call(Endpoint.RESPONSES, server_key=True, model="x"))
    assert isinstance(held.body, bytes) and orjson.loads(held.body)["model"] == "dep"
    # the client's own key may name any deployment it likes
    own = provider.build_request(_azure_call(Endpoint.RESPONSES, server_key=False, model="x"))
    assert isinstance(own.body, bytes) and orjson.loads(own.body)["model"] == "x"


def test_a_server_held_key_passes_through_below_its_deployment_only() -> None:
    from plugins.azure_openai import AzureOpenAIProvider

    provider = AzureOpenAIProvider()
    held = provider.proxy_base(_azure_call(Endpoint.PROXY, server_key=True, model="m"))
    assert held == "https://res.openai.azure.com/openai/deployments/dep"
    own = provider.proxy_base(_azure_call(Endpoint.PROXY, server_key=False, model="m"))
    assert own == "https://res.openai.azure.com/openai"
