"""POST /api/chat: the closest curated answer, or an honest "not yet" and a queue item."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from server.services import Services
from server.store import QuestionNotStored
from server.web.deps import ClientDep, ServicesDep
from server.web.errors import BODY_ERRORS, ServiceUnavailable, error_responses
from server.web.messages import check_message
from server.web.presenters import entry_to_json
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


class ChatResponse(BaseModel):
    answered: bool
    entry: dict | None
    score: float
    suggestions: list[Suggestion]
    review_id: str | None


@router.post("/chat", response_model=ChatResponse,
             responses=error_responses(*BODY_ERRORS, 429, 503))
async def chat(
    body: ChatRequest, request: Request, services: ServicesDep, client: ClientDep
) -> JSONResponse:
    """Answer a question from the knowledge base, or route it to the TAs."""
    check_message(body.message, services.settings.max_message_chars)
    check_rate(request, "chat")
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
    }
