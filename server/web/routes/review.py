"""The review queue over HTTP: GET /api/review, link / draft / dismiss, and the /review page."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from server.review.queue import (
    DISMISS_REASONS,
    ItemClosed,
    NotAllowed,
    ReviewError,
    item_to_dict,
)
from server.store import ReviewItemNotFound
from server.web.auth import TAUser, describe, require_page_user
from server.web.deps import ServicesDep
from server.web.errors import (
    BODY_ERRORS,
    STAFF_ERRORS,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    error_responses,
)
from server.web.staff_pages import staff_page

router = APIRouter(tags=["review"])
# link, draft and dismiss: the item may be unknown (404) or already closed (409); a
# full disk while the entry is written is 507
ACTION_ERRORS = error_responses(*STAFF_ERRORS, *BODY_ERRORS, 404, 409, 507)
T = TypeVar("T")


class LinkRequest(BaseModel):
    """Link the item (and, by default, its whole group) to this entry."""

    entry_id: str = Field(min_length=1, max_length=100)
    group: bool = True


class DismissRequest(BaseModel):
    """Why the item is closed without an answer: off-topic, duplicate, abuse, or a note."""

    reason: str = Field(min_length=1, max_length=500)
    group: bool = True


class DraftRequest(BaseModel):
    """The new entry's fields; checked like `askta check`."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(max_length=100)
    question: str = Field(max_length=1000)
    alternate_questions: list[str] | str = Field(default_factory=list)
    answer: str = Field("", max_length=50_000)
    tags: list[str] | str = Field(default_factory=list)
    demo: str | None = None
    status: str = "draft"


@contextmanager
def review_errors() -> Iterator[None]:
    """Translate the queue's errors into API errors."""
    try:
        yield
    except ReviewItemNotFound as e:
        raise NotFound(str(e)) from None
    except ItemClosed as e:
        raise Conflict(str(e)) from None
    except NotAllowed as e:
        raise Forbidden(str(e)) from None
    except ReviewError as e:
        raise BadRequest(str(e)) from None


def _act(fn: Callable[[], T]) -> T:
    with review_errors():
        return fn()


@router.get("/api/review", responses=error_responses(*STAFF_ERRORS))
def list_review(services: ServicesDep, user: TAUser) -> dict[str, Any]:
    """Open questions in near-duplicate groups, most asked and most recent first."""
    groups = _act(lambda: services.review_queue.groups())
    return {"groups": [g.to_dict() for g in groups],
            "open": sum(g.count for g in groups), "user": describe(user)}


@router.get("/api/review/{review_id}", responses=error_responses(*STAFF_ERRORS, 404, 422))
def get_review_item(review_id: str, services: ServicesDep, user: TAUser) -> dict[str, Any]:
    """One open item, its group and the fields to prefill a draft with."""
    q = services.review_queue

    def load() -> dict[str, Any]:
        items = q.group_of(review_id)
        return {"item": item_to_dict(services.store.review_item(review_id)),
                "group": [item_to_dict(i) for i in items],
                "draft": q.draft_template(review_id)}

    return _act(load)


@router.post("/api/review/{review_id}/link", responses=ACTION_ERRORS)
def link_review_item(review_id: str, body: LinkRequest, services: ServicesDep,
                     user: TAUser) -> dict[str, Any]:
    """Add the question (or its group) to an entry's alternate phrasings and reindex it."""
    result = _act(lambda: services.review_queue.link(review_id, body.entry_id, by=user.name,
                                               group=body.group))
    return result.to_dict()


@router.post("/api/review/{review_id}/draft", responses=ACTION_ERRORS)
def draft_review_item(review_id: str, body: DraftRequest, services: ServicesDep,
                      user: TAUser) -> dict[str, Any]:
    """Save a new entry drafted from the question (instructors may publish it at once);
    fields that fail the checks: 422 `invalid_entry` with `fields`."""
    saved = _act(lambda: services.review_queue.draft(review_id, body.model_dump(), by=user.name,
                                               may_publish=user.can("instructor")))
    return {"entry": {"id": saved.id, "question": saved.question, "status": saved.status.value,
                      "alternate_questions": saved.alternate_questions}}


@router.post("/api/review/{review_id}/dismiss", responses=ACTION_ERRORS)
def dismiss_review_item(review_id: str, body: DismissRequest, services: ServicesDep,
                        user: TAUser) -> dict[str, Any]:
    """Close the question (or its group) with a reason; the KB is not changed."""
    closed = _act(lambda: services.review_queue.dismiss(review_id, body.reason, by=user.name,
                                                  group=body.group))
    return {"dismissed": closed, "reason": body.reason.strip()}


@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
async def review_page(request: Request, services: ServicesDep) -> Response:
    """The review queue page for TAs and instructors."""
    user = await require_page_user(request, "ta")
    entries = sorted(((e.id, e.question) for e in services.kb.published()),
                     key=lambda x: x[1].lower())
    return staff_page(request, "review.html", user, {
        "entries": entries, "dismiss_reasons": DISMISS_REASONS, "nav": "review"})

