"""The feedback and log-export tables (SQLAlchemy Core), on the control-plane ``METADATA``.

``feedback`` holds the scores clients give a trace (Portkey's feedback API: ``value`` an
integer from -10 to 10, ``weight`` from 0 to 1). It refers to request logs by ``trace_id``
only -- a trace is many requests, and the logs may be pruned before the feedback is.
``log_exports`` holds Portkey's log exports: the filters and fields asked for, the status
(``draft`` -> ``in_progress`` -> ``success`` | ``failed`` | ``stopped``) and the file the
export wrote in the data directory. Migration ``0004`` creates exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Double, Index, Integer, String, Table, Text

from portkey_mw.store.sql.models import METADATA

__all__ = ["EXPORT_STATUSES", "feedback", "log_exports"]


#: Every status an export can be in, in the order it moves through them.
EXPORT_STATUSES = ("draft", "in_progress", "success", "failed", "stopped")

feedback = Table(
    "feedback",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("trace_id", String(128), nullable=False),
    Column("value", Integer(), nullable=False),
    Column("weight", Double(), nullable=False),
    Column("metadata", JSON(), nullable=True),
    Column("created_ms", BigInteger(), nullable=False),
    Column("updated_ms", BigInteger(), nullable=False),
    Index("ix_feedback_trace_id", "trace_id"),
    Index("ix_feedback_created_ms", "created_ms"),
)

log_exports = Table(
    "log_exports",
    METADATA,
    Column("id", String(64), primary_key=True),
    Column("workspace_id", String(128), nullable=True),
    Column("description", Text(), nullable=True),
    Column("filters", JSON(), nullable=False),
    Column("requested_data", JSON(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_records", Integer(), nullable=False),
    Column("created_ms", BigInteger(), nullable=False),
    Column("updated_ms", BigInteger(), nullable=False),
    #: the gateway API key id that made it (NULL: the admin key)
    Column("created_by", String(64), nullable=True),
    #: the JSON-lines file, relative to the exports directory (NULL until written)
    Column("file_path", String(512), nullable=True),
    #: why the export failed (no record content: the exception's type and place)
    Column("error", String(512), nullable=True),
    Index("ix_log_exports_workspace_id", "workspace_id"),
)
