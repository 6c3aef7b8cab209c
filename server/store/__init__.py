"""The database: questions asked, feedback, the review queue, users and the audit log."""

from server.store.base import alembic_config
from server.store.errors import QuestionNotStored, ReviewItemNotFound, StoreError, UnknownUser
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
from server.store.review_items import new_review_id
from server.store.store import Store

__all__ = [
    "REVIEW_REASONS",
    "REVIEW_STATUSES",
    "ROLES",
    "AuditEvent",
    "Base",
    "DemoRun",
    "Feedback",
    "Question",
    "QuestionNotStored",
    "ReviewItem",
    "ReviewItemNotFound",
    "Store",
    "StoreError",
    "UnknownUser",
    "User",
    "alembic_config",
    "new_review_id",
]
