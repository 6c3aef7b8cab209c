"""The database: questions asked, feedback, the review queue, users and the audit log."""

from server.store.models import (
    REVIEW_REASONS,
    REVIEW_STATUSES,
    ROLES,
    AuditEvent,
    Base,
    DemoRun,
    Feedback,
    Question,
    ReviewItem,
    User,
)
from server.store.store import (
    ReviewItemNotFound,
    Store,
    StoreError,
    UnknownUser,
    alembic_config,
    new_review_id,
)

__all__ = [
    "REVIEW_REASONS",
    "REVIEW_STATUSES",
    "ROLES",
    "AuditEvent",
    "Base",
    "DemoRun",
    "Feedback",
    "Question",
    "ReviewItem",
    "ReviewItemNotFound",
    "Store",
    "StoreError",
    "UnknownUser",
    "User",
    "alembic_config",
    "new_review_id",
]
