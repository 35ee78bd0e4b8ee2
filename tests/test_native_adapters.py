"""Native adapters for providers that do not speak OpenAI's format: ai21 (Jamba), jina and
nomic embeddings, reka-ai and replicate chat, segmind and recraft-ai images -- each through
the gateway with the openai SDK, against a fake upstream answering in the provider's own wire
format."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from portkey_mw_plugins.ai21 import to_jamba
from portkey_mw_plugins.reka_ai import to_reka
from portkey_mw_plugins.replicate import model_path, to_replicate
from portkey_mw_plugins.segmind import segmind_request

from portkey_mw.errors import InvalidRequest
from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

PROVIDERS = ("ai21", "jina", "nomic", "reka-ai", "segmind", "recraft-ai", "sagemaker", "replicate")


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    configs = {
        name: {"provider": name, "custom_host": upstream_server.host_url} for name in PROVIDERS
    }
    path = server_file(tmp_path_factory.mktemp("native"), upstream_server, configs=configs)
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="provider-key-1234",
        max_retries=0,
        default_headers={"x-portkey-config": config, **headers},
    )


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chat-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "jamba-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


# -- ai21 ------------------------------------------------------------------------------------


def test_jamba_request_translation() -> None:
    payload, dropped = to_jamba(
        {
            "model": "jamba-large",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}],
                },
                {"role": "assistant", "content": None, "tool_calls": [{"id": "t1"}]},
            ],
            "max_completion_tokens": 50,
            "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
            "presence_penalty": 1,
            "stream_options": {"include_usage": True},
        }
    )
    assert payload == {
        "model": "jamba-large",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "t1"}]},
        ],
        "max_tokens": 50,
        "response_format": {"type": "json_object"},
    }
    assert dropped == ["presence_penalty"]
    with pytest.raises(InvalidRequest, match="text content only"):
        to_jamba({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})


def test_ai21_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {
        "id": "chat-1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello!", "tool_calls": None},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
    fake.script("/chat/completions", Reply(json=reply))
    raw = sdk(gateway, "ai21").chat.completions.with_raw_response.create(
        model="jamba-mini", messages=[{"role": "user", "content": "Hi"}], seed=4
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hello!"
    assert completion.usage is not None and completion.usage.total_tokens == 7
    assert raw.headers["x-portkey-dropped-params"] == "seed"
    request = fake.requests[0]
    assert request.path == "/chat/completions"
    assert request.headers["authorization"] == "Bearer provider-key-1234"
    assert "seed" not in request.json()


def test_ai21_stream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    events = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop", usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
    ]
    fake.script("/chat/completions", Reply(stream=events))  # type: ignore[arg-type]
    chunks = list(
        sdk(gateway, "ai21").chat.completions.create(
            model="jamba-mini",
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 5
    assert "stream_options" not in fake.requests[0].json()


def test_ai21_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/chat/completions", Reply(status=422, json={"detail": "model not found"}))
    with pytest.raises(openai.UnprocessableEntityError, match="model not found"):
        sdk(gateway, "ai21").chat.completions.create(
            model="jamba-nope", messages=[{"role": "user", "content": "Hi"}]
        )


# -- jina ------------------------------------------------------------------------------------


def test_jina_embeddings(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {
        "model": "jina-embeddings-v3",
        "object": "list",
        "usage": {"total_tokens": 4, "prompt_tokens": 4},
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.1, 0.2]},
            {"object": "embedding", "index": 1, "embedding": [0.3, 0.4]},
        ],
    }
    fake.script("/embeddings", Reply(json=reply))
    result = sdk(gateway, "jina").embeddings.create(
        model="jina-embeddings-v3",
        input=["a", "b"],
        encoding_format="float",
        dimensions=2,
        extra_body={"task": "retrieval.query"},
    )
    assert [d.embedding for d in result.data] == [[0.1, 0.2], [0.3, 0.4]]
    assert fake.requests[0].json() == {
        "model": "jina-embeddings-v3",
        "input": ["a", "b"],
        "dimensions": 2,
        "task": "retrieval.query",
        "embedding_type": "float",
    }
    assert fake.requests[0].headers["authorization"] == "Bearer provider-key-1234"


def test_jina_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/embeddings", Reply(status=401, json={"detail": "Invalid API key"}))
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        sdk(gateway, "jina").embeddings.create(model="jina-embeddings-v3", input="a")


# -- nomic -----------------------------------------------------------------------------------


def test_nomic_embeddings(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {
        "embeddings": [[0.5, 0.25], [0.125, 1.0]],
        "model": "nomic-embed-text-v1.5",
        "usage": {"prompt_tokens": 6, "total_tokens": 6},
    }
    fake.script("/embedding/text", Reply(json=reply))
    result = sdk(gateway, "nomic").embeddings.create(
        model="nomic-embed-text-v1.5", input=["a", "b"], dimensions=2
    )
    assert [d.embedding for d in result.data] == [[0.5, 0.25], [0.125, 1.0]]
    assert result.usage.total_tokens == 6
    assert fake.requests[0].json() == {
        "model": "nomic-embed-text-v1.5",
        "texts": ["a", "b"],
        "task_type": "search_document",
        "dimensionality": 2,
    }


def test_nomic_validation_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    detail = [{"loc": ["body", "texts"], "msg": "field required", "type": "missing"}]
    fake.script("/embedding/text", Reply(status=422, json={"detail": detail}))
    with pytest.raises(openai.UnprocessableEntityError, match="field required"):
        sdk(gateway, "nomic").embeddings.create(model="nomic-embed-text-v1.5", input="a")


def test_nomic_bad_answer(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/embedding/text", Reply(json={"embeddings": 3}))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, "nomic").embeddings.create(model="nomic-embed-text-v1.5", input="a")
    assert caught.value.status_code == 502


# -- reka-ai ---------------------------------------------------------------------------------


def test_reka_request_translation() -> None:
    payload, dropped = to_reka(
        {
            "model": "reka-core",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    ],
                },
            ],
            "stop": "END",
            "max_tokens": 20,
            "logit_bias": {},
        }
    )
    assert payload == {
        "model": "reka-core",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Be brief."},
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": "https://x.test/a.png"},
                ],
            }
        ],
        "max_tokens": 20,
        "stop": ["END"],
    }
    assert dropped == ["logit_bias"]
    with pytest.raises(InvalidRequest, match="not 'tool'"):
        to_reka({"messages": [{"role": "tool", "content": "x"}]})


def test_reka_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {
        "id": "r-1",
        "model": "reka-flash",
        "responses": [
            {"finish_reason": "context", "message": {"role": "assistant", "content": "Hi!"}}
        ],
        "usage": {"input_tokens": 8, "output_tokens": 2},
    }
    fake.script("/chat", Reply(json=reply))
    completion = sdk(gateway, "reka-ai").chat.completions.create(
        model="reka-flash",
        messages=[{"role": "system", "content": "Hi."}, {"role": "user", "content": "Hello"}],
    )
    assert completion.choices[0].message.content == "Hi!"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.total_tokens == 10
    request = fake.requests[0]
    assert request.headers["x-api-key"] == "provider-key-1234"
    assert "authorization" not in request.headers
    assert request.json()["messages"] == [{"role": "user", "content": "Hi.\n\nHello"}]


def test_reka_refuses_stream(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError, match="does not stream"):
        sdk(gateway, "reka-ai").chat.completions.create(
            model="reka-flash", messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    assert not fake.requests


# -- segmind ---------------------------------------------------------------------------------


def test_segmind_request_translation() -> None:
    model, payload, dropped = segmind_request(
        {"model": "flux-schnell", "prompt": "a fox", "n": 2, "size": "512x768", "quality": "hd"}
    )
    assert model == "flux-schnell"
    assert payload == {
        "prompt": "a fox",
        "samples": 2,
        "img_width": 512,
        "img_height": 768,
        "base64": True,
    }
    assert dropped == ["quality"]
    for hostile in ("../admin", "a/b", "x?y=1", "..", ""):
        with pytest.raises(InvalidRequest):
            segmind_request({"model": hostile or " ", "prompt": "p"})
    with pytest.raises(InvalidRequest, match="size"):
        segmind_request({"prompt": "p", "size": "big"})


def test_segmind_images(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/sdxl1.0-txt2img", Reply(json={"image": "aW1hZ2U=", "status": "Success"}))
    result = sdk(gateway, "segmind").images.generate(
        model="sdxl1.0-txt2img", prompt="a fox", size="1024x1024"
    )
    assert result.data is not None and result.data[0].b64_json == "aW1hZ2U="
    request = fake.requests[0]
    assert request.headers["x-api-key"] == "provider-key-1234"
    assert request.json()["img_width"] == 1024 and request.json()["base64"] is True


def test_segmind_image_bytes(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/flux-schnell", Reply(body=b"\x89PNG", content_type="image/png"))
    result = sdk(gateway, "segmind").images.generate(model="flux-schnell", prompt="a fox")
    assert result.data is not None and result.data[0].b64_json == "iVBORw=="


def test_segmind_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/sdxl1.0-txt2img", Reply(status=401, json={"error": "Invalid API key"}))
    with pytest.raises(openai.AuthenticationError, match="Invalid API key"):
        sdk(gateway, "segmind").images.generate(model="sdxl1.0-txt2img", prompt="a fox")


def test_segmind_answer_without_image(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/sdxl1.0-txt2img", Reply(json={"status": "Success"}))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, "segmind").images.generate(model="sdxl1.0-txt2img", prompt="a fox")
    assert caught.value.status_code == 502


# -- recraft-ai ------------------------------------------------------------------------------


def test_recraft_images(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {"created": 1, "data": [{"url": "https://img.recraft.test/1.webp"}]}
    fake.script("/images/generations", Reply(json=reply))
    raw = sdk(gateway, "recraft-ai").images.with_raw_response.generate(
        model="recraftv3",
        prompt="a fox",
        size="1024x1024",
        quality="hd",
        extra_body={"style": "digital_illustration"},
    )
    result = raw.parse()
    assert result.data is not None and result.data[0].url == "https://img.recraft.test/1.webp"
    assert raw.headers["x-portkey-dropped-params"] == "quality"
    request = fake.requests[0]
    assert request.headers["authorization"] == "Bearer provider-key-1234"
    assert request.json() == {
        "prompt": "a fox",
        "size": "1024x1024",
        "model": "recraftv3",
        "style": "digital_illustration",
    }


def test_recraft_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/images/generations",
        Reply(status=400, json={"code": "invalid_style", "message": "unknown style"}),
    )
    with pytest.raises(openai.BadRequestError, match="unknown style"):
        sdk(gateway, "recraft-ai").images.generate(model="recraftv3", prompt="a fox")


# -- sagemaker -------------------------------------------------------------------------------

AWS = {
    "x-portkey-aws-access-key-id": "AKIDEXAMPLE",
    "x-portkey-aws-secret-access-key": "aws-secret-value-1234",
    "x-portkey-aws-region": "us-west-2",
}


def test_sagemaker_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    reply = {
        "id": "c1",
        "object": "chat.completion",
        "created": 1,
        "model": "lmi",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi!"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    fake.script("/endpoints/my-llm/invocations", Reply(json=reply))
    client = sdk(
        gateway,
        "sagemaker",
        **AWS,
        **{
            "x-portkey-sagemaker-endpoint-name": "my-llm",
            "x-portkey-amzn-sagemaker-target-variant": "blue",
        },
    )
    completion = client.chat.completions.create(
        model="lmi", messages=[{"role": "user", "content": "Hi"}]
    )
    assert completion.choices[0].message.content == "Hi!"
    request = fake.requests[0]
    authorization = request.headers["authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/us-west-2/sagemaker/aws4_request" in authorization
    assert "x-amzn-sagemaker-target-variant" in authorization  # the routing header is signed
    assert request.headers["x-amzn-sagemaker-target-variant"] == "blue"
    assert request.json()["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("name", ["", "../admin", "a/b", "x" * 70, "-bad"])
def test_sagemaker_refuses_bad_endpoint_name(
    gateway: RunningGateway, fake: FakeUpstream, name: str
) -> None:
    client = sdk(gateway, "sagemaker", **AWS, **{"x-portkey-sagemaker-endpoint-name": name})
    with pytest.raises(openai.BadRequestError, match="sagemaker_endpoint_name"):
        client.chat.completions.create(model="lmi", messages=[{"role": "user", "content": "Hi"}])
    assert not fake.requests


def test_sagemaker_needs_credentials(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "sagemaker", **{"x-portkey-sagemaker-endpoint-name": "my-llm"})
    with pytest.raises(openai.AuthenticationError, match="aws_access_key_id"):
        client.chat.completions.create(model="lmi", messages=[{"role": "user", "content": "Hi"}])


# -- replicate -------------------------------------------------------------------------------

LLAMA = "meta/meta-llama-3-8b-instruct"
PREDICTIONS = f"/models/{LLAMA}/predictions"


def prediction(**extra: Any) -> dict[str, Any]:
    return {
        "id": "pred-1",
        "model": LLAMA,
        "status": "succeeded",
        "output": ["Hel", "lo", "!"],
        "metrics": {"input_token_count": 9, "output_token_count": 3, "predict_time": 0.4},
        **extra,
    }


def test_replicate_request_translation() -> None:
    payload, dropped = to_replicate(
        {
            "model": LLAMA,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "Again?"},
            ],
            "max_completion_tokens": 40,
            "stop": ["\n\n", "END"],
            "temperature": 0.2,
            "tools": [],
        }
    )
    assert payload == {
        "prompt": "user: Hi\n\nassistant: Hello.\n\nuser: Again?\n\nassistant:",
        "system_prompt": "Be brief.",
        "max_tokens": 40,
        "stop_sequences": "\n\n,END",
        "temperature": 0.2,
    }
    assert dropped == ["tools"]
    single, _ = to_replicate({"messages": [{"role": "user", "content": "Just this"}]})
    assert single == {"prompt": "Just this"}
    assert model_path(LLAMA) == "/models/meta/meta-llama-3-8b-instruct"
    for hostile in ("../admin", "a/b/c", "meta/..", "meta/x?y=1", "meta/x:abc123", "", None):
        with pytest.raises(InvalidRequest):
            model_path(hostile)
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    with pytest.raises(InvalidRequest, match="text content only"):
        to_replicate({"messages": [{"role": "user", "content": [image]}]})
    with pytest.raises(InvalidRequest, match="tool"):
        to_replicate({"messages": [{"role": "tool", "content": "x"}]})


def test_replicate_chat(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(PREDICTIONS, Reply(status=201, json=prediction()))
    raw = sdk(gateway, "replicate").chat.completions.with_raw_response.create(
        model=LLAMA,
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=16,
        logprobs=True,
    )
    completion = raw.parse()
    assert completion.id == "pred-1"
    assert completion.model == LLAMA
    assert completion.choices[0].message.content == "Hello!"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (9, 3)
    assert raw.headers["x-portkey-dropped-params"] == "logprobs"
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", PREDICTIONS)
    assert request.headers["authorization"] == "Bearer provider-key-1234"
    assert request.headers["prefer"] == "wait"
    assert request.json() == {
        "input": {"prompt": "Hi", "system_prompt": "Be brief.", "max_tokens": 16}
    }


@pytest.mark.parametrize(
    ("answer", "status", "words"),
    [
        (prediction(status="failed", output=None, error="CUDA out of memory"), 502, "CUDA"),
        (prediction(status="processing", output=None), 408, "pred-1"),
        (prediction(output={"image": "https://x.test/a.png"}), 502, "not text"),
    ],
)
def test_replicate_prediction_not_answered(
    gateway: RunningGateway, fake: FakeUpstream, answer: dict[str, Any], status: int, words: str
) -> None:
    fake.script(PREDICTIONS, Reply(status=201, json=answer))
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(gateway, "replicate").chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "Hi"}]
        )
    assert caught.value.status_code == status
    assert words in str(caught.value)


def test_replicate_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    problem = {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid token",
        "status": 401,
    }
    fake.script(PREDICTIONS, Reply(status=401, json=problem))
    with pytest.raises(openai.AuthenticationError, match="valid token"):
        sdk(gateway, "replicate").chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "Hi"}]
        )


def test_replicate_refuses_stream_and_bad_models(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    client = sdk(gateway, "replicate")
    with pytest.raises(openai.BadRequestError, match="stream"):
        client.chat.completions.create(
            model=LLAMA, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
    with pytest.raises(openai.BadRequestError, match="owner/name"):
        client.chat.completions.create(
            model="../../admin", messages=[{"role": "user", "content": "Hi"}]
        )
    assert not fake.requests


def test_replicate_pass_through(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/predictions/pred-1", Reply(json=prediction()))
    reply = httpx.get(
        f"{gateway.base_url}/proxy/predictions/pred-1",
        headers={"x-portkey-config": "replicate", "authorization": "Bearer provider-key-1234"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["output"] == ["Hel", "lo", "!"]  # Replicate's own shape, untranslated
    request = fake.requests[0]
    assert (request.method, request.path) == ("GET", "/predictions/pred-1")
    assert request.headers["authorization"] == "Bearer provider-key-1234"
