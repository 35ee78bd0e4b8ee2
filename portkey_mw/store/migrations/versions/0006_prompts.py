"""The prompt library: prompts and partials, their versions, labels and collections.

Revision ID: 0006
Revises: 0005
Create Date: 2025-01-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from models.py, like 0001.
LIVE = sa.text("NOT deleted")


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("revision", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    """Create ``prompts``, ``prompt_versions``, ``prompt_labels``, ``prompt_collections``."""
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("default_version", sa.Integer(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("collection_id", sa.String(64), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_prompts"),
    )
    op.create_index("ix_prompts_revision", "prompts", ["revision"])
    op.create_index("ix_prompts_workspace_id", "prompts", ["workspace_id"])
    op.create_index("ix_prompts_collection_id", "prompts", ["collection_id"])
    op.create_index(
        "uq_prompts_live_slug",
        "prompts",
        ["slug"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "prompt_versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("prompt_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("template", sa.Text(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(
            ["prompt_id"], ["prompts.id"], name="fk_prompt_versions_prompt_id_prompts"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_versions"),
        sa.UniqueConstraint("prompt_id", "version", name="uq_prompt_versions_prompt_id_version"),
    )
    op.create_index("ix_prompt_versions_prompt_id", "prompt_versions", ["prompt_id"])
    op.create_table(
        "prompt_labels",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("color_code", sa.String(32), nullable=True),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_labels"),
    )
    op.create_index("ix_prompt_labels_revision", "prompt_labels", ["revision"])
    op.create_index("ix_prompt_labels_workspace_id", "prompt_labels", ["workspace_id"])
    op.create_table(
        "prompt_collections",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("parent_collection_id", sa.String(64), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_prompt_collections"),
    )
    op.create_index("ix_prompt_collections_revision", "prompt_collections", ["revision"])
    op.create_index("ix_prompt_collections_workspace_id", "prompt_collections", ["workspace_id"])


def downgrade() -> None:
    """Drop the four tables (every prompt is lost)."""
    for table in ("prompt_collections", "prompt_labels", "prompt_versions", "prompts"):
        op.drop_table(table)
