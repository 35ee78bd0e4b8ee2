"""``POST /v1/images/edits`` (multipart) through openai and azure-openai, with the SDK."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import openai
import pytest

from tests.conftest import RunningGateway, mounted_gateway, server_file
from tests.fake_upstream import FakeUpstream, Reply
from tests.multipart_forms import parse_form, text_fields

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 16
MASK = b"\x89PNG\r\n\x1a\nmask" + bytes(reversed(range(256))) * 8
B64 = base64.b64encode(b"edited").decode()
ANSWER = {"created": 1, "data": [{"b64_json": B64}]}


@pytest.fixture(scope="module")
def gateway(
    upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    host = upstream_server.host_url
    configs = {
        "azure": {
            "provider": "azure-openai",
            "custom_host": f"{host}/openai",
            "deployment_id": "gpt-image",
        },
        "groq": {"provider": "groq", "custom_host": f"{host}/openai/v1"},
    }
    path = server_file(tmp_path_factory.mktemp("edits"), upstream_server, configs=configs)
    with mounted_gateway(path) as running:
        yield running


def sdk(gateway: RunningGateway, config: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url,
        api_key="sk-edit",
        max_retries=0,
        default_headers={"x-portkey-config": config},
    )


def test_an_edit_with_a_mask_through_openai(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/images/edits", Reply(json=ANSWER))
    result = sdk(gateway, "openai-fake").images.edit(
        image=("photo.png", PNG, "image/png"),
        mask=("mask.png", MASK, "image/png"),
        prompt="add a lighthouse",
        model="dall-e-2",
        n=2,
        size="512x512",
        response_format="b64_json",
    )
    assert result.data is not None and result.data[0].b64_json == B64
    sent = fake.requests[-1]
    assert sent.path == "/v1/images/edits"
    assert sent.headers["authorization"] == "Bearer sk-edit"
    parts = parse_form(sent)
    files = {p.name: (p.filename, p.content_type, p.data) for p in parts if p.filename}
    assert files == {
        "image": ("photo.png", "image/png", PNG),
        "mask": ("mask.png", "image/png", MASK),
    }
    assert text_fields(parts) == {
        "prompt": ["add a lighthouse"],
        "model": ["dall-e-2"],
        "n": ["2"],
        "size": ["512x512"],
        "response_format": ["b64_json"],
    }


def test_several_images_without_a_model(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.script("/v1/images/edits", Reply(json=ANSWER))
    second = b"\x89PNG second" * 100
    sdk(gateway, "openai-fake").images.edit(
        image=[("a.png", PNG, "image/png"), ("b.png", second, "image/png")],
        prompt="merge them",
    )
    parts = parse_form(fake.requests[-1])
    images = [(p.name, p.filename, p.data) for p in parts if p.filename]
    assert images == [("image[]", "a.png", PNG), ("image[]", "b.png", second)]
    assert text_fields(parts) == {"prompt": ["merge them"]}


def test_azure_edits_go_to_the_deployment(gateway: RunningGateway, fake: FakeUpstream) -> None:
    path = "/openai/deployments/gpt-image/images/edits"
    fake.script(path, Reply(json=ANSWER))
    sdk(gateway, "azure").images.edit(
        image=("photo.png", PNG, "image/png"), prompt="add a hat", model="gpt-image-1"
    )
    sent = fake.requests[-1]
    assert sent.path == path and sent.query.startswith("api-version=")
    assert sent.headers["api-key"] == "sk-edit"
    assert [p.data for p in parse_form(sent) if p.filename] == [PNG]


def test_a_provider_without_edits_is_named(gateway: RunningGateway, fake: FakeUpstream) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        sdk(gateway, "groq").images.edit(image=("a.png", PNG, "image/png"), prompt="x")
    message = raised.value.response.json()["error"]["message"]
    assert "groq" in message and "image_edits" in message
    assert fake.requests == []


def test_an_edit_needs_an_image_and_a_prompt(gateway: RunningGateway, fake: FakeUpstream) -> None:
    client = sdk(gateway, "openai-fake")
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.edit(image=("a.png", PNG, "image/png"), prompt="")
    assert raised.value.response.json()["error"]["param"] == "prompt"
    with pytest.raises(openai.BadRequestError) as raised:
        client.images.edit(image=[], prompt="no image")
    assert raised.value.response.json()["error"]["param"] == "image"
    assert fake.requests == []
