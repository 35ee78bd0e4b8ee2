"""The control plane: virtual keys, API keys, saved configs and their versions, the
revision counter and the vault's sealed values.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than imported from models.py: a migration must keep creating the
# schema of its day when the models move on.
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
    """Create the tables and seed the revision counter."""
    counter = op.create_table(
        "revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revision"),
    )
    op.bulk_insert(counter, [{"id": 1, "value": 0}])
    op.create_table(
        "vault_meta",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_vault_meta"),
    )
    op.create_table(
        "virtual_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(128), nullable=False),
        sa.Column("secrets", sa.LargeBinary(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("custom_host", sa.Text(), nullable=True),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("usage_limits", sa.JSON(), nullable=True),
        sa.Column("rate_limits", sa.JSON(), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("expires_at", _when(), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_keys"),
    )
    op.create_index("ix_virtual_keys_revision", "virtual_keys", ["revision"])
    op.create_index("ix_virtual_keys_workspace_id", "virtual_keys", ["workspace_id"])
    op.create_index(
        "uq_virtual_keys_live_slug",
        "virtual_keys",
        ["slug"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key_digest", sa.String(128), nullable=False),
        sa.Column("key_hint", sa.String(64), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("sub_type", sa.String(32), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("usage_limits", sa.JSON(), nullable=True),
        sa.Column("rate_limits", sa.JSON(), nullable=False),
        sa.Column("expires_at", _when(), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
    )
    op.create_index("ix_api_keys_revision", "api_keys", ["revision"])
    op.create_index("ix_api_keys_workspace_id", "api_keys", ["workspace_id"])
    op.create_index(
        "uq_api_keys_live_key_digest",
        "api_keys",
        ["key_digest"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "configs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("slug", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version_id", sa.String(64), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.text("false")),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("workspace_id", sa.String(64), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name="pk_configs"),
    )
    op.create_index("ix_configs_revision", "configs", ["revision"])
    op.create_index("ix_configs_workspace_id", "configs", ["workspace_id"])
    op.create_index(
        "uq_configs_live_slug",
        "configs",
        ["slug"],
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    )
    op.create_table(
        "config_versions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("config_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(
            ["config_id"], ["configs.id"], name="fk_config_versions_config_id_configs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_config_versions"),
        sa.UniqueConstraint("config_id", "number", name="uq_config_versions_config_id_number"),
    )
    op.create_index("ix_config_versions_config_id", "config_versions", ["config_id"])


def downgrade() -> None:
    """Drop everything :func:`upgrade` made."""
    for table in ("config_versions", "configs", "api_keys", "virtual_keys", "vault_meta"):
        op.drop_table(table)
    op.drop_table("revision")
