"""Alembic's environment for the control-plane store.

Run by :mod:`portkey_mw.store.sql.migrate`, which hands over an open connection (of the
async engine, through ``run_sync``) in ``config.attributes["connection"]``. Run by the
``alembic`` command instead, it builds the async engine from ``sqlalchemy.url`` itself.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from portkey_mw.store.sql.engine import make_engine
from portkey_mw.store.sql.models import METADATA


def run_migrations(connection: Connection) -> None:
    """Migrate over ``connection`` in one transaction."""
    context.configure(
        connection=connection,
        target_metadata=METADATA,
        # SQLite alters tables by copying them: later migrations get that for free.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations)
            await connection.commit()
    finally:
        await engine.dispose()


given = context.config.attributes.get("connection")
if given is not None:
    run_migrations(given)
elif context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=METADATA,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_with_own_engine(context.config.get_main_option("sqlalchemy.url") or ""))
