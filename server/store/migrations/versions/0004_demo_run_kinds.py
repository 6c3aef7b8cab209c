"""Demo runs: what kind of run it was (the demo as written, with other parameter values,
or a student's edited code), the values or the code's hash, and a short reason a run
failed (for the most common failures of edited code on /admin/stats). Review items gain
an attachment: a student's edited demo code and its output, when they ask a TA about it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("demo_runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(10), nullable=False,
                                   server_default="demo"))
        batch.add_column(sa.Column("params", sa.JSON, nullable=True))
        batch.add_column(sa.Column("code_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("failure", sa.String(200), nullable=True))
    with op.batch_alter_table("review_items") as batch:
        batch.add_column(sa.Column("attachment", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("review_items") as batch:
        batch.drop_column("attachment")
    with op.batch_alter_table("demo_runs") as batch:
        for name in ("failure", "code_hash", "params", "kind"):
            batch.drop_column(name)
