"""One way into the log store's database: a connection whose failures become
:class:`~portkey_mw.store.protocols.StoreUnavailable` (a 503 naming the store, never its
password), as every control-plane read and write does."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from portkey_mw.store.sql.engine import translate_errors


@contextlib.asynccontextmanager
async def connection(engine: AsyncEngine, *, write: bool = False) -> AsyncIterator[AsyncConnection]:
    """A connection to ``engine`` (in a transaction when ``write``) whose database errors
    are raised as the store's own."""
    # translate_errors masks the password it finds in this URL
    url = engine.url.render_as_string(hide_password=False)
    async with translate_errors(url), engine.begin() if write else engine.connect() as conn:
        yield conn
