"""Where the store lives and how to reach it: the data directory, the database URL, the
async engine, and what a failure to reach it becomes (:class:`StoreUnavailable`).

URL resolution: an explicit URL, else ``PORTKEY_MW_DATABASE_URL``, else the SQLite file
``control.db`` in the data directory (``PORTKEY_MW_DATA_DIR`` or the platform's user data
directory). ``postgresql://`` URLs run on asyncpg and ``sqlite://`` ones on aiosqlite, so
operators can paste the URL every other tool takes.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from portkey_mw.errors import InvalidConfig, PluginMissingDependency
from portkey_mw.redact import MASK, redact_url
from portkey_mw.store.protocols import Conflict, StoreUnavailable

__all__ = [
    "DATABASE_URL_VARIABLE",
    "DATA_DIR_VARIABLE",
    "DB_FILE_NAME",
    "default_data_dir",
    "display_url",
    "ensure_data_dir",
    "make_engine",
    "resolve_url",
    "translate_errors",
]

DATA_DIR_VARIABLE = "PORTKEY_MW_DATA_DIR"
DATABASE_URL_VARIABLE = "PORTKEY_MW_DATABASE_URL"
DB_FILE_NAME = "control.db"
#: Seconds to wait for a connection, a lock or a statement: the control plane answers 503
#: quickly rather than hang an admin or a start-up on a database that is not there.
CONNECT_TIMEOUT = 5.0
STATEMENT_TIMEOUT = 10.0
LOCK_TIMEOUT = 5.0


def default_data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``PORTKEY_MW_DATA_DIR``, else the platform's user data directory for portkey-mw."""
    env = os.environ if environ is None else environ
    configured = env.get(DATA_DIR_VARIABLE, "").strip()
    return (
        Path(configured).expanduser()
        if configured
        else Path(platformdirs.user_data_dir("portkey-mw"))
    )


def ensure_data_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700: it holds the key file and the database) if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def resolve_url(
    url: str | None = None,
    *,
    data_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The async SQLAlchemy URL of the store.

    :param url: an explicit URL (the server file's ``store.url``); wins over the
        environment.
    :param data_dir: where the default SQLite file goes.
    """
    env = os.environ if environ is None else environ
    chosen = (url or "").strip() or env.get(DATABASE_URL_VARIABLE, "").strip()
    if not chosen:
        # The directory is made when the engine first connects, not here.
        directory = data_dir or default_data_dir(env)
        return URL.create(
            "sqlite+aiosqlite", database=str(directory / DB_FILE_NAME)
        ).render_as_string()
    return _async_driver(chosen)


def _async_driver(url: str) -> str:
    """``url`` with the async driver this store runs on for its dialect."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidConfig(f"the store URL {display_url(url)!r} is not a database URL") from None
    drivers = {
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
    }
    name = drivers.get(parsed.drivername)
    if name is not None:
        parsed = parsed.set(drivername=name)
    elif parsed.drivername not in drivers.values():
        raise InvalidConfig(
            f"the store URL {display_url(url)!r} names an unsupported database: "
            "use sqlite:// or postgresql://"
        )
    return parsed.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """``url`` safe to show: no user, password, driver or query string."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return redact_url(url) or ""
    shown = URL.create(
        parsed.get_backend_name(), host=parsed.host, port=parsed.port, database=parsed.database
    )
    return shown.render_as_string()


def is_postgres(url: str) -> bool:
    """Whether ``url`` (already resolved) is a PostgreSQL URL."""
    return url.startswith("postgresql")


def make_engine(url: str) -> AsyncEngine:
    """An async engine for a resolved ``url``, with short timeouts.

    SQLite runs in WAL mode (readers never wait for the writer) with a busy timeout, and
    with SQLAlchemy rather than the sqlite3 module deciding where transactions begin, so a
    transaction reads one snapshot and DDL is transactional (migrations roll back whole).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # SQLAlchemy imports asyncpg itself; this only words its absence.
        if importlib.util.find_spec("asyncpg") is None:
            raise PluginMissingDependency("store (PostgreSQL)", "postgres")
        return create_async_engine(
            parsed,
            pool_pre_ping=True,
            pool_timeout=CONNECT_TIMEOUT,
            connect_args={
                "timeout": CONNECT_TIMEOUT,
                "command_timeout": STATEMENT_TIMEOUT,
                "server_settings": {
                    "application_name": "portkey-mw",
                    "statement_timeout": str(int(STATEMENT_TIMEOUT * 1000)),
                    "lock_timeout": str(int(LOCK_TIMEOUT * 1000)),
                },
            },
        )
    memory = parsed.database in (None, "", ":memory:")
    if not memory and parsed.database:
        try:
            Path(parsed.database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise _unavailable(exc, url) from None
    # One in-memory database lives as long as its one connection.
    pool: dict[str, Any] = (
        {"poolclass": StaticPool} if memory else {"pool_timeout": CONNECT_TIMEOUT}
    )
    engine = create_async_engine(parsed, connect_args={"timeout": LOCK_TIMEOUT}, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (below)
        cursor = dbapi_connection.cursor()
        try:
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA busy_timeout={int(LOCK_TIMEOUT * 1000)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writing transaction takes the write lock at once (waiting up to the busy
        # timeout): one that read first and wrote later could fail at once instead.
        write = connection.get_execution_options().get("write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


@contextlib.asynccontextmanager
async def translate_errors(url: str) -> AsyncIterator[None]:
    """Turn a failure to reach the database into :class:`StoreUnavailable`.

    The message names the store by its redacted URL and the cause in a few words; it never
    contains the URL's password or the statement's parameters.
    """
    try:
        yield
    except IntegrityError as exc:
        raise Conflict(f"a unique value is already taken ({_cause(exc, url)})") from None
    except (TimeoutError, OperationalError, InterfaceError, PoolTimeout, OSError) as exc:
        raise _unavailable(exc, url) from None
    except DBAPIError as exc:
        if exc.connection_invalidated or _is_connection_error(exc.orig):
            raise _unavailable(exc, url) from None
        raise
    except SQLAlchemyError as exc:
        if _is_connection_error(exc.__cause__):
            raise _unavailable(exc, url) from None
        raise
    except Exception as exc:
        if _is_connection_error(exc):
            raise _unavailable(exc, url) from None
        raise


def _is_connection_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` or what caused it is a failure to connect, authenticate or finish in
    time: an OS or timeout error, a PostgreSQL SQLSTATE of such a class, or asyncpg's lost
    connection (recognised by name: asyncpg is imported only for PostgreSQL).
    """
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError | TimeoutError):
            return True
        sqlstate = getattr(exc, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
            return True
        if {cls.__name__ for cls in type(exc).__mro__} & _LOST_CONNECTION:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


#: SQLSTATE classes that say "not now" rather than "wrong request": connection (08),
#: authorization (28), no such database (3D), resources (53), object state (55: a database
#: not accepting connections, a lock not available), operator intervention (57: a
#: statement timeout, a shutdown), system errors (58), and rollbacks (40: deadlocks).
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "28", "3D", "40", "53", "55", "57", "58"})
_LOST_CONNECTION = frozenset({"ConnectionDoesNotExistError", "PostgresConnectionError"})


def _unavailable(exc: BaseException, url: str) -> StoreUnavailable:
    return StoreUnavailable(
        f"the control-plane store {display_url(url)} is unavailable: {_cause(exc, url)}"
    )


def _cause(exc: BaseException, url: str) -> str:
    """A short reason: the driver's first line, never SQL, parameters or the password."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    while orig.__cause__ is not None and type(orig).__module__.startswith("sqlalchemy"):
        orig = orig.__cause__
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    if isinstance(orig, TimeoutError) or not text:
        text = type(orig).__name__
    password = make_url(url).password if "://" in url else None
    if password:
        text = text.replace(str(password), MASK)
    return text[:200]
