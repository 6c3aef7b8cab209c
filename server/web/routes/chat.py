"""POST /api/chat: the closest curated answer, or an honest "not yet" and a queue item."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server.review.queue import ItemClosed
from server.services import Services
from server.store import QuestionNotStored, ReviewItemNotFound
from server.web.deps import ClientDep, ServicesDep
from server.web.errors import (
    BODY_ERRORS,
    Conflict,
    NotFound,
    ServiceUnavailable,
    error_responses,
)
from server.web.messages import check_message
from server.web.presenters import entry_to_json, excerpt, published_entry
from server.web.ratelimit import check_rate

router = APIRouter(prefix="/api", tags=["chat"])


class ChatRequest(BaseModel):
    message: str = Field(description="The student's question.")
    # printable ASCII: the chat page sends a UUID
    session_id: str | None = Field(None, max_length=100, pattern=r"^[ -~]*$")


class Suggestion(BaseModel):
    id: str
    question: str
    score: float


class NearMiss(BaseModel):
    """An entry close to the question but under the bar: "This may answer it"."""

    id: str
    question: str
    excerpt: str = Field(description="The start of the entry's answer, as plain text.")


class ChatResponse(BaseModel):
    answered: bool
    entry: dict | None
    score: float
    suggestions: list[Suggestion]
    review_id: str | None
    near_miss: NearMiss | None = Field(
        None, description="With a routed question whose best entry is close: offer it, and "
        "send the student's verdict to POST /api/chat/near-miss.")


class NearMissVerdict(BaseModel):
    """The student's answer to "This may answer it": yes (it does) or no."""

    review_id: str = Field(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$",
                           description="The review_id of the chat reply.")
    entry_id: str = Field(min_length=1, max_length=200, description="The near miss's id.")
    accepted: bool = Field(description="true: \"Yes, that's it\"; false: \"No\".")


class NearMissRecorded(BaseModel):
    recorded: bool
    review_id: str


@router.post("/chat", response_model=ChatResponse,
             responses=error_responses(*BODY_ERRORS, 429, 503))
async def chat(
    body: ChatRequest, request: Request, services: ServicesDep, client: ClientDep
) -> JSONResponse:
    """Answer a question from the knowledge base, or route it to the TAs."""
    check_message(body.message, services.settings.max_message_chars)
    await check_rate(request, "chat")
    started = time.perf_counter()
    try:
        reply = await services.answering(answer, services, body.message, client,
                                         body.session_id)
    except QuestionNotStored as e:
        raise ServiceUnavailable(str(e), headers={"Retry-After": "5"}) from e
    services.metrics.observe_chat(reply["answered"], time.perf_counter() - started)
    # Built from typed parts by answer(), so it skips a second validation on the way out.
    return JSONResponse(reply)


def answer(services: Services, message: str, client: str, session_id: str | None) -> dict:
    """Search, log the question (and a review item when not answered), build the reply.

    The reply waits for the question's commit (a millisecond or two: requests that
    arrive meanwhile share the next one), so a question that got an answer, or a
    review id, is never lost to a crash.
    """
    result = services.searcher.search(message)
    suggestions = [h.to_dict() for h in result.suggestions]
    review = None
    if not result.answered:
        review = {
            "reason": "unanswered",
            "embedding": result.vector.tobytes() if result.vector is not None else None,
            "entry_id": result.pending_entry,
        }
    near = result.near_miss
    review_id = services.store.log_question(
        message,
        client=client,
        session_id=session_id,
        entry_id=result.entry.id if result.entry else None,
        score=float(result.score),
        answered=result.answered,
        suggestions=suggestions,
        review=review,
        wait=True,
    )
    return {
        "answered": result.answered,
        "entry": entry_to_json(services, result.entry) if result.entry else None,
        "score": round(float(result.score), 4),
        "suggestions": suggestions,
        "review_id": review_id,
        "near_miss": near_miss_json(near.entry_id, near.question, services)
        if near is not None and review_id is not None else None,
    }


def near_miss_json(entry_id: str, question: str, services: Services) -> dict | None:
    """The near miss as the reply carries it, with the start of its answer."""
    entry = services.kb.entries.get(entry_id)
    if entry is None or not entry.answerable:
        return None
    return {"id": entry_id, "question": question, "excerpt": excerpt(entry.answer)}


@router.post("/chat/near-miss", response_model=NearMissRecorded,
             responses=error_responses(*BODY_ERRORS, 404, 409, 429))
async def near_miss_verdict(body: NearMissVerdict, request: Request,
                            services: ServicesDep) -> dict:
    """Record the student's verdict on a near miss.

    Yes puts the entry first among the queued question's suggestions, marked as
    confirmed by the student, for a TA to link in one click (the wording becomes an
    alternate phrasing); no leaves the question in the queue as it is. 404: no such
    review item or published entry; 409: a TA already closed the item.
    """
    await check_rate(request, "feedback")
    published_entry(services, body.entry_id)
    if body.accepted:
        try:
            await run_in_threadpool(services.review_queue.confirm_near_miss, body.review_id,
                                    body.entry_id)
        except ReviewItemNotFound as e:
            raise NotFound(str(e)) from None
        except ItemClosed as e:
            raise Conflict(str(e)) from None
    else:
        try:
            await run_in_threadpool(services.store.review_item, body.review_id)
        except ReviewItemNotFound as e:
            raise NotFound(str(e)) from None
    return {"recorded": True, "review_id": body.review_id}
