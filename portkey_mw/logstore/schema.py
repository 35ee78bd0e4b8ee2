"""The request-log tables (SQLAlchemy Core), on the control-plane store's ``METADATA``.

``request_logs`` holds one row per request: the columns every query filters, groups or sums
on, the whole record as orjson text (``record``, read back by ``get`` and exports), and the
searchable text of the bodies (``body_text``, only when bodies were kept).
``request_log_metadata`` holds one row per metadata key of a record, so ``metadata.<key>``
filters and group-bys use an index instead of reading JSON.

``request_log_rollups`` and ``request_log_latency`` are the records summed per hour: for
each of :data:`ROLLUP_DIMENSIONS` (``""`` is every record) and each metadata key
(dimension ``metadata.<key>``), per value of it, the counts
and sums, and the latency histogram's count per bucket (:mod:`portkey_mw.logstore.latency`).
The writer adds to them in the transaction that inserts the records, so an aggregate over
whole hours reads a few rows per hour instead of every record. A value is stored as
``"=" + str(value)``, and a missing one (SQL ``NULL``, a group of its own) as ``""``.

Every index leads with the filtered column and ends with ``created_ms``: the queries are
all "this value, in this time range". Migrations ``0003``, ``0005`` and ``0007`` create
exactly these tables.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from portkey_mw.store.sql.models import METADATA

__all__ = [
    "COLUMN_LENGTHS",
    "GROUP_COLUMNS",
    "METADATA_DIMENSION",
    "METADATA_KEY_LENGTH",
    "METADATA_VALUE_LENGTH",
    "ROLLUP_DIMENSIONS",
    "ROLLUP_MS",
    "UNROLLED_GROUP_COLUMNS",
    "log_latency",
    "log_metadata",
    "log_rollups",
    "request_logs",
]

#: The longest metadata key and value kept (longer ones are cut to fit).
METADATA_KEY_LENGTH = 128
METADATA_VALUE_LENGTH = 512

request_logs = Table(
    "request_logs",
    METADATA,
    #: the request id (32 hex chars for the gateway's own; logs.create may bring another)
    Column("id", String(64), primary_key=True),
    Column("trace_id", String(128), nullable=True),
    Column("span_id", String(64), nullable=True),
    #: when the request arrived, in epoch milliseconds
    Column("created_ms", BigInteger(), nullable=False),
    Column("endpoint", String(64), nullable=True),
    Column("method", String(16), nullable=True),
    Column("path", String(512), nullable=True),
    Column("status", Integer(), nullable=True),
    Column("success", Boolean(), nullable=True),
    Column("stream", Boolean(), nullable=True),
    Column("provider", String(64), nullable=True),
    Column("model", String(256), nullable=True),
    Column("served_model", String(256), nullable=True),
    Column("cache_status", String(32), nullable=True),
    Column("latency_ms", Double(), nullable=True),
    #: the latency's histogram bucket (``latency.bucket_index``)
    Column("latency_index", Integer(), nullable=True),
    Column("upstream_ms", Double(), nullable=True),
    Column("ttfb_ms", Double(), nullable=True),
    Column("input_tokens", Integer(), nullable=True),
    Column("output_tokens", Integer(), nullable=True),
    Column("cache_read_tokens", Integer(), nullable=True),
    Column("cache_write_tokens", Integer(), nullable=True),
    Column("reasoning_tokens", Integer(), nullable=True),
    Column("total_tokens", Integer(), nullable=True),
    Column("cost_usd", Double(), nullable=True),
    Column("cost_saved_usd", Double(), nullable=True),
    Column("api_key_id", String(64), nullable=True),
    Column("virtual_key", String(128), nullable=True),
    Column("config_id", String(128), nullable=True),
    Column("prompt_id", String(128), nullable=True),
    Column("prompt_version", Integer(), nullable=True),
    #: the label a prompt call came through (``pp-x@production``); NULL: none named
    Column("prompt_label", String(64), nullable=True),
    Column("error_type", String(64), nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("retry_count", Integer(), nullable=True),
    Column("fallback", Boolean(), nullable=True),
    Column("custom", Boolean(), nullable=True),
    Column("metadata", JSON(), nullable=True),
    #: the bodies' text, lower-cased search runs over it (NULL: bodies not kept)
    Column("body_text", Text(), nullable=True),
    #: the whole record, orjson-encoded
    Column("record", Text(), nullable=False),
    #: the length of ``record`` in bytes
    Column("size_bytes", Integer(), nullable=False),
    Index("ix_request_logs_created_ms", "created_ms"),
    Index("ix_request_logs_provider_created_ms", "provider", "created_ms"),
    Index("ix_request_logs_model_created_ms", "model", "created_ms"),
    Index("ix_request_logs_status_created_ms", "status", "created_ms"),
    Index("ix_request_logs_api_key_id_created_ms", "api_key_id", "created_ms"),
    Index("ix_request_logs_virtual_key_created_ms", "virtual_key", "created_ms"),
    Index("ix_request_logs_config_id_created_ms", "config_id", "created_ms"),
    Index("ix_request_logs_prompt_id_created_ms", "prompt_id", "created_ms"),
    Index("ix_request_logs_trace_id", "trace_id"),
)

#: One row per metadata key of a log record (values as text).
log_metadata = Table(
    "request_log_metadata",
    METADATA,
    Column("log_id", String(64), nullable=False),
    Column("key", String(METADATA_KEY_LENGTH), nullable=False),
    Column("value", String(METADATA_VALUE_LENGTH), nullable=False),
    Column("created_ms", BigInteger(), nullable=False),
    PrimaryKeyConstraint("log_id", "key", name="pk_request_log_metadata"),
    Index("ix_request_log_metadata_key_value_created_ms", "key", "value", "created_ms"),
)

#: The columns a query may group by (besides ``metadata.<key>``), each rolled up.
GROUP_COLUMNS = (
    "provider",
    "model",
    "status",
    "api_key_id",
    "virtual_key",
    "config_id",
    "prompt_id",
    "cache_status",
    "endpoint",
)
#: Columns a query may also group by that are not rolled up: they mean something only
#: within one prompt, and a query naming the prompt reads its raw rows (by the prompt_id
#: index) anyway.
UNROLLED_GROUP_COLUMNS = ("prompt_version", "prompt_label")
#: The dimensions a rollup is kept for ("" is the rollup of every record).
ROLLUP_DIMENSIONS = ("", *GROUP_COLUMNS)
#: A metadata key's dimension is this and the key.
METADATA_DIMENSION = "metadata."
#: The width of a rollup bucket: one hour, in milliseconds.
ROLLUP_MS = 3_600_000
_DIMENSION_LENGTH = len(METADATA_DIMENSION) + METADATA_KEY_LENGTH
_ROLLUP_VALUE_LENGTH = 1 + METADATA_VALUE_LENGTH  # "=" + the longest value rolled up


def _rollup_key() -> list[Column[Any]]:
    """The key columns both rollup tables start with; ``bucket_ms`` is the hour's start,
    epoch milliseconds (a multiple of ROLLUP_MS)."""
    return [
        Column("dimension", String(_DIMENSION_LENGTH), nullable=False),
        Column("value", String(_ROLLUP_VALUE_LENGTH), nullable=False),
        Column("bucket_ms", BigInteger(), nullable=False),
    ]


#: Per hour, dimension and value: the sums an aggregate adds up.
log_rollups = Table(
    "request_log_rollups",
    METADATA,
    *_rollup_key(),
    Column("requests", BigInteger(), nullable=False),
    Column("errors", BigInteger(), nullable=False),
    Column("cost_usd", Double(), nullable=False),
    Column("cost_saved_usd", Double(), nullable=False),
    Column("input_tokens", BigInteger(), nullable=False),
    Column("output_tokens", BigInteger(), nullable=False),
    Column("total_tokens", BigInteger(), nullable=False),
    Column("cache_hits", BigInteger(), nullable=False),
    Column("cache_lookups", BigInteger(), nullable=False),
    Column("fallbacks", BigInteger(), nullable=False),
    Column("retries", BigInteger(), nullable=False),
    Column("latency_sum", Double(), nullable=False),
    Column("latency_count", BigInteger(), nullable=False),
    Column("first_ms", BigInteger(), nullable=False),
    Column("last_ms", BigInteger(), nullable=False),
    PrimaryKeyConstraint("dimension", "value", "bucket_ms", name="pk_request_log_rollups"),
    Index("ix_request_log_rollups_bucket_ms", "bucket_ms"),
)

#: Per hour, dimension, value and latency bucket: how many latencies fell in it.
log_latency = Table(
    "request_log_latency",
    METADATA,
    *_rollup_key(),
    Column("latency_index", Integer(), nullable=False),
    Column("count", BigInteger(), nullable=False),
    PrimaryKeyConstraint(
        "dimension", "value", "bucket_ms", "latency_index", name="pk_request_log_latency"
    ),
    Index("ix_request_log_latency_bucket_ms", "bucket_ms"),
)

#: The length of every bounded string column, so the writer cuts values to fit
#: (PostgreSQL refuses a longer one, and one refused row would fail its whole batch).
COLUMN_LENGTHS: dict[str, int] = {
    column.name: column.type.length
    for column in request_logs.columns
    if isinstance(column.type, String)
    and not isinstance(column.type, Text)
    and column.type.length is not None
}
