"""The OpenAI-compatible catalogue as a table: every provider id resolves, builds the
request Portkey's gateway would (base URL, path, auth header), and its answer parses."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion

from plugins.openai_compat import OpenAICompatibleProvider, load_catalog
from portkey_mw import Gateway, ServerSettings
from portkey_mw.auth.credentials import enforce_binding
from portkey_mw.context import Endpoint, RequestContext
from portkey_mw.errors import InvalidRequest
from portkey_mw.files import FILE_ENDPOINTS, OPERATION, match
from portkey_mw.interfaces import ProviderCall
from portkey_mw.multipart import FORM_STATE, MULTIPART_ENDPOINTS, FilePart, Form
from portkey_mw.retired import RETIRED
from portkey_mw.routing import ResolvedTarget
from tests.conftest import in_process
from tests.fake_upstream import FakeUpstream, Reply

CATALOG = load_catalog()
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

# id -> (target options, model, the URL of its first endpoint), from Portkey's gateway
# 1.15.2 (src/providers/<id>/api.ts). Written out, not derived, so a catalogue edit that
# moves a provider's URL fails here.
EXPECTED: dict[str, tuple[dict[str, str], str, str]] = {
    "openai": ({}, "m", "https://api.openai.com/v1/chat/completions"),
    "groq": ({}, "m", "https://api.groq.com/openai/v1/chat/completions"),
    "together-ai": ({}, "m", "https://api.together.xyz/v1/chat/completions"),
    "fireworks-ai": ({}, "m", "https://api.fireworks.ai/inference/v1/chat/completions"),
    "mistral-ai": ({}, "m", "https://api.mistral.ai/v1/chat/completions"),
    "deepseek": ({}, "m", "https://api.deepseek.com/v1/chat/completions"),
    "perplexity-ai": ({}, "m", "https://api.perplexity.ai/chat/completions"),
    "x-ai": ({}, "m", "https://api.x.ai/v1/chat/completions"),
    "openrouter": ({}, "m", "https://openrouter.ai/api/v1/chat/completions"),
    "voyage": ({}, "m", "https://api.voyageai.com/v1/embeddings"),
    "302ai": ({}, "m", "https://api.302.ai/v1/chat/completions"),
    "aibadgr": ({}, "m", "https://aibadgr.com/api/v1/chat/completions"),
    "azure-ai": (
        {
            "azure_foundry_url": "https://my-hub.services.ai.azure.com/models/",
            "azure_api_version": "2024-05-01-preview",
        },
        "m",
        "https://my-hub.services.ai.azure.com/models/chat/completions?api-version=2024-05-01-preview",
    ),
    "cerebras": ({}, "m", "https://api.cerebras.ai/v1/chat/completions"),
    "cometapi": ({}, "m", "https://api.cometapi.com/v1/chat/completions"),
    "dashscope": (
        {},
        "m",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions",
    ),
    "deepbricks": ({}, "m", "https://api.deepbricks.ai/v1/chat/completions"),
    "deepinfra": ({}, "m", "https://api.deepinfra.com/v1/openai/chat/completions"),
    "featherless-ai": ({}, "m", "https://api.featherless.ai/v1/chat/completions"),
    "github": ({}, "m", "https://models.inference.ai.azure.com/chat/completions"),
    "huggingface": (
        {},
        "meta-llama/Llama-3.1-8B-Instruct",
        "https://api-inference.huggingface.co/models/meta-llama/Llama-3.1-8B-Instruct/v1/chat/completions",
    ),
    "hyperbolic": ({}, "m", "https://api.hyperbolic.xyz/v1/chat/completions"),
    "inference-net": ({}, "m", "https://api.inference.net/v1/chat/completions"),
    "iointelligence": ({}, "m", "https://api.intelligence.io.solutions/api/v1/chat/completions"),
    "kluster-ai": ({}, "m", "https://api.kluster.ai/v1/chat/completions"),
    "krutrim": ({}, "m", "https://cloud.olakrutrim.com/v1/chat/completions"),
    "lambda": ({}, "m", "https://api.lambdalabs.com/v1/chat/completions"),
    "lemonfox-ai": ({}, "m", "https://api.lemonfox.ai/v1/chat/completions"),
    "lepton": ({}, "m", "https://api.lepton.ai/api/v1/chat/completions"),
    "lingyi": ({}, "m", "https://api.lingyiwanwu.com/v1/chat/completions"),
    "matterai": ({}, "m", "https://api.matterai.so/v1/chat/completions"),
    "modal": ({}, "m", "https://api.modal.com/v1/chat/completions"),
    "monsterapi": ({}, "m", "https://llm.monsterapi.ai/v1/chat/completions"),
    "moonshot": ({}, "m", "https://api.moonshot.cn/v1/chat/completions"),
    "ncompass": ({}, "m", "https://api.ncompass.tech/v1/chat/completions"),
    "nebius": ({}, "m", "https://api.studio.nebius.ai/v1/chat/completions"),
    "nextbit": ({}, "m", "https://api.nextbit256.com/v1/chat/completions"),
    "novita-ai": ({}, "m", "https://api.novita.ai/v3/openai/v1/chat/completions"),
    "nscale": ({}, "m", "https://inference.api.nscale.com/v1/chat/completions"),
    "ovhcloud": ({}, "m", "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1/chat/completions"),
    "predibase": (
        {"predibase_tenant_id": "acme"},
        "llama-3-8b:my-adapter/3",
        "https://serving.app.predibase.com/acme/deployments/v2/llms/llama-3-8b/v1/chat/completions",
    ),
    "sambanova": ({}, "m", "https://api.sambanova.ai/v1/chat/completions"),
    "siliconflow": ({}, "m", "https://api.siliconflow.cn/v1/chat/completions"),
    "upstage": ({}, "m", "https://api.upstage.ai/v1/solar/chat/completions"),
    "workers-ai": (
        {"workers_ai_account_id": "0123abcd"},
        "@cf/meta/llama-3.1-8b-instruct",
        "https://api.cloudflare.com/client/v4/accounts/0123abcd/ai/v1/chat/completions",
    ),
    "z-ai": ({}, "m", "https://api.z.ai/api/paas/v4/chat/completions"),
    "zhipu": ({}, "m", "https://open.bigmodel.cn/api/paas/v4/chat/completions"),
}
# Local servers: no public endpoint, a custom_host is required.
LOCAL = {"ollama", "vllm", "lm-studio"}
ORDER = [Endpoint.CHAT_COMPLETIONS, Endpoint.EMBEDDINGS]
ROUTES = {Endpoint.CHAT_COMPLETIONS: "/v1/chat/completions", Endpoint.EMBEDDINGS: "/v1/embeddings"}

CHAT_RESPONSE = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
EMBEDDING_RESPONSE = {
    "object": "list",
    "data": [{"object": "embedding", "index": 0, "embedding": [0.5, 0.25]}],
    "model": "m",
    "usage": {"prompt_tokens": 1, "total_tokens": 1},
}


def first_endpoint(pid: str) -> Endpoint:
    return next(e for e in ORDER if e in CATALOG[pid].endpoints)


def call_for(
    pid: str,
    endpoint: Endpoint,
    options: dict[str, str],
    model: str,
    headers: dict[str, str] | None = None,
    custom_host: str | None = None,
) -> ProviderCall:
    body: dict[str, Any] = {**CHAT, "model": model}
    if endpoint is Endpoint.EMBEDDINGS:
        body = {"model": model, "input": "hi"}
    elif endpoint is Endpoint.RERANK:
        body = {"model": model, "query": "q", "documents": ["a", "b"]}
    elif endpoint in MULTIPART_ENDPOINTS:
        body = {"model": model, "prompt": "p"}
    elif endpoint is Endpoint.AUDIO_SPEECH:
        body = {"model": model, "input": "hi", "voice": "alloy"}
    raw = orjson.dumps(body)
    ctx = RequestContext(
        trace_id="t",
        endpoint=endpoint,
        method="POST",
        path="/v1/" + endpoint.value,
        headers=headers or {},
        body=body,
        raw_body=raw,
    )
    if endpoint in FILE_ENDPOINTS:  # the path names the operation: a list, here
        ctx.state[OPERATION] = match("/v1/" + endpoint.value, "GET")
    if endpoint in MULTIPART_ENDPOINTS:  # the pipeline reads the form before routing
        upload = FilePart("file", "a.wav", "audio/wav", b"RIFF")
        ctx.state[FORM_STATE] = Form(fields=dict(body), files=[upload])
    target = ResolvedTarget(
        path="config", provider=pid, api_key="sk-up", options=options, custom_host=custom_host
    )
    return ProviderCall(ctx, target, endpoint, body, raw, timeout=None)


def test_the_table_covers_the_catalogue() -> None:
    assert set(CATALOG) == set(EXPECTED) | LOCAL


@pytest.mark.parametrize("pid", sorted(EXPECTED))
def test_builds_portkeys_url_and_auth(pid: str) -> None:
    options, model, url = EXPECTED[pid]
    provider = OpenAICompatibleProvider(CATALOG[pid])
    request = provider.build_request(call_for(pid, first_endpoint(pid), options, model))
    assert request.url == url
    assert request.headers["authorization"] == "Bearer sk-up"
    assert request.method == "POST"


@pytest.mark.parametrize("pid", sorted(EXPECTED))
def test_every_endpoint_goes_to_the_same_host(pid: str) -> None:
    options, model, url = EXPECTED[pid]
    provider = OpenAICompatibleProvider(CATALOG[pid])
    host = httpx.URL(url).host
    for endpoint in sorted(CATALOG[pid].endpoints, key=lambda e: e.value):
        built = httpx.URL(provider.build_request(call_for(pid, endpoint, options, model)).url)
        assert (built.scheme, built.host) == ("https", host), endpoint
        assert built.path.endswith("/" + CATALOG[pid].paths[endpoint].rsplit("/", 1)[-1])


@pytest.mark.parametrize("pid", sorted(set(CATALOG)))
async def test_resolves_and_parses_through_the_gateway(fake: FakeUpstream, pid: str) -> None:
    """Through the gateway to a fake upstream in the provider's place: the auth header
    arrives, and the recorded response shape comes back as the openai SDK parses it."""
    endpoint = first_endpoint(pid)
    options, model, _ = EXPECTED.get(pid, ({}, "m", ""))
    built = OpenAICompatibleProvider(CATALOG[pid]).build_request(
        call_for(pid, endpoint, options, model, custom_host=fake.host_url)
    )
    path = httpx.URL(built.url).path
    shape = EMBEDDING_RESPONSE if endpoint is Endpoint.EMBEDDINGS else CHAT_RESPONSE
    fake.script(path, Reply(json=shape))
    config = {"provider": pid, "custom_host": fake.host_url, **options}
    body = call_for(pid, endpoint, options, model).body
    headers = {"x-portkey-config": orjson.dumps(config).decode(), "authorization": "Bearer sk-up"}
    async with in_process(Gateway(ServerSettings())) as client:
        response = await client.post(ROUTES[endpoint], json=body, headers=headers)
    assert response.status_code == 200, response.text
    (seen,) = fake.requests
    assert seen.path == path
    if CATALOG[pid].auth != "none":
        assert seen.headers["authorization"] == "Bearer sk-up"
    if endpoint is Endpoint.EMBEDDINGS:
        assert CreateEmbeddingResponse.model_validate(response.json()).data[0].embedding
    else:
        parsed = ChatCompletion.model_validate(response.json())
        assert parsed.choices[0].message.content == "hello"


def test_azure_ai_sends_its_fixed_and_option_headers() -> None:
    options = {"azure_foundry_url": "https://h.services.ai.azure.com/models"}
    headers = {"x-portkey-azure-deployment-name": "dep-1"}
    call = call_for("azure-ai", Endpoint.CHAT_COMPLETIONS, options, "m", headers)
    request = OpenAICompatibleProvider(CATALOG["azure-ai"]).build_request(call)
    assert request.headers["extra-parameters"] == "drop"
    assert request.headers["azureml-model-deployment"] == "dep-1"
    assert request.url == "https://h.services.ai.azure.com/models/chat/completions"


def test_a_dedicated_hugging_face_endpoint_takes_the_bare_path() -> None:
    options = {"huggingface_base_url": "https://x.endpoints.huggingface.cloud"}
    call = call_for("huggingface", Endpoint.CHAT_COMPLETIONS, options, "org/name")
    request = OpenAICompatibleProvider(CATALOG["huggingface"]).build_request(call)
    assert request.url == "https://x.endpoints.huggingface.cloud/v1/chat/completions"


@pytest.mark.parametrize(
    ("pid", "options", "model", "code"),
    [
        ("huggingface", {}, "../../admin", "invalid_provider_option"),
        ("huggingface", {}, "org/../x", "invalid_provider_option"),
        ("huggingface", {}, "a?b=c", "invalid_provider_option"),
        ("huggingface", {}, "", "missing_model"),
        ("workers-ai", {}, "m", "missing_provider_option"),
        ("workers-ai", {"workers_ai_account_id": "a/../b"}, "m", "invalid_provider_option"),
        ("workers-ai", {"workers_ai_account_id": "x" * 500}, "m", "invalid_provider_option"),
        ("predibase", {"predibase_tenant_id": "t#frag"}, "m", "invalid_provider_option"),
        ("azure-ai", {"azure_foundry_url": "file:///etc/passwd"}, "m", "invalid_provider_option"),
        ("azure-ai", {}, "m", "missing_custom_host"),
    ],
)
def test_url_parts_from_options_and_body_are_checked(
    pid: str, options: dict[str, str], model: str, code: str
) -> None:
    call = call_for(pid, Endpoint.CHAT_COMPLETIONS, options, model)
    with pytest.raises(InvalidRequest) as caught:
        OpenAICompatibleProvider(CATALOG[pid]).build_request(call)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("pid", "header"),
    [
        ("workers-ai", "x-portkey-workers-ai-account-id"),
        ("azure-ai", "x-portkey-azure-foundry-url"),
        ("huggingface", "x-portkey-huggingface-base-url"),
        ("predibase", "x-portkey-predibase-tenant-id"),
    ],
)
def test_a_server_held_key_does_not_follow_a_clients_destination_header(
    pid: str, header: str
) -> None:
    provider = OpenAICompatibleProvider(CATALOG[pid])
    target = ResolvedTarget(path="config", provider=pid, api_key="sk", key_from_server=True)
    with pytest.raises(InvalidRequest) as caught:
        enforce_binding({header: "https://attacker.example"}, target, provider)
    assert caught.value.code == "destination_option_not_allowed"
    # the client's own key may go where the client says
    enforce_binding({header: "x"}, ResolvedTarget(path="config", provider=pid), provider)


@pytest.mark.parametrize("pid", sorted(RETIRED))
@pytest.mark.parametrize(
    ("method", "route"),
    [("POST", "/v1/chat/completions"), ("POST", "/v1/embeddings"), ("GET", "/v1/models")],
)
async def test_retired_services_answer_400_saying_so(pid: str, method: str, route: str) -> None:
    body = {"model": "m", "input": "hi"} if route.endswith("embeddings") else CHAT
    async with in_process(Gateway(ServerSettings())) as client:
        for headers in (
            {"x-portkey-provider": pid},
            {"x-portkey-config": orjson.dumps({"provider": pid}).decode()},
        ):
            headers["authorization"] = "Bearer sk"
            response = await client.request(
                method, route, json=body if method == "POST" else None, headers=headers
            )
            assert response.status_code == 400, response.text
            error = response.json()["error"]
            assert error["code"] == "provider_retired"
            assert "retired" in error["message"]
            assert pid not in Gateway(ServerSettings()).providers
