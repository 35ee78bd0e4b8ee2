"""Hourly rollups of the request logs, and each record's latency histogram bucket.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05

Existing records are read back a page at a time, given their bucket and added to the
rollups, so the aggregates over them stay what they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: records read per page while filling the rollups from the existing ones
_PAGE = 2000
#: the request_logs columns a rollup needs
_ROLLED = (
    "id", "created_ms", "status", "latency_ms", "cost_usd", "cost_saved_usd",
    "input_tokens", "output_tokens", "total_tokens", "cache_status", "fallback",
    "retry_count", "provider", "model", "api_key_id", "virtual_key", "config_id",
    "prompt_id", "endpoint",
)  # fmt: skip


def _key_columns() -> list[sa.Column[str] | sa.Column[int]]:
    return [
        sa.Column("dimension", sa.String(137), nullable=False),  # "metadata." + a key
        sa.Column("value", sa.String(513), nullable=False),  # "=" + a metadata value
        sa.Column("bucket_ms", sa.BigInteger(), nullable=False),
    ]


def upgrade() -> None:
    """Add ``request_logs.latency_index``, create the two rollup tables and fill them."""
    op.add_column("request_logs", sa.Column("latency_index", sa.Integer(), nullable=True))
    sums = [
        "requests", "errors", "cost_usd", "cost_saved_usd", "input_tokens", "output_tokens",
        "total_tokens", "cache_hits", "cache_lookups", "fallbacks", "retries", "latency_sum",
        "latency_count",
    ]  # fmt: skip
    floats = {"cost_usd", "cost_saved_usd", "latency_sum"}
    op.create_table(
        "request_log_rollups",
        *_key_columns(),
        *(
            sa.Column(name, sa.Double() if name in floats else sa.BigInteger(), nullable=False)
            for name in sums
        ),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "value", "bucket_ms", name="pk_request_log_rollups"),
    )
    op.create_index("ix_request_log_rollups_bucket_ms", "request_log_rollups", ["bucket_ms"])
    op.create_table(
        "request_log_latency",
        *_key_columns(),
        sa.Column("latency_index", sa.Integer(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "dimension", "value", "bucket_ms", "latency_index", name="pk_request_log_latency"
        ),
    )
    op.create_index("ix_request_log_latency_bucket_ms", "request_log_latency", ["bucket_ms"])
    _fill()


def _fill() -> None:
    """Give every existing record its histogram bucket and add it to the rollups."""
    # The writer's own functions, so the backfill counts exactly as new writes do.
    from portkey_mw.logstore.latency import bucket_index
    from portkey_mw.logstore.rollups import rollup_statements

    bind = op.get_bind()
    logs = sa.table("request_logs", *(sa.column(name) for name in (*_ROLLED, "latency_index")))
    tags = sa.table(
        "request_log_metadata", sa.column("log_id"), sa.column("key"), sa.column("value")
    )
    set_index = (
        sa.update(logs)
        .where(logs.c.id == sa.bindparam("row_id"))
        .values(latency_index=sa.bindparam("row_index"))
    )
    after: tuple[int, str] | None = None
    while True:
        page = sa.select(*(logs.c[name] for name in _ROLLED))
        if after is not None:
            page = page.where(
                sa.or_(
                    logs.c.created_ms > after[0],
                    sa.and_(logs.c.created_ms == after[0], logs.c.id > after[1]),
                )
            )
        rows = [
            dict(row)
            for row in bind.execute(page.order_by("created_ms", "id").limit(_PAGE)).mappings()
        ]
        if not rows:
            return
        for row in rows:
            row["latency_index"] = bucket_index(row["latency_ms"])
        indexed = [
            {"row_id": row["id"], "row_index": row["latency_index"]}
            for row in rows
            if row["latency_index"] is not None
        ]
        if indexed:
            bind.execute(set_index, indexed)
        ids = [row["id"] for row in rows]
        found = bind.execute(sa.select(tags).where(tags.c.log_id.in_(ids))).mappings()
        metadata = [dict(entry) for entry in found]
        for statement, parameters in rollup_statements(bind.dialect.name, rows, metadata):
            bind.execute(statement, parameters)
        after = (rows[-1]["created_ms"], rows[-1]["id"])


def downgrade() -> None:
    """Drop the rollups and the bucket column (0004's queries never read them)."""
    op.drop_index("ix_request_log_latency_bucket_ms", table_name="request_log_latency")
    op.drop_table("request_log_latency")
    op.drop_index("ix_request_log_rollups_bucket_ms", table_name="request_log_rollups")
    op.drop_table("request_log_rollups")
    with op.batch_alter_table("request_logs") as batch:
        batch.drop_column("latency_index")
