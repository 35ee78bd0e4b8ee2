"""Records to rows and back: the one place that knows how a dataclass field is stored.

Field names and column names are the same, so the mapping is generic; what differs is
the shape (JSON columns take lists and dicts, records hold tuples and mappings) and the
fields a store sets itself (ids, timestamps, revisions, the sealed secrets).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy import Row, Table

__all__ = ["API_KEY_FIELDS", "CONFIG_FIELDS", "VIRTUAL_KEY_FIELDS", "check_fields", "plain"]

R = TypeVar("R")

#: What an update may change, per kind (anything else is the caller's bug, not a client's).
VIRTUAL_KEY_FIELDS = frozenset(
    {"slug", "name", "provider", "secrets", "options", "custom_host", "defaults", "note"}
    | {"status", "usage_limits", "rate_limits", "workspace_id", "expires_at"}
)
API_KEY_FIELDS = frozenset(
    {"name", "key_digest", "key_hint", "type", "sub_type", "description", "user_id"}
    | {"workspace_id", "scopes", "defaults", "status", "usage_limits", "rate_limits"}
    | {"expires_at"}
)
CONFIG_FIELDS = frozenset(
    {"slug", "name", "config", "version_id", "is_default", "status", "workspace_id"}
)
#: Fields held as tuples in records and as JSON lists in rows.
_TUPLES = frozenset({"rate_limits", "scopes"})


def check_fields(changes: Mapping[str, Any], allowed: frozenset[str], kind: str) -> None:
    """Refuse ``changes`` that name a field outside ``allowed``.

    :raises ValueError: naming every such field.
    """
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"cannot change {', '.join(unknown)} of a {kind}")


def plain(value: Any) -> Any:
    """``value`` as a JSON column takes it: mappings as dicts, tuples as lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [plain(item) for item in value]
    return value


def to_row(table: Table, record: Any, **stamps: Any) -> dict[str, Any]:
    """The column values of ``record`` for ``table``, with ``stamps`` (id, timestamps,
    revision, sealed secrets) replacing the record's own."""
    values = {
        field.name: plain(getattr(record, field.name))
        for field in dataclasses.fields(record)
        if field.name in table.c
    }
    values.update(stamps)
    return values


def from_row(cls: type[R], row: Row[Any], **fields: Any) -> R:
    """The ``cls`` record of ``row``; ``fields`` are given rather than read (secrets)."""
    data = row._mapping
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = field.name
        if name in fields:
            values[name] = fields[name]
        elif name in _TUPLES:
            values[name] = tuple(data[name] or ())
        elif name in ("options", "defaults"):
            values[name] = data[name] or {}
        elif name in ("deleted", "is_default"):
            values[name] = bool(data[name])
        else:
            values[name] = data[name]
    return cls(**values)
