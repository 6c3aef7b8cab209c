"""An entry's demo, run live: one JSON result (`.../demo/run`), or a Server-Sent Events
stream of its output (`.../demo/stream`). Both start a run through the executor, as
`POST /api/runs` does, and follow it to the end."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from server.runs import Executor, RunView
from server.web.demo_runs import (
    FIRST_EVENT_WAIT_S,
    SSE_HEADERS,
    demo_request,
    executor_of,
    recorder,
    run_to_end,
    sse,
    submit_demo,
    with_waiting,
)
from server.web.deps import ServicesDep
from server.web.errors import BODY_ERRORS, error_responses
from server.web.ratelimit import DemoRateLimit

log = logging.getLogger("askta")
router = APIRouter(tags=["demos"])

Device = Literal["auto", "cpu", "cuda"]


class DemoRunRequest(BaseModel):
    """Which device to run on; `auto` picks CUDA when the server has it."""

    device: Device = "auto"


@router.post("/api/entries/{entry_id}/demo/run",
             responses=error_responses(*BODY_ERRORS, 404, 429, 503))
async def run_demo(entry_id: str, services: ServicesDep, _: DemoRateLimit,
                   body: DemoRunRequest | None = None) -> dict[str, Any]:
    """Run the entry's demo live in the sandbox and return everything it produced."""
    plan = demo_request(services, entry_id, (body or DemoRunRequest()).device)
    run = await run_to_end(services, plan.request, recorder(services, plan))
    return run.result()


async def _relay(executor: Executor, run: RunView, wait_s: float) -> AsyncIterator[str]:
    """The run's events as SSE, with `waiting` first when no runner was free (no ids:
    this stream is not resumed, /api/runs/{id}/events is)."""
    async for event in with_waiting(executor, run.id, executor.events(run.id), wait_s):
        yield sse(event.kind, event.data)


@router.get(
    "/api/entries/{entry_id}/demo/stream",
    response_class=StreamingResponse,
    responses={200: {"description": "Server-Sent Events: `stdout`, `stderr`, `image`, then `done`.",
                     "content": {"text/event-stream": {"schema": {"type": "string"}}}},
               **error_responses(404, 422, 429, 503)},
)
async def stream_demo(entry_id: str, services: ServicesDep, _: DemoRateLimit,
                      device: Device = Query("auto")) -> StreamingResponse:
    """Run the entry's demo and stream `stdout`, `stderr`, `image` and `done` events."""
    started = time.monotonic()
    run = await submit_demo(services, entry_id, device)  # a refusal is an error response
    wait_s = FIRST_EVENT_WAIT_S - (time.monotonic() - started)  # counted from the request
    return StreamingResponse(_relay(executor_of(services), run, wait_s),
                             media_type="text/event-stream", headers=SSE_HEADERS)
