"""Feedback on traces and log exports (Portkey's feedback and logs.exports APIs).

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``feedback`` and ``log_exports`` (written out, like 0001)."""
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("trace_id", sa.String(128), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Double(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feedback"),
    )
    op.create_index("ix_feedback_trace_id", "feedback", ["trace_id"])
    op.create_index("ix_feedback_created_ms", "feedback", ["created_ms"])
    op.create_table(
        "log_exports",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("workspace_id", sa.String(128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("requested_data", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total_records", sa.Integer(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=True),
        sa.Column("file_path", sa.String(512), nullable=True),
        sa.Column("error", sa.String(512), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_log_exports"),
    )
    op.create_index("ix_log_exports_workspace_id", "log_exports", ["workspace_id"])


def downgrade() -> None:
    """Drop both tables (the feedback and export records are lost; files stay on disk)."""
    op.drop_index("ix_log_exports_workspace_id", table_name="log_exports")
    op.drop_table("log_exports")
    op.drop_index("ix_feedback_created_ms", table_name="feedback")
    op.drop_index("ix_feedback_trace_id", table_name="feedback")
    op.drop_table("feedback")
