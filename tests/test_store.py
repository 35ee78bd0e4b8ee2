"""The control-plane store and its vault, on SQLite and on a real PostgreSQL server.

Every test that takes ``store_url`` runs twice: on a SQLite file and on a fresh database
of the session's PostgreSQL server (``tests/postgres.py``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError

from portkey_mw.auth.vault import (
    KEY_FILE_NAME,
    WRONG_KEY,
    Vault,
    VaultError,
    encode_key,
    generate_key,
    load_master_key,
    parse_key,
    rotate_master_key,
)
from portkey_mw.limits import UsageEntry
from portkey_mw.store.protocols import Conflict, StoreUnavailable
from portkey_mw.store.records import (
    PARTIAL,
    ApiKey,
    Collection,
    Label,
    Prompt,
    PromptVersion,
    SavedConfig,
    VirtualKey,
)
from portkey_mw.store.sql import SQLStore, default_data_dir, resolve_url, upgrade
from portkey_mw.store.sql.engine import display_url, make_engine
from portkey_mw.store.sql.migrate import alembic_config, head_revision
from portkey_mw.store.sql.models import METADATA
from tests.planted import AWS_SECRET_ACCESS_KEY, OPENAI_KEY, USERINFO_PASSWORD, plant
from tests.postgres import PostgresServer

# A master key the suite scans for: it must never show in a log line or a message.
MASTER = parse_key(plant(encode_key(generate_key())), "test key")
OTHER = parse_key(plant(encode_key(generate_key())), "test key")
HEAD = "0008"
#: The time the usage tests run at (epoch seconds): they pass it, no clock is read.
NOW = 1_750_000_000.0


def vk(slug: str, **extra: Any) -> VirtualKey:
    fields: dict[str, Any] = {
        "id": "",
        "slug": slug,
        "name": slug.title(),
        "provider": "openai",
        "secrets": {"api_key": OPENAI_KEY},
    }
    fields.update(extra)
    return VirtualKey(**fields)


def api_key(digest: str, **extra: Any) -> ApiKey:
    return ApiKey(id="", name="ci", key_digest=digest, key_hint="pkmw-…a1b2", **extra)


def usage(subject: str, **extra: Any) -> UsageEntry:
    fields: dict[str, Any] = {
        "subject": subject,
        "type": "cost",
        "period": "1748736000",
        "used": 1.5,
        "expires_at": NOW + 86_400,
    }
    fields.update(extra)
    return UsageEntry(**fields)


def saved(slug: str, config: dict[str, Any] | None = None) -> SavedConfig:
    return SavedConfig(
        id="", slug=slug, name=slug, config=config or {"provider": "openai"}, version_id=""
    )


@pytest.fixture
async def store(store_url: str, tmp_path: Path) -> AsyncIterator[SQLStore]:
    """An open store with a key file in ``tmp_path`` (the process environment ignored)."""
    opened = SQLStore(store_url, data_dir=tmp_path, environ={})
    await opened.open()
    yield opened
    await opened.aclose()


async def raw(url: str, sql: str, **params: Any) -> list[Any]:
    """Rows of ``sql`` run on the database behind ``url``, past the store."""
    engine = make_engine(resolve_url(url, environ={}))
    try:
        async with engine.begin() as connection:
            result = await connection.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


def staged_keys(data_dir: Path) -> list[Path]:
    """Key files a rotation staged and left behind."""
    return list(data_dir.glob("*.new"))


# -- records --------------------------------------------------------------------------------
async def test_virtual_key_crud(store: SQLStore) -> None:
    expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    created = await store.create_virtual_key(
        vk(
            "openai-prod",
            options={"organization": "org-1"},
            defaults={"model": "gpt-4o-mini"},
            rate_limits=({"type": "requests", "unit": "rpm", "value": 60},),
            usage_limits={"credit_limit": 10},
            expires_at=expires,
            workspace_id="ws-1",
        )
    )
    assert created.id and created.revision > 0 and not created.deleted
    assert created.created_at is not None and created.created_at.tzinfo is not None
    assert created.created_at.utcoffset() == timedelta(0)
    assert created.secrets == {"api_key": OPENAI_KEY}
    assert OPENAI_KEY not in repr(created)

    got = await store.get_virtual_key("openai-prod")
    assert got == created
    assert got.expires_at == expires
    assert got.rate_limits == ({"type": "requests", "unit": "rpm", "value": 60},)
    await store.create_virtual_key(vk("other", workspace_id="ws-2"))
    assert [k.slug for k in await store.list_virtual_keys()] == ["openai-prod", "other"]
    assert [k.slug for k in await store.list_virtual_keys("ws-2")] == ["other"]

    updated = await store.update_virtual_key(
        "openai-prod",
        {"secrets": {"api_key": "sk-rotated-key-1234"}, "note": "rotated", "status": "disabled"},
    )
    assert updated is not None
    assert updated.secrets == {"api_key": "sk-rotated-key-1234"}
    assert (updated.note, updated.status, updated.options) == (
        "rotated",
        "disabled",
        {"organization": "org-1"},
    )
    assert updated.revision > created.revision and updated.created_at == created.created_at
    assert await store.update_virtual_key("missing", {"note": "x"}) is None
    with pytest.raises(ValueError, match="id"):
        await store.update_virtual_key("openai-prod", {"id": "x"})

    assert await store.delete_virtual_key("openai-prod") is True
    assert await store.get_virtual_key("openai-prod") is None
    assert await store.delete_virtual_key("openai-prod") is False
    assert [k.slug for k in await store.list_virtual_keys()] == ["other"]


async def test_structured_secrets_round_trip(store: SQLStore) -> None:
    secrets = {
        "aws_access_key_id": "AKIA-test",
        "aws_secret_access_key": AWS_SECRET_ACCESS_KEY,
        "vertex_service_account_json": '{"private_key": "-----BEGIN…\\n"}',
    }
    await store.create_virtual_key(vk("bedrock", provider="bedrock", secrets=secrets))
    got = await store.get_virtual_key("bedrock")
    assert got is not None and got.secrets == secrets


async def test_api_key_crud(store: SQLStore) -> None:
    created = await store.create_api_key(
        api_key(
            "d" * 64,
            scopes=("completions.write", "virtual_keys.read"),
            defaults={"config_id": "cfg", "allow_config_override": False},
            workspace_id="ws-1",
        )
    )
    assert created.scopes == ("completions.write", "virtual_keys.read")
    assert await store.get_api_key(created.id) == created
    assert await store.find_api_key("d" * 64) == created
    assert await store.find_api_key("e" * 64) is None

    rotated = await store.update_api_key(created.id, {"key_digest": "f" * 64, "key_hint": "…9z"})
    assert rotated is not None and rotated.key_hint == "…9z"
    assert await store.find_api_key("d" * 64) is None
    assert await store.find_api_key("f" * 64) == rotated
    with pytest.raises(Conflict):
        await store.create_api_key(api_key("f" * 64))
    assert [k.id for k in await store.list_api_keys("ws-1")] == [created.id]

    assert await store.delete_api_key(created.id) is True
    assert await store.get_api_key(created.id) is None
    assert await store.find_api_key("f" * 64) is None
    assert await store.update_api_key(created.id, {"name": "x"}) is None
    assert await store.list_api_keys() == []


async def test_config_versions(store: SQLStore) -> None:
    first = await store.create_config(saved("fallback", {"strategy": {"mode": "fallback"}}))
    assert first.version_id and first.config == {"strategy": {"mode": "fallback"}}
    assert await store.get_config("fallback") == first
    assert await store.get_config(first.id) == first  # by id too

    renamed = await store.update_config("fallback", {"name": "Fallback"})
    assert renamed is not None and renamed.version_id == first.version_id

    second = await store.update_config("fallback", {"config": {"provider": "anthropic"}})
    assert second is not None
    assert second.version_id != first.version_id
    assert second.config == {"provider": "anthropic"}
    versions = await store.config_versions("fallback")
    assert versions is not None
    assert [v.id for v in versions] == [second.version_id, first.version_id]
    assert versions[1].config == {"strategy": {"mode": "fallback"}}
    assert await store.config_versions("missing") is None
    assert [c.slug for c in await store.list_configs()] == ["fallback"]

    assert await store.delete_config("fallback") is True
    assert await store.get_config("fallback") is None
    assert await store.config_versions("fallback") is None
    assert await store.update_config("fallback", {"name": "x"}) is None


async def test_json_keeps_key_order(store: SQLStore) -> None:
    config = {"z": 1, "a": {"y": 2, "b": 3}}
    await store.create_config(saved("ordered", config))
    got = await store.get_config("ordered")
    assert got is not None and list(got.config) == ["z", "a"]


async def test_slugs_are_unique_among_live_records(store: SQLStore) -> None:
    first = await store.create_virtual_key(vk("shared"))
    with pytest.raises(Conflict, match="shared") as caught:
        await store.create_virtual_key(vk("shared"))
    assert caught.value.status == 409 and caught.value.param == "slug"
    await store.create_virtual_key(vk("second"))
    with pytest.raises(Conflict):
        await store.update_virtual_key("second", {"slug": "shared"})
    # Renaming to its own slug is no conflict.
    assert await store.update_virtual_key("shared", {"slug": "shared"}) is not None

    await store.delete_virtual_key("shared")
    again = await store.create_virtual_key(vk("shared"))  # a tombstone frees its slug
    assert again.id != first.id

    await store.create_config(saved("cfg"))
    with pytest.raises(Conflict):
        await store.create_config(saved("cfg"))


async def test_concurrent_creates_of_one_slug(store: SQLStore) -> None:
    results = await asyncio.gather(
        *(store.create_virtual_key(vk("race")) for _ in range(5)), return_exceptions=True
    )
    assert sum(isinstance(r, VirtualKey) for r in results) == 1
    assert all(isinstance(r, VirtualKey | Conflict) for r in results), results
    assert len(await store.list_virtual_keys()) == 1


async def test_changes_feed(store: SQLStore) -> None:
    assert await store.revision() == 0
    empty = await store.changes(0)
    assert (empty.revision, empty.virtual_keys, empty.api_keys, empty.configs) == (0, (), (), ())

    a = await store.create_virtual_key(vk("a"))
    k = await store.create_api_key(api_key("1" * 64))
    c = await store.create_config(saved("c"))
    assert a.revision < k.revision < c.revision == await store.revision()
    everything = await store.changes(0)
    assert everything.revision == c.revision
    assert [r.id for r in everything.virtual_keys] == [a.id]
    assert [r.id for r in everything.api_keys] == [k.id]
    assert [r.id for r in everything.configs] == [c.id]

    mark = everything.revision
    await store.delete_virtual_key("a")
    await store.update_config("c", {"config": {"provider": "cohere"}})
    later = await store.changes(mark)
    assert later.revision > mark and later.api_keys == ()
    (tombstone,) = later.virtual_keys
    assert tombstone.deleted and tombstone.slug == "a"
    assert tombstone.secrets == {}  # a deleted key keeps no credentials
    assert later.configs[0].config == {"provider": "cohere"}
    assert (await store.changes(later.revision)).virtual_keys == ()

    # A mutation that finds nothing changes no revision.
    before = await store.revision()
    assert await store.delete_virtual_key("a") is False
    assert await store.revision() == before


def version(template: str, **definition: Any) -> PromptVersion:
    return PromptVersion(id="", prompt_id="", version=0, template=template, definition=definition)


async def test_prompt_versions_and_changes(store: SQLStore) -> None:
    mark = await store.revision()
    made = await store.create_prompt(
        Prompt(id="", slug="pp-greet", name="greet"), version("Hi {{name}}", model="m")
    )
    assert made.default_version == 1 and [v.version for v in made.versions] == [1]
    assert made.versions[0].definition == {"model": "m"}
    assert await store.get_prompt(made.id) == made
    assert await store.get_prompt("pp-greet", PARTIAL) is None  # a prompt, not a partial

    second = await store.update_prompt("pp-greet", {"name": "Greet"}, version("Hello {{name}}"))
    assert second is not None and [v.version for v in second.versions] == [1, 2]
    assert second.default_version == 1  # a new version is not published by itself
    moved = await store.update_prompt(
        "pp-greet", {"default_version": 2, "labels": {"production": {"versions": [{"version": 1}]}}}
    )
    assert moved is not None and moved.default_version == 2
    assert moved.version(1) is not None and moved.latest is not None
    assert moved.latest.template == "Hello {{name}}"
    assert moved.labels == {"production": {"versions": [{"version": 1}]}}

    # Prompts and partials share their slugs.
    with pytest.raises(Conflict):
        await store.create_prompt(
            Prompt(id="", slug="pp-greet", name="x", kind=PARTIAL), version("")
        )
    await store.create_prompt(Prompt(id="", slug="pp-part", name="p", kind=PARTIAL), version("x"))
    assert [p.slug for p in await store.list_prompts(PARTIAL)] == ["pp-part"]
    assert [p.slug for p in await store.list_prompts("prompt")] == ["pp-greet"]

    label = await store.create_label(Label(id="l1", name="canary", workspace_id="w"))
    with pytest.raises(Conflict):
        await store.create_label(Label(id="l2", name="Canary", workspace_id="w"))
    changed = await store.changes(mark)
    assert {p.slug for p in changed.prompts} == {"pp-greet", "pp-part"}
    greet = next(p for p in changed.prompts if p.slug == "pp-greet")
    assert len(greet.versions) == 2 and changed.labels == (label,)

    assert await store.delete_prompt("pp-greet") is True
    tombstone = (await store.changes(changed.revision)).prompts
    assert [(p.slug, p.deleted) for p in tombstone] == [("pp-greet", True)]
    assert await store.get_prompt("pp-greet") is None
    assert await store.update_prompt("pp-greet", {"name": "x"}) is None


async def test_labels_and_collections(store: SQLStore) -> None:
    await store.create_label(Label(id="l1", name="canary"))
    updated = await store.update_label("l1", {"description": "5 %"})
    assert updated is not None and updated.description == "5 %"
    assert [label.id for label in await store.list_labels()] == ["l1"]
    assert await store.delete_label("l1") is True and await store.get_label("l1") is None
    await store.create_label(Label(id="l3", name="canary"))  # a deleted label frees its name

    folder = await store.create_collection(Collection(id="c1", slug="support", name="Support"))
    assert await store.get_collection("support") == folder
    renamed = await store.update_collection("c1", {"name": "Help"})
    assert renamed is not None and renamed.name == "Help"
    with pytest.raises(Conflict):
        await store.create_collection(Collection(id="c2", slug="support", name="x"))
    assert [c.id for c in await store.list_collections()] == ["c1"]
    assert await store.delete_collection("support") is True
    assert await store.list_collections() == []


# -- budget usage ---------------------------------------------------------------------------------
async def test_usage_round_trip_and_reopened_store(store_url: str, tmp_path: Path) -> None:
    entries = [
        usage("api_key:k1", used=0.1 + 0.2, alerted=True),  # doubles, not rounded floats
        usage("api_key:k1", type="tokens", used=123_456_789_012.0, exhausted=True),
        usage("metadata:team=search", period="total", used=7.0, expires_at=None),
        usage("virtual_key:ünïcode-☃", used=0.0),
    ]
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as store:
        assert await store.load_usage(NOW) == []
        await store.save_usage(entries, now=NOW)
        assert await store.load_usage(NOW) == sorted(entries, key=lambda e: (e.subject, e.type))
    # A restart: a new store on the same database loads them back.
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as reopened:
        loaded = await reopened.load_usage(NOW)
    assert loaded == sorted(entries, key=lambda e: (e.subject, e.type))
    assert loaded[0].used == 0.1 + 0.2 and loaded[0].alerted and not loaded[0].exhausted


async def test_usage_last_write_wins(store: SQLStore) -> None:
    await store.save_usage([usage("k", used=5.0, alerted=True)], now=NOW)
    # Lower than before, same period: still replaces (the caller's value is the truth).
    await store.save_usage([usage("k", used=3.0, alerted=True)], now=NOW)
    assert [e.used for e in await store.load_usage(NOW)] == [3.0]

    newer = usage("k", period="1751328000", used=0.25, expires_at=NOW + 40 * 86_400)
    await store.save_usage([newer], now=NOW)
    assert await store.load_usage(NOW) == [newer]

    # An admin reset is an entry with used 0: it overwrites, flags and all.
    reset = usage("k", period="1751328000", used=0.0, expires_at=NOW + 40 * 86_400)
    await store.save_usage([reset], now=NOW)
    assert await store.load_usage(NOW) == [reset]

    # Several entries for one budget in one batch: the last wins.
    await store.save_usage([usage("k", used=1.0), usage("k", used=2.0)], now=NOW)
    assert [e.used for e in await store.load_usage(NOW)] == [2.0]
    # Budgets of one subject but another type are separate rows.
    await store.save_usage([usage("k", type="tokens", used=10.0)], now=NOW)
    assert [(e.type, e.used) for e in await store.load_usage(NOW)] == [
        ("cost", 2.0),
        ("tokens", 10.0),
    ]


async def test_usage_of_ended_periods_is_not_loaded_and_deleted_on_save(
    store: SQLStore, store_url: str
) -> None:
    soon, later, never = (
        usage("soon", expires_at=NOW + 10),
        usage("later", expires_at=NOW + 1000),
        usage("never", expires_at=None),
    )
    await store.save_usage([soon, later, never], now=NOW)
    assert [e.subject for e in await store.load_usage(NOW + 9)] == ["later", "never", "soon"]
    # At expires_at the period has ended: not loaded, though still in the table.
    assert [e.subject for e in await store.load_usage(NOW + 10)] == ["later", "never"]
    assert await raw(store_url, "SELECT count(*) FROM budget_usage") == [(3,)]

    await store.save_usage([usage("other", expires_at=NOW + 2000)], now=NOW + 10)
    rows = await raw(store_url, "SELECT subject FROM budget_usage ORDER BY subject")
    assert [row[0] for row in rows] == ["later", "never", "other"]
    await store.save_usage([usage("other", expires_at=NOW + 2000)], now=NOW + 1500)
    rows = await raw(store_url, "SELECT subject FROM budget_usage ORDER BY subject")
    assert [row[0] for row in rows] == ["never", "other"]


async def test_saving_usage_moves_no_revision(store: SQLStore) -> None:
    await store.create_virtual_key(vk("a"))
    before = await store.revision()
    await store.save_usage([usage(f"s{i}") for i in range(10)], now=NOW)
    await store.save_usage([usage("s1", used=0.0)], now=NOW + 5_000_000)  # deletes too
    assert await store.revision() == before
    changes = await store.changes(before)
    assert (changes.revision, changes.virtual_keys, changes.api_keys, changes.configs) == (
        before,
        (),
        (),
        (),
    )


async def test_a_thousand_entries_save_as_one_batch(store: SQLStore) -> None:
    inserts: list[bool] = []

    def seen(_conn: Any, _cursor: Any, statement: str, _p: Any, _c: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO BUDGET_USAGE"):
            inserts.append(many)

    entries = [usage(f"api_key:{i:04d}", used=float(i)) for i in range(1000)]
    sync_engine = store._db.sync_engine
    event.listen(sync_engine, "before_cursor_execute", seen)
    try:
        await store.save_usage(entries, now=NOW)
    finally:
        event.remove(sync_engine, "before_cursor_execute", seen)
    assert inserts == [True]  # one executemany, not a statement per entry
    loaded = await store.load_usage(NOW)
    assert loaded == entries  # already in key order
    # A second snapshot overwriting them all is one batch too.
    await store.save_usage([usage(e.subject, used=e.used + 1) for e in entries], now=NOW)
    assert sum(e.used for e in await store.load_usage(NOW)) == sum(range(1, 1001))


async def test_usage_the_table_cannot_hold_is_skipped(
    store: SQLStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="portkey_mw.store")
    long_subject = "metadata:team=" + "x" * 400
    await store.save_usage(
        [usage(long_subject), usage("nan", used=float("nan")), usage("kept")], now=NOW
    )
    assert [e.subject for e in await store.load_usage(NOW)] == ["kept"]
    (warning,) = [r for r in caplog.records if "usage_skipped" in r.getMessage()]
    assert "x" * 50 not in warning.getMessage()  # the count, not the subject
    await store.save_usage([], now=NOW)  # nothing to write: no transaction, no error


async def test_migration_from_0001_keeps_the_data(store_url: str, tmp_path: Path) -> None:
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as store:
        key = await store.create_virtual_key(vk("kept"))
        config = await store.create_config(saved("cfg"))
        await store.save_usage([usage("gone-with-the-table")], now=NOW)
        revision = await store.revision()
    config_file = alembic_config(resolve_url(store_url, environ={}))
    await asyncio.to_thread(command.downgrade, config_file, "0001")
    assert await raw(store_url, "SELECT version_num FROM alembic_version") == [("0001",)]
    with pytest.raises(DBAPIError, match="budget_usage"):
        await raw(store_url, "SELECT count(*) FROM budget_usage")

    # An existing 0001 database with records: migrating to head keeps every one.
    assert await upgrade(store_url) == HEAD
    async with SQLStore(store_url, data_dir=tmp_path, migrate=False, environ={}) as store:
        got = await store.get_virtual_key("kept")
        assert got == key and got.secrets == {"api_key": OPENAI_KEY}
        assert await store.get_config("cfg") == config
        assert await store.revision() == revision
        assert await store.load_usage(NOW) == []
        await store.save_usage([usage("new")], now=NOW)
        assert [e.subject for e in await store.load_usage(NOW)] == ["new"]


# -- the vault at rest --------------------------------------------------------------------------
async def test_secrets_are_encrypted_at_rest(store: SQLStore, store_url: str) -> None:
    created = await store.create_virtual_key(
        vk("aws", secrets={"aws_secret_access_key": AWS_SECRET_ACCESS_KEY})
    )
    ((blob,),) = await raw(store_url, "SELECT secrets FROM virtual_keys")
    assert AWS_SECRET_ACCESS_KEY.encode() not in bytes(blob)
    assert b"aws_secret_access_key" not in bytes(blob)
    if store.dialect == "sqlite":
        database = Path(store_url.removeprefix("sqlite:///"))
        for path in database.parent.glob(database.name + "*"):  # the file and its WAL
            assert AWS_SECRET_ACCESS_KEY.encode() not in path.read_bytes()
    # A sealed blob is bound to its row: copied into another, it does not open.
    other = await store.create_virtual_key(vk("other"))
    await raw(
        store_url,
        "UPDATE virtual_keys SET secrets = (SELECT secrets FROM virtual_keys WHERE id = :a) "
        "WHERE id = :b",
        a=created.id,
        b=other.id,
    )
    with pytest.raises(VaultError, match="damaged or was moved"):
        await store.get_virtual_key("other")


async def test_pepper_is_stable(store_url: str, tmp_path: Path) -> None:
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as first:
        pepper = first.api_key_pepper
    assert len(pepper) == 32
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as second:
        assert second.api_key_pepper == pepper
    ((sealed,),) = await raw(store_url, "SELECT value FROM vault_meta WHERE name='api_key_pepper'")
    assert pepper not in bytes(sealed)


async def test_wrong_master_key_is_refused_and_nothing_overwritten(store_url: str) -> None:
    async with SQLStore(store_url, master_key=MASTER, environ={}) as store:
        await store.create_virtual_key(vk("kept"))
    before = await raw(store_url, "SELECT name, value FROM vault_meta ORDER BY name")
    rows_before = await raw(store_url, "SELECT id, secrets FROM virtual_keys")

    wrong = SQLStore(store_url, master_key=OTHER, environ={})
    with pytest.raises(VaultError) as caught:
        await wrong.open()
    assert caught.value.message == WRONG_KEY
    assert "PORTKEY_MW_MASTER_KEY" in caught.value.message
    env_wrong = SQLStore(store_url, environ={"PORTKEY_MW_MASTER_KEY": OTHER.hex()})
    with pytest.raises(VaultError, match="does not decrypt"):
        await env_wrong.open()

    assert await raw(store_url, "SELECT name, value FROM vault_meta ORDER BY name") == before
    assert await raw(store_url, "SELECT id, secrets FROM virtual_keys") == rows_before
    async with SQLStore(store_url, master_key=MASTER, environ={}) as store:
        got = await store.get_virtual_key("kept")
        assert got is not None and got.secrets == {"api_key": OPENAI_KEY}


async def test_corrupt_key_file_is_refused(store_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / KEY_FILE_NAME
    key_file.write_text("not a key\n")
    with pytest.raises(VaultError, match=r"master\.key is not a master key"):
        await SQLStore(store_url, data_dir=tmp_path, environ={}).open()
    assert key_file.read_text() == "not a key\n"
    assert await raw(store_url, "SELECT name FROM vault_meta") == []


async def test_malformed_environment_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(VaultError, match="PORTKEY_MW_MASTER_KEY is not a master key"):
        load_master_key(tmp_path, {"PORTKEY_MW_MASTER_KEY": "c2hvcnQ"})
    assert not (tmp_path / KEY_FILE_NAME).exists()


async def test_key_file_created_once_with_0600(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    environ = {"PORTKEY_MW_DATA_DIR": str(data_dir)}
    caplog.set_level(logging.INFO, logger="portkey_mw.store")
    async with SQLStore(environ=environ) as store:
        assert store.master_key.created
        assert store.url_for_display == f"sqlite:///{data_dir / 'control.db'}"
    key_file = data_dir / KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    created_logs = [r for r in caplog.records if "master_key_created" in r.getMessage()]
    assert len(created_logs) == 1 and str(key_file) in created_logs[0].getMessage()
    key_text = key_file.read_text().strip()
    assert all(key_text not in r.getMessage() for r in caplog.records)

    async with SQLStore(environ=environ) as store:
        assert not store.master_key.created
        assert store.master_key.key == parse_key(key_text, "file")
    assert len([r for r in caplog.records if "master_key_created" in r.getMessage()]) == 1


async def test_sealed_store_without_its_key_file_gets_no_new_one(
    store_url: str, tmp_path: Path
) -> None:
    async with SQLStore(store_url, data_dir=tmp_path, environ={}):
        pass
    (tmp_path / KEY_FILE_NAME).unlink()
    with pytest.raises(VaultError, match="no master key is set"):
        await SQLStore(store_url, data_dir=tmp_path, environ={}).open()
    assert not (tmp_path / KEY_FILE_NAME).exists()


async def test_environment_key_wins_over_key_file(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE_NAME).write_text(encode_key(OTHER))
    hex_key = load_master_key(tmp_path, {"PORTKEY_MW_MASTER_KEY": MASTER.hex()})
    padded = base64.urlsafe_b64encode(MASTER).decode()
    assert hex_key == load_master_key(tmp_path, {"PORTKEY_MW_MASTER_KEY": padded})
    assert hex_key == (MASTER, False)
    assert load_master_key(tmp_path, {}) == (OTHER, False)


# -- rotation -------------------------------------------------------------------------------
async def test_rotation_with_key_file(store_url: str, tmp_path: Path) -> None:
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as store:
        await store.create_virtual_key(vk("live"))
        await store.create_virtual_key(vk("gone"))
        await store.delete_virtual_key("gone")
        old_key, pepper = store.master_key.key, store.api_key_pepper
        revision = await store.revision()

    rotated = await rotate_master_key(store_url, data_dir=tmp_path, environ={})
    assert rotated.key != old_key and rotated.path == tmp_path / KEY_FILE_NAME
    assert load_master_key(tmp_path, {}) == (rotated.key, False)
    assert stat.S_IMODE((tmp_path / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert not staged_keys(tmp_path)

    with pytest.raises(VaultError, match="does not decrypt"):
        await SQLStore(store_url, master_key=old_key, environ={}).open()
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as store:
        got = await store.get_virtual_key("live")
        assert got is not None and got.secrets == {"api_key": OPENAI_KEY}
        assert store.api_key_pepper == pepper  # API-key digests stay valid
        assert await store.revision() == revision  # nothing a replica must reload
        assert len((await store.changes(0)).virtual_keys) == 2  # tombstone opens too


async def test_rotation_with_given_keys(store_url: str) -> None:
    async with SQLStore(store_url, master_key=MASTER, environ={}) as store:
        await store.create_virtual_key(vk("live"))
        with pytest.raises(VaultError, match="give the new key"):
            await store.rotate_master_key()
        with pytest.raises(VaultError, match="is the current one"):
            await store.rotate_master_key(MASTER)
        await store.rotate_master_key(OTHER)
        # The open store goes on with the new key.
        got = await store.get_virtual_key("live")
        assert got is not None and got.secrets == {"api_key": OPENAI_KEY}
        await store.create_virtual_key(vk("after"))
    await rotate_master_key(store_url, old_key=OTHER, new_key=MASTER, environ={})
    async with SQLStore(store_url, master_key=MASTER, environ={}) as store:
        assert {k.slug for k in await store.list_virtual_keys()} == {"live", "after"}


async def test_failed_rotation_leaves_everything_as_it_was(store_url: str, tmp_path: Path) -> None:
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as store:
        good = await store.create_virtual_key(vk("good"))
        bad = await store.create_virtual_key(vk("bad"))
    # Damage one sealed blob (flip its last byte): rotation cannot open it, midway.
    ((blob,),) = await raw(store_url, "SELECT secrets FROM virtual_keys WHERE id=:i", i=bad.id)
    damaged = bytes(blob)[:-1] + bytes([bytes(blob)[-1] ^ 1])
    await raw(store_url, "UPDATE virtual_keys SET secrets=:s WHERE id=:i", s=damaged, i=bad.id)
    key_before = (tmp_path / KEY_FILE_NAME).read_bytes()
    meta_before = await raw(store_url, "SELECT name, value FROM vault_meta ORDER BY name")
    rows_before = await raw(store_url, "SELECT id, secrets FROM virtual_keys ORDER BY id")

    with pytest.raises(VaultError, match="damaged"):
        await rotate_master_key(store_url, data_dir=tmp_path, environ={})

    assert (tmp_path / KEY_FILE_NAME).read_bytes() == key_before
    assert not staged_keys(tmp_path)
    assert await raw(store_url, "SELECT name, value FROM vault_meta ORDER BY name") == meta_before
    assert await raw(store_url, "SELECT id, secrets FROM virtual_keys ORDER BY id") == rows_before
    async with SQLStore(store_url, data_dir=tmp_path, environ={}) as store:
        got = await store.get_virtual_key("good")
        assert got is not None and got.id == good.id and got.secrets == {"api_key": OPENAI_KEY}


async def test_process_with_the_old_key_cannot_seal_after_rotation(store_url: str) -> None:
    async with SQLStore(store_url, master_key=MASTER, environ={}) as stale:
        await stale.create_virtual_key(vk("kept"))
        await rotate_master_key(store_url, old_key=MASTER, new_key=OTHER, environ={})
        with pytest.raises(VaultError, match="restart it with the new key"):
            await stale.create_virtual_key(vk("sealed-with-old-key"))
        # Records without secrets are still written; sealed ones say why they do not open.
        await stale.create_config(saved("cfg"))
        with pytest.raises(VaultError, match="'kept' is sealed under another key"):
            await stale.get_virtual_key("kept")
    async with SQLStore(store_url, master_key=OTHER, environ={}) as store:
        assert [k.slug for k in await store.list_virtual_keys()] == ["kept"]


async def test_in_memory_store(tmp_path: Path) -> None:
    async with SQLStore("sqlite://", master_key=MASTER, environ={}) as store:
        await store.create_virtual_key(vk("mem"))
        assert [k.slug for k in await store.list_virtual_keys()] == ["mem"]
        assert store.url_for_display == "sqlite://"


# -- the vault itself -------------------------------------------------------------------------
def test_vault_seals_with_random_nonces_and_checks_everything() -> None:
    vault = Vault(MASTER)
    one, two = vault.encrypt(b"secret", b"row-1"), vault.encrypt(b"secret", b"row-1")
    assert one != two and one[0] == 1 and one[1:5] == vault.key_id
    assert vault.decrypt(one, b"row-1") == b"secret"
    with pytest.raises(VaultError, match="moved"):
        vault.decrypt(one, b"row-2")
    with pytest.raises(VaultError, match="damaged"):
        vault.decrypt(one[:-1] + bytes([one[-1] ^ 1]), b"row-1")
    with pytest.raises(VaultError, match="unknown format"):
        vault.decrypt(b"\x07" + one[1:], b"row-1")
    with pytest.raises(VaultError, match="does not decrypt"):
        Vault(OTHER).decrypt(one, b"row-1")
    assert encode_key(MASTER) not in repr(vault) and MASTER.hex() not in repr(vault)


# -- reaching the database ----------------------------------------------------------------------
async def test_store_down_is_unavailable_without_the_password(tmp_path: Path) -> None:
    closed = PostgresServer.closed_port()
    url = f"postgresql://admin:{USERINFO_PASSWORD}@127.0.0.1:{closed}/control"
    store = SQLStore(url, master_key=MASTER, environ={})
    assert USERINFO_PASSWORD not in store.url_for_display
    assert store.url_for_display == f"postgresql://127.0.0.1:{closed}/control"
    with pytest.raises(StoreUnavailable) as caught:
        await store.open()
    assert caught.value.status == 503
    assert f"127.0.0.1:{closed}" in caught.value.message
    assert USERINFO_PASSWORD not in caught.value.message and "admin" not in caught.value.message

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(StoreUnavailable, match=r"is unavailable: .*File exists"):
        await SQLStore(f"sqlite:///{not_a_dir}/control.db", master_key=MASTER).open()


async def test_wrong_database_password_is_unavailable(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    url = postgres_server.url(name).replace(postgres_server.password, USERINFO_PASSWORD)
    with pytest.raises(StoreUnavailable, match="password authentication failed") as caught:
        await SQLStore(url, master_key=MASTER, environ={}).open()
    assert USERINFO_PASSWORD not in caught.value.message


async def test_database_gone_while_open_is_unavailable(postgres_server: PostgresServer) -> None:
    name = postgres_server.create_database()
    async with SQLStore(postgres_server.url(name), master_key=MASTER, environ={}) as store:
        await store.create_virtual_key(vk("a"))
        postgres_server.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        postgres_server.psql(
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
        with pytest.raises(StoreUnavailable) as caught:
            await store.get_virtual_key("a")
        assert postgres_server.password not in caught.value.message
        with pytest.raises(StoreUnavailable):
            await store.save_usage([usage("a")])
        with pytest.raises(StoreUnavailable):
            await store.load_usage(NOW)
        postgres_server.psql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        got = await store.get_virtual_key("a")  # back without a restart
        assert got is not None


async def test_locked_sqlite_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portkey_mw.store.sql import engine as engine_module

    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT", 0.2)
    url = f"sqlite:///{tmp_path / 'control.db'}"
    async with SQLStore(url, master_key=MASTER, environ={}) as store:
        blocker = make_engine(resolve_url(url, environ={}))
        try:
            async with blocker.connect() as connection:
                connection = await connection.execution_options(write=True)
                async with connection.begin():
                    await connection.execute(text("UPDATE revision SET value = value"))
                    with pytest.raises(StoreUnavailable, match="locked"):
                        await store.create_virtual_key(vk("waits"))
                    with pytest.raises(StoreUnavailable, match="locked"):
                        await store.save_usage([usage("waits")])
                    assert await store.revision() == 0  # readers never wait (WAL)
        finally:
            await blocker.dispose()
        await store.create_virtual_key(vk("after"))


# -- migrations ---------------------------------------------------------------------------------
async def test_migrations_are_idempotent_and_match_the_models(store_url: str) -> None:
    assert head_revision() == HEAD
    assert await upgrade(store_url) == HEAD
    assert await upgrade(store_url) == HEAD
    async with SQLStore(store_url, master_key=MASTER, migrate=False, environ={}) as store:
        await store.create_virtual_key(vk("a"))
    assert await upgrade(store_url) == HEAD

    engine = make_engine(resolve_url(store_url, environ={}))
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), METADATA)
            )
    finally:
        await engine.dispose()
    assert differences == []


async def test_alembic_runs_the_migrations_on_its_own(store_url: str) -> None:
    """Alembic's own entry points (no connection handed over) use the async engine too."""
    config = alembic_config(resolve_url(store_url, environ={}))
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await raw(store_url, "SELECT version_num FROM alembic_version") == [(HEAD,)]
    assert await upgrade(store_url) == HEAD


async def test_unmigrated_store_is_refused_without_migrate(store_url: str) -> None:
    with pytest.raises(StoreUnavailable, match="portkey-mw db upgrade"):
        await SQLStore(store_url, master_key=MASTER, migrate=False, environ={}).open()


# -- URLs ---------------------------------------------------------------------------------------
def test_url_resolution(tmp_path: Path) -> None:
    env = {
        "PORTKEY_MW_DATABASE_URL": "postgres://u:p@db.internal:5433/pk",
        "PORTKEY_MW_DATA_DIR": str(tmp_path),
    }
    assert resolve_url("sqlite:///x.db", environ=env) == "sqlite+aiosqlite:///x.db"
    assert resolve_url(None, environ=env) == "postgresql+asyncpg://u:p@db.internal:5433/pk"
    assert resolve_url(None, environ={"PORTKEY_MW_DATA_DIR": str(tmp_path)}) == (
        f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    )
    assert default_data_dir({"PORTKEY_MW_DATA_DIR": str(tmp_path)}) == tmp_path
    assert default_data_dir({}).name == "portkey-mw"
    assert display_url("postgresql+asyncpg://u:p%40ss@h/db?sslmode=require") == (
        "postgresql://h/db"
    )
    from portkey_mw.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match="unsupported"):
        resolve_url("mysql://u:secretpw@h/db")
    with pytest.raises(InvalidConfig) as caught:
        resolve_url("mysql://u:secretpw@h/db")
    assert "secretpw" not in caught.value.message
