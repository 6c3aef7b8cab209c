"""Feedback on an answer: "helpful" or "not helpful" (which sends the question to the TAs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from server.web.deps import ClientDep, ServicesDep
from server.web.errors import BODY_ERRORS, error_responses
from server.web.messages import check_message
from server.web.presenters import published_entry
from server.web.ratelimit import check_rate

router = APIRouter(tags=["feedback"])


class FeedbackRequest(BaseModel):
    """The question the student asked, the entry they were shown, and their verdict."""

    model_config = ConfigDict(str_strip_whitespace=True)

    message: str = Field(min_length=1)
    entry_id: str = Field(min_length=1, max_length=200)
    helpful: bool


@router.post("/api/feedback", responses=error_responses(*BODY_ERRORS, 404, 429))
async def post_feedback(body: FeedbackRequest, request: Request, services: ServicesDep,
                        client: ClientDep) -> dict[str, Any]:
    """Record whether an answer helped; a "not helpful" question joins the review queue.

    Only a published entry can be rated: any other id is 404, so the answers do not tell
    drafts from ids that do not exist.
    """
    check_message(body.message, services.settings.max_message_chars)
    await check_rate(request, "feedback")
    published_entry(services, body.entry_id)
    review_id = await run_in_threadpool(services.review_queue.record_feedback, body.message,
                                        body.entry_id, body.helpful, client)
    return {"recorded": True, "review_id": review_id}
