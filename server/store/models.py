"""SQLAlchemy models: questions asked, feedback, the review queue, users, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

REVIEW_STATUSES = ("open", "linked", "drafted", "dismissed")
REVIEW_REASONS = ("unanswered", "not_helpful", "seed", "demo_question")
ROLES = ("ta", "instructor")


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite keeps no zone), always returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    """Declarative base of every askta table."""

    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Question(Base):
    """One question a student asked, and what the bot did with it."""

    __tablename__ = "questions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    text: Mapped[str] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    client: Mapped[str] = mapped_column(String(200), default="")
    session_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    entry_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    answered: Mapped[bool] = mapped_column(Boolean, default=False)
    suggestions: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Feedback(Base):
    """A student's "helpful" or "not helpful" on an answer."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message: Mapped[str] = mapped_column(Text)
    entry_id: Mapped[str] = mapped_column(String(100), index=True)
    helpful: Mapped[bool] = mapped_column(Boolean)
    client: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    review_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ReviewItem(Base):
    """A question waiting for a TA: not answered, marked not helpful, a seed entry, or a
    question about a demo a student changed (with their code and its output)."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_status_group", "status", "group_key"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    question_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL"), nullable=True
    )
    text: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    suggestions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # the entry the student was shown (not_helpful) or the seed entry (seed)
    entry_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    group_key: Mapped[str | None] = mapped_column(String(32), nullable=True)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolution: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # demo_question: the student's code and its run ({"code", "status", "stdout", ...})
    attachment: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class User(Base):
    """A TA or an instructor; students are anonymous and have no row."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    password_hash: Mapped[str | None] = mapped_column(String(300), nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Signed into every session cookie; raising it (logout, new password, disable) ends
    # every session signed with the old value.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # A disabled user cannot log in, and their sessions and token stop working.
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # When the API token stops working; None with a token: refused (issue a new one).
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    """Who did what, when: every review and authoring action."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str | None] = mapped_column(String(200), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


DEMO_RUN_KINDS = ("demo", "params", "edit")


class DemoRun(Base):
    """The outcome of one demo run, for /admin/stats: failure rate, how often students
    re-ran a demo with other values or edited it, and what broke their edits.

    `kind`: "demo" (as written), "params" (other parameter values, in `params`) or
    "edit" (a student's code, known only by `code_hash`). No personal data."""

    __tablename__ = "demo_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20))
    device: Mapped[str] = mapped_column(String(20), default="")
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(10), default="demo", server_default="demo")
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    code_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure: Mapped[str | None] = mapped_column(String(200), nullable=True)
