"""What the run routes share: an entry's demo as a run request, the executor or the
reason there is none, recording a finished run, and Server-Sent Events framing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from starlette.concurrency import run_in_threadpool

from indexer.demo_params import (
    ParamDeclarationError,
    ParamValueError,
    checked_values,
    declared_params,
    read_params,
    with_values,
)
from server.runs import Executor, OnDone, RunEvent, RunRequest, RunsInFlight, RunView
from server.sandbox.errors import SandboxError
from server.services import Services
from server.web.counters import counted
from server.web.errors import (
    NotFound,
    RateLimited,
    ServiceUnavailable,
    Unprocessable,
    sandbox_refusal,
)
from server.web.presenters import demo_file, published_entry, sandbox_notice

log = logging.getLogger("askta")
# The browser's EventSource waits this long (ms) before reconnecting a lost stream.
SSE_RETRY_MS = 1000
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
# How long a run may take to produce its first event before a page hears it is waiting.
FIRST_EVENT_WAIT_S = 0.3
# A client over its runs in flight is asked to come back after this long.
IN_FLIGHT_RETRY_S = 2.0
# The most a student's edited demo may weigh (UTF-8).
MAX_CODE_BYTES = 20 * 1024
# A hint, not one of the run's events: no id (seq 0), never replayed.
WAITING = RunEvent(0, "waiting", {"text": "Waiting for a free runner."})


def executor_of(services: Services) -> Executor:
    """The app's executor, or 503 with the reason runs are off."""
    if not services.runs.available:
        raise ServiceUnavailable(sandbox_notice(services)
                                 or "Demo runs are not available on this server.")
    return services.runs


@dataclass(frozen=True)
class DemoRunPlan:
    """A run of an entry's demo, as written or changed by a student: `kind` is "demo",
    "params" (other declared values) or "edit" (their own code); `cache_hash` is where a
    success is cached for the entry's page (only runs of the demo as written are)."""

    request: RunRequest
    kind: str = "demo"
    cache_hash: str = ""
    params: dict[str, Any] | None = None
    code_hash: str | None = None


def demo_request(services: Services, entry_id: str, device: str, *,
                 params: dict[str, Any] | None = None, code: str | None = None,
                 ) -> DemoRunPlan:
    """The run of a published entry's demo; with `code`, a student's edit of it; with
    `params`, other values of the parameters it declares (checked against the
    declaration, then written into a copy of the code). 422 names what is wrong."""
    entry = published_entry(services, entry_id)
    path = demo_file(services, entry)  # under demos/, checked now, or None
    if path is None:
        raise NotFound(f"Entry {entry_id!r} has no demo.")
    executor_of(services)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError:
        raise NotFound(f"The demo of {entry_id!r} is missing on the server.") from None
    kind, code_hash = "demo", None
    if code is not None:
        size = len(code.encode("utf-8", "surrogatepass"))
        if size > MAX_CODE_BYTES:
            raise Unprocessable(f"code: {size} bytes; edited code may have at most "
                                f"{MAX_CODE_BYTES // 1024} KB.")
        source, kind = code, "edit"
        code_hash = hashlib.sha256(code.encode("utf-8", "surrogatepass")).hexdigest()
    values = None
    if params:
        try:
            declared = declared_params(source) if kind == "edit" else read_params(path)
        except ParamDeclarationError as e:
            raise Unprocessable(f"code: the parameter declaration on {e}") from None
        try:
            values = checked_values(declared, params)
        except ParamValueError as e:
            raise Unprocessable(f"{e.field}: {e.message}") from None
        source = with_values(source, declared, values)
        kind = "params" if kind == "demo" else kind
    request = RunRequest(entry_id=entry_id, code=source, device=device, filename=path.name,
                         params=values)
    cache_hash = services.demo_cache.code_hash(path) or "" if kind == "demo" else ""
    return DemoRunPlan(request, kind, cache_hash, values, code_hash)


def failure_of(run: RunView) -> str | None:
    """A short reason a run did not end well, for the stats: the last line of its
    stderr (the exception, or the limit that stopped it), else its status."""
    if run.status == "ok" and not run.exit_code:
        return None
    lines = [line.strip() for line in run.stderr.splitlines() if line.strip()]
    return (lines[-1] if lines else run.status)[:200]


def recorder(services: Services, plan: DemoRunPlan) -> OnDone:
    """What to do when a run of a demo ends: cache a success of the demo as written for
    the entry's page, count it, and log it for the stats (with its kind)."""

    async def record(run: RunView) -> None:
        if plan.cache_hash:
            services.demo_cache.put(plan.cache_hash, run.device, run.result())
        services.metrics.observe_demo_run(run.status, run.device)
        await run_in_threadpool(
            partial(services.store.record_demo_run, run.entry_id, run.status,
                    device=run.device, duration_ms=int(run.duration_ms or 0), kind=plan.kind,
                    params=plan.params, code_hash=plan.code_hash, failure=failure_of(run)))

    return record


@contextmanager
def refusals() -> Iterator[None]:
    """Translate the executor's refusals into API errors."""
    try:
        yield
    except SandboxError as e:
        raise sandbox_refusal(e) from None


async def submit_demo(services: Services, entry_id: str, device: str, *,
                      params: dict[str, Any] | None = None, code: str | None = None,
                      client: str | None = None) -> RunView:
    """Start a run of the entry's demo (or of a student's changes to it, see
    demo_request), recorded when it ends; refusals as API errors. With `client`, at
    most ASKTA_RUNS_IN_FLIGHT_PER_CLIENT of its runs are queued or running at once."""
    plan = demo_request(services, entry_id, device, params=params, code=code)
    on_done = recorder(services, plan)
    if client is None:
        with refusals():
            return await executor_of(services).submit(plan.request, on_done)
    in_flight, token = services.runs_in_flight, uuid.uuid4().hex
    try:
        taken = await counted(in_flight.shared, in_flight.take, client, token)
        if not taken:
            raise RateLimited(IN_FLIGHT_RETRY_S, f"You already have {in_flight.cap} runs "
                              "going: wait for one to finish.")
        record = on_done

        async def on_done(run: RunView) -> None:
            try:
                await counted(in_flight.shared, in_flight.release, client, token)
            finally:
                await record(run)

        with refusals():
            return await executor_of(services).submit(plan.request, on_done)
    except BaseException:
        # not started (refused, or cancelled, maybe while the count was being taken):
        # give the place back without awaiting, which a cancelled task could not do
        _release_soon(in_flight, client, token)
        raise


def _release_soon(in_flight: RunsInFlight, client: str, token: str) -> None:
    """Release `token` now (in memory) or from a worker thread (Redis), not awaited."""
    if in_flight.shared:
        asyncio.get_running_loop().run_in_executor(None, in_flight.release, client, token)
    else:
        in_flight.release(client, token)


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
