"""Users: a session version (logout, a new password or disabling ends every session), a
disabled flag, and when the API token expires.

Tokens issued before this revision had no expiry: they get the default 90 days from the
upgrade, so none lives forever. Sessions signed before it carry no version and end.

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

LEGACY_TOKEN_DAYS = 90


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("session_version", sa.Integer, nullable=False,
                                   server_default=sa.text("0")))
        batch.add_column(sa.Column("disabled", sa.Boolean, nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column("token_expires_at", sa.DateTime, nullable=True))
    users = sa.table("users", sa.column("token_hash", sa.String),
                     sa.column("token_expires_at", sa.DateTime))
    expires = (datetime.now(UTC) + timedelta(days=LEGACY_TOKEN_DAYS)).replace(tzinfo=None)
    op.execute(users.update().where(users.c.token_hash.is_not(None))
               .values(token_expires_at=expires))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("token_expires_at")
        batch.drop_column("disabled")
        batch.drop_column("session_version")
