"""Demo runs as resources: start one (`POST /api/runs`), read it (`GET /api/runs/{id}`),
follow its events (`GET /api/runs/{id}/events`, Server-Sent Events with ids, replayed
from `Last-Event-ID`, so a browser that reconnects sees every event once)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server.runs import Executor, RunEvent, RunView, UnknownRun
from server.web.demo_runs import (
    MAX_CODE_BYTES,
    SSE_HEADERS,
    SSE_RETRY_MS,
    executor_of,
    sse,
    submit_demo,
    with_waiting,
)
from server.web.deps import ClientDep, ServicesDep
from server.web.errors import BODY_ERRORS, Conflict, NotFound, error_responses
from server.web.messages import check_message
from server.web.ratelimit import DemoRateLimit, check_rate

router = APIRouter(tags=["runs"])

Device = Literal["auto", "cpu", "cuda"]
RunStatus = Literal["queued", "running", "ok", "error", "timeout", "killed"]


class RunCreate(BaseModel):
    """A run of an entry's demo; `auto` picks CUDA when a GPU can take it. `params`
    gives other values to the parameters the demo declares (the entry's `demo.params`);
    `code` runs a student's edit of the demo instead (at most 20 KB), in the same
    sandbox with the same limits."""

    entry_id: str = Field(max_length=200)
    device: Device = "auto"
    params: dict[str, bool | int | float | str] | None = Field(
        None, max_length=32, description="{name: value} for the demo's declared parameters.")
    code: str | None = Field(None, max_length=MAX_CODE_BYTES,
                             description="Edited code to run instead of the demo's.")


class RunCreated(BaseModel):
    """The new run: follow `events_url`, or read `/api/runs/{id}`."""

    id: str
    status: RunStatus
    events_url: str


class RunOut(BaseModel):
    """A run now: output so far, and the result fields once it has ended."""

    id: str
    entry_id: str
    status: RunStatus
    exit_code: int | None
    stdout: str
    stderr: str
    images: list[dict[str, Any]]
    device: str
    duration_ms: int | None
    worker: str | None


class RunQuestion(BaseModel):
    """A student's question about a run of a demo they changed, with the code they ran."""

    question: str = Field(min_length=1, description="What the student wants to know.")
    code: str | None = Field(None, max_length=MAX_CODE_BYTES,
                             description="The code of the run, when the student edited it.")


class RunQuestionQueued(BaseModel):
    review_id: str


# How much of a run's output goes to the TA with a question (the end is kept).
ASKED_OUTPUT_CHARS = 4000


def _events_url(run_id: str) -> str:
    return f"/api/runs/{run_id}/events"


async def _run(executor: Executor, run_id: str) -> RunView:
    try:
        return await executor.get(run_id)
    except UnknownRun:
        raise NotFound(f"No run {run_id!r} (runs are kept for a while, then forgotten).") \
            from None


@router.post("/api/runs", status_code=202, response_model=RunCreated,
             responses=error_responses(*BODY_ERRORS, 404, 429, 503))
async def create_run(body: RunCreate, request: Request, services: ServicesDep,
                     client: ClientDep, _: DemoRateLimit) -> JSONResponse:
    """Start a run of the entry's demo; 202 at once, with where to follow it."""
    if body.code is not None:
        await check_rate(request, "edit")  # edited code: its own, lower limit
    run = await submit_demo(services, body.entry_id, body.device, params=body.params,
                            code=body.code, client=client)
    url = _events_url(run.id)
    return JSONResponse({"id": run.id, "status": "queued", "events_url": url},
                        status_code=202, headers={"Location": f"/api/runs/{run.id}"})


@router.get("/api/runs/{run_id}", response_model=RunOut, responses=error_responses(404, 503))
async def get_run(run_id: str, services: ServicesDep) -> dict[str, Any]:
    """The run: its status, output so far, images, and once done its exit code and time."""
    return (await _run(executor_of(services), run_id)).to_dict()


@router.get(
    "/api/runs/{run_id}/events",
    response_class=StreamingResponse,
    responses={200: {"description": "Server-Sent Events `stdout`, `stderr`, `image`, then "
                                    "`done`, each with its number as `id`; `waiting` "
                                    "(no id) first while no runner is free.",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
               204: {"description": "The run has ended and the client has seen every event "
                                    "(`Last-Event-ID`): nothing more will come."},
               **error_responses(404, 422, 503)},
)
async def run_events(run_id: str, services: ServicesDep,
                     last_event_id: int | None = Header(None, ge=0, le=10**9,
                                                        alias="Last-Event-ID")) -> Response:
    """Follow the run: every event after `Last-Event-ID` (all of them without it), live
    until `done`."""
    executor = executor_of(services)
    run = await _run(executor, run_id)
    events = executor.events(run_id, last_event_id or 0)
    first = None
    if run.finished:
        first = await anext(events, None)
        if first is None:  # a browser reconnecting after `done`: 204 tells it to stop
            return Response(status_code=204)
    else:  # `waiting` (no id) first while no runner is free
        events = with_waiting(executor, run_id, events)
    return StreamingResponse(_relay(events, first), media_type="text/event-stream",
                             headers=SSE_HEADERS)


async def _relay(events: AsyncIterator[RunEvent], first: RunEvent | None
                 ) -> AsyncIterator[str]:
    yield f"retry: {SSE_RETRY_MS}\n\n"
    if first is not None:
        yield sse(first.kind, first.data, first.seq)
    async for event in events:
        yield sse(event.kind, event.data, event.seq)


@router.post("/api/runs/{run_id}/ask", response_model=RunQuestionQueued,
             responses=error_responses(*BODY_ERRORS, 404, 409, 429, 503))
async def ask_about_run(run_id: str, body: RunQuestion, request: Request,
                        services: ServicesDep) -> dict[str, Any]:
    """Ask a TA about a run: the question, the code the student ran and its output (as
    the server saw it) go to the review queue as one item."""
    check_message(body.question, services.settings.max_message_chars)
    await check_rate(request, "feedback")
    run = await _run(executor_of(services), run_id)
    if not run.finished:
        raise Conflict("The run has not finished yet: ask once it is done.")
    attachment = {"run_id": run.id, "status": run.status, "exit_code": run.exit_code,
                  "device": run.device, "duration_ms": run.duration_ms,
                  "stdout": run.stdout[-ASKED_OUTPUT_CHARS:],
                  "stderr": run.stderr[-ASKED_OUTPUT_CHARS:], "code": body.code}
    review_id = await run_in_threadpool(services.review_queue.ask_about_demo, body.question,
                                        run.entry_id, attachment)
    return {"review_id": review_id}
