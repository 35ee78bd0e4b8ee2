"""The data plane's copy of the control plane (portkey_mw.auth.catalog), and what the
gateway does with it in process: identity, virtual keys, saved configs, enforced hooks.

Real stores (SQLite here; the end-to-end tests run PostgreSQL too); nothing is mocked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event

from portkey_mw import Gateway, ServerSettings
from portkey_mw.auth.catalog import Catalog, ReadBudget
from portkey_mw.store.records import ApiKey, VirtualKey
from portkey_mw.store.sql import SQLStore
from tests.conftest import in_process
from tests.planted import ADMIN, OPENAI_KEY, plant

CHAT = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    opened = SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", data_dir=tmp_path)
    await opened.open()
    yield opened
    await opened.aclose()


def statements(store: SQLStore) -> list[str]:
    """Every SQL statement the store runs from now on."""
    seen: list[str] = []
    event.listen(store._db.sync_engine, "before_cursor_execute", lambda *a: seen.append(str(a[2])))
    return seen


def test_the_read_budget_refills_at_its_rate() -> None:
    now = [0.0]
    budget = ReadBudget(2.0, clock=lambda: now[0])
    assert [budget.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5
    assert budget.take() and not budget.take()


async def test_unknown_names_cost_the_store_a_bounded_number_of_reads(store: SQLStore) -> None:
    catalog = Catalog(store, refresh_interval=60, miss_reads_per_second=5)
    await catalog.load()
    try:
        seen = statements(store)
        for index in range(500):
            assert await catalog.api_key(f"{index:064x}") is None
            assert await catalog.virtual_key(f"nope-{index}") is None
        assert catalog.miss_reads <= 6  # the burst, plus what refilled meanwhile
        assert len(seen) <= 2 * catalog.miss_reads
        # The same unknown name again: remembered, not read again.
        before = catalog.miss_reads
        for _ in range(100):
            await catalog.virtual_key("nope-0")
        assert catalog.miss_reads == before
    finally:
        await catalog.aclose()


async def test_a_record_made_elsewhere_is_found_on_first_use_then_served_from_memory(
    store: SQLStore,
) -> None:
    catalog = Catalog(store, refresh_interval=60)
    await catalog.load()
    try:
        await store.create_virtual_key(
            VirtualKey(id="", slug="late", name="Late", provider="openai",
                       secrets={"api_key": OPENAI_KEY})
        )  # fmt: skip
        seen = statements(store)
        found = await catalog.virtual_key("late")
        assert found is not None and found.secrets["api_key"] == OPENAI_KEY
        reads = len(seen)
        for _ in range(50):
            assert await catalog.virtual_key("late") is found
        assert len(seen) == reads
    finally:
        await catalog.aclose()


async def test_refresh_applies_rotation_revocation_and_deletion(store: SQLStore) -> None:
    catalog = Catalog(store, refresh_interval=60)
    made = await store.create_api_key(ApiKey(id="", name="k", key_digest="a" * 64, key_hint="h"))
    await store.create_virtual_key(
        VirtualKey(id="", slug="vk", name="VK", provider="openai", secrets={"api_key": "x"})
    )
    await catalog.load()
    try:
        assert catalog.api_keys["a" * 64].id == made.id
        await store.update_api_key(made.id, {"key_digest": "b" * 64, "key_hint": "h2"})
        await store.delete_virtual_key("vk")
        changed: list[int] = []
        catalog.on_change(lambda: changed.append(1))
        await catalog.refresh()
        assert "a" * 64 not in catalog.api_keys and catalog.api_keys["b" * 64].id == made.id
        assert "vk" not in catalog.virtual_keys and "vk" in catalog.deleted_slugs
        assert changed == [1]
        await store.update_api_key(made.id, {"status": "revoked"})
        await catalog.refresh()
        assert catalog.api_keys["b" * 64].status == "revoked"
    finally:
        await catalog.aclose()


@pytest.fixture
async def gateway(store: SQLStore, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("PORTKEY_MW_AUTH", "optional")
    settings = ServerSettings.from_mapping(
        {
            "mock": True,
            "enforced": {
                "input_guardrails": [
                    {"default.contains": {"operator": "none", "words": ["forbidden"]},
                     "deny": True}
                ]
            },
        }
    )  # fmt: skip
    gw = Gateway(settings, store=store)
    async with in_process(gw) as client:
        yield client


async def admin_post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    reply = await client.post(path, json=body, headers=ADMIN)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def test_enforced_guardrails_apply_to_every_way_of_routing(
    gateway: httpx.AsyncClient,
) -> None:
    vk = await admin_post(
        gateway, "/v1/virtual-keys", {"name": "m", "provider": "mock", "key": "k"}
    )
    saved = await admin_post(gateway, "/v1/configs", {"name": "c", "config": {"provider": "mock"}})
    denied = {**CHAT, "messages": [{"role": "user", "content": "a forbidden word"}]}
    ways: list[tuple[dict[str, str], dict[str, Any]]] = [
        ({"x-portkey-provider": "mock"}, denied),
        ({"x-portkey-config": orjson.dumps({"provider": "mock"}).decode()}, denied),
        ({"x-portkey-config": saved["slug"]}, denied),
        ({"x-portkey-virtual-key": vk["slug"]}, denied),
        ({"x-portkey-provider": f"@{vk['slug']}"}, denied),
        ({}, {**denied, "model": f"@{vk['slug']}/mock-gpt"}),
    ]
    for headers, body in ways:
        reply = await gateway.post("/v1/chat/completions", json=body, headers=headers)
        assert reply.status_code == 446, (headers, reply.text)
        ok = {**body, "messages": CHAT["messages"]}
        reply = await gateway.post("/v1/chat/completions", json=ok, headers=headers)
        assert reply.status_code == 200, (headers, reply.text)


async def test_key_metadata_wins_and_virtual_key_defaults_fill_in(
    gateway: httpx.AsyncClient,
) -> None:
    vk = await admin_post(
        gateway,
        "/v1/virtual-keys",
        {"name": "d", "provider": "mock", "key": "k", "defaults": {"model": "mock-default"}},
    )
    made = await admin_post(
        gateway,
        "/v1/api-keys/organisation/service",
        {"name": "t", "defaults": {"metadata": {"team": "billing"}}},
    )
    key = plant(made["key"])
    headers = {
        "x-portkey-api-key": key,
        "x-portkey-virtual-key": vk["slug"],
        "x-portkey-metadata": '{"team": "spoofed", "user": "u1"}',
    }
    body = {"messages": CHAT["messages"]}
    reply = await gateway.post("/v1/chat/completions", json=body, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "mock-default"


async def test_disabled_and_expired_virtual_keys_are_refused_by_name(
    gateway: httpx.AsyncClient, store: SQLStore
) -> None:
    off = await admin_post(
        gateway, "/v1/virtual-keys", {"name": "off", "provider": "mock", "key": "k"}
    )
    old = await admin_post(
        gateway, "/v1/virtual-keys", {"name": "old", "provider": "mock", "key": "k"}
    )
    await store.update_virtual_key(off["slug"], {"status": "disabled"})
    await store.update_virtual_key(old["slug"], {"expires_at": datetime.now(UTC) - timedelta(1)})
    for slug, code in ((off["slug"], "virtual_key_disabled"), (old["slug"], "virtual_key_expired")):
        for _ in range(40):  # the refresh task takes the change in within its interval
            reply = await gateway.post(
                "/v1/chat/completions", json=CHAT, headers={"x-portkey-virtual-key": slug}
            )
            if reply.status_code != 200:
                break
            await __import__("asyncio").sleep(0.1)
        assert reply.status_code == 403, reply.text
        assert reply.json()["error"]["code"] == code and slug in reply.text


async def test_the_admin_key_is_refused_where_a_provider_key_goes(
    gateway: httpx.AsyncClient,
) -> None:
    """Sent as a Bearer token or x-api-key, the admin key would go upstream as a provider
    key: the data plane refuses it in every mode."""
    for headers in (
        {"authorization": f"Bearer {ADMIN['x-portkey-api-key']}"},
        {"x-api-key": ADMIN["x-portkey-api-key"]},
    ):
        reply = await gateway.post(
            "/v1/chat/completions", json=CHAT, headers={**headers, "x-portkey-provider": "mock"}
        )
        assert reply.status_code == 401, reply.text
        assert reply.json()["error"]["code"] == "admin_key_not_for_data_plane"


async def test_over_long_unknown_names_are_neither_read_nor_remembered(store: SQLStore) -> None:
    """Header values of any length could otherwise fill the negative cache's memory."""
    catalog = Catalog(store, refresh_interval=60)
    await catalog.load()
    try:
        for index in range(50):
            assert await catalog.virtual_key(f"{index}-" + "x" * 20_000) is None
            assert await catalog.config("y" * 16_000 + str(index)) is None
        assert catalog.miss_reads == 0 and not catalog._unknown
    finally:
        await catalog.aclose()
