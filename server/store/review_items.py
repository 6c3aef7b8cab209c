"""The review queue's rows: opening, reading, filing and resolving review items."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from server.store.base import StoreBase, json_safe
from server.store.errors import ReviewItemNotFound
from server.store.models import REVIEW_REASONS, REVIEW_STATUSES, AuditEvent, ReviewItem, utcnow

# What `update_review_items` may change: what filing an open item computes.
FILED_FIELDS = frozenset({"group_key", "embedding", "suggestions"})


def new_review_id() -> str:
    """A short random id for a review item (what /api/review/{id} takes)."""
    return uuid.uuid4().hex[:12]


def review_row(question_id: int | None, text: str, *, reason: str,
               suggestions: list[dict[str, Any]], embedding: bytes | None = None,
               entry_id: str | None = None,
               attachment: dict[str, Any] | None = None) -> dict[str, Any]:
    """The columns of a new, open review item (with a fresh id)."""
    if reason not in REVIEW_REASONS:
        raise ValueError(f"reason must be one of {', '.join(REVIEW_REASONS)}, not {reason!r}")
    return {"id": new_review_id(), "question_id": question_id, "text": text, "reason": reason,
            "status": "open", "suggestions": json_safe(suggestions), "embedding": embedding,
            "entry_id": entry_id, "created_at": utcnow(),
            "attachment": json_safe(attachment) if attachment is not None else None}


class ReviewItems(StoreBase):
    """Review items: questions waiting for a TA, and what the TAs did with them."""

    def open_review_item(self, question_id: int | None, text: str, *, reason: str,
                         suggestions: list[dict[str, Any]], embedding: bytes | None = None,
                         entry_id: str | None = None,
                         attachment: dict[str, Any] | None = None) -> str:
        """Put a question in the review queue; return the review id."""
        item = ReviewItem(**review_row(question_id, text, reason=reason, suggestions=suggestions,
                                       embedding=embedding, entry_id=entry_id,
                                       attachment=attachment))
        with self.writing() as s:
            s.add(item)
            return item.id

    def review_item(self, review_id: str) -> ReviewItem:
        """One review item, or ReviewItemNotFound."""
        with self.reading() as s:
            item = s.get(ReviewItem, review_id)
            if item is None:
                raise ReviewItemNotFound(review_id)
            return item

    def review_items(self, status: str | None = "open", *, limit: int = 5000) -> list[ReviewItem]:
        """Review items with this status (all when None), oldest first."""
        with self.reading() as s:
            stmt = select(ReviewItem).order_by(ReviewItem.created_at, ReviewItem.id).limit(limit)
            if status is not None:
                stmt = stmt.where(ReviewItem.status == status)
            return list(s.scalars(stmt))

    def count_review_items(self, status: str | None = "open") -> int:
        """How many review items have this status (all when None): one SELECT count."""
        with self.reading() as s:
            stmt = select(func.count()).select_from(ReviewItem)
            if status is not None:
                stmt = stmt.where(ReviewItem.status == status)
            return int(s.scalar(stmt) or 0)

    def has_seed_item(self, entry_id: str) -> bool:
        """Whether a seed review item (any status) exists for this entry."""
        with self.reading() as s:
            return s.scalar(select(func.count()).select_from(ReviewItem).where(
                ReviewItem.reason == "seed", ReviewItem.entry_id == entry_id)) != 0

    def update_review_items(self, updates: dict[str, dict[str, Any]]) -> None:
        """Save computed fields of open items: {review_id: {field: value}}.

        The fields are group_key, embedding and suggestions.
        """
        if not updates:
            return
        with self.writing() as s:
            for review_id, values in updates.items():
                if not set(values) <= FILED_FIELDS:
                    raise ValueError(f"only {sorted(FILED_FIELDS)} can be updated")
                values = {k: json_safe(v) if k == "suggestions" else v for k, v in values.items()}
                s.execute(update(ReviewItem).where(ReviewItem.id == review_id).values(**values))

    def confirm_suggestion(self, review_id: str, suggestion: dict[str, Any]) -> bool:
        """Put an entry the student confirmed first among an open item's suggestions and make
        it the item's entry. False if the item is no longer open; ReviewItemNotFound if none."""
        with self.writing() as s:
            item = s.get(ReviewItem, review_id)
            if item is None:
                raise ReviewItemNotFound(review_id)
            if item.status != "open":
                return False
            others = [x for x in item.suggestions or [] if x.get("id") != suggestion.get("id")]
            item.suggestions = json_safe([suggestion, *others])
            item.entry_id = suggestion.get("id")
            return True

    def resolve(self, review_ids: Sequence[str], *, status: str, by: str,
                resolution: dict[str, Any], action: str | None = None) -> list[str]:
        """Close open items with a status and who did it, audited in the same transaction.

        Returns the ids that were still open (an item another TA resolved first is left as is).
        """
        if status not in REVIEW_STATUSES or status == "open":
            raise ValueError(f"cannot resolve to status {status!r}")
        now = utcnow()
        with self.writing() as s:
            open_ids = list(s.scalars(select(ReviewItem.id).where(
                ReviewItem.id.in_(list(review_ids)), ReviewItem.status == "open")))
            if open_ids:
                s.execute(update(ReviewItem).where(ReviewItem.id.in_(open_ids)).values(
                    status=status, resolved_by=by, resolved_at=now,
                    resolution=json_safe(resolution)))
            s.add(AuditEvent(actor=by, action=action or status, target=",".join(open_ids) or None,
                             details=json_safe({**resolution, "review_ids": list(review_ids),
                                                "resolved": open_ids}), at=now))
            return open_ids
