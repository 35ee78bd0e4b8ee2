"""The control-plane tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Every record table has a ``revision`` (the store-wide counter value of its last change,
indexed: replicas ask for everything after one) and a soft-delete ``deleted`` flag (a
deleted row stays as a tombstone so replicas learn of the deletion). Slugs are unique
among rows not deleted: a partial unique index on both databases, and a check in the
writing transaction that words the 409.

Later issues add tables (request logs, prompts) beside these; they refer to these rows by
``id`` and change none of these columns. ``budget_usage`` is such a table, and outside the
revision scheme: it is written every few seconds, and the catalog must not reload for that.

The migrations in ``portkey_mw/store/migrations`` create exactly this schema; a test
compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.types import TypeDecorator

__all__ = [
    "MAX_USAGE_SUBJECT",
    "METADATA",
    "UTCDateTime",
    "api_keys",
    "budget_usage",
    "config_versions",
    "configs",
    "prompt_collections",
    "prompt_labels",
    "prompt_versions",
    "prompts",
    "revision",
    "stored_responses",
    "vault_meta",
    "virtual_keys",
]

# Constraint names fixed by convention, so migrations on both databases name them alike.
METADATA = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)
#: Rows not deleted: the partial indexes' condition (portable: SQLite stores 0/1).
LIVE = text("NOT deleted")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases.

    PostgreSQL keeps the zone (``timestamptz``); SQLite keeps none, so values are stored
    as UTC and handed back with ``UTC`` attached. A naive value is taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


def _stamps() -> list[Column[Any]]:
    """The columns every record table ends with."""
    return [
        Column("created_at", UTCDateTime(), nullable=False),
        Column("updated_at", UTCDateTime(), nullable=False),
        Column("deleted", Boolean(), nullable=False, server_default=text("false")),
        Column("revision", BigInteger(), nullable=False, index=True),
    ]


#: The store-wide change counter: one row (``id`` 1), bumped by every mutation.
revision = Table(
    "revision",
    METADATA,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("value", BigInteger(), nullable=False),
)

#: The vault's sealed values: ``check`` (a known plaintext, proving the master key) and
#: ``api_key_pepper`` (the key of API-key digests; survives master-key rotation).
vault_meta = Table(
    "vault_meta",
    METADATA,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

virtual_keys = Table(
    "virtual_keys",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("slug", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("provider", String(128), nullable=False),
    #: every secret of the record, as one JSON object sealed by the vault (AAD: the id)
    Column("secrets", LargeBinary(), nullable=False),
    Column("options", JSON(), nullable=False),
    Column("custom_host", Text(), nullable=True),
    Column("defaults", JSON(), nullable=False),
    Column("note", Text(), nullable=True),
    Column("status", String(32), nullable=False),
    Column("usage_limits", JSON(), nullable=True),
    Column("rate_limits", JSON(), nullable=False),
    Column("workspace_id", String(64), nullable=True, index=True),
    Column("expires_at", UTCDateTime(), nullable=True),
    *_stamps(),
    Index(
        "uq_virtual_keys_live_slug",
        "slug",
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    ),
)

api_keys = Table(
    "api_keys",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("key_digest", String(128), nullable=False),
    Column("key_hint", String(64), nullable=False),
    Column("type", String(32), nullable=False),
    Column("sub_type", String(32), nullable=False),
    Column("description", Text(), nullable=True),
    Column("user_id", String(64), nullable=True),
    Column("workspace_id", String(64), nullable=True, index=True),
    Column("scopes", JSON(), nullable=False),
    Column("defaults", JSON(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("usage_limits", JSON(), nullable=True),
    Column("rate_limits", JSON(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=True),
    *_stamps(),
    Index(
        "uq_api_keys_live_key_digest",
        "key_digest",
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    ),
)

configs = Table(
    "configs",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("slug", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    #: the current version (a config_versions id; no foreign key: the two rows refer to
    #: each other, and a cycle of keys would make every insert order wrong)
    Column("version_id", String(64), nullable=False),
    Column("is_default", Boolean(), nullable=False, server_default=text("false")),
    Column("status", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=True, index=True),
    *_stamps(),
    Index(
        "uq_configs_live_slug",
        "slug",
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    ),
)

#: Immutable versions of saved configs; ``number`` counts from 1 per config.
config_versions = Table(
    "config_versions",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("config_id", String(64), ForeignKey("configs.id"), nullable=False, index=True),
    Column("number", Integer(), nullable=False),
    Column("config", JSON(), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("config_id", "number"),
)

#: Prompts and partials (``kind``) share one table, so their slugs are unique together:
#: ``pp-x`` names either in an id and in ``{{>pp-x}}``.
prompts = Table(
    "prompts",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("slug", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("default_version", Integer(), nullable=False),
    #: label id -> where it points (see ``Prompt.labels``)
    Column("labels", JSON(), nullable=False),
    Column("collection_id", String(64), nullable=True, index=True),
    Column("status", String(32), nullable=False),
    Column("workspace_id", String(64), nullable=True, index=True),
    *_stamps(),
    Index(
        "uq_prompts_live_slug",
        "slug",
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    ),
)

#: Immutable versions of prompts and partials; ``version`` counts from 1 per prompt.
prompt_versions = Table(
    "prompt_versions",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("prompt_id", String(64), ForeignKey("prompts.id"), nullable=False, index=True),
    Column("version", Integer(), nullable=False),
    Column("template", Text(), nullable=False),
    Column("definition", JSON(), nullable=False),
    Column("description", Text(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("prompt_id", "version"),
)

#: Custom labels (``production``, ``staging`` and ``development`` are built in).
prompt_labels = Table(
    "prompt_labels",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("description", Text(), nullable=True),
    Column("color_code", String(32), nullable=True),
    Column("workspace_id", String(64), nullable=True, index=True),
    *_stamps(),
)

prompt_collections = Table(
    "prompt_collections",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("slug", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("workspace_id", String(64), nullable=True, index=True),
    Column("parent_collection_id", String(64), nullable=True),
    *_stamps(),
)

#: The longest budget subject ``budget_usage`` keeps (an id or a metadata value with its
#: prefix; PostgreSQL refuses a longer one, so the store skips it rather than fail a batch).
MAX_USAGE_SUBJECT = 300

#: Each budget's usage in its current period, so usage survives a restart: one row per
#: (subject, type), overwritten by every save (last write wins). No ``revision``: usage is
#: not a record replicas reload, and writing it every few seconds must not make them.
budget_usage = Table(
    "budget_usage",
    METADATA,
    Column("subject", String(MAX_USAGE_SUBJECT), primary_key=True),
    #: ``cost`` or ``tokens``
    Column("type", String(16), primary_key=True),
    #: the period's id (its start in epoch seconds, or ``total``)
    Column("period", String(64), nullable=False),
    Column("used", Double(), nullable=False),
    Column("alerted", Boolean(), nullable=False, server_default=text("false")),
    Column("exhausted", Boolean(), nullable=False, server_default=text("false")),
    #: when the period ends, in epoch seconds (NULL: never); indexed for the housekeeping
    #: delete of ended periods
    Column("expires_at", Double(), nullable=True, index=True),
    Column("updated_at", UTCDateTime(), nullable=False),
)

# The request-log tables live with the log store, on this METADATA: imported here so that
#: ``/v1/responses``'s stored responses (``store``, ``previous_response_id``): outside the
#: revision scheme, like ``budget_usage`` (no catalog reloads for them); read by id only.
stored_responses = Table(
    "stored_responses",
    METADATA,
    Column("id", String(64), primary_key=True),
    #: whose it is: a gateway API key id, or ``anonymous``
    Column("scope", String(64), nullable=False),
    #: epoch seconds
    Column("created_at", Double(), nullable=False),
    #: epoch seconds; indexed for the housekeeping delete of expired rows
    Column("expires_at", Double(), nullable=False, index=True),
    #: the response object and its input items, as JSON (``{"response", "input_items"}``)
    Column("body", LargeBinary(), nullable=False),
)


# METADATA always holds the whole schema the migrations create (the comparison test, and
# Alembic's autogenerate, see every table). At the end: that module imports METADATA.
import portkey_mw.logstore.feedback_exports  # noqa: E402
import portkey_mw.logstore.schema  # noqa: E402, F401
