"""Every kind of bad input gets an OpenAI-style error with the right status — never a hang."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import MAX_BODY_BYTES, RunningGateway, free_port
from tests.fake_upstream import FakeUpstream, Reply

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
KEY = {"authorization": "Bearer sk-test"}


@pytest.fixture
def http(gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.base_url, timeout=15) as client:
        yield client


def assert_error(
    response: httpx.Response, status: int, *, code: str | None = None, mentions: str = ""
) -> dict[str, Any]:
    """The response is ``status`` with an OpenAI-style error body naming the problem."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    error = body["error"]
    assert set(error) >= {"message", "type", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.text
    if code is not None:
        assert error["code"] == code
    assert mentions.lower() in error["message"].lower()
    assert response.headers["x-portkey-trace-id"]
    return dict(error)


def config_header(config: Any) -> dict[str, str]:
    return {**KEY, "x-portkey-config": orjson.dumps(config).decode()}


def test_malformed_json(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        content=b'{"model": "gpt-4o-mini", "messages": [',
        headers={**KEY, "content-type": "application/json", "x-portkey-config": "openai-fake"},
    )
    error = assert_error(response, 400, code="invalid_json", mentions="json")
    assert error["type"] == "invalid_request_error"


def test_body_must_be_an_object(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions", content=b"[1, 2]", headers={"x-portkey-config": "openai-fake"}
    )
    assert_error(response, 400, mentions="object")


def test_non_json_content_type(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        data={"model": "gpt-4o-mini"},
        headers={"x-portkey-config": "openai-fake"},
    )
    assert_error(response, 415, mentions="application/x-www-form-urlencoded")


def test_missing_provider(http: httpx.Client) -> None:
    response = http.post("/chat/completions", json=CHAT, headers=KEY)
    assert_error(response, 400, code="missing_provider", mentions="x-portkey-provider")


def test_unknown_provider(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions", json=CHAT, headers={**KEY, "x-portkey-provider": "no-such-ai"}
    )
    assert_error(response, 400, mentions="no-such-ai")


def test_unknown_provider_in_config(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions", json=CHAT, headers=config_header({"provider": "no-such-ai"})
    )
    assert_error(response, 400, mentions="no-such-ai")


def test_config_not_json(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers={**KEY, "x-portkey-config": '{"provider": "openai",'},
    )
    assert_error(response, 400, mentions="x-portkey-config is not valid JSON")


def test_config_unknown_strategy_mode(http: httpx.Client, fake: FakeUpstream) -> None:
    config = {
        "strategy": {"mode": "round-robin"},
        "targets": [{"provider": "openai", "custom_host": fake.base_url}],
    }
    response = http.post("/chat/completions", json=CHAT, headers=config_header(config))
    error = assert_error(response, 400, mentions="strategy.mode")
    assert "round-robin" in error["message"] or "loadbalance" in error["message"]


def test_config_negative_weight(http: httpx.Client, fake: FakeUpstream) -> None:
    config = {
        "strategy": {"mode": "loadbalance"},
        "targets": [
            {"provider": "openai", "custom_host": fake.base_url, "weight": -1},
            {"provider": "openai", "custom_host": fake.base_url},
        ],
    }
    response = http.post("/chat/completions", json=CHAT, headers=config_header(config))
    assert_error(response, 400, mentions="targets.0.weight")


def test_named_config_not_found(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions", json=CHAT, headers={**KEY, "x-portkey-config": "pc-missing"}
    )
    assert_error(response, 404, code="config_not_found", mentions="pc-missing")


def test_body_over_limit(http: httpx.Client) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * MAX_BODY_BYTES}]}
    response = http.post(
        "/chat/completions", json=big, headers={**KEY, "x-portkey-config": "openai-fake"}
    )
    assert_error(response, 413, mentions=str(MAX_BODY_BYTES))


def test_body_over_limit_without_content_length(http: httpx.Client) -> None:
    """A chunked upload is counted as it arrives, not trusted to declare its size."""

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "m", "messages": [{"role": "user", "content": "'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"x" * 1024
        yield b'"}]}'

    response = http.post(
        "/chat/completions",
        content=chunks(),
        headers={**KEY, "content-type": "application/json", "x-portkey-config": "openai-fake"},
    )
    assert_error(response, 413)


def test_upstream_refuses_connection(http: httpx.Client) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers=config_header({"provider": "openai", "custom_host": closed}),
    )
    error = assert_error(response, 502, mentions="could not reach")
    assert error["code"] == "upstream_unreachable"


def test_upstream_answers_non_json(http: httpx.Client, fake: FakeUpstream) -> None:
    fake.script(
        "/v1/chat/completions",
        Reply(body=b"<html>502 Bad Gateway</html>", content_type="text/html"),
    )
    response = http.post(
        "/chat/completions", json=CHAT, headers={**KEY, "x-portkey-config": "openai-fake"}
    )
    assert_error(response, 502, mentions="not JSON")


def test_upstream_drops_connection(http: httpx.Client, fake: FakeUpstream) -> None:
    fake.script("/v1/chat/completions", Reply(drop="before_headers"))
    response = http.post(
        "/chat/completions", json=CHAT, headers={**KEY, "x-portkey-config": "openai-fake"}
    )
    assert_error(response, 502)


def test_upstream_timeout(http: httpx.Client, fake: FakeUpstream) -> None:
    fake.script("/v1/chat/completions", Reply(delay=3))
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers={**KEY, "x-portkey-config": "openai-fake", "x-portkey-request-timeout": "200"},
    )
    error = assert_error(response, 408, mentions="200")
    assert error["type"] == "timeout_error"


@pytest.mark.parametrize(
    ("headers", "mentions"),
    [
        ({"x-portkey-metadata": "not json"}, "x-portkey-metadata"),
        ({"x-portkey-metadata": "[1]"}, "x-portkey-metadata"),
        ({"x-portkey-request-timeout": "soon"}, "x-portkey-request-timeout"),
    ],
)
def test_bad_portkey_headers(http: httpx.Client, headers: dict[str, str], mentions: str) -> None:
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers={**KEY, "x-portkey-config": "openai-fake", **headers},
    )
    assert_error(response, 400, mentions=mentions)


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({"model": "m"}, "messages"),
        ({**CHAT, "stream": "yes"}, "stream"),
    ],
)
def test_bad_parameters(http: httpx.Client, body: dict[str, Any], mentions: str) -> None:
    response = http.post(
        "/chat/completions", json=body, headers={**KEY, "x-portkey-config": "openai-fake"}
    )
    assert_error(response, 400, mentions=mentions)


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {"model": "m", "messages": 5}, "messages"),
        ("/chat/completions", {"model": "m", "messages": [5]}, "messages.0"),
        ("/chat/completions", {"model": "m", "messages": [{"role": 3}]}, "messages.0.role"),
        (
            "/chat/completions",
            {**CHAT, "messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages.0.content.0.text",
        ),
        ("/chat/completions", {**CHAT, "n": "abc"}, "n"),
        ("/chat/completions", {**CHAT, "tools": "x"}, "tools"),
        ("/chat/completions", {**CHAT, "stop": {}}, "stop"),
        ("/chat/completions", {**CHAT, "max_tokens": "a"}, "max_tokens"),
        ("/chat/completions", {**CHAT, "temperature": True}, "temperature"),
        ("/embeddings", {"model": "m", "input": 5}, "input"),
        ("/completions", {"model": "m", "prompt": [[1], "a"]}, "prompt.1"),
    ],
)
def test_a_field_of_the_wrong_shape_is_a_400_naming_it(
    http: httpx.Client, fake: FakeUpstream, path: str, body: dict[str, Any], param: str
) -> None:
    response = http.post(path, json=body, headers={**KEY, "x-portkey-config": "openai-fake"})
    error = assert_error(response, 400, mentions=f"'{param}'")
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["code"] in ("invalid_type", "invalid_value")
    assert fake.requests == []  # refused before any provider is called


MESSAGE = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("body", "mentions"),
    [
        ({**MESSAGE, "stop_sequences": "END"}, "'stop_sequences'"),
        ({**MESSAGE, "metadata": []}, "'metadata'"),
        (
            {
                **MESSAGE,
                "messages": [{"role": "user", "content": [{"type": "image", "source": 5}]}],
            },
            "'messages.0.content.0.source'",
        ),
        ({**MESSAGE, "tools": [{"input_schema": {}}]}, "'tools.0.name'"),
    ],
)
def test_a_messages_field_of_the_wrong_shape_is_named_as_sent(
    http: httpx.Client, fake: FakeUpstream, body: dict[str, Any], mentions: str
) -> None:
    """The Anthropic route names the misfit in the client's own terms, in Anthropic's
    error shape."""
    response = http.post("/messages", json=body, headers={**KEY, "x-portkey-config": "openai-fake"})
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert mentions in error["error"]["message"]
    assert fake.requests == []


def test_missing_api_key(http: httpx.Client, fake: FakeUpstream) -> None:
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url},
    )
    assert_error(response, 401, mentions="api key")
    assert fake.requests == []


def test_unknown_route_and_wrong_method(http: httpx.Client) -> None:
    assert_error(http.post("/audio/voices", json={}), 404, mentions="/v1/audio/voices")
    response = http.get("/chat/completions")
    assert_error(response, 405, mentions="POST")
    assert response.headers["allow"] == "POST"


def test_host_app_routes_keep_working(gateway: RunningGateway, http: httpx.Client) -> None:
    http.post("/chat/completions", content=b"{", headers={"content-type": "application/json"})
    if gateway.mode == "mounted":
        response = httpx.get(gateway.host_url + "/hello")
        assert response.status_code == 200 and response.json() == {"hello": "host"}


def test_header_cannot_redirect_a_server_held_key(
    tmp_path_factory: pytest.TempPathFactory, fake: FakeUpstream
) -> None:
    """A client may not send a key from the server's config to a host of its choosing."""
    from tests.conftest import mounted_gateway, server_file

    path = server_file(
        tmp_path_factory.mktemp("keys"),
        fake,
        configs={"held": {"provider": "openai", "api_key": "sk-server-secret"}},
    )
    with mounted_gateway(path) as running:
        response = httpx.post(
            running.base_url + "/chat/completions",
            json=CHAT,
            headers={"x-portkey-config": "held", "x-portkey-custom-host": fake.base_url},
        )
    assert_error(response, 400, code="custom_host_not_allowed", mentions="held by the server")
    assert fake.requests == []


def test_header_custom_host_with_the_clients_own_key(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    config = {"provider": "openai", "api_key": "sk-client-inline"}
    headers = {**config_header(config), "x-portkey-custom-host": fake.base_url}
    assert http.post("/chat/completions", json=CHAT, headers=headers).status_code == 200
    assert fake.requests[0].headers["authorization"] == "Bearer sk-client-inline"


def test_custom_host_header_must_be_a_url(http: httpx.Client) -> None:
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers={**KEY, "x-portkey-config": "openai-fake", "x-portkey-custom-host": "evil"},
    )
    assert_error(response, 400, code="invalid_custom_host", mentions="http(s) URL")


def test_only_bearer_authorization_is_a_provider_key(
    http: httpx.Client, fake: FakeUpstream
) -> None:
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers={"x-portkey-config": "openai-fake", "authorization": "Basic dXNlcjpwYXNz"},
    )
    assert_error(response, 401, mentions="api key")
    assert fake.requests == []


def test_failed_attempt_names_the_target(http: httpx.Client) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    response = http.post(
        "/chat/completions",
        json=CHAT,
        headers=config_header({"provider": "openai", "custom_host": closed}),
    )
    assert response.status_code == 502
    assert response.headers["x-portkey-provider"] == "openai"
    assert response.headers["x-portkey-last-used-option-index"] == "config"
