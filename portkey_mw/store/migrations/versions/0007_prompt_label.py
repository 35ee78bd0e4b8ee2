"""The label a prompt call came through, on each request log.

Revision ID: 0007
Revises: 0006
Create Date: 2025-01-07

A nullable column: existing records keep NULL (no label named), which is what they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``request_logs.prompt_label``."""
    op.add_column("request_logs", sa.Column("prompt_label", sa.String(64), nullable=True))


def downgrade() -> None:
    """Drop ``request_logs.prompt_label``."""
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("prompt_label")
