"""Demo runs: one JSON result, or a Server-Sent Events stream of output as it is produced.

Both use the runner's async event stream, whose run happens on a thread of its
own, so demos waiting for a free sandbox never hold up the server's threadpool.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.sandbox.errors import SandboxError
from server.services import Services
from server.web.deps import ServicesDep
from server.web.errors import (
    BODY_ERRORS,
    AppError,
    NotFound,
    ServiceUnavailable,
    error_responses,
    public_reason,
    sandbox_refusal,
)
from server.web.presenters import demo_file, published_entry, sandbox_notice
from server.web.ratelimit import DemoRateLimit

log = logging.getLogger("askta")
# How long a run may take to produce its first event before a page hears it is waiting.
FIRST_EVENT_WAIT_S = 0.3
WAITING = object()  # start(): no runner was free, the run waits for one
router = APIRouter(tags=["demos"])

Device = Literal["auto", "cpu", "cuda"]


class DemoRunRequest(BaseModel):
    """Which device to run on; `auto` picks CUDA when the server has it."""

    device: Device = "auto"


class _Run:
    """One demo run: the code, where its result is cached, and the runner's event stream."""

    def __init__(self, services: Services, entry_id: str, device: str):
        entry = published_entry(services, entry_id)
        path = demo_file(services, entry)  # under demos/, checked now, or None
        if path is None:
            raise NotFound(f"Entry {entry_id!r} has no demo.")
        if services.sandbox is None:
            raise ServiceUnavailable(sandbox_notice(services)
                                     or "Demo runs are not available on this server.")
        try:
            self.code = path.read_text(encoding="utf-8")
        except OSError:
            raise NotFound(f"The demo of {entry_id!r} is missing on the server.") from None
        self.services, self.entry_id, self.device = services, entry_id, device
        self.code_hash = services.demo_cache.code_hash(path) or ""
        self.runner = services.sandbox
        self.events: AsyncIterator[Any] | None = None
        self._first: asyncio.Future[Any] | None = None

    async def start(self) -> Any:
        """Start the run and wait for its first event; refusals become API errors.

        A refusal (busy, no such device) comes at once. When no runner is free, the run
        waits for one: after FIRST_EVENT_WAIT_S this returns WAITING, so that a page can
        say so while the first event is still to come (`next` returns it)."""
        free = self.runner.has_free_runner(self.device)
        try:
            with _sandbox_errors():
                self.events = self.runner.astream(self.code, self.device)
                self._first = asyncio.ensure_future(anext(self.events, None))
                done, _ = await asyncio.wait({self._first}, timeout=FIRST_EVENT_WAIT_S)
                if done or free:
                    return await self._take_first()
                return WAITING
        except AppError:
            await self.close()
            raise

    async def _take_first(self) -> Any:
        first, self._first = self._first, None
        assert first is not None
        return await first

    async def next(self) -> Any:
        """The next event, or None at the end."""
        assert self.events is not None
        if self._first is not None:
            return await self._take_first()
        return await anext(self.events, None)

    async def close(self) -> None:
        """Close the runner's stream, which stops the run if it is still going."""
        if self._first is not None:
            self._first.cancel()
            self._first = None
        aclose = getattr(self.events, "aclose", None)
        if aclose is not None:
            await aclose()

    async def remember(self, result: dict[str, Any]) -> None:
        """Cache a successful result for the entry's page and log the run for the stats."""
        ran_on = str(result.get("device") or self.device)
        self.services.demo_cache.put(self.code_hash, ran_on, result)
        self.services.metrics.observe_demo_run(str(result.get("status")), ran_on)
        await run_in_threadpool(self.services.store.record_demo_run, self.entry_id,
                                str(result.get("status")), device=ran_on,
                                duration_ms=int(result.get("duration_ms") or 0))


@contextmanager
def _sandbox_errors() -> Iterator[None]:
    """Translate the runner's refusals into API errors."""
    try:
        yield
    except SandboxError as e:
        raise sandbox_refusal(e) from None


def _payload(kind: str, data: Any) -> Any:
    """The JSON data of one event: {"text"} for output lines, the result fields for done."""
    if kind in ("stdout", "stderr"):
        return {"text": data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")}
    return data.to_dict() if hasattr(data, "to_dict") else data


def _failed(device: str, message: str) -> dict[str, Any]:
    """The result of a run the sandbox itself lost (the reason goes to stderr)."""
    return {"status": "error", "exit_code": None, "stdout": "", "stderr": message + "\n",
            "images": [], "device": device if device != "auto" else "cpu", "duration_ms": 0}


@router.post("/api/entries/{entry_id}/demo/run",
             responses=error_responses(*BODY_ERRORS, 404, 429, 503))
async def run_demo(entry_id: str, services: ServicesDep, _: DemoRateLimit,
                   body: DemoRunRequest | None = None) -> dict[str, Any]:
    """Run the entry's demo live in the sandbox and return everything it produced."""
    run = _Run(services, entry_id, (body or DemoRunRequest()).device)
    event = await run.start()
    result: dict[str, Any] | None = None
    try:
        if event is WAITING:
            event = await run.next()
        while event is not None:
            if event.kind == "done":
                result = dict(_payload("done", event.data))
            event = await run.next()
    except SandboxError as e:
        log.error("demo %s: %s", entry_id, e)
        result = _failed(run.device,
                         f"The sandbox failed during the run: {public_reason(str(e))}")
    finally:
        await run.close()
    if result is None:
        result = _failed(run.device, "The sandbox ended the run without a result.")
    await run.remember(result)
    return result


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _join(lines: list[str]) -> str:
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


async def _relay(run: _Run, first: Any) -> AsyncIterator[str]:
    """Relay the runner's events as SSE; remember the run when it is done."""
    out: dict[str, list[Any]] = {"stdout": [], "stderr": [], "image": []}
    event = first
    try:
        if event is WAITING:
            yield _sse("waiting", {"text": "Waiting for a free runner."})
            event = await run.next()
        while event is not None:
            payload = _payload(event.kind, event.data)
            if event.kind == "done":
                yield _sse("done", {k: v for k, v in payload.items()
                                    if k not in ("stdout", "stderr", "images")})
                await run.remember({**payload,
                                    "stdout": payload.get("stdout") or _join(out["stdout"]),
                                    "stderr": payload.get("stderr") or _join(out["stderr"]),
                                    "images": payload.get("images") or out["image"]})
                return
            out[event.kind].append(payload["text"] if event.kind != "image" else payload)
            yield _sse(event.kind, payload)
            event = await run.next()
        failed = _failed(run.device, "The sandbox ended the run without a result.")
    except SandboxError as e:
        log.error("demo %s: %s", run.entry_id, e)
        failed = _failed(run.device,
                         f"The sandbox failed during the run: {public_reason(str(e))}")
    finally:
        await run.close()
    yield _sse("stderr", {"text": failed["stderr"]})
    yield _sse("done", {k: v for k, v in failed.items() if k not in ("stdout", "stderr", "images")})
    await run.remember(failed)


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
    run = _Run(services, entry_id, device)
    # wait for the first event before answering, so a refusal is a proper error response
    first = await run.start()
    return StreamingResponse(
        _relay(run, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
