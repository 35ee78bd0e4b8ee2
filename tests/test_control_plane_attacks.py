"""The control plane attacked from outside, as an attacker would: with no key, with a
low-privilege gateway API key (``completions.write`` only), with a key whose config may not
be overridden, and with admin-ish keys (a few scopes, or one workspace's).

Where an attack travels over HTTP it runs against ``portkey-mw serve``; the rest run in
process through the gateway's ASGI interface, which is the same code behind the socket.
The detector (``tests/detector.py``) stands where a stolen credential would land and must
see nothing; the virtual keys hold planted secrets, so the suite's scanner fails any test
during which one shows up in a response or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from portkey_mw import Gateway, ServerSettings
from portkey_mw.admin.scopes import ROUTES
from portkey_mw.auth import catalog as catalog_module
from portkey_mw.store.sql import SQLStore
from tests import planted
from tests.conftest import RunningGateway, in_process, server_file, standalone_gateway
from tests.detector import Detector
from tests.fake_upstream import FakeUpstream
from tests.postgres import PostgresServer
from tests.test_vertex_ai import service_account

ADMIN = planted.ADMIN
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
MOCK_CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}
FORBIDDEN = [{"role": "user", "content": "a forbidden word"}]
#: how often serve processes look for changes made elsewhere, in these tests
REFRESH = 0.5
CANONICAL_KEY = planted.plant("sk-planted-canonical-openai-5tG8hJ1kL4")
SECOND_KEY = planted.plant("sk-planted-second-attacks-7uI0oP3aS6")
DENY_FORBIDDEN = {"default.contains": {"operator": "none", "words": ["forbidden"]}, "deny": True}


@pytest.fixture(scope="module")
def detector() -> Iterator[Detector]:
    with Detector() as running:
        yield running


@pytest.fixture
def auth_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTKEY_MW_AUTH", "required")


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"


@contextlib.asynccontextmanager
async def gateway_in_process(
    url: str, **settings: Any
) -> AsyncIterator[tuple[Gateway, httpx.AsyncClient]]:
    """A gateway over the store at ``url``, called through its ASGI interface."""
    store = settings.pop("store", {})
    config = ServerSettings.from_mapping(
        {"mock": True, "store": {"url": url, "refresh_interval": REFRESH, **store}, **settings}
    )
    gateway = Gateway(config)
    async with in_process(gateway) as client:
        yield gateway, client


async def made(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], headers: Any = ADMIN
) -> dict[str, Any]:
    reply = await client.post(path, json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


async def new_key(client: httpx.AsyncClient, scopes: list[str], **extra: Any) -> dict[str, Any]:
    """An organisation API key made by the admin; its key is planted (scanned for)."""
    body = {"name": "k", "scopes": scopes, **extra}
    answer = await made(client, "/v1/api-keys/organisation/service", body)
    planted.plant(answer["key"])
    return answer


def sync_made(gw: RunningGateway, path: str, body: dict[str, Any], key: str) -> dict[str, Any]:
    reply = httpx.post(
        f"{gw.base_url}{path}", json=body, headers={"x-portkey-api-key": key}, timeout=20
    )
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def sync_key(gw: RunningGateway, scopes: list[str], **extra: Any) -> str:
    body = {"name": "k", "scopes": scopes, **extra}
    made_key = sync_made(gw, "/api-keys/organisation/service", body, planted.ADMIN_KEY)
    return planted.plant(str(made_key["key"]))


def chat(gw: RunningGateway, headers: Any, body: dict[str, Any] = CHAT) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=headers, timeout=20)


def code(reply: httpx.Response) -> str:
    error = reply.json().get("error") or {}
    return str(error.get("code"))


# -- moving a virtual key's credential elsewhere -------------------------------------------------


def test_no_request_moves_a_virtual_keys_credentials(
    tmp_path: Path, fake: FakeUpstream, detector: Detector
) -> None:
    """A completions-only key tries every way of sending a virtual key's credential to the
    detector: headers, inline configs at the target and every parent level, provider
    options, mixed strategies, ``@slug`` forms. Each is refused before anything is sent, or
    the operator's host wins; the detector sees nothing."""
    before = detector.hits
    path = server_file(tmp_path, fake, store={"url": sqlite_url(tmp_path)})
    with standalone_gateway(path, env={"PORTKEY_MW_AUTH": "required"}) as gw:
        admin = planted.ADMIN_KEY
        hosted = sync_made(
            gw,
            "/virtual-keys",
            {
                "name": "o",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": fake.base_url,
            },
            admin,
        )["slug"]
        canonical = sync_made(
            gw, "/virtual-keys", {"name": "c", "provider": "openai", "key": CANONICAL_KEY}, admin
        )["slug"]
        azure = sync_made(
            gw,
            "/virtual-keys",
            {
                "name": "a",
                "provider": "azure-openai",
                "key": planted.AZURE_KEY,
                "deploymentName": "gpt",
            },
            admin,
        )["slug"]
        bedrock = sync_made(
            gw,
            "/virtual-keys",
            {
                "name": "b",
                "provider": "bedrock",
                "awsAccessKeyId": planted.AWS_ACCESS_KEY_ID,
                "awsSecretAccessKey": planted.AWS_SECRET_ACCESS_KEY,
                "awsSessionToken": planted.AWS_SESSION_TOKEN,
                "awsRegion": "us-east-1",
            },
            admin,
        )["slug"]
        vertex = sync_made(
            gw,
            "/virtual-keys",
            {
                "name": "v",
                "provider": "vertex-ai",
                "key": planted.VERTEX_TOKEN,
                "vertexProjectId": "p",
            },
            admin,
        )["slug"]
        key = sync_key(gw, ["completions.write"])
        own = {"x-portkey-api-key": key}
        far = detector.url
        config = json.dumps
        refused: list[tuple[dict[str, str], dict[str, Any], str]] = [
            (
                {"x-portkey-virtual-key": canonical, "x-portkey-custom-host": far},
                CHAT,
                "custom_host_not_allowed",
            ),
            (
                {"x-portkey-provider": f"@{canonical}", "x-portkey-custom-host": far},
                CHAT,
                "custom_host_not_allowed",
            ),
            (
                {"x-portkey-provider": "openai", "x-portkey-custom-host": far},
                {**CHAT, "model": f"@{canonical}/gpt-4o-mini"},
                "custom_host_not_allowed",
            ),
            (
                {"x-portkey-custom-host": far},
                {**CHAT, "model": f"@{canonical}/gpt-4o-mini"},
                "custom_host_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config({"virtual_key": canonical}),
                    "x-portkey-custom-host": far,
                },
                CHAT,
                "custom_host_not_allowed",
            ),
            (
                {"x-portkey-config": config({"virtual_key": canonical, "custom_host": far})},
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config(
                        {"custom_host": far, "targets": [{"virtual_key": canonical}]}
                    )
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config(
                        {"custom_host": far, "targets": [{"targets": [{"virtual_key": hosted}]}]}
                    )
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-virtual-key": canonical,
                    "x-portkey-config": config({"custom_host": far}),
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-provider": f"@{canonical}",
                    "x-portkey-config": config({"custom_host": far}),
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {"x-portkey-config": config({"virtual_key": canonical, "api_key": "sk-mine"})},
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {"x-portkey-config": config({"virtual_key": canonical, "provider": "groq"})},
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {"x-portkey-config": config({"virtual_key": azure, "resource_name": "evil"})},
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {"x-portkey-config": config({"virtual_key": bedrock, "aws_region": "eu-west-1"})},
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config(
                        {"virtual_key": vertex, "vertex_region": "europe-west4"}
                    )
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {"x-portkey-config": config({"virtual_key": vertex, "vertex_project_id": "evil"})},
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config(
                        {
                            "strategy": {"mode": "loadbalance"},
                            "custom_host": far,
                            "targets": [
                                {"provider": "openai", "api_key": "sk-mine"},
                                {"virtual_key": canonical},
                            ],
                        }
                    )
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config(
                        {
                            "strategy": {
                                "mode": "conditional",
                                "conditions": [
                                    {"query": {"metadata.x": {"$eq": "1"}}, "then": "mine"}
                                ],
                                "default": "vk",
                            },
                            "targets": [
                                {
                                    "name": "mine",
                                    "provider": "openai",
                                    "api_key": "sk-mine",
                                    "custom_host": far,
                                },
                                {"name": "vk", "virtual_key": canonical, "custom_host": far},
                            ],
                        }
                    )
                },
                CHAT,
                "virtual_key_override_not_allowed",
            ),
            (
                {"x-portkey-virtual-key": azure, "x-portkey-azure-resource-name": "evil"},
                CHAT,
                "destination_option_not_allowed",
            ),
            (
                {"x-portkey-virtual-key": azure, "x-portkey-custom-host": far},
                CHAT,
                "custom_host_not_allowed",
            ),
            (
                {"x-portkey-virtual-key": bedrock, "x-portkey-custom-host": far},
                CHAT,
                "custom_host_not_allowed",
            ),
            (
                {"x-portkey-virtual-key": vertex, "x-portkey-vertex-region": "europe-west4"},
                CHAT,
                "destination_option_not_allowed",
            ),
            (
                {"x-portkey-virtual-key": vertex, "x-portkey-custom-host": far},
                CHAT,
                "custom_host_not_allowed",
            ),
            (
                {
                    "x-portkey-config": config(
                        {"virtual_key": canonical, "forward_headers": ["host"]}
                    )
                },
                CHAT,
                "invalid_config",
            ),
        ]
        for headers, body, expected in refused:
            reply = chat(gw, {**own, **headers}, body)
            assert reply.status_code == 400, (headers, reply.text)
            assert code(reply) == expected, (headers, reply.text)
        # Where the admin bound the key to a host, that host wins over the client's.
        for headers in (
            {"x-portkey-virtual-key": hosted, "x-portkey-custom-host": far},
            {"x-portkey-config": config({"virtual_key": hosted}), "x-portkey-custom-host": far},
            # A forwarded Authorization never replaces the one the adapter sets.
            {
                "x-portkey-config": config(
                    {"virtual_key": hosted, "forward_headers": ["authorization"]}
                ),
                "authorization": "Bearer sk-client-chosen",
            },
        ):
            fake.reset()
            reply = chat(gw, {**own, **headers})
            assert reply.status_code == 200, (headers, reply.text)
            assert fake.requests[-1].headers["authorization"] == f"Bearer {planted.OPENAI_KEY}"
        # Parent-level provider options are not inherited into a virtual key's target.
        parent = {
            "resource_name": "evil",
            "aws_region": "eu-west-1",
            "targets": [{"virtual_key": hosted}],
        }
        reply = chat(gw, {**own, "x-portkey-config": config(parent)})
        assert reply.status_code == 200, reply.text
    assert detector.hits == before


def test_a_saved_config_cannot_move_a_virtual_keys_credentials(
    tmp_path: Path, fake: FakeUpstream, detector: Detector
) -> None:
    """An admin-ish key that may save configs (but not touch virtual keys) saves one that
    points a virtual key at the detector, at the target or a parent level, or changes its
    region or resource. Saving is refused; nothing reaches the detector."""
    before = detector.hits
    path = server_file(tmp_path, fake, store={"url": sqlite_url(tmp_path)})
    with standalone_gateway(path, env={"PORTKEY_MW_AUTH": "required"}) as gw:
        admin = planted.ADMIN_KEY
        canonical = sync_made(
            gw, "/virtual-keys", {"name": "c", "provider": "openai", "key": CANONICAL_KEY}, admin
        )["slug"]
        hosted = sync_made(
            gw,
            "/virtual-keys",
            {
                "name": "h",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": fake.base_url,
            },
            admin,
        )["slug"]
        bedrock = sync_made(
            gw,
            "/virtual-keys",
            {
                "name": "b",
                "provider": "bedrock",
                "awsAccessKeyId": planted.AWS_ACCESS_KEY_ID,
                "awsSecretAccessKey": planted.AWS_SECRET_ACCESS_KEY,
                "awsRegion": "us-east-1",
            },
            admin,
        )["slug"]
        saver = sync_key(gw, ["configs.create", "configs.update", "completions.write"])
        far = detector.url
        for config in (
            {"virtual_key": canonical, "custom_host": far},
            {"custom_host": far, "targets": [{"virtual_key": canonical}]},
            {
                "strategy": {"mode": "fallback"},
                "custom_host": far,
                "targets": [{"targets": [{"virtual_key": hosted}]}],
            },
            {"virtual_key": bedrock, "aws_region": "eu-west-1"},
            {"virtual_key": bedrock, "custom_host": far},
        ):
            reply = httpx.post(
                f"{gw.base_url}/configs",
                json={"name": "steal", "config": config},
                headers={"x-portkey-api-key": saver},
                timeout=20,
            )
            assert reply.status_code == 400, (config, reply.text)
            assert code(reply) == "virtual_key_override_not_allowed", reply.text
            assert "remove" in reply.json()["error"]["message"]
        # Nor by updating a harmless saved config into one.
        harmless = sync_made(
            gw, "/configs", {"name": "ok", "config": {"virtual_key": hosted}}, saver
        )
        reply = httpx.put(
            f"{gw.base_url}/configs/{harmless['slug']}",
            json={"config": {"virtual_key": canonical, "custom_host": far}},
            headers={"x-portkey-api-key": saver},
            timeout=20,
        )
        assert reply.status_code == 400, reply.text
        used = chat(gw, {"x-portkey-api-key": saver, "x-portkey-config": harmless["slug"]})
        assert used.status_code == 200, used.text
    assert detector.hits == before


def test_a_saved_config_cannot_reach_for_the_gateways_own_cloud_identity(
    tmp_path: Path, fake: FakeUpstream, detector: Detector
) -> None:
    """With Application Default Credentials enabled for the server file's Vertex targets,
    a saved config (written by a key with ``configs.create``) is not the server file: it
    gets no ambient token, so the gateway's identity is not sent to a host it names."""
    before = detector.hits
    adc = tmp_path / "adc.json"
    account = service_account(f"{detector.url}/token")
    planted.plant(account["private_key"])
    adc.write_text(json.dumps(account), encoding="utf-8")
    path = server_file(
        tmp_path,
        fake,
        store={"url": sqlite_url(tmp_path)},
        plugins={"settings": {"portkey-mw.vertex-ai": {"application_default_credentials": True}}},
    )
    env = {"PORTKEY_MW_AUTH": "required", "GOOGLE_APPLICATION_CREDENTIALS": str(adc)}
    with standalone_gateway(path, env=env) as gw:
        saver = sync_key(gw, ["configs.create", "completions.write"])
        vertex = {
            "provider": "vertex-ai",
            "vertex_project_id": "p",
            "custom_host": f"{detector.url}/v1",
        }
        saved = sync_made(gw, "/configs", {"name": "adc", "config": vertex}, saver)
        reply = chat(
            gw,
            {"x-portkey-api-key": saver, "x-portkey-config": saved["slug"]},
            {**CHAT, "model": "gemini-2.5-flash"},
        )
        assert reply.status_code == 401, reply.text
        assert "application_default_credentials" in reply.json()["error"]["message"]
    assert detector.hits == before


async def test_a_saved_config_holds_no_credentials(tmp_path: Path, auth_required: None) -> None:
    """Saved configs are stored as plain JSON and shown whole to every ``configs.read``
    key: a credential in one would be readable and unencrypted, so saving one is refused
    (credentials belong in a virtual key, which the vault encrypts)."""
    secret = planted.plant("sk-planted-in-a-saved-config-2wS5xD8c")
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        configs: list[dict[str, Any]] = [
            {"provider": "openai", "api_key": secret},
            {
                "strategy": {"mode": "fallback"},
                "targets": [{"provider": "mock"}, {"provider": "openai", "api_key": secret}],
            },
            {"provider": "bedrock", "aws_access_key_id": "AKIA1", "aws_secret_access_key": secret},
            {"provider": "azure-openai", "resource_name": "r", "azure_ad_token": secret},
            {
                "provider": "vertex-ai",
                "vertex_project_id": "p",
                "vertex_service_account_json": {"private_key": secret},
            },
        ]
        for config in configs:
            reply = await client.post(
                "/v1/configs", json={"name": "s", "config": config}, headers=ADMIN
            )
            assert reply.status_code == 400, (config, reply.text)
            assert code(reply) == "credentials_in_config", reply.text
            assert "virtual key" in reply.json()["error"]["message"]
        listed = await client.get("/v1/configs", headers=ADMIN)
        assert listed.json()["total"] == 0


# -- the gateway API key itself never goes upstream -------------------------------------------


@pytest.mark.parametrize("mode", ["optional", "required"])
async def test_the_gateway_key_never_goes_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detector: Detector, mode: str
) -> None:
    """Not as ``Authorization`` nor as ``x-api-key`` (the anthropic SDK's header), not
    through ``forward_headers`` or ``x-portkey-forward-headers``, not to a provider that
    takes no key of its own."""
    monkeypatch.setenv("PORTKEY_MW_AUTH", mode)
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        key = (await new_key(client, ["completions.write"]))["key"]
        far = detector.url
        bearer = {"authorization": f"Bearer {key}"}
        attempts: list[tuple[str, dict[str, str], dict[str, Any]]] = [
            (
                "/v1/chat/completions",
                {
                    **bearer,
                    "x-portkey-provider": "vllm",
                    "x-portkey-custom-host": far,
                    "x-portkey-forward-headers": "authorization",
                },
                CHAT,
            ),
            (
                "/v1/chat/completions",
                {
                    **bearer,
                    "x-portkey-config": json.dumps(
                        {
                            "provider": "vllm",
                            "custom_host": far,
                            "forward_headers": ["Authorization"],
                        }
                    ),
                },
                CHAT,
            ),
            (
                "/v1/chat/completions",
                {
                    **bearer,
                    "x-api-key": key,
                    "x-portkey-provider": "ollama",
                    "x-portkey-custom-host": far,
                    "x-portkey-forward-headers": "x-api-key",
                },
                CHAT,
            ),
            (
                "/v1/chat/completions",
                {
                    "x-portkey-api-key": key,
                    "authorization": f"bearer  {key}",
                    "x-portkey-provider": "lm-studio",
                    "x-portkey-custom-host": far,
                    "x-portkey-forward-headers": "authorization,x-portkey-api-key",
                },
                CHAT,
            ),
            (
                "/v1/chat/completions",
                {
                    **bearer,
                    "x-api-key": key,
                    "x-portkey-provider": "anthropic",
                    "x-portkey-custom-host": far,
                },
                CHAT,
            ),
            (
                "/v1/messages",
                {
                    **bearer,
                    "x-api-key": key,
                    "x-portkey-provider": "anthropic",
                    "x-portkey-custom-host": far,
                },
                {"model": "claude-x", "max_tokens": 5, "messages": CHAT["messages"]},
            ),
        ]
        for path, headers, body in attempts:
            reply = await client.post(path, json=body, headers=headers)
            assert reply.status_code < 500, (headers, reply.text)
        # Only the anthropic SDK's header, with the key in it: refused or keyless, never sent.
        reply = await client.post(
            "/v1/messages",
            json={"model": "claude-x", "max_tokens": 5, "messages": CHAT["messages"]},
            headers={
                "x-api-key": key,
                "x-portkey-provider": "anthropic",
                "x-portkey-custom-host": far,
            },
        )
        assert reply.status_code == 401, reply.text
    assert not detector.seen(key.encode())
    assert not detector.seen(key.removeprefix("pk-mw-").encode())


async def test_a_malformed_gateway_key_is_refused_not_taken_for_a_provider_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detector: Detector
) -> None:
    """With ``server.auth: optional`` a request carrying an invalid gateway key is refused:
    an over-long one too, which must not pass as "no key" and travel upstream as the
    client's provider key. Non-ASCII bytes and wrong keys are 401, never 500."""
    before = detector.hits
    monkeypatch.setenv("PORTKEY_MW_AUTH", "optional")
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        long_key = "pk-mw-" + "A" * 300
        route = {"x-portkey-provider": "vllm", "x-portkey-custom-host": detector.url}
        for headers in (
            {"authorization": f"Bearer {long_key}"},
            {"x-portkey-api-key": long_key},
            {"x-portkey-api-key": "pk-mw-wrong"},
            {"authorization": "Bearer pk-mw-wrong"},
            [("x-portkey-api-key", "pk-mw-\xe9\xff\u00fc".encode("latin-1"))],
        ):
            sent = headers if isinstance(headers, list) else list(headers.items())
            reply = await client.post(
                "/v1/chat/completions", json=CHAT, headers=[*sent, *route.items()]
            )
            assert reply.status_code == 401, (headers, reply.text)
        assert detector.hits == before
        # x-api-key is not where the gateway looks for its key; it is not forwarded either.
        headers = {"x-api-key": long_key, **route}
        await client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert not detector.seen(long_key.encode())


# -- escaping allow_config_override: false -------------------------------------------------------


async def test_a_key_without_config_override_cannot_escape_its_config(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        forced_vk = await made(
            client,
            "/v1/virtual-keys",
            {
                "name": "f",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": fake.base_url,
            },
        )
        other_vk = await made(
            client,
            "/v1/virtual-keys",
            {"name": "o", "provider": "openai", "key": SECOND_KEY, "custom_host": fake.base_url},
        )
        saved = await made(
            client,
            "/v1/configs",
            {
                "name": "forced",
                "config": {"virtual_key": forced_vk["slug"], "input_guardrails": [DENY_FORBIDDEN]},
            },
        )
        forced = (
            await new_key(
                client,
                ["completions.write"],
                defaults={"config_id": saved["slug"], "allow_config_override": False},
            )
        )["key"]
        free = (await new_key(client, ["completions.write"]))["key"]
        other = other_vk["slug"]
        inline = json.dumps({"virtual_key": other})
        escapes: list[Any] = [
            {"x-portkey-config": inline},
            {"x-portkey-config": f"  {inline}  "},
            {"x-portkey-config": " "},
            {"X-Portkey-Config": inline},
            {"x-portkey-config": "openai-fake"},
            {"x-portkey-virtual-key": other},
            {"x-portkey-virtual-key": " "},
            {"X-PORTKEY-VIRTUAL-KEY": other},
            {"x-portkey-provider": f"@{other}"},
            {"x-portkey-provider": "openai"},
            {"x-portkey-custom-host": fake.base_url},
            # duplicates: the last one counts, for the refusal as for the routing
            [("x-portkey-config", ""), ("x-portkey-config", inline)],
            [("x-portkey-virtual-key", ""), ("x-portkey-virtual-key", other)],
        ]
        for escape in escapes:
            pairs = escape if isinstance(escape, list) else list(escape.items())
            # the forced key as x-portkey-api-key, as a Bearer token, or beside a value
            # that is not a gateway key
            for identity in (
                [("x-portkey-api-key", forced)],
                [("authorization", f"Bearer {forced}")],
                [
                    ("x-portkey-api-key", "sk-not-a-gateway-key"),
                    ("authorization", f"Bearer {forced}"),
                ],
            ):
                reply = await client.post(
                    "/v1/chat/completions", json=CHAT, headers=[*identity, *pairs]
                )
                assert reply.status_code == 403, (escape, identity, reply.text)
                assert code(reply) == "config_override_not_allowed", reply.text
        model = {**CHAT, "model": f"@{other}/gpt-4o-mini"}
        reply = await client.post(
            "/v1/chat/completions", json=model, headers={"x-portkey-api-key": forced}
        )
        assert reply.status_code == 403, reply.text
        # An empty routing header is no header: the key's own config serves, guardrails on.
        identity = ("x-portkey-api-key", forced)
        for headers in (
            {"x-portkey-virtual-key": ""},
            {"x-portkey-config": ""},
            [("x-portkey-config", inline), ("x-portkey-config", "")],
            {},
        ):
            ok = await client.post(
                "/v1/chat/completions", json=CHAT, headers=[identity, *pairs_of(headers)]
            )
            assert ok.status_code == 200, ok.text
            denied = await client.post(
                "/v1/chat/completions",
                json={**CHAT, "messages": FORBIDDEN},
                headers=[identity, *pairs_of(headers)],
            )
            assert denied.status_code == 446, denied.text
        # One identity per request: x-portkey-api-key wins over Authorization (documented);
        # a second gateway key is never sent upstream either way.
        mixed = {
            "x-portkey-api-key": forced,
            "authorization": f"Bearer {free}",
            "x-portkey-virtual-key": other,
        }
        assert (
            await client.post("/v1/chat/completions", json=CHAT, headers=mixed)
        ).status_code == 403
        assert all(
            r.headers["authorization"] == f"Bearer {planted.OPENAI_KEY}" for r in fake.requests
        )


# -- enforced guardrails on every path ---------------------------------------------------------


async def test_enforced_guardrails_cannot_be_skipped(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's enforced deny runs on every route that sends the request's text
    upstream (count_tokens included), whatever the config: one that sets its own empty
    guardrail lists, per-target hooks that differ, a cached answer."""
    monkeypatch.setenv("PORTKEY_MW_AUTH", "off")
    settings = {"enforced": {"input_guardrails": [DENY_FORBIDDEN]}}
    async with gateway_in_process(sqlite_url(tmp_path), **settings) as (_, client):
        vk = await made(
            client,
            "/v1/virtual-keys",
            {
                "name": "a",
                "provider": "anthropic",
                "key": planted.ANTHROPIC_KEY,
                "custom_host": fake.base_url,
            },
        )
        own_hooks = {"provider": "mock", "input_guardrails": [], "before_request_hooks": []}
        per_target = {
            "strategy": {"mode": "fallback"},
            "targets": [
                {"provider": "mock", "input_guardrails": []},
                {
                    "provider": "mock",
                    "input_guardrails": [
                        {"default.contains": {"operator": "none", "words": ["x"]}}
                    ],
                },
            ],
        }
        cached = {"provider": "mock", "cache": {"mode": "simple"}}
        anthropic = {"x-portkey-virtual-key": vk["slug"]}
        cases: list[tuple[str, dict[str, str], dict[str, Any]]] = [
            (
                "/v1/chat/completions",
                {"x-portkey-config": json.dumps(own_hooks)},
                {**MOCK_CHAT, "messages": FORBIDDEN},
            ),
            (
                "/v1/chat/completions",
                {"x-portkey-config": json.dumps(per_target)},
                {**MOCK_CHAT, "messages": FORBIDDEN},
            ),
            (
                "/v1/chat/completions",
                {"x-portkey-config": json.dumps(cached)},
                {**MOCK_CHAT, "messages": FORBIDDEN},
            ),
            (
                "/v1/embeddings",
                {"x-portkey-provider": "mock"},
                {"model": "mock-embed", "input": "forbidden"},
            ),
            (
                "/v1/messages",
                anthropic,
                {"model": "claude-x", "max_tokens": 5, "messages": FORBIDDEN},
            ),
            ("/v1/messages/count_tokens", anthropic, {"model": "claude-x", "messages": FORBIDDEN}),
        ]
        for path, headers, body in cases:
            for _ in range(2):  # the second time, a cache could answer
                reply = await client.post(path, json=body, headers=headers)
                assert reply.status_code == 446, (path, headers, reply.text)
        assert fake.requests == []


# -- identity ---------------------------------------------------------------------------------


async def test_an_expired_key_is_refused_on_either_database(
    store_url: str, auth_required: None
) -> None:
    """``expires_at`` comes back timezone-aware from SQLite and PostgreSQL alike: the key
    works until then and is 401 ``api_key_expired`` after, never a 500."""
    async with gateway_in_process(store_url) as (_, client):
        soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
        short = await new_key(client, ["completions.write"], expires_at=soon)
        naive = (datetime.now(UTC) + timedelta(days=1)).replace(tzinfo=None).isoformat()
        later = await new_key(client, ["completions.write"], expires_at=naive)
        headers = {"x-portkey-provider": "mock"}
        for made_key in (short, later):
            reply = await client.post(
                "/v1/chat/completions",
                json=MOCK_CHAT,
                headers={**headers, "x-portkey-api-key": made_key["key"]},
            )
            assert reply.status_code == 200, reply.text
        deadline = time.monotonic() + 10
        while True:
            reply = await client.post(
                "/v1/chat/completions",
                json=MOCK_CHAT,
                headers={**headers, "x-portkey-api-key": short["key"]},
            )
            if reply.status_code != 200:
                break
            assert time.monotonic() < deadline, "the key never expired"
            await asyncio.sleep(0.1)
        assert reply.status_code == 401, reply.text
        assert code(reply) == "api_key_expired"
        for route in ("/v1/configs", "/v1/virtual-keys"):  # the admin API refuses it too
            listed = await client.get(route, headers={"x-portkey-api-key": short["key"]})
            assert listed.status_code == 401, listed.text
        # And a key that only manages configs cannot call the data plane.
        manager = await new_key(client, ["configs.read"])
        reply = await client.post(
            "/v1/chat/completions",
            json=MOCK_CHAT,
            headers={**headers, "x-portkey-api-key": manager["key"]},
        )
        assert reply.status_code == 403 and code(reply) == "missing_scope", reply.text
        assert "completions.write" in reply.text


def test_revoked_rotated_keys_and_changed_configs_reach_every_process(
    store_url: str, fake: FakeUpstream, tmp_path: Path
) -> None:
    """Two serve processes share a store: rotating an API key, revoking one and changing a
    saved config on the first take effect on the second within the refresh bound."""
    path = server_file(tmp_path, fake, store={"url": store_url, "refresh_interval": REFRESH})
    env = {"PORTKEY_MW_AUTH": "required"}
    with standalone_gateway(path, env=env) as first, standalone_gateway(path, env=env) as second:
        admin = planted.ADMIN_KEY
        slug = sync_made(
            first,
            "/virtual-keys",
            {
                "name": "o",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": fake.base_url,
            },
            admin,
        )["slug"]
        made_key = sync_made(
            first,
            "/api-keys/organisation/service",
            {"name": "r", "scopes": ["completions.write"]},
            admin,
        )
        old = planted.plant(made_key["key"])
        saved = sync_made(first, "/configs", {"name": "c", "config": {"virtual_key": slug}}, admin)
        headers = {"x-portkey-api-key": old, "x-portkey-config": saved["slug"]}
        # the second process learns of the virtual key within the bound
        until(lambda: chat(second, headers).status_code == 200)
        rotated = httpx.post(
            f"{first.base_url}/api-keys/{made_key['id']}/rotate", headers=planted.ADMIN, timeout=20
        )
        assert rotated.status_code == 200, rotated.text
        new = planted.plant(rotated.json()["key"])
        until(lambda: chat(second, headers).status_code == 401)
        assert chat(first, headers).status_code == 401
        renewed = {**headers, "x-portkey-api-key": new}
        until(lambda: chat(second, renewed).status_code == 200)
        # A saved config's new version routes on the second process within the bound.
        changed = httpx.put(
            f"{first.base_url}/configs/{saved['slug']}",
            json={"config": {"provider": "mock"}},
            headers=planted.ADMIN,
            timeout=20,
        )
        assert changed.status_code == 200, changed.text
        until(lambda: chat(second, renewed, MOCK_CHAT).headers.get("x-portkey-provider") == "mock")
        revoked = httpx.put(
            f"{first.base_url}/api-keys/{made_key['id']}",
            json={"status": "revoked"},
            headers=planted.ADMIN,
            timeout=20,
        )
        assert revoked.status_code == 200, revoked.text
        until(lambda: chat(second, renewed, MOCK_CHAT).status_code == 401)
        assert code(chat(second, renewed, MOCK_CHAT)) == "api_key_revoked"


def pairs_of(headers: Any) -> list[tuple[str, str]]:
    """Header pairs from a dict, or the list of pairs itself."""
    return list(headers.items()) if isinstance(headers, dict) else list(headers)


def until(predicate: Any, bound: float = REFRESH + 3.0) -> None:
    """Poll ``predicate`` until it holds, failing after ``bound`` seconds (the documented
    refresh interval plus the time requests take)."""
    deadline = time.monotonic() + bound
    while not predicate():
        assert time.monotonic() < deadline, "the change never arrived within the bound"
        time.sleep(0.05)


# -- negative caching and the store being down ------------------------------------------------


async def test_random_keys_and_slugs_cost_the_store_a_bounded_number_of_reads(
    tmp_path: Path, auth_required: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_module, "NEGATIVE_ENTRIES", 64)
    url = sqlite_url(tmp_path)
    async with gateway_in_process(url, store={"miss_reads_per_second": 5}) as (gateway, client):
        key = (await new_key(client, ["completions.write"]))["key"]
        store = gateway.control.store
        assert isinstance(store, SQLStore)
        seen: list[str] = []
        event.listen(store._db.sync_engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
        started = time.monotonic()
        for index in range(300):
            for headers, body in (
                ({"x-portkey-api-key": f"pk-mw-random-{index:040d}"}, MOCK_CHAT),
                ({"x-portkey-api-key": key, "x-portkey-virtual-key": f"nope-{index}"}, MOCK_CHAT),
                ({"x-portkey-api-key": key, "x-portkey-config": f"pc-nope-{index}"}, MOCK_CHAT),
                ({"x-portkey-api-key": key}, {**MOCK_CHAT, "model": f"@nope-{index}/m"}),
            ):
                reply = await client.post("/v1/chat/completions", json=body, headers=headers)
                assert reply.status_code in (401, 404), reply.text
        elapsed = time.monotonic() - started
        catalog = gateway.control.catalog
        assert catalog is not None
        reads = [s for s in seen if s.startswith("SELECT") and "revision" not in s]
        # the burst (5) plus what refilled meanwhile, however many names were sent
        assert len(reads) <= 5 + 5 * elapsed + 1, len(reads)
        assert catalog.miss_reads <= 5 + 5 * elapsed + 1
        assert len(catalog._unknown) <= 64


async def test_the_data_plane_serves_from_memory_while_postgresql_is_down(
    postgres_server: PostgresServer, auth_required: None
) -> None:
    name = postgres_server.create_database()
    url = postgres_server.url(name)
    async with gateway_in_process(url) as (_, client):
        vk = await made(client, "/v1/virtual-keys", {"name": "m", "provider": "mock", "key": "k"})
        key = (await new_key(client, ["completions.write", "virtual_keys.list"]))["key"]
        known = {"x-portkey-api-key": key, "x-portkey-virtual-key": vk["slug"]}
        postgres_server.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        postgres_server.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        try:
            started = time.monotonic()
            for _ in range(20):
                reply = await client.post("/v1/chat/completions", json=MOCK_CHAT, headers=known)
                assert reply.status_code == 200, reply.text
            assert time.monotonic() - started < 5
            started = time.monotonic()
            unknown = {"x-portkey-api-key": "pk-mw-not-a-real-key", "x-portkey-provider": "mock"}
            reply = await client.post("/v1/chat/completions", json=MOCK_CHAT, headers=unknown)
            assert reply.status_code == 401, reply.text
            assert time.monotonic() - started < 2  # one bounded miss read, then refused
            for route in ROUTES:
                path = fill(route.path)
                body = b"{}" if route.method in ("POST", "PUT") else None
                # (analytics require a time range: without one they are a 400 before any read)
                now = time.time()
                span = {"time_of_generation_min": now - 60, "time_of_generation_max": now}
                # (and the per-version outcomes one prompt: it is named, then read)
                params = (
                    {**span, "prompt_slug": "pp-x"}
                    if route.operation.startswith("analytics.")
                    else None
                )
                reply = await client.request(
                    route.method, path, headers=ADMIN, content=body, params=params
                )
                if route.operation == "logs.exports.file":
                    # its token is checked in memory, before any read: none here
                    assert reply.status_code == 401, reply.text
                    continue
                assert reply.status_code in (400, 503), (route.operation, reply.text)
                if route.method == "GET" or route.operation.endswith("delete"):
                    assert reply.status_code == 503, (route.operation, reply.text)
                    assert code(reply) == "store_unavailable"
                assert postgres_server.password not in reply.text
        finally:
            postgres_server.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def test_a_locked_sqlite_store_is_503_for_writes_and_invisible_to_requests(
    tmp_path: Path, auth_required: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text

    from portkey_mw.store.sql import engine as engine_module

    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT", 0.2)
    url = sqlite_url(tmp_path)
    async with gateway_in_process(url) as (_, client):
        vk = await made(client, "/v1/virtual-keys", {"name": "m", "provider": "mock", "key": "k"})
        key = (await new_key(client, ["completions.write"]))["key"]
        blocker = engine_module.make_engine(engine_module.resolve_url(url, environ={}))
        try:
            async with blocker.connect() as connection:
                connection = await connection.execution_options(write=True)
                async with connection.begin():
                    await connection.execute(text("UPDATE revision SET value = value"))
                    body = {"name": "n", "provider": "mock", "key": "k"}
                    reply = await client.post("/v1/virtual-keys", json=body, headers=ADMIN)
                    assert reply.status_code == 503, reply.text
                    assert code(reply) == "store_unavailable"
                    reply = await client.post(
                        "/v1/chat/completions",
                        json=MOCK_CHAT,
                        headers={"x-portkey-api-key": key, "x-portkey-virtual-key": vk["slug"]},
                    )
                    assert reply.status_code == 200, reply.text
        finally:
            await blocker.dispose()


# -- the admin API --------------------------------------------------------------------------


def fill(path: str) -> str:
    return (
        path.replace("{slug}", "some-slug")
        .replace("{id}", "some-id")
        .replace("{type}", "organisation")
        .replace("{sub_type}", "service")
        .replace("{request_id}", "some-id")
        .replace("{group_by}", "ai-models")
        .replace("{metadata_key}", "team")
    )


async def test_every_admin_route_refuses_strangers_and_low_keys(
    tmp_path: Path, auth_required: None
) -> None:
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        low = (await new_key(client, ["completions.write"]))["key"]
        for route in ROUTES:
            path = fill(route.path)
            body = b"{}" if route.method in ("POST", "PUT") else None
            for headers, status in (
                ([], 401),
                ([("x-portkey-api-key", "pk-mw-wrong")], 401),
                ([("x-portkey-api-key", "pk-mw-" + "x" * 400)], 401),
                ([("x-portkey-api-key", "\xe9\xff".encode("latin-1"))], 401),
                ([("authorization", "Basic YWRtaW46YWRtaW4=")], 401),
                ([("x-portkey-api-key", low)], 403),
                ([("authorization", f"Bearer {low}")], 403),
            ):
                reply = await client.request(route.method, path, headers=headers, content=body)
                if route.operation == "logs.exports.file":
                    # no key opens it, whatever its scopes: only a live download token
                    status = 401
                assert reply.status_code == status, (route.operation, headers, reply.text)
                if status == 403:
                    assert code(reply) == "missing_scope"
                    needed = route.scope_for("organisation_service")
                    assert needed in reply.text or "scopes" in reply.text, reply.text


async def test_hostile_admin_input_is_a_4xx(tmp_path: Path, auth_required: None) -> None:
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        json_type = {**ADMIN, "content-type": "application/json"}
        bodies = [
            b'{"name": "a\\u0000", "provider": "openai"}',
            b'{"name": "\xff\xfe", "provider": "openai"}',
            b'{"name": "\\ud800", "provider": "openai"}',
            b'{"name": "a", "provider": "openai", "defaults": '
            + b'{"a": ' * 200
            + b"1"
            + b"}" * 201,
            b'{"name": "' + b"a" * (2 * 1024 * 1024) + b'"}',
            b"[1, 2]",
            b"",
            b'{"name": "a", "provider": "openai", "slug": "../etc"}',
            '{"name": "a", "provider": "openai", "slug": "\u00e9t\u00e9"}'.encode(),
            b'{"name": "a", "provider": "openai", "slug": "a%2Fb"}',
            b'{"name": "a", "provider": "openai", "usage_limits": {"credit_limit": 1e400}}',
            b'{"name": "a", "provider": "openai", "custom_host": "http://u:p@h/"}',
            b'{"name": "a", "provider": "openai", "expires_at": "99999-01-01"}',
        ]
        for route in (
            "/v1/virtual-keys",
            "/v1/providers",
            "/v1/configs",
            "/v1/api-keys/organisation/service",
        ):
            # API keys ignore the virtual keys' fields: only the malformed bodies there
            for body in bodies[:7] if "api-keys" in route else bodies:
                reply = await client.post(route, content=body, headers=json_type)
                assert 400 <= reply.status_code < 500, (route, body[:60], reply.text)
            reply = await client.post(
                route, content=b'{"name": "a"}', headers={**ADMIN, "content-type": "text/plain"}
            )
            assert reply.status_code == 415, reply.text
        for path in (
            "/v1/virtual-keys/..%2F..%2Fetc%2Fpasswd",
            "/v1/virtual-keys/%00",
            "/v1/virtual-keys/%FF%FE",
            "/v1/configs/%2e%2e/versions",
            "/v1/api-keys/%00/rotate",
            "/v1/providers/" + "a" * 5000,
        ):
            for method in ("GET", "PUT", "DELETE"):
                content = b'{"name": "x"}' if method == "PUT" else None
                reply = await client.request(method, path, headers=ADMIN, content=content)
                assert 400 <= reply.status_code < 500, (method, path[:60], reply.text)
        # One slug, twenty concurrent creates: one wins, the rest are 409.
        body = {"name": "d", "provider": "openai", "slug": "contested"}
        replies = await asyncio.gather(
            *(client.post("/v1/virtual-keys", json=body, headers=ADMIN) for _ in range(20))
        )
        statuses = sorted(r.status_code for r in replies)
        assert statuses == [200] + [409] * 19, statuses


async def test_an_api_key_cannot_take_over_a_more_privileged_key(
    tmp_path: Path, auth_required: None
) -> None:
    """A key that may update organisation keys could rotate a stronger key and read its new
    secret, or switch a disabled stronger key back on: both are refused; it may still
    rotate and change keys whose scopes it holds itself."""
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        manage = ["organisation_service_api_keys.update", "organisation_service_api_keys.read"]
        manager = (await new_key(client, manage))["key"]
        strong = await new_key(client, ["virtual_keys.create", *manage])
        weak = await new_key(client, ["organisation_service_api_keys.read"])
        as_manager = {"x-portkey-api-key": manager}
        reply = await client.post(f"/v1/api-keys/{strong['id']}/rotate", headers=as_manager)
        assert reply.status_code == 403, reply.text
        assert "virtual_keys.create" in reply.text and "pk-mw-" not in reply.text
        off = await client.put(
            f"/v1/api-keys/{strong['id']}", json={"status": "disabled"}, headers=ADMIN
        )
        assert off.status_code == 200
        on = await client.put(
            f"/v1/api-keys/{strong['id']}", json={"status": "active"}, headers=as_manager
        )
        assert on.status_code == 403, on.text
        reply = await client.post(
            "/v1/chat/completions",
            json=MOCK_CHAT,
            headers={"x-portkey-api-key": strong["key"], "x-portkey-provider": "mock"},
        )
        assert reply.status_code == 401  # still disabled
        # Its own scopes only: no self-escalation on update or create either.
        grant = await client.put(
            f"/v1/api-keys/{weak['id']}",
            json={"scopes": ["virtual_keys.create"]},
            headers=as_manager,
        )
        assert grant.status_code == 403, grant.text
        # What it does hold, it may manage.
        rotated = await client.post(f"/v1/api-keys/{weak['id']}/rotate", headers=as_manager)
        assert rotated.status_code == 200, rotated.text
        planted.plant(rotated.json()["key"])
        renamed = await client.put(
            f"/v1/api-keys/{weak['id']}", json={"name": "renamed"}, headers=as_manager
        )
        assert renamed.status_code == 200, renamed.text


async def test_a_workspace_key_sees_only_its_workspace(tmp_path: Path, auth_required: None) -> None:
    """An organisation key placed in a workspace stays organisation-wide: a workspace's key
    can neither see nor rotate it (it would gain the whole organisation)."""
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        kinds = ["organisation_service", "workspace_service"]
        scopes = [f"{k}_api_keys.{op}" for k in kinds for op in ("read", "update", "list")]
        org_in_ws = await new_key(client, scopes, workspace_id="ws-1")
        ws_key = await made(
            client,
            "/v1/api-keys/workspace/service",
            {
                "name": "w",
                "workspace_id": "ws-1",
                "scopes": [*scopes, "virtual_keys.read", "configs.read"],
            },
        )
        planted.plant(ws_key["key"])
        as_ws = {"x-portkey-api-key": ws_key["key"]}
        for method, path in (
            ("GET", f"/v1/api-keys/{org_in_ws['id']}"),
            ("POST", f"/v1/api-keys/{org_in_ws['id']}/rotate"),
            ("PUT", f"/v1/api-keys/{org_in_ws['id']}"),
        ):
            content = b'{"name": "x"}' if method == "PUT" else None
            reply = await client.request(method, path, headers=as_ws, content=content)
            assert reply.status_code == 404, (method, path, reply.text)
        listed = await client.get("/v1/api-keys", headers=as_ws)
        assert listed.status_code == 200, listed.text
        assert org_in_ws["id"] not in listed.text
        other_vk = await made(
            client,
            "/v1/virtual-keys",
            {"name": "x", "provider": "openai", "key": CANONICAL_KEY, "workspace_id": "ws-2"},
        )
        reply = await client.get(f"/v1/virtual-keys/{other_vk['slug']}", headers=as_ws)
        assert reply.status_code == 404
        reply = await client.get("/v1/configs?workspace_id=ws-2", headers=as_ws)
        assert reply.status_code == 403


async def test_a_workspace_key_uses_only_its_workspaces_virtual_keys(
    tmp_path: Path, auth_required: None
) -> None:
    """A workspace key's requests may name only its own workspace's virtual keys: another
    workspace's (or the organisation's) answers 404 as if absent, however it is named --
    header, ``@slug/model``, a saved config's target -- and its credentials are not used."""
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        mine = await made(
            client,
            "/v1/virtual-keys",
            {"name": "a", "provider": "mock", "key": "k", "workspace_id": "ws-1"},
        )
        theirs = await made(
            client,
            "/v1/virtual-keys",
            {"name": "b", "provider": "mock", "key": "k", "workspace_id": "ws-2"},
        )
        shared = await made(
            client, "/v1/virtual-keys", {"name": "c", "provider": "mock", "key": "k"}
        )
        config = await made(
            client, "/v1/configs", {"name": "c", "config": {"virtual_key": theirs["slug"]}}
        )
        ws_key = await made(
            client,
            "/v1/api-keys/workspace/service",
            {"name": "w", "workspace_id": "ws-1", "scopes": ["completions.write"]},
        )
        planted.plant(ws_key["key"])
        org_key = (await new_key(client, ["completions.write"]))["key"]
        as_ws = {"x-portkey-api-key": ws_key["key"]}
        reply = await client.post(
            "/v1/chat/completions",
            json=MOCK_CHAT,
            headers={**as_ws, "x-portkey-virtual-key": mine["slug"]},
        )
        assert reply.status_code == 200, reply.text
        for headers, body in (
            ({"x-portkey-virtual-key": theirs["slug"]}, MOCK_CHAT),
            ({"x-portkey-virtual-key": shared["slug"]}, MOCK_CHAT),
            ({"x-portkey-provider": "@" + theirs["slug"]}, MOCK_CHAT),
            ({}, {**MOCK_CHAT, "model": f"@{theirs['slug']}/mock-gpt"}),
            ({"x-portkey-config": config["slug"]}, MOCK_CHAT),
        ):
            reply = await client.post(
                "/v1/chat/completions", json=body, headers={**as_ws, **headers}
            )
            assert reply.status_code == 404, (headers, reply.text)
            assert code(reply) == "virtual_key_not_found"
        # An organisation key uses any of them.
        reply = await client.post(
            "/v1/chat/completions",
            json=MOCK_CHAT,
            headers={"x-portkey-api-key": org_key, "x-portkey-virtual-key": theirs["slug"]},
        )
        assert reply.status_code == 200, reply.text


async def test_updating_a_virtual_key_cannot_redirect_credentials_it_does_not_know(
    tmp_path: Path, auth_required: None, detector: Detector, fake: FakeUpstream
) -> None:
    """A key with ``virtual_keys.update`` (but never shown the credential) sets the virtual
    key's ``custom_host`` to the detector: refused unless it sends the credentials anew.
    The admin key may move them; clearing the host (back to the provider's) is allowed."""
    before = detector.hits
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        vk = await made(
            client,
            "/v1/virtual-keys",
            {
                "name": "o",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": fake.base_url,
            },
        )
        updater = (await new_key(client, ["virtual_keys.update", "completions.write"]))["key"]
        as_updater = {"x-portkey-api-key": updater}
        for route in ("/v1/virtual-keys", "/v1/providers"):
            reply = await client.put(
                f"{route}/{vk['slug']}", json={"custom_host": detector.url}, headers=as_updater
            )
            assert reply.status_code == 403, reply.text
            assert code(reply) == "credentials_required"
        reply = await client.post(
            "/v1/chat/completions",
            json=CHAT,
            headers={**as_updater, "x-portkey-virtual-key": vk["slug"]},
        )
        assert reply.status_code == 200, reply.text
        # With credentials of its own, the key is the one sending them there.
        own = planted.plant("sk-planted-updater-own-3eR6tY9u")
        moved = await client.put(
            f"/v1/virtual-keys/{vk['slug']}",
            json={"custom_host": fake.base_url + "/", "key": own},
            headers=as_updater,
        )
        assert moved.status_code == 200, moved.text
        admin_moved = await client.put(
            f"/v1/virtual-keys/{vk['slug']}", json={"custom_host": fake.base_url}, headers=ADMIN
        )
        assert admin_moved.status_code == 200, admin_moved.text
        cleared = await client.put(
            f"/v1/virtual-keys/{vk['slug']}", json={"custom_host": None}, headers=as_updater
        )
        assert cleared.status_code == 200, cleared.text
    assert detector.hits == before


# -- saved configs over time ---------------------------------------------------------------


async def test_a_saved_config_whose_virtual_key_goes_away(
    tmp_path: Path, fake: FakeUpstream, auth_required: None
) -> None:
    async with gateway_in_process(sqlite_url(tmp_path)) as (_, client):
        vk = await made(
            client,
            "/v1/virtual-keys",
            {
                "name": "o",
                "provider": "openai",
                "key": planted.OPENAI_KEY,
                "custom_host": fake.base_url,
            },
        )
        saved = await made(
            client, "/v1/configs", {"name": "c", "config": {"virtual_key": vk["slug"]}}
        )
        key = (await new_key(client, ["completions.write"], defaults={"config_id": saved["slug"]}))[
            "key"
        ]
        for headers in ({"x-portkey-config": saved["slug"]}, {"x-portkey-config": saved["id"]}, {}):
            reply = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"x-portkey-api-key": key, **headers}
            )
            assert reply.status_code == 200, (headers, reply.text)
        off = await client.put(
            f"/v1/virtual-keys/{vk['slug']}", json={"status": "disabled"}, headers=ADMIN
        )
        assert off.status_code == 200
        reply = await client.post(
            "/v1/chat/completions", json=CHAT, headers={"x-portkey-api-key": key}
        )
        assert reply.status_code == 403 and code(reply) == "virtual_key_disabled", reply.text
        gone = await client.delete(f"/v1/virtual-keys/{vk['slug']}", headers=ADMIN)
        assert gone.status_code == 200
        for headers in ({"x-portkey-config": saved["slug"]}, {}):
            reply = await client.post(
                "/v1/chat/completions", json=CHAT, headers={"x-portkey-api-key": key, **headers}
            )
            assert reply.status_code == 404, reply.text
            assert code(reply) == "virtual_key_not_found" and vk["slug"] in reply.text
        assert len(fake.requests) == 3


async def test_the_server_files_config_wins_over_a_saved_one_of_the_same_name(
    tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PORTKEY_MW_AUTH", "off")
    url = sqlite_url(tmp_path)
    async with gateway_in_process(url) as (_, client):
        saved = await made(client, "/v1/configs", {"name": "c", "config": {"provider": "mock"}})
    shadow = {"provider": "openai", "custom_host": fake.base_url}
    configs = {saved["slug"]: shadow, saved["id"]: shadow}
    async with gateway_in_process(url, configs=configs) as (_, client):
        for name in (saved["slug"], saved["id"]):
            reply = await client.post(
                "/v1/chat/completions",
                json=CHAT,
                headers={"x-portkey-config": name, "authorization": "Bearer sk-client"},
            )
            assert reply.status_code == 200, reply.text
            assert reply.headers["x-portkey-provider"] == "openai"
    assert len(fake.requests) == 2
