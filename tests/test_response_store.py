"""Stored responses: the in-process LRU, the SQL store (SQLite and PostgreSQL), the archive
that puts them together (scopes, expiry, size bounds), and persistence across a restart."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from portkey_mw.response_store import MemoryResponses, ResponseArchive, StoredResponse
from portkey_mw.store.sql import SQLStore
from tests.conftest import mounted_gateway
from tests.fake_upstream import FakeUpstream, Reply
from tests.test_responses import anthropic_text, sdk, settings


def record(response_id: str, scope: str = "k1", ttl: float = 60, text: str = "x") -> StoredResponse:
    now = time.time()
    return StoredResponse(
        id=response_id,
        scope=scope,
        created_at=now,
        expires_at=now + ttl,
        response={"id": response_id, "object": "response", "output": [{"text": text}]},
        input_items=[{"id": "msg_1", "type": "message", "role": "user", "content": text}],
    )


def test_memory_is_an_lru_bounded_by_entries_and_bytes() -> None:
    memory = MemoryResponses(max_entries=2)
    for name in ("a", "b", "c"):
        memory.put(record(name))
    assert memory.get("k1", "a") is None and len(memory) == 2
    assert memory.get("k1", "b") is not None  # b is now the most recent
    memory.put(record("d"))
    assert memory.get("k1", "c") is None and memory.get("k1", "b") is not None
    big = record("big", text="y" * 5000)
    small = MemoryResponses(max_entries=100, max_bytes=big.size + 10)
    small.put(record("e"))
    small.put(big)
    assert small.get("k1", "e") is None and small.get("k1", "big") is not None
    assert small.bytes == big.size


def test_memory_scopes_and_expiry() -> None:
    memory = MemoryResponses(max_entries=10)
    memory.put(record("a", scope="k1"))
    memory.put(record("old", ttl=-1))
    assert memory.get("k2", "a") is None
    assert not memory.delete("k2", "a")
    assert memory.get("k1", "a") is not None
    assert memory.get("k1", "old") is None and len(memory) == 1
    assert memory.delete("k1", "a") and memory.bytes == 0


async def test_archive_refuses_oversized_records() -> None:
    archive = ResponseArchive(ttl=60, max_entry_bytes=1024, memory_entries=10)
    assert archive.record("k1", {"id": "resp_1", "output": []}, []) is not None
    assert archive.record("k1", {"id": "resp_2", "output": ["z" * 2000]}, []) is None
    assert await archive.get("k1", "resp_2") is None


@pytest.fixture
async def sql(store_url: str, tmp_path: Path) -> AsyncIterator[SQLStore]:
    opened = SQLStore(store_url, data_dir=tmp_path, environ={})
    await opened.open()
    yield opened
    await opened.aclose()


async def test_sql_round_trip_scope_expiry_delete(sql: SQLStore) -> None:
    kept = record("resp_a", scope="k1")
    await sql.put_responses([kept, record("resp_old", ttl=-1)])
    await sql.put_responses([kept])  # an id written again replaces its row
    found = await sql.get_response("k1", "resp_a")
    assert found is not None
    assert (found.response, found.input_items) == (kept.response, kept.input_items)
    assert found.size > 0
    assert await sql.get_response("k2", "resp_a") is None  # another key's
    assert await sql.get_response("k1", "resp_old") is None  # expired
    assert not await sql.delete_response("k2", "resp_a")
    assert await sql.delete_response("k1", "resp_a")
    assert await sql.get_response("k1", "resp_a") is None


async def test_archive_reads_through_to_sql_once(sql: SQLStore) -> None:
    writer = ResponseArchive(ttl=60, max_entry_bytes=1 << 20, memory_entries=10, store=sql)
    made = writer.record("k1", {"id": "resp_w", "output": []}, [{"id": "i1"}])
    assert made is not None
    await writer.settled()
    calls: list[str] = []
    original = sql.get_response

    async def counted(scope: str, response_id: str) -> Any:
        calls.append(response_id)
        return await original(scope, response_id)

    sql.get_response = counted  # type: ignore[method-assign]
    reader = ResponseArchive(ttl=60, max_entry_bytes=1 << 20, memory_entries=10, store=sql)
    for _ in range(3):
        found = await reader.get("k1", "resp_w")
        assert found is not None and found.input_items == [{"id": "i1"}]
    assert calls == ["resp_w"]  # then served from the process
    assert await reader.get("k2", "resp_w") is None
    assert await reader.delete("k1", "resp_w")
    assert await writer.store.get_response("k1", "resp_w") is None  # type: ignore[union-attr]


def test_a_stored_response_survives_a_restart(fake: FakeUpstream, tmp_path: Path) -> None:
    path = settings(tmp_path, fake, "sql")
    url = f"sqlite+aiosqlite:///{tmp_path / 'restart.db'}"
    path.write_text(path.read_text() + f"store:\n  url: {url}\n")
    with mounted_gateway(path) as running:
        fake.script("/v1/messages", Reply(json=anthropic_text("first answer")))
        first = sdk(running, "claude").responses.create(model="claude-fake-1", input="one")
    with mounted_gateway(path) as running:
        client = sdk(running, "claude")
        assert client.responses.retrieve(first.id).output_text == "first answer"
        fake.script("/v1/messages", Reply(json=anthropic_text("second")))
        client.responses.create(model="claude-fake-1", input="two", previous_response_id=first.id)
        texts = [m["content"][0]["text"] for m in fake.requests[-1].json()["messages"]]
        assert texts == ["one", "first answer", "two"]


def test_memory_store_forgets_on_restart(fake: FakeUpstream, tmp_path: Path) -> None:
    path = settings(tmp_path, fake, "memory")
    with mounted_gateway(path) as running:
        fake.script("/v1/messages", Reply(json=anthropic_text("gone soon")))
        first = sdk(running, "claude").responses.create(model="claude-fake-1", input="one")
    with mounted_gateway(path) as running, pytest.raises(openai.NotFoundError):
        sdk(running, "claude").responses.retrieve(first.id)


async def test_writes_are_batched(sql: SQLStore) -> None:
    batches: list[int] = []
    original = sql.put_responses

    async def counted(records: Any) -> None:
        batches.append(len(records))
        await original(records)

    sql.put_responses = counted  # type: ignore[method-assign]
    archive = ResponseArchive(ttl=60, max_entry_bytes=1 << 20, memory_entries=500, store=sql)
    for number in range(250):
        archive.record("k1", {"id": f"resp_{number}", "output": []}, [])
    await archive.settled()
    assert sum(batches) == 250 and len(batches) == 3  # 100 + 100 + 50: one write per batch
    fresh = ResponseArchive(ttl=60, max_entry_bytes=1 << 20, memory_entries=10, store=sql)
    for number in (0, 149, 249):
        assert await fresh.get("k1", f"resp_{number}") is not None


async def test_a_store_that_is_behind_cannot_grow_the_write_queue_past_its_bytes() -> None:
    import asyncio

    class Stalled:
        """A persistent store whose writes never finish (down, or far behind)."""

        async def put_responses(self, records: list[StoredResponse]) -> None:
            await asyncio.Event().wait()

    archive = ResponseArchive(
        ttl=60, max_entry_bytes=1 << 20, memory_entries=10_000, memory_bytes=64 * 1024,
        store=Stalled(),  # type: ignore[arg-type]
    )  # fmt: skip
    items = [{"id": "msg_1", "type": "message", "role": "user", "content": "y" * 8000}]
    for n in range(200):  # 200 records of about 8 KB: 1.6 MB asked of a 64 KiB bound
        response = {"id": f"resp_{n}", "object": "response", "output": []}
        assert archive.record("k1", response, items, items_size=8100) is not None
    queued = archive._pending
    assert sum(r.size for r in queued) <= 64 * 1024 and queued
    assert queued[-1].id == "resp_199"  # the newest wait; the oldest were given up
    assert archive._writer is not None
    archive._writer.cancel()


async def test_an_unknown_id_costs_the_store_one_read_a_second() -> None:
    class Counting:
        reads = 0

        async def get_response(self, scope: str, response_id: str) -> StoredResponse | None:
            Counting.reads += 1
            return None

        async def put_responses(self, records: list[StoredResponse]) -> None:
            return None

    archive = ResponseArchive(
        ttl=60, max_entry_bytes=1 << 20, memory_entries=10, store=Counting(),  # type: ignore[arg-type]
    )  # fmt: skip
    for _ in range(50):  # a client repeating a made-up previous_response_id
        assert await archive.get("k1", "resp_made_up") is None
    assert Counting.reads == 1
    assert await archive.get("k2", "resp_made_up") is None  # another scope asks for itself
    assert Counting.reads == 2
    # a response this process stores under the id is found at once
    kept = archive.record("k1", {"id": "resp_made_up", "object": "response"}, [])
    assert kept is not None and await archive.get("k1", "resp_made_up") is kept
    await archive.settled()
