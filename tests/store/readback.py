"""Reading back what the app only writes: the question log, the audit log, the schema revision.

The server never reads these; tests check them through the Store's read sessions.
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from sqlalchemy import select

from server.store import AuditEvent, Question, Store


def questions(store: Store, limit: int = 100) -> list[Question]:
    """The latest logged questions, newest first."""
    with store.reading() as s:
        return list(s.scalars(select(Question)
                              .order_by(Question.asked_at.desc(), Question.id.desc())
                              .limit(limit)))


def audit_log(store: Store, limit: int = 100) -> list[AuditEvent]:
    """The latest audit events, newest first."""
    with store.reading() as s:
        return list(s.scalars(select(AuditEvent)
                              .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                              .limit(limit)))


def schema_revision(store: Store) -> str | None:
    """The Alembic revision the database is at, or None before the first migration."""
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
