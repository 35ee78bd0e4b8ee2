"""Budget usage: each budget's usage in its current period, kept across restarts.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``budget_usage`` (written out, not imported from models.py, like 0001)."""
    op.create_table(
        "budget_usage",
        sa.Column("subject", sa.String(300), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("period", sa.String(64), nullable=False),
        sa.Column("used", sa.Double(), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("exhausted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("subject", "type", name="pk_budget_usage"),
    )
    op.create_index("ix_budget_usage_expires_at", "budget_usage", ["expires_at"])


def downgrade() -> None:
    """Drop ``budget_usage`` (the usage it held is lost; every other table stays)."""
    op.drop_index("ix_budget_usage_expires_at", table_name="budget_usage")
    op.drop_table("budget_usage")
