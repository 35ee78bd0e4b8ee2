"""``POST /v1/images/generations``: openai, azure-openai, stability-ai (and mock)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply

B64 = base64.b64encode(b"\x89PNG fake image").decode()


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    configs = {
        "stability": {"provider": "stability-ai", "custom_host": upstream_server.host_url},
        "azure": {
            "provider": "azure-openai",
            "custom_host": f"{upstream_server.host_url}/openai",
            "deployment_id": "dalle3",
        },
    }
    path = server_file(tmp_path_factory.mktemp("images"), upstream_server, configs=configs)
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-img",
        max_retries=0,
        default_headers={"x-portkey-config": config},
    )


def test_openai_images_pass_through(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/images/generations", Reply(json={"created": 1, "data": [{"b64_json": B64}]}))
    result = sdk(gateway, "openai-fake").images.generate(
        model="gpt-image-1", prompt="a lighthouse", size="1024x1024"
    )
    assert result.data is not None and result.data[0].b64_json == B64
    assert fake.requests[0].json() == {
        "model": "gpt-image-1",
        "prompt": "a lighthouse",
        "size": "1024x1024",
    }


def test_azure_images_go_to_the_deployment(gateway: RunningGateway, fake: FakeUpstream) -> None:
    path = "/openai/deployments/dalle3/images/generations"
    fake.script(path, Reply(json={"created": 1, "data": [{"b64_json": B64}]}))
    sdk(gateway, "azure").images.generate(model="dall-e-3", prompt="a lighthouse")
    assert fake.requests[0].path == path and fake.requests[0].headers["api-key"] == "sk-img"


def test_stability_ai(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v2beta/stable-image/generate/ultra",
        Reply(json={"image": B64, "finish_reason": "SUCCESS", "seed": 7}),
    )
    raw = sdk(gateway, "stability").images.with_raw_response.generate(
        model="stable-image-ultra", prompt="a lighthouse", size="1792x1024", response_format="url"
    )
    result = raw.parse()
    assert result.data is not None and result.data[0].b64_json == B64
    assert raw.headers["x-portkey-dropped-params"] == "response_format"
    (seen,) = fake.requests
    assert seen.headers["authorization"] == "Bearer sk-img"
    assert seen.headers["content-type"].startswith("multipart/form-data; boundary=")
    form = seen.body.decode()
    assert 'name="prompt"\r\n\r\na lighthouse' in form
    assert 'name="aspect_ratio"\r\n\r\n16:9' in form
    assert 'name="output_format"\r\n\r\npng' in form


def test_stability_error(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script(
        "/v2beta/stable-image/generate/core",
        Reply(status=403, json={"name": "content_moderation", "errors": ["flagged"]}),
    )
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, "stability").images.generate(prompt="something flagged")


def test_mock_images(gateway: RunningGateway) -> None:
    client = openai.OpenAI(
        base_url=gateway.base_url,
        api_key="x",
        max_retries=0,
        default_headers={"x-portkey-provider": "mock"},
    )
    result = client.images.generate(prompt="anything", n=2)
    assert result.data is not None and len(result.data) == 2
    assert base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG")


def test_prompt_is_required(gateway: RunningGateway) -> None:
    client = sdk(gateway, "openai-fake")
    with pytest.raises(openai.BadRequestError, match="'prompt' is a required property"):
        client.post("/images/generations", body={"model": "m"}, cast_to=object)
