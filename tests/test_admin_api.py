"""The control-plane admin API, driven by the official portkey-ai SDK (sync and async).

The routes are served for real by uvicorn on loopback over the SQLite store; the SDK is
pointed at them with ``base_url``, as a user would. ``Authorize`` here is a small stand-in
for the gateway's: the planted admin key, or a gateway API key looked up by digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from collections.abc import Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson
import portkey_ai
import pytest
from portkey_ai.api_resources import exceptions as errors

from portkey_mw.admin import (
    ADMIN_PRINCIPAL,
    ROUTES,
    Limits,
    MissingScope,
    Principal,
    Services,
    control_plane_routes,
    every_scope,
    is_control_plane_path,
)
from portkey_mw.admin.routes import HANDLERS
from portkey_mw.admin.unimplemented import FAMILIES
from portkey_mw.auth.admin import AdminKey
from portkey_mw.auth.vault import encode_key, generate_key, parse_key
from portkey_mw.config.resolve import validate_config
from portkey_mw.config.server import LimitsOptions
from portkey_mw.errors import AuthenticationError
from portkey_mw.limits.memory import MemoryLimitBackend
from portkey_mw.spend import SpendControl
from portkey_mw.store.protocols import StoreUnavailable
from portkey_mw.store.sql import SQLStore
from tests import planted
from tests.conftest import DEADLINE, ThreadedServer

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")

# -- the stand-ins the gateway will replace ----------------------------------------------------

PEPPER = b"admin-api-test-pepper"
KEY_PREFIX = "pk-mw-"
PROVIDERS = ("openai", "anthropic", "azure-openai", "bedrock", "vertex-ai", "ollama")
MAX_BODY = 64 * 1024


def digest(key: str) -> str:
    return hmac.new(PEPPER, key.encode(), hashlib.sha256).hexdigest()


def new_api_key() -> tuple[str, str, str]:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, digest(key), f"{KEY_PREFIX}…{key[-4:]}"


def check_config(config: Mapping[str, Any]) -> None:
    validate_config(dict(config), "config")


#: budgets and rate limits, counted in this process (the usage routes and reads use it)
SPEND = SpendControl(LimitsOptions(), backend=MemoryLimitBackend())

SERVICES = Services(
    validate=check_config,
    generate_key=new_api_key,
    providers=PROVIDERS,
    configs=("server-named",),
    spend=SPEND,
)


#: The vault's master key: planted, so the scan fails a test that lets it out.
MASTER = parse_key(planted.plant(encode_key(generate_key())), "test key")


def make_store(url: str, directory: Path) -> SQLStore:
    return SQLStore(url, master_key=MASTER, data_dir=directory, environ={})


class ControlPlane:
    """The router and its store in one ASGI app; the store opens in the server's loop."""

    def __init__(self, url: str, directory: Path) -> None:
        self.store_url = url
        self.directory = directory
        self.admin = AdminKey.from_settings(None)  # the planted key, from the environment
        self.loop: asyncio.AbstractEventLoop | None = None
        self.store: SQLStore | None = None
        self.router: Any = None
        self.down = False
        self.url = ""

    async def authorize(self, headers: Mapping[str, str], scope: str) -> Principal:
        """The admin key, or an active gateway key holding ``scope``."""
        sent = headers.get("x-portkey-api-key", "")
        if not sent.startswith(KEY_PREFIX):
            self.admin.check(headers)
            return ADMIN_PRINCIPAL
        assert self.store is not None
        record = await self.store.find_api_key(digest(sent))
        now = datetime.now(UTC)
        if record is None or record.status != "active" or (record.expires_at or now) < now:
            raise AuthenticationError("this API key is not valid")
        if scope not in record.scopes:
            raise MissingScope.lacking(scope)
        workspace = record.workspace_id if record.type == "workspace" else None
        return Principal(frozenset(record.scopes), record.id, workspace)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.router(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.loop = asyncio.get_running_loop()
                self.store = make_store(self.store_url, self.directory)
                await self.store.open()
                self.router = control_plane_routes(
                    _Switch(self),  # type: ignore[arg-type]
                    self.authorize,
                    SERVICES,
                    limits=Limits(max_body_bytes=MAX_BODY, body_seconds=5.0),
                )
                await send({"type": "lifespan.startup.complete"})
            else:
                assert self.store is not None
                await self.store.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a store call in the server's loop, from the test."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE)

    def stored(self, slug: str) -> Any:
        """The virtual key as the store holds it (secrets decrypted)."""
        assert self.store is not None
        return self.run(self.store.get_virtual_key(slug))


class _Switch:
    """The real store, or -- while ``down`` is set -- a store that cannot be reached."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane

    def __getattr__(self, name: str) -> Any:
        if self.plane.down:

            async def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("the control-plane store is unavailable: database locked")

            return unavailable
        return getattr(self.plane.store, name)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def plane(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """The routes served over a SQLite file, then over a database of the session's
    PostgreSQL server."""
    directory = tmp_path_factory.mktemp("control")
    if request.param == "sqlite":
        url = f"sqlite:///{directory / 'control.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database())
    app = ControlPlane(url, directory)
    with ThreadedServer(app) as server:
        app.url = server.url
        yield app


def base(plane: ControlPlane) -> str:
    return f"{plane.url}/v1"


def admin(plane: ControlPlane) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=planted.ADMIN_KEY, base_url=base(plane))


def client(plane: ControlPlane, key: str) -> portkey_ai.Portkey:
    return portkey_ai.Portkey(api_key=key, base_url=base(plane))


def raw(plane: ControlPlane, key: str = planted.ADMIN_KEY) -> httpx.Client:
    return httpx.Client(base_url=plane.url, headers={"x-portkey-api-key": key})


def workspace() -> str:
    """A workspace of the test's own, so lists see only what the test made."""
    return "ws-" + secrets.token_hex(4)


def dumped(obj: Any) -> dict[str, Any]:
    return dict(obj.model_dump())


# -- the route table ---------------------------------------------------------------------------


def test_every_route_has_a_handler_and_every_handler_a_route() -> None:
    assert {row.operation for row in ROUTES} == set(HANDLERS)
    assert len({(row.method, row.path) for row in ROUTES}) == len(ROUTES)


def test_the_table_covers_every_sdk_call_in_scope() -> None:
    """Every public method of the installed SDK's resources in scope has a route."""
    import inspect

    client = portkey_ai.Portkey(api_key="x", base_url="http://127.0.0.1:9/v1")
    in_scope = set()
    families = (
        "virtual_keys", "api_keys", "configs", "providers", "prompts", "prompts.versions",
        "prompts.partials", "prompts.partials.versions", "labels", "collections",
    )  # fmt: skip
    for family in families:
        resource: Any = client
        for part in family.split("."):
            resource = getattr(resource, part)
        for name, member in vars(type(resource)).items():
            if not name.startswith("_") and inspect.isfunction(member):
                in_scope.add(f"{family}.{name}")
    # Calling a prompt is the data plane's (not a control-plane route).
    in_scope -= {"prompts.render", "prompts.completions"}
    assert len(in_scope) >= 40
    assert in_scope <= {row.operation for row in ROUTES}


def test_scopes_are_portkeys_names() -> None:
    scopes = every_scope()
    assert "virtual_keys.create" in scopes
    assert "configs.read" in scopes
    assert "organisation_service_api_keys.create" in scopes
    assert "workspace_user_api_keys.list" in scopes
    assert all(s.count(".") == 1 for s in scopes)


def test_the_docs_list_every_route_and_scope() -> None:
    page = (ROOT / "docs" / "control-plane.md").read_text()
    for row in ROUTES:
        assert f"`{row.method} {row.path}`" in page, row
        assert f"`{row.scope}`" in page, row
    for prefix in FAMILIES:
        assert f"`{prefix}`" in page, prefix


def test_control_plane_paths() -> None:
    assert is_control_plane_path("/v1/virtual-keys")
    assert is_control_plane_path("/v1/api-keys/x/rotate")
    assert is_control_plane_path("/v1/prompts/p/render")
    assert not is_control_plane_path("/v1/chat/completions")
    assert not is_control_plane_path("/v1/admin/circuits")
    assert not is_control_plane_path("/v1/configsx")


# -- virtual keys ------------------------------------------------------------------------------


def test_virtual_key_lifecycle(plane: ControlPlane) -> None:
    ws = workspace()
    sdk = admin(plane)
    made = sdk.virtual_keys.create(
        name="OpenAI prod",
        provider="openai",
        key=planted.OPENAI_KEY,
        note="the main one",
        workspace_id=ws,
        usage_limits={"credit_limit": 50, "alert_threshold": 40, "periodic_reset": "monthly"},
        rate_limits=[{"type": "requests", "unit": "rpm", "value": 100}],
        expires_at="2099-01-01T00:00:00Z",
    )
    assert made.object == "virtual-key"
    assert made.slug.startswith("openai-prod-")
    assert made.id and made.data == {"id": made.id, "slug": made.slug}

    listed = sdk.virtual_keys.list(workspace_id=ws)
    assert listed.object == "list" and listed.total == 1
    (item,) = listed.data
    assert item["slug"] == made.slug

    got = sdk.virtual_keys.retrieve(slug=made.slug)
    body = dumped(got)
    assert got.success is True
    assert body["name"] == "OpenAI prod" and body["note"] == "the main one"
    assert body["status"] == "active" and body["object"] == "virtual-key"
    # Portkey's next_usage_reset_at: the 1st of next month, 00:00 UTC
    assert body["usage_limits"].pop("next_usage_reset_at").endswith("-01T00:00:00Z")
    assert body["usage_limits"] == {
        "credit_limit": 50,
        "type": "cost",
        "alert_threshold": 40,
        "periodic_reset": "monthly",
    }
    assert body["rate_limits"] == [{"type": "requests", "unit": "rpm", "value": 100}]
    assert body["masked_api_key"] == "********" and body["credentials"] == ["api_key"]
    assert body["expires_at"] == "2099-01-01T00:00:00.000Z"
    assert isinstance(body["created_at"], str) and body["created_at"].endswith("Z")
    assert body["model_config"] == {} and body["reset_usage"] == 0

    stored = plane.stored(made.slug)
    assert stored is not None and stored.secrets == {"api_key": planted.OPENAI_KEY}

    # rotation: a new key replaces the old one; the other fields stay
    updated = sdk.virtual_keys.update(slug=made.slug, name="OpenAI main", key=planted.ANTHROPIC_KEY)
    assert (updated.id, updated.slug) == (made.id, made.slug)
    stored = plane.stored(made.slug)
    assert stored is not None and stored.secrets == {"api_key": planted.ANTHROPIC_KEY}
    assert stored.name == "OpenAI main" and stored.note == "the main one"

    sdk.virtual_keys.update(slug=made.slug, note=None, status="disabled")
    body = dumped(sdk.virtual_keys.retrieve(slug=made.slug))
    assert body["note"] is None and body["status"] == "disabled"

    deleted = sdk.virtual_keys.delete(slug=made.slug)
    assert deleted.success is True
    with pytest.raises(errors.NotFoundError, match=made.slug) as err:
        sdk.virtual_keys.retrieve(slug=made.slug)
    assert err.value.status_code == 404
    assert sdk.virtual_keys.list(workspace_id=ws).total == 0


async def test_virtual_keys_through_the_async_client(plane: ControlPlane) -> None:
    ws = workspace()
    sdk = portkey_ai.AsyncPortkey(api_key=planted.ADMIN_KEY, base_url=base(plane))
    try:
        made = await sdk.virtual_keys.create(
            name="async", provider="anthropic", key=planted.ANTHROPIC_KEY, workspace_id=ws
        )
        assert (await sdk.virtual_keys.list(workspace_id=ws)).total == 1
        got = await sdk.virtual_keys.retrieve(slug=made.slug)
        assert dumped(got)["provider"] == "anthropic"
        await sdk.virtual_keys.update(slug=made.slug, rate_limits=[{"unit": "rpd", "value": 5}])
        got = await sdk.virtual_keys.retrieve(slug=made.slug)
        assert dumped(got)["rate_limits"] == [{"type": "requests", "unit": "rpd", "value": 5}]
        await sdk.virtual_keys.delete(slug=made.slug)
        with pytest.raises(errors.NotFoundError):
            await sdk.virtual_keys.delete(slug=made.slug)
    finally:
        await sdk.close()


def test_structured_credentials_go_to_the_vault_and_options_to_model_config(
    plane: ControlPlane,
) -> None:
    sdk = admin(plane)
    service_account = {
        "type": "service_account",
        "client_email": "gw@project.iam.gserviceaccount.com",
        "private_key": planted.VERTEX_TOKEN,
    }
    bedrock = sdk.virtual_keys.create(
        name="bedrock",
        provider="bedrock",
        awsAccessKeyId=planted.AWS_ACCESS_KEY_ID,
        awsSecretAccessKey=planted.AWS_SECRET_ACCESS_KEY,
        awsSessionToken=planted.AWS_SESSION_TOKEN,
        awsRegion="eu-west-1",
    )
    azure = sdk.virtual_keys.create(
        name="azure",
        provider="azure-openai",
        key=planted.AZURE_KEY,
        resourceName="my-resource",
        apiVersion="2024-10-21",
        deploymentConfig=[
            {"deploymentName": "gpt4o-east", "alias": "gpt-4o", "is_default": False},
            {"deploymentName": "mini", "alias": "mini", "is_default": True, "apiVersion": "x"},
        ],
    )
    vertex = sdk.virtual_keys.create(
        name="vertex",
        provider="vertex-ai",
        vertexProjectId="my-project",
        vertexRegion="europe-west4",
        vertexServiceAccountJson=service_account,
    )

    record = plane.stored(bedrock.slug)
    assert record.secrets == {
        "aws_access_key_id": planted.AWS_ACCESS_KEY_ID,
        "aws_secret_access_key": planted.AWS_SECRET_ACCESS_KEY,
        "aws_session_token": planted.AWS_SESSION_TOKEN,
    }
    assert record.options == {"aws_region": "eu-west-1"}
    record = plane.stored(azure.slug)
    assert record.secrets == {"api_key": planted.AZURE_KEY}
    assert record.options == {
        "resource_name": "my-resource",
        "api_version": "2024-10-21",  # the top-level one wins over the deployment's
        "deployment_id": "mini",
    }
    record = plane.stored(vertex.slug)
    assert orjson.loads(record.secrets["vertex_service_account_json"]) == service_account
    assert record.options == {"vertex_project_id": "my-project", "vertex_region": "europe-west4"}

    shown = dumped(sdk.virtual_keys.retrieve(slug=bedrock.slug))
    assert shown["model_config"] == {"aws_region": "eu-west-1"}
    assert shown["masked_api_key"] is None
    assert shown["credentials"] == [
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
    ]
    # the session token can be cleared on its own; the other credentials stay
    sdk.virtual_keys.update(slug=bedrock.slug, awsSessionToken=None, awsRegion="us-east-1")
    record = plane.stored(bedrock.slug)
    assert set(record.secrets) == {"aws_access_key_id", "aws_secret_access_key"}
    assert record.options == {"aws_region": "us-east-1"}
    # nothing secret in any listing either (the planted-secret scan reads every response)
    text = orjson.dumps(dumped(sdk.virtual_keys.list())).decode()
    for secret in planted.ALL:
        assert secret not in text


def test_custom_host_and_defaults(plane: ControlPlane) -> None:
    sdk = admin(plane)
    made = sdk.virtual_keys.create(
        name="local vllm",
        provider="ollama",
        custom_host="http://127.0.0.1:8000/v1",
        defaults={"model": "llama3", "override_params": {"temperature": 0}},
    )
    body = dumped(sdk.virtual_keys.retrieve(slug=made.slug))
    assert body["custom_host"] == "http://127.0.0.1:8000/v1"
    assert body["defaults"] == {"model": "llama3", "override_params": {"temperature": 0}}
    sdk.virtual_keys.update(slug=made.slug, custom_host=None)
    assert dumped(sdk.virtual_keys.retrieve(slug=made.slug))["custom_host"] is None

    bad_hosts = [
        f"http://user:{planted.USERINFO_PASSWORD}@127.0.0.1:8000",
        "ftp://files.example.com",
        "http://example.com/v1?key=1",
    ]
    for url in bad_hosts:
        with pytest.raises(errors.BadRequestError, match=r"custom_host"):
            sdk.virtual_keys.create(name="bad", provider="openai", custom_host=url)


def test_a_chosen_slug_and_a_taken_one(plane: ControlPlane) -> None:
    sdk = admin(plane)
    slug = "team-" + secrets.token_hex(3)
    made = sdk.virtual_keys.create(name="x", provider="openai", key="sk-1", slug=slug)
    assert made.slug == slug
    with pytest.raises(errors.ConflictError, match=slug):
        sdk.virtual_keys.create(name="y", provider="openai", key="sk-2", slug=slug)
    with pytest.raises(errors.BadRequestError, match=r"slug"):
        sdk.virtual_keys.create(name="y", provider="openai", slug="Not A Slug")


def test_unknown_fields_are_kept_out_and_reported(plane: ControlPlane) -> None:
    made = admin(plane).virtual_keys.create(
        name="x", provider="openai", key="sk-x", secret_mappings=[{"target_field": "key"}]
    )
    assert made.warning == "portkey-mw ignored these fields: secret_mappings"


# -- providers (the same records) ----------------------------------------------------------------


def test_providers_api(plane: ControlPlane) -> None:
    ws = workspace()
    sdk = admin(plane)
    made = sdk.providers.create(
        name="Main OpenAI",
        integration_id="openai",
        workspace_id=ws,
        key=planted.OPENAI_KEY,
        rate_limits={"type": "requests", "unit": "rpm", "value": 60},
        usage_limits={"credit_limit": 10},
        expires_at="2099-06-01T12:00:00+02:00",
    )
    assert made.id and made.slug
    listed = sdk.providers.list(workspace_id=ws)
    assert listed.total == 1
    (item,) = listed.data
    assert item.rate_limits == {"type": "requests", "unit": "rpm", "value": 60}
    assert item.integration_id == "openai" and item.expires_at == "2099-06-01T10:00:00.000Z"
    assert item.usage_limits == {
        "credit_limit": 10,
        "type": "cost",
        "next_usage_reset_at": None,  # a budget without periods never resets by itself
    }
    detail = sdk.providers.retrieve(slug=made.slug, workspace_id=ws)
    assert detail.rate_limits == [{"type": "requests", "unit": "rpm", "value": 60}]
    assert detail.name == "Main OpenAI" and detail.object == "provider"
    assert detail.usage_limits == item.usage_limits and detail.status == "active"  # type: ignore[attr-defined]

    # one record, two APIs
    assert dumped(sdk.virtual_keys.retrieve(slug=made.slug))["provider"] == "openai"
    subject = SPEND.virtual_key(plane.stored(made.slug))
    assert subject is not None and subject.budget is not None
    plane.run(SPEND.backend.charge(subject.key, subject.budget, 10))
    assert sdk.providers.retrieve(slug=made.slug).status == "exhausted"  # type: ignore[attr-defined]
    updated = sdk.providers.update(slug=made.slug, note="shared", reset_usage=True)
    assert updated.slug == made.slug
    assert sdk.providers.retrieve(slug=made.slug).status == "active"  # type: ignore[attr-defined]
    assert sdk.providers.retrieve(slug=made.slug).note == "shared"
    with pytest.raises(errors.BadRequestError, match=r"cannot change"):
        sdk.providers.update(slug=made.slug, provider="anthropic")
    sdk.providers.delete(slug=made.slug, workspace_id=ws)
    with pytest.raises(errors.NotFoundError, match=made.slug):
        sdk.providers.retrieve(slug=made.slug)


def test_a_provider_needs_a_known_provider_id(plane: ControlPlane) -> None:
    sdk = admin(plane)
    with pytest.raises(errors.BadRequestError, match=r"unknown provider 'nope'"):
        sdk.providers.create(name="x", integration_id="nope")
    with pytest.raises(errors.BadRequestError, match=r"unknown provider 'nope'"):
        sdk.virtual_keys.create(name="x", provider="nope")


# -- API keys ----------------------------------------------------------------------------------


def test_api_key_lifecycle(plane: ControlPlane) -> None:
    ws = workspace()
    sdk = admin(plane)
    made = sdk.api_keys.create(
        type="organisation",
        sub_type="service",
        name="ci",
        description="for the CI",
        workspace_id=ws,
        scopes=["virtual_keys.read", "virtual_keys.list"],
        defaults={"metadata": {"team": "ci"}},
        rate_limits=[{"type": "requests", "unit": "rps", "value": 5}],
        expires_at="2099-01-01T00:00:00Z",
    )
    assert made.object == "api-key" and made.key.startswith(KEY_PREFIX)
    assert made.data == {"id": made.id, "key": made.key}
    key = made.key

    got = sdk.api_keys.retrieve(id=made.id)
    assert got.key == f"{KEY_PREFIX}…{key[-4:]}" and key not in str(dumped(got))
    assert got.type == "organisation-service" and got.status == "active"
    assert got.scopes == ["virtual_keys.read", "virtual_keys.list"]
    assert got.defaults == {"metadata": {"team": "ci"}, "allow_config_override": True}
    assert isinstance(got.created_at, str) and got.reset_usage == 0
    assert dumped(got)["expires_at"] == "2099-01-01T00:00:00.000Z"
    listed = sdk.api_keys.list(workspace_id=ws)
    assert listed.total == 1 and listed.data[0]["id"] == made.id
    assert all(key not in orjson.dumps(item).decode() for item in listed.data)

    # the key works, and only for its scopes
    as_ci = client(plane, key)
    assert as_ci.virtual_keys.list().object == "list"

    sdk.api_keys.update(
        id=made.id,
        name="ci-2",
        defaults={"allow_config_override": False, "config_id": "server-named"},
    )
    got = sdk.api_keys.retrieve(id=made.id)
    assert got.name == "ci-2"
    assert got.defaults == {"config_id": "server-named", "allow_config_override": False}

    # rotation (Portkey's API reference has it; the SDK has no method for it)
    with raw(plane) as http:
        rotated = http.post(f"/v1/api-keys/{made.id}/rotate")
    assert rotated.status_code == 200, rotated.text
    new_key = rotated.json()["key"]
    assert new_key.startswith(KEY_PREFIX) and new_key != key
    with pytest.raises(errors.AuthenticationError):
        client(plane, key).virtual_keys.list()
    assert client(plane, new_key).virtual_keys.list().object == "list"
    assert sdk.api_keys.retrieve(id=made.id).key == f"{KEY_PREFIX}…{new_key[-4:]}"

    # revoked is final
    sdk.api_keys.update(id=made.id, status="revoked")
    with pytest.raises(errors.AuthenticationError):
        client(plane, new_key).virtual_keys.list()
    with pytest.raises(errors.ConflictError, match=r"revoked"):
        sdk.api_keys.update(id=made.id, status="active")

    deleted = sdk.api_keys.delete(id=made.id)
    assert deleted.success is True
    with pytest.raises(errors.NotFoundError, match=made.id):
        sdk.api_keys.retrieve(id=made.id)


async def test_api_keys_through_the_async_client(plane: ControlPlane) -> None:
    ws = workspace()
    sdk = portkey_ai.AsyncPortkey(api_key=planted.ADMIN_KEY, base_url=base(plane))
    try:
        made = await sdk.api_keys.create(
            type="workspace",
            sub_type="user",
            name="alice",
            workspace_id=ws,
            user_id="alice",
            scopes=["configs.read"],
        )
        got = await sdk.api_keys.retrieve(id=made.id)
        assert got.type == "workspace-user" and got.user_id == "alice"
        listed = await sdk.api_keys.list(page_size=10, workspace_id=ws)
        assert listed.total == 1
        await sdk.api_keys.update(id=made.id, scopes=["configs.read", "configs.list"])
        assert (await sdk.api_keys.retrieve(id=made.id)).scopes == ["configs.read", "configs.list"]
        await sdk.api_keys.delete(id=made.id)
    finally:
        await sdk.close()


def test_api_key_kinds_and_their_checks(plane: ControlPlane) -> None:
    sdk = admin(plane)
    with pytest.raises(errors.BadRequestError, match=r"organisation keys are service keys"):
        sdk.api_keys.create(type="organisation", sub_type="user", name="x", user_id="u")
    with pytest.raises(errors.BadRequestError, match=r"user_id is required"):
        sdk.api_keys.create(type="workspace", sub_type="user", name="x", workspace_id="w")
    with pytest.raises(errors.BadRequestError, match=r"workspace_id is required"):
        sdk.api_keys.create(type="workspace", sub_type="service", name="x")
    with pytest.raises(errors.BadRequestError, match=r"names no saved config"):
        sdk.api_keys.create(
            type="organisation", sub_type="service", name="x", defaults={"config_id": "pc-none"}
        )
    with pytest.raises(errors.BadRequestError, match=r"allow_config_overide"):
        sdk.api_keys.create(
            type="organisation",
            sub_type="service",
            name="x",
            defaults={"allow_config_overide": False},
        )
    # type and sub-type left out: the SDK sends NOT_GIVEN in the path; defaults apply
    made = sdk.api_keys.create(name="plain")
    assert sdk.api_keys.retrieve(id=made.id).type == "organisation-service"


# -- who may do what ---------------------------------------------------------------------------


def _key(plane: ControlPlane, scopes: list[str], **kw: Any) -> tuple[str, str]:
    kw.setdefault("type", "organisation")
    kw.setdefault("sub_type", "service")
    made = admin(plane).api_keys.create(name="scoped", scopes=scopes, **kw)
    return made.id, made.key


def test_missing_and_invalid_keys_are_401(plane: ControlPlane) -> None:
    with pytest.raises(errors.AuthenticationError, match=r"admin key"):
        client(plane, "").virtual_keys.list()
    with pytest.raises(errors.AuthenticationError, match=r"not valid"):
        client(plane, "wrong-admin-key-123456").configs.list()
    with pytest.raises(errors.AuthenticationError, match=r"not valid"):
        client(plane, KEY_PREFIX + "made-up").api_keys.list()
    with httpx.Client(base_url=plane.url) as http:
        response = http.delete("/v1/configs/pc-x")
        # who is asking is settled before the body is read
        for path in ("/v1/api-keys/organisation/service", "/v1/virtual-keys", "/v1/configs"):
            unread = http.post(path, content=b"{not json")
            assert unread.status_code == 401, path
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/json"
    assert response.json()["success"] is False


def test_a_key_outside_its_scopes_is_403_naming_the_scope(plane: ControlPlane) -> None:
    _, key = _key(plane, ["virtual_keys.read"])
    sdk = client(plane, key)
    made = admin(plane).virtual_keys.create(name="x", provider="openai", key="sk-a")
    assert sdk.virtual_keys.retrieve(slug=made.slug).slug == made.slug
    assert sdk.providers.retrieve(slug=made.slug).slug == made.slug
    with pytest.raises(errors.PermissionDeniedError, match=r"'virtual_keys.list'"):
        sdk.virtual_keys.list()
    with pytest.raises(errors.PermissionDeniedError, match=r"'virtual_keys.create'"):
        sdk.virtual_keys.create(name="x", provider="openai")
    with pytest.raises(errors.PermissionDeniedError, match=r"'virtual_keys.delete'"):
        sdk.providers.delete(slug=made.slug)
    with pytest.raises(errors.PermissionDeniedError, match=r"'configs.create'"):
        sdk.configs.create(name="c", config={"provider": "openai"})
    with pytest.raises(errors.PermissionDeniedError, match=r"api_keys.list"):
        sdk.api_keys.list()


def test_api_key_scopes_follow_the_kind_of_key(plane: ControlPlane) -> None:
    ws = workspace()
    _, key = _key(
        plane,
        ["workspace_user_api_keys.list", "workspace_user_api_keys.read"],
        workspace_id=ws,
    )
    org_id, _ = _key(plane, [], workspace_id=ws)
    user = admin(plane).api_keys.create(
        type="workspace", sub_type="user", name="u", workspace_id=ws, user_id="bob"
    )
    sdk = client(plane, key)
    listed = sdk.api_keys.list(workspace_id=ws)
    assert [item["id"] for item in listed.data] == [user.id]
    assert sdk.api_keys.retrieve(id=user.id).user_id == "bob"
    with pytest.raises(errors.PermissionDeniedError, match=r"'organisation_service_api_keys.read'"):
        sdk.api_keys.retrieve(id=org_id)
    with pytest.raises(errors.PermissionDeniedError, match=r"workspace_user_api_keys.update"):
        sdk.api_keys.update(id=user.id, name="x")
    # an id that is not there is 404 only for a caller who may read keys at all
    with pytest.raises(errors.NotFoundError, match=r"no API key 'nope'"):
        sdk.api_keys.retrieve(id="nope")
    _, stranger = _key(plane, ["configs.read"])
    with pytest.raises(errors.PermissionDeniedError):
        client(plane, stranger).api_keys.retrieve(id="nope")


def test_no_scope_is_granted_by_a_key_that_lacks_it(plane: ControlPlane) -> None:
    _, key = _key(plane, ["organisation_service_api_keys.create", "configs.read"])
    sdk = client(plane, key)
    made = sdk.api_keys.create(
        type="organisation", sub_type="service", name="narrower", scopes=["configs.read"]
    )
    assert made.key.startswith(KEY_PREFIX)
    with pytest.raises(errors.PermissionDeniedError, match=r"cannot grant scope 'configs.create'"):
        sdk.api_keys.create(
            type="organisation", sub_type="service", name="wider", scopes=["configs.create"]
        )


def test_a_workspace_key_sees_only_its_workspace(plane: ControlPlane) -> None:
    ours, theirs = workspace(), workspace()
    sdk = admin(plane)
    mine = sdk.virtual_keys.create(name="ours", provider="openai", key="sk-o", workspace_id=ours)
    other = sdk.virtual_keys.create(name="theirs", provider="openai", workspace_id=theirs)
    scopes = ["virtual_keys.list", "virtual_keys.read", "virtual_keys.create"]
    _, key = _key(plane, scopes, type="workspace", workspace_id=ours)
    as_ws = client(plane, key)
    assert [item["slug"] for item in as_ws.virtual_keys.list().data] == [mine.slug]
    with pytest.raises(errors.NotFoundError, match=other.slug):
        as_ws.virtual_keys.retrieve(slug=other.slug)
    with pytest.raises(errors.PermissionDeniedError, match=r"workspace"):
        as_ws.virtual_keys.list(workspace_id=theirs)
    made = as_ws.virtual_keys.create(name="new", provider="openai")
    assert dumped(sdk.virtual_keys.retrieve(slug=made.slug))["workspace_id"] == ours


# -- saved configs -----------------------------------------------------------------------------

CONFIG = {
    "strategy": {"mode": "fallback"},
    "targets": [{"provider": "openai"}, {"provider": "anthropic"}],
}


def test_config_lifecycle(plane: ControlPlane) -> None:
    ws = workspace()
    sdk = admin(plane)
    made = sdk.configs.create(name="Prod routing", config=CONFIG, is_default=1, workspace_id=ws)
    assert made.slug.startswith("pc-prod-routing-") and made.id and made.version_id
    assert made.data == {"id": made.id, "version_id": made.version_id, "slug": made.slug}

    got = sdk.configs.retrieve(slug=made.slug)
    assert got.config == CONFIG and got.is_default == 1 and got.version_id == made.version_id
    assert got.name == "Prod routing" and got.status == "active" and got.object == "config"
    assert isinstance(got.created_at, str) and isinstance(got.last_updated_at, str)
    assert sdk.configs.list(workspace_id=ws).total == 1

    renamed = sdk.configs.update(slug=made.slug, name="Prod")
    assert renamed.version_id == made.version_id  # no new config, no new version
    changed = {"targets": [{"provider": "openai"}]}
    updated = sdk.configs.update(slug=made.slug, config=changed)
    assert updated.version_id and updated.version_id != made.version_id
    assert sdk.configs.retrieve(slug=made.slug).config == changed

    with raw(plane) as http:
        versions = http.get(f"/v1/configs/{made.slug}/versions").json()
    assert versions["object"] == "list" and versions["total"] == 2
    assert [v["id"] for v in versions["data"]] == [updated.version_id, made.version_id]
    assert versions["data"][1]["config"] == CONFIG

    with pytest.raises(errors.BadRequestError, match=r"config"):
        sdk.configs.update(slug=made.slug, config={"strategy": {"mode": "nonsense"}})
    assert sdk.configs.delete(slug=made.slug).success is True
    with pytest.raises(errors.NotFoundError, match=made.slug):
        sdk.configs.retrieve(slug=made.slug)


async def test_configs_through_the_async_client(plane: ControlPlane) -> None:
    sdk = portkey_ai.AsyncPortkey(api_key=planted.ADMIN_KEY, base_url=base(plane))
    try:
        made = await sdk.configs.create(name="a", config={"provider": "openai"})
        assert (await sdk.configs.retrieve(slug=made.slug)).config == {"provider": "openai"}
        await sdk.configs.update(slug=made.slug, status="disabled")
        assert (await sdk.configs.retrieve(slug=made.slug)).status == "disabled"
        assert made.slug in [c["slug"] for c in (await sdk.configs.list()).data]
        await sdk.configs.delete(slug=made.slug)
    finally:
        await sdk.close()


def test_an_invalid_config_is_refused_naming_the_fault(plane: ControlPlane) -> None:
    with pytest.raises(errors.BadRequestError, match=r"strategy") as err:
        admin(plane).configs.create(name="bad", config={"strategy": {"mode": "nonsense"}})
    assert err.value.status_code == 400


def test_a_key_default_config_may_be_a_saved_one(plane: ControlPlane) -> None:
    sdk = admin(plane)
    saved = sdk.configs.create(name="for keys", config={"provider": "openai"})
    made = sdk.api_keys.create(name="k", defaults={"config_id": saved.slug})
    assert sdk.api_keys.retrieve(id=made.id).defaults["config_id"] == saved.slug


# -- bad input ---------------------------------------------------------------------------------


def test_schema_violations_name_every_field(plane: ControlPlane) -> None:
    sdk = admin(plane)
    with pytest.raises(errors.BadRequestError) as err:
        sdk.virtual_keys.create(
            name="x",
            provider="openai",
            usage_limits={"credit_limit": -5, "alert_threshold": -1},
            rate_limits=[{"type": "requests", "unit": "rpm", "value": -1}],
        )
    message = str(err.value)
    for field in (
        "usage_limits.credit_limit",
        "usage_limits.alert_threshold",
        "rate_limits.0.value",
    ):
        assert field in message
    with pytest.raises(errors.BadRequestError, match=r"rate_limits.0.value: .*less than"):
        sdk.api_keys.create(name="x", rate_limits=[{"unit": "rpm", "value": 10**13}])
    with pytest.raises(errors.BadRequestError, match=r"name: Field required"):
        sdk.virtual_keys.create(provider="openai")
    with pytest.raises(errors.BadRequestError, match=r"usage_limits.type"):
        sdk.api_keys.create(name="x", usage_limits={"type": "dollars"})
    with pytest.raises(errors.BadRequestError, match=r"rate_limits.0.unit"):
        sdk.providers.create(
            name="x", integration_id="openai", rate_limits={"unit": "rpy", "value": 1}
        )
    with pytest.raises(errors.BadRequestError, match=r"expires_at"):
        sdk.api_keys.create(name="x", expires_at="2001-01-01T00:00:00Z")
    with pytest.raises(errors.BadRequestError, match=r"expires_at: .*ISO 8601"):
        sdk.virtual_keys.create(name="x", provider="openai", expires_at="next tuesday")
    saved = sdk.configs.create(name="c", config={"provider": "openai"})
    with pytest.raises(errors.BadRequestError, match=r"name may not be null"):
        sdk.configs.update(slug=saved.slug, name=None)


def test_a_secret_in_a_bad_body_is_not_echoed(plane: ControlPlane) -> None:
    with pytest.raises(errors.BadRequestError) as err:
        admin(plane).virtual_keys.create(
            name="x", provider="openai", key=planted.OPENAI_KEY, usage_limits={"credit_limit": "x"}
        )
    assert planted.OPENAI_KEY not in str(err.value)


@pytest.mark.parametrize(
    ("body", "content_type", "status", "text"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "must be a JSON object"),
        (b"", "application/json", 400, "empty"),
        (b'{"name": "a\\u0000b", "provider": "openai"}', "application/json", 400, "NUL"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "application/json"),
        (b'{"name": "' + b"x" * MAX_BODY + b'"}', "application/json", 413, "limit"),
    ],
)
def test_malformed_bodies(
    plane: ControlPlane, body: bytes, content_type: str, status: int, text: str
) -> None:
    with raw(plane) as http:
        response = http.post(
            "/v1/virtual-keys", content=body, headers={"content-type": content_type}
        )
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert text in response.json()["error"]["message"]


def test_unknown_ids_are_404_naming_them(plane: ControlPlane) -> None:
    sdk = admin(plane)
    for call, code in [
        (lambda: sdk.virtual_keys.retrieve(slug="no-such-key"), "virtual_key_not_found"),
        (lambda: sdk.virtual_keys.update(slug="no-such-key", note="x"), "virtual_key_not_found"),
        (lambda: sdk.providers.delete(slug="no-such-key"), "provider_not_found"),
        (lambda: sdk.configs.retrieve(slug="no-such-key"), "config_not_found"),
        (lambda: sdk.configs.delete(slug="no-such-key"), "config_not_found"),
        (lambda: sdk.api_keys.retrieve(id="no-such-key"), "api_key_not_found"),
    ]:
        with pytest.raises(errors.NotFoundError, match=r"'no-such-key'") as err:
            call()
        assert err.value.response.json()["error"]["code"] == code


def test_wrong_methods_and_paths_answer_json(plane: ControlPlane) -> None:
    with raw(plane) as http:
        wrong_method = http.patch("/v1/virtual-keys/x")
        no_route = http.get("/v1/virtual-keys/x/y")
        slash = http.get("/v1/configs/")
        nul = http.get("/v1/virtual-keys/a%00b")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "DELETE, GET, PUT"
    assert no_route.status_code == 404 and "no control-plane route" in no_route.text
    assert slash.status_code == 404
    assert nul.status_code == 400 and "NUL" in nul.text
    for response in (wrong_method, no_route, slash, nul):
        assert response.headers["content-type"] == "application/json"


def test_families_portkey_mw_does_not_serve_answer_404(plane: ControlPlane) -> None:
    sdk = admin(plane)
    calls = [
        (lambda: sdk.integrations.list(), "integrations"),
        (lambda: sdk.admin.users.retrieve(user_id="u"), "users"),
        (lambda: sdk.admin.workspaces.retrieve(workspace_id="w"), "workspaces"),
        (lambda: sdk.guardrails.list(), "guardrails"),
        (lambda: sdk.mcp_servers.list(), "MCP servers"),
    ]
    for call, what in calls:
        with pytest.raises(errors.NotFoundError, match=r"portkey-mw does not implement") as err:
            call()
        assert what in str(err.value)


def test_a_store_that_is_down_is_503(plane: ControlPlane) -> None:
    plane.down = True
    try:
        with pytest.raises(errors.InternalServerError, match=r"unavailable") as err:
            admin(plane).virtual_keys.list()
    finally:
        plane.down = False
    assert err.value.status_code == 503


def test_the_package_exports_what_it_lists() -> None:
    import types

    import portkey_mw.admin as package

    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert sorted(package.__all__) == sorted(public)
