"""Running the store's Alembic migrations from code: at open and as ``portkey-mw db
upgrade``. No ``alembic.ini``: the configuration is built here, pointing at the migrations
shipped inside the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from portkey_mw.store.sql.engine import make_engine, resolve_url, translate_errors

__all__ = ["alembic_config", "current_revision", "head_revision", "migrate", "upgrade"]

#: Key of the PostgreSQL advisory lock that lets one replica migrate while others wait.
_MIGRATION_LOCK = 7_270_313_117


def alembic_config(url: str | None = None) -> Config:
    """Alembic's configuration for the shipped migrations (``url`` for the CLI's use)."""
    config = Config()
    config.set_main_option("script_location", "portkey_mw.store:migrations")
    config.set_main_option("path_separator", "os")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The newest revision the shipped migrations know."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database over ``connection`` is at (``None``: never migrated)."""
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> str:
    if connection.dialect.name == "postgresql":
        # Replicas starting together: one migrates, the others wait and find nothing to do.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    if current_revision(connection) != head_revision():
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    return head_revision()


async def migrate(engine: AsyncEngine, url: str) -> str:
    """Bring the database behind ``engine`` to the newest revision, in one transaction.

    :returns: the revision it is at.
    """
    async with translate_errors(url), engine.connect() as connection:
        connection = await connection.execution_options(write=True)
        async with connection.begin():
            return await connection.run_sync(_upgrade)


async def upgrade(
    url: str | None = None,
    *,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Migrate the store at ``url`` (resolved as :class:`SQLStore` does) to the newest
    revision; running it again changes nothing.

    :returns: the revision the store is at.
    :raises StoreUnavailable: the database cannot be reached.
    """
    resolved = resolve_url(url, data_dir=data_dir, environ=environ)
    engine = make_engine(resolved)
    try:
        return await migrate(engine, resolved)
    finally:
        await engine.dispose()
