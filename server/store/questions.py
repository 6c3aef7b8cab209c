"""The question log: questions asked (written behind the chat), feedback, demo runs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert

from server.store.base import StoreBase, json_safe
from server.store.errors import QuestionNotStored, StoreError
from server.store.models import DemoRun, Feedback, Question, ReviewItem, utcnow
from server.store.review_items import review_row

# What the chat path queues: a question's columns, and its review item's (or None).
QueuedQuestion = tuple[dict[str, Any], dict[str, Any] | None]


class QuestionLog(StoreBase):
    """What students asked and thought of the answers, and how demo runs went."""

    def log_question(self, text: str, *, client: str, session_id: str | None,
                     entry_id: str | None, score: float, answered: bool,
                     suggestions: list[dict[str, Any]], review: dict[str, Any] | None = None,
                     wait: bool = False) -> str | None:
        """Queue one question and what the bot did with it for the background writer.

        `review` (reason, and optionally embedding and entry_id) also opens a review
        item for it; its id is returned, and any later read sees it. With `wait`, return
        only once both are committed (a chat reply promises it: a crash right after
        loses nothing), else raise QuestionNotStored.
        """
        question = _question_row(text, client=client, session_id=session_id,
                                 entry_id=entry_id, score=score, answered=answered,
                                 suggestions=suggestions)
        item = None
        if review is not None:
            item = review_row(None, text, suggestions=suggestions, **review)
        ticket = self._behind.put((question, item))
        if wait:
            try:
                self._behind.wait(ticket)
            except StoreError as e:
                raise QuestionNotStored(str(e)) from e
        return item["id"] if item is not None else None

    def _write_queued(self, batch: list[QueuedQuestion]) -> None:
        """The background writer's transaction: the questions, then their review items."""
        with self._write() as s, s.begin():
            ids = s.execute(
                insert(Question).returning(Question.id, sort_by_parameter_order=True),
                [q for q, _ in batch],
            ).scalars().all()
            items = [{**item, "question_id": qid}
                     for (_, item), qid in zip(batch, ids, strict=True) if item is not None]
            if items:
                s.execute(insert(ReviewItem), items)

    def record_feedback(self, message: str, entry_id: str, helpful: bool, client: str = "", *,
                        embedding: bytes | None = None,
                        suggestions: list[dict[str, Any]] | None = None) -> str | None:
        """Store a verdict on an answer; "not helpful" opens a review item, whose id is returned.

        `embedding` and `suggestions` are the review item's (the review queue computes them).
        """
        review_id = None
        with self.writing() as s:
            if not helpful:
                row = review_row(None, message, reason="not_helpful",
                                 suggestions=suggestions or [], embedding=embedding,
                                 entry_id=entry_id)
                review_id = row["id"]
                s.add(ReviewItem(**row))
            s.add(Feedback(message=message, entry_id=entry_id, helpful=bool(helpful),
                           client=client, review_id=review_id, created_at=utcnow()))
        return review_id

    def record_demo_run(self, entry_id: str, status: str, *, device: str = "",
                        duration_ms: int = 0, kind: str = "demo",
                        params: dict[str, Any] | None = None, code_hash: str | None = None,
                        failure: str | None = None) -> None:
        """Log the outcome of one demo run: as written, with other parameter values, or
        edited (see DemoRun); `failure` is a short reason when it did not end well."""
        with self.writing() as s:
            s.add(DemoRun(entry_id=entry_id, status=status, device=device,
                          duration_ms=int(duration_ms), at=utcnow(), kind=kind,
                          params=params, code_hash=code_hash,
                          failure=failure[:200] if failure else None))


def _question_row(text: str, *, client: str, session_id: str | None, entry_id: str | None,
                  score: float, answered: bool, suggestions: list[dict[str, Any]],
                  ) -> dict[str, Any]:
    """The columns of one logged question."""
    return {"text": text, "client": client, "session_id": session_id, "entry_id": entry_id,
            "score": float(score), "answered": bool(answered),
            "suggestions": json_safe(suggestions), "asked_at": utcnow()}
