"""Stored responses of the Responses API (``store``, ``previous_response_id``).

A response the gateway answered by translating to chat completions is kept with the input
items the model saw, so that a later request naming it as ``previous_response_id`` can
rebuild the conversation, and ``GET /v1/responses/{id}`` can return it. Each record belongs
to one scope -- the gateway API key that created it (``anonymous`` without auth) -- and no
other scope can read or delete it. Records expire after ``responses.ttl`` seconds.

:class:`ResponseArchive` is what the gateway holds: recent records in process (a bounded
LRU, so a conversation's next turn costs no store query), and behind it, optionally, a
persistent :class:`ResponseStore` (the SQL one). Writes to the persistent store happen after
the client has its answer, in the background, batched (one transaction for what piled up
meanwhile); reads go to it only on a process miss.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import orjson
import structlog

from portkey_mw.unknown_names import UnknownNames

log = structlog.get_logger("portkey_mw.responses")

#: the scope of requests made without a gateway API key (auth off)
ANONYMOUS = "anonymous"
#: records written to the persistent store in one transaction, at most
WRITE_BATCH = 100
#: seconds an id the store did not have is answered "not found" without asking again (a
#: response another replica is still writing appears after at most this)
UNKNOWN_TTL = 1.0
#: records waiting for the persistent store, at most; past it the oldest are not written
#: there (this process still serves them), and the loss is logged
MAX_PENDING = 10_000


@dataclass(slots=True)
class StoredResponse:
    """One stored response.

    :param id: the response id (``resp_…``).
    :param scope: who may read it (a gateway API key id, or :data:`ANONYMOUS`).
    :param created_at: Unix seconds.
    :param expires_at: Unix seconds; past it the record is gone.
    :param response: the Responses object the client received.
    :param input_items: every input item the model saw, earlier turns included (as
        Responses items, each with an ``id``), without the instructions.
    """

    id: str
    scope: str
    created_at: float
    expires_at: float
    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    #: bytes of the record as stored (its response and input items as JSON)
    size: int = 0

    def __post_init__(self) -> None:
        if not self.size:
            self.size = len(orjson.dumps(self.response)) + len(orjson.dumps(self.input_items))

    def conversation(self) -> list[dict[str, Any]]:
        """The items a follow-up turn continues from: the input, then the output."""
        output = self.response.get("output")
        return [*self.input_items, *(output if isinstance(output, list) else [])]


@runtime_checkable
class ResponseStore(Protocol):
    """A persistent home for stored responses (the SQL store implements it)."""

    async def get_response(self, scope: str, response_id: str) -> StoredResponse | None:
        """The live record of ``response_id`` in ``scope``, or ``None``."""

    async def put_responses(self, records: Sequence[StoredResponse]) -> None:
        """Insert (or replace) ``records``, in one transaction."""

    async def delete_response(self, scope: str, response_id: str) -> bool:
        """Remove the record; whether one was there."""


class MemoryResponses:
    """Records in process: an LRU bounded by entry count and by bytes, with expiry.

    :param max_entries: how many records are kept; the least recently used go first.
    :param max_bytes: how many bytes of records (:attr:`StoredResponse.size`) are kept.
    """

    __slots__ = ("_entries", "bytes", "max_bytes", "max_entries")

    def __init__(self, max_entries: int, max_bytes: int = 256 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, StoredResponse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, scope: str, response_id: str, now: float | None = None) -> StoredResponse | None:
        """The live record, if this process has it (a record of another scope is absent)."""
        record = self._entries.get(response_id)
        if record is None or record.scope != scope:
            return None
        if record.expires_at <= (now if now is not None else time.time()):
            self._drop(response_id)
            return None
        self._entries.move_to_end(response_id)
        return record

    def put(self, record: StoredResponse) -> None:
        """Keep ``record``, dropping the least recently used past the bound."""
        self._drop(record.id)
        self._entries[record.id] = record
        self.bytes += record.size
        while len(self._entries) > self.max_entries or self.bytes > self.max_bytes:
            _, oldest = self._entries.popitem(last=False)
            self.bytes -= oldest.size

    def delete(self, scope: str, response_id: str) -> bool:
        """Forget the record; whether this scope had it here."""
        record = self._entries.get(response_id)
        if record is None or record.scope != scope:
            return False
        self._drop(response_id)
        return True

    def _drop(self, response_id: str) -> None:
        record = self._entries.pop(response_id, None)
        if record is not None:
            self.bytes -= record.size


class ResponseArchive:
    """The gateway's stored responses: in process first, then the persistent store.

    :param ttl: seconds a record lives.
    :param max_entry_bytes: the largest record kept (its response and input items).
    :param memory_entries: how many records the process keeps.
    :param memory_bytes: how many bytes of records the process keeps.
    :param store: the persistent store (``None``: records live in this process only).
    """

    def __init__(
        self,
        *,
        ttl: float,
        max_entry_bytes: int,
        memory_entries: int,
        memory_bytes: int = 256 * 1024 * 1024,
        store: ResponseStore | None = None,
    ) -> None:
        self.ttl = ttl
        self.max_entry_bytes = max_entry_bytes
        self.recent = MemoryResponses(memory_entries, memory_bytes)
        self.store = store
        self._pending: list[StoredResponse] = []
        #: bytes of the records in ``_pending``, bounded like the records kept in memory:
        #: a store that is down or behind cannot make the queue outgrow ``memory_bytes``
        self._pending_bytes = 0
        #: ids a store read did not find, per scope: a client repeating an unknown id costs
        #: one query per :data:`UNKNOWN_TTL`, not one per request
        self._unknown = UnknownNames()
        self._max_pending_bytes = memory_bytes
        self._writer: asyncio.Task[None] | None = None

    def record(
        self,
        scope: str,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        now: float | None = None,
        items_size: int = 0,
    ) -> StoredResponse | None:
        """Keep a response now (this process serves it at once; the persistent store gets it
        in the background). ``None``: it is larger than ``max_entry_bytes`` and not kept.

        :param items_size: bytes of ``input_items`` as JSON, when the caller measured them.
        """
        created = now if now is not None else time.time()
        size = 0
        if items_size:
            size = items_size + len(orjson.dumps(response))
        record = StoredResponse(
            id=str(response["id"]),
            scope=scope,
            created_at=created,
            expires_at=created + self.ttl,
            response=response,
            input_items=input_items,
            size=size,
        )
        if record.size > self.max_entry_bytes:
            log.warning("response not stored: too large", response_id=record.id)
            return None
        self.recent.put(record)
        self._unknown.forget((scope, record.id))
        if self.store is not None:
            self._pending.append(record)
            self._pending_bytes += record.size
            lost = 0
            while len(self._pending) > 1 and (
                len(self._pending) > MAX_PENDING or self._pending_bytes > self._max_pending_bytes
            ):
                self._pending_bytes -= self._pending.pop(0).size
                lost += 1
            if lost:
                log.error("stored responses not written: the store is behind", records=lost)
            if self._writer is None or self._writer.done():
                self._writer = asyncio.get_running_loop().create_task(self._write(self.store))
        return record

    async def _write(self, store: ResponseStore) -> None:
        """Write what is pending, in batches, until nothing is (one task at a time)."""
        while self._pending:
            batch = self._pending[:WRITE_BATCH]
            del self._pending[:WRITE_BATCH]
            self._pending_bytes -= sum(record.size for record in batch)
            try:
                await store.put_responses(batch)
            except Exception as exc:  # the clients have their answers; the process keeps them
                log.error("storing responses failed", records=len(batch), error=repr(exc))

    async def get(self, scope: str, response_id: str) -> StoredResponse | None:
        """The live record of ``response_id`` in ``scope``: from the process, else one store
        query (whose answer the process then keeps)."""
        record = self.recent.get(scope, response_id)
        if record is not None or self.store is None or (scope, response_id) in self._unknown:
            return record
        record = await self.store.get_response(scope, response_id)
        if record is not None:
            self.recent.put(record)
        else:
            self._unknown.remember((scope, response_id), UNKNOWN_TTL)
        return record

    async def delete(self, scope: str, response_id: str) -> bool:
        """Delete the record everywhere; whether it existed in this scope."""
        here = self.recent.delete(scope, response_id)
        if self.store is None:
            return here
        await self.settled()  # a write still under way would bring it back
        return await self.store.delete_response(scope, response_id) or here

    async def settled(self) -> None:
        """Wait for the background writes under way (at shutdown, and in tests)."""
        while self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
