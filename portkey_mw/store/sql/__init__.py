"""The control-plane store on SQLAlchemy 2 (async): SQLite by default, PostgreSQL for
replicas, Alembic migrations shipped inside the package."""

from portkey_mw.store.sql.engine import default_data_dir, resolve_url
from portkey_mw.store.sql.migrate import upgrade
from portkey_mw.store.sql.store import SQLStore, open_store

__all__ = ["SQLStore", "default_data_dir", "open_store", "resolve_url", "upgrade"]
