"""What the run routes share: an entry's demo as a run request, the executor or the
reason there is none, recording a finished run, and Server-Sent Events framing."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from starlette.concurrency import run_in_threadpool

from server.runs import Executor, OnDone, RunEvent, RunRequest, RunView
from server.sandbox.errors import SandboxError
from server.services import Services
from server.web.errors import NotFound, ServiceUnavailable, sandbox_refusal
from server.web.presenters import demo_file, published_entry, sandbox_notice

log = logging.getLogger("askta")
# The browser's EventSource waits this long (ms) before reconnecting a lost stream.
SSE_RETRY_MS = 1000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# How long a run may take to produce its first event before a page hears it is waiting.
FIRST_EVENT_WAIT_S = 0.3
# A hint, not one of the run's events: no id (seq 0), never replayed.
WAITING = RunEvent(0, "waiting", {"text": "Waiting for a free runner."})


def executor_of(services: Services) -> Executor:
    """The app's executor, or 503 with the reason runs are off."""
    if not services.runs.available:
        raise ServiceUnavailable(sandbox_notice(services)
                                 or "Demo runs are not available on this server.")
    return services.runs


def demo_request(services: Services, entry_id: str, device: str) -> tuple[RunRequest, str]:
    """The run of a published entry's demo, and the hash its result is cached under."""
    entry = published_entry(services, entry_id)
    path = demo_file(services, entry)  # under demos/, checked now, or None
    if path is None:
        raise NotFound(f"Entry {entry_id!r} has no demo.")
    executor_of(services)
    try:
        code = path.read_text(encoding="utf-8")
    except OSError:
        raise NotFound(f"The demo of {entry_id!r} is missing on the server.") from None
    request = RunRequest(entry_id=entry_id, code=code, device=device, filename=path.name)
    return request, services.demo_cache.code_hash(path) or ""


def recorder(services: Services, code_hash: str) -> OnDone:
    """What to do when a run of a demo ends: cache a success for the entry's page,
    count it, and log it for the stats."""

    async def record(run: RunView) -> None:
        result = run.result()
        services.demo_cache.put(code_hash, run.device, result)
        services.metrics.observe_demo_run(run.status, run.device)
        await run_in_threadpool(services.store.record_demo_run, run.entry_id, run.status,
                                device=run.device, duration_ms=int(run.duration_ms or 0))

    return record


@contextmanager
def refusals() -> Iterator[None]:
    """Translate the executor's refusals into API errors."""
    try:
        yield
    except SandboxError as e:
        raise sandbox_refusal(e) from None


async def submit_demo(services: Services, entry_id: str, device: str) -> RunView:
    """Start a run of the entry's demo, recorded when it ends; refusals as API errors."""
    request, code_hash = demo_request(services, entry_id, device)
    with refusals():
        return await executor_of(services).submit(request, recorder(services, code_hash))


async def with_waiting(executor: Executor, run_id: str, events: AsyncIterator[RunEvent],
                       wait_s: float = FIRST_EVENT_WAIT_S) -> AsyncIterator[RunEvent]:
    """The run's events, with WAITING first when the first event takes over `wait_s`
    while the run is still queued (no runner was free)."""
    first = asyncio.ensure_future(anext(events, None))
    done, _ = await asyncio.wait({first}, timeout=max(0.0, wait_s))
    if not done:
        try:
            queued = (await executor.get(run_id)).status == "queued"
        except BaseException:
            first.cancel()
            raise
        if queued:
            yield WAITING
    event: RunEvent | None = await first
    while event is not None:
        yield event
        event = await anext(events, None)


async def run_to_end(services: Services, request: RunRequest,
                     on_done: OnDone | None = None) -> RunView:
    """Start a run and wait for its end; refusals as API errors."""
    executor = executor_of(services)
    with refusals():
        run = await executor.submit(request, on_done)
    async for _event in executor.events(run.id):
        pass
    return await executor.get(run.id)


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One Server-Sent Event (with an id when `event_id` is a run's event number)."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"
