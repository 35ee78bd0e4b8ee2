"""Alembic migrations of the control-plane store, run in code (no ``alembic.ini``): see
:func:`portkey_mw.store.sql.migrate.upgrade`."""
