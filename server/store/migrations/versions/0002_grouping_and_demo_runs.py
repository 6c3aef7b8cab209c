"""Near-duplicate grouping of review items (embedding, group key) and demo run outcomes.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("group_key", sa.String(32), nullable=True))
        batch.add_column(sa.Column("embedding", sa.LargeBinary, nullable=True))
        batch.create_index("ix_review_items_status_group", ["status", "group_key"])
    op.create_table(
        "demo_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("entry_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("device", sa.String(20), nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_demo_runs_entry_id", "demo_runs", ["entry_id"])


def downgrade() -> None:
    op.drop_table("demo_runs")
    with op.batch_alter_table("review_items") as batch:
        batch.drop_index("ix_review_items_status_group")
        batch.drop_column("embedding")
        batch.drop_column("group_key")
