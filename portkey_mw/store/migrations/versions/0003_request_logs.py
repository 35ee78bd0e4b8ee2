"""Request logs: one row per request and one per metadata key of it (the SQL log store).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (index name, columns) of request_logs: each serves "this value, in this time range"
_LOG_INDEXES = [
    ("ix_request_logs_created_ms", ["created_ms"]),
    ("ix_request_logs_provider_created_ms", ["provider", "created_ms"]),
    ("ix_request_logs_model_created_ms", ["model", "created_ms"]),
    ("ix_request_logs_status_created_ms", ["status", "created_ms"]),
    ("ix_request_logs_api_key_id_created_ms", ["api_key_id", "created_ms"]),
    ("ix_request_logs_virtual_key_created_ms", ["virtual_key", "created_ms"]),
    ("ix_request_logs_config_id_created_ms", ["config_id", "created_ms"]),
    ("ix_request_logs_prompt_id_created_ms", ["prompt_id", "created_ms"]),
    ("ix_request_logs_trace_id", ["trace_id"]),
]


def upgrade() -> None:
    """Create ``request_logs`` and ``request_log_metadata`` (written out, like 0001)."""
    op.create_table(
        "request_logs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=True),
        sa.Column("span_id", sa.String(64), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("endpoint", sa.String(64), nullable=True),
        sa.Column("method", sa.String(16), nullable=True),
        sa.Column("path", sa.String(512), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("stream", sa.Boolean(), nullable=True),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("model", sa.String(256), nullable=True),
        sa.Column("served_model", sa.String(256), nullable=True),
        sa.Column("cache_status", sa.String(32), nullable=True),
        sa.Column("latency_ms", sa.Double(), nullable=True),
        sa.Column("upstream_ms", sa.Double(), nullable=True),
        sa.Column("ttfb_ms", sa.Double(), nullable=True),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("cache_read_tokens", sa.Integer(), nullable=True),
        sa.Column("cache_write_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Double(), nullable=True),
        sa.Column("cost_saved_usd", sa.Double(), nullable=True),
        sa.Column("api_key_id", sa.String(64), nullable=True),
        sa.Column("virtual_key", sa.String(128), nullable=True),
        sa.Column("config_id", sa.String(128), nullable=True),
        sa.Column("prompt_id", sa.String(128), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("error_type", sa.String(64), nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=True),
        sa.Column("fallback", sa.Boolean(), nullable=True),
        sa.Column("custom", sa.Boolean(), nullable=True),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_request_logs"),
    )
    for name, columns in _LOG_INDEXES:
        op.create_index(name, "request_logs", columns)
    op.create_table(
        "request_log_metadata",
        sa.Column("log_id", sa.String(64), nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.String(512), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("log_id", "key", name="pk_request_log_metadata"),
    )
    op.create_index(
        "ix_request_log_metadata_key_value_created_ms",
        "request_log_metadata",
        ["key", "value", "created_ms"],
    )


def downgrade() -> None:
    """Drop both tables (the request logs they held are lost; every other table stays)."""
    op.drop_index("ix_request_log_metadata_key_value_created_ms", "request_log_metadata")
    op.drop_table("request_log_metadata")
    for name, _columns in reversed(_LOG_INDEXES):
        op.drop_index(name, table_name="request_logs")
    op.drop_table("request_logs")
