"""The statements behind :class:`SQLStore`'s stored responses (``/v1/responses``): one row
per response in ``stored_responses``, read by id and scope, never listed.

A write is one insert (a replace, should an id repeat) and a delete of expired rows, in one
transaction; no lock on the revision counter, so admin writes never wait for it.
"""

from __future__ import annotations

import time

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from portkey_mw.response_store import StoredResponse
from portkey_mw.store.sql.models import stored_responses

__all__ = ["get", "put", "remove"]

_TABLE = stored_responses


async def get(
    connection: AsyncConnection, scope: str, response_id: str, now: float | None = None
) -> StoredResponse | None:
    """The live row of ``response_id`` in ``scope`` (another scope's is absent)."""
    moment = time.time() if now is None else now
    row = (
        await connection.execute(
            select(_TABLE).where(
                _TABLE.c.id == response_id,
                _TABLE.c.scope == scope,
                _TABLE.c.expires_at > moment,
            )
        )
    ).first()
    if row is None:
        return None
    body = orjson.loads(row.body)
    return StoredResponse(
        id=row.id,
        scope=row.scope,
        created_at=row.created_at,
        expires_at=row.expires_at,
        response=body["response"],
        input_items=body["input_items"],
        size=len(row.body),
    )


async def put(connection: AsyncConnection, record: StoredResponse) -> None:
    """Insert ``record`` (replacing a row of the same id), and drop expired rows."""
    body = orjson.dumps({"response": record.response, "input_items": record.input_items})
    await connection.execute(delete(_TABLE).where(_TABLE.c.id == record.id))
    await connection.execute(
        _TABLE.insert().values(
            id=record.id,
            scope=record.scope,
            created_at=record.created_at,
            expires_at=record.expires_at,
            body=body,
        )
    )
    await connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= record.created_at))


async def remove(connection: AsyncConnection, scope: str, response_id: str) -> bool:
    """Delete the row of ``response_id`` in ``scope``; whether there was one."""
    result = await connection.execute(
        delete(_TABLE).where(_TABLE.c.id == response_id, _TABLE.c.scope == scope)
    )
    return bool(result.rowcount)
