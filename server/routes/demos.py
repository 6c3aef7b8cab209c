"""Demo runs: one JSON result, or a Server-Sent Events stream of output as it is produced."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.demo_cache import demo_cache
from server.deps import ServicesDep
from server.errors import AppError, NotFound, ServiceUnavailable, Unprocessable
from server.ratelimit import DemoRateLimit
from server.routes.entries import published_entry
from server.services import Services

router = APIRouter(tags=["demos"])

Device = Literal["auto", "cpu", "cuda"]
BUSY_RETRY_AFTER_S = 5


class DemoRunRequest(BaseModel):
    """Which device to run on; `auto` picks CUDA when the server has it."""

    device: Device = "auto"


class DeviceUnavailableError(Unprocessable):
    code = "device_unavailable"


def _demo(services: Services, entry_id: str) -> tuple[str, str, Any]:
    """(code, content hash, runner) for an entry's demo, or the error a client should see."""
    entry = published_entry(services, entry_id)
    path = services.kb.demo_path(entry)
    if path is None:
        raise NotFound(f"Entry {entry_id!r} has no demo.")
    if services.sandbox is None:
        raise ServiceUnavailable(services.sandbox_error or "Demo runs are not available on this "
                                 "server.")
    try:
        code = path.read_text(encoding="utf-8")
    except OSError:
        raise NotFound(f"The demo of {entry_id!r} is missing on the server.") from None
    code_hash = demo_cache(services).code_hash(path) or ""
    return code, code_hash, services.sandbox


@contextmanager
def _sandbox_errors() -> Iterator[None]:
    """Translate the runner's refusals into API errors (503 with Retry-After, 422)."""
    from server.sandbox.errors import DeviceUnavailable, SandboxBusy, SandboxUnavailable

    try:
        yield
    except SandboxBusy as e:
        retry = max(1, int(getattr(e, "retry_after", None) or BUSY_RETRY_AFTER_S))
        raise ServiceUnavailable(f"Every demo runner is busy and the queue is full: try again "
                                 f"in {retry} s.", headers={"Retry-After": str(retry)}) from None
    except DeviceUnavailable as e:
        raise DeviceUnavailableError(str(e) or "That device is not available here.") from None
    except SandboxUnavailable as e:
        raise ServiceUnavailable(f"Demo runs are not available: {e}") from None


def _result_dict(result: Any) -> dict[str, Any]:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


@router.post("/api/entries/{entry_id}/demo/run")
async def run_demo(entry_id: str, services: ServicesDep, _: DemoRateLimit,
                   body: DemoRunRequest | None = None) -> dict[str, Any]:
    """Run the entry's demo live in the sandbox and return everything it produced."""
    code, code_hash, runner = _demo(services, entry_id)
    device = (body or DemoRunRequest()).device
    with _sandbox_errors():
        result = _result_dict(await run_in_threadpool(runner.run, code, device))
    await _remember(services, entry_id, code_hash, device, result)
    return result


async def _remember(services: Services, entry_id: str, code_hash: str, device: str,
                    result: dict[str, Any]) -> None:
    """Cache a successful result for the entry's page and log the run for the stats."""
    ran_on = str(result.get("device") or device)
    demo_cache(services).put(code_hash, ran_on, result)
    await run_in_threadpool(services.store.record_demo_run, entry_id, str(result.get("status")),
                            device=ran_on, duration_ms=int(result.get("duration_ms") or 0))


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


def _event_data(kind: str, data: Any) -> Any:
    """The JSON payload of one event: {"text"} for output lines, the result fields for done."""
    if kind in ("stdout", "stderr"):
        return {"text": data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")}
    if hasattr(data, "to_dict"):
        return data.to_dict()
    return data


async def _events(first: Any, events: AsyncIterator[Any], services: Services, entry_id: str,
                  code_hash: str, device: str) -> AsyncIterator[str]:
    """Relay the runner's events as SSE; remember the run if it succeeds."""
    stdout: list[str] = []
    stderr: list[str] = []
    images: list[Any] = []
    event: Any = first
    try:
        while event is not None:
            payload = _event_data(event.kind, event.data)
            if event.kind == "stdout":
                stdout.append(payload["text"])
            elif event.kind == "stderr":
                stderr.append(payload["text"])
            elif event.kind == "image":
                images.append(payload)
            elif event.kind == "done":
                done = dict(payload)
                yield _sse("done", {k: v for k, v in done.items()
                                    if k not in ("stdout", "stderr", "images")})
                result = {**done, "stdout": done.get("stdout") or _join(stdout),
                          "stderr": done.get("stderr") or _join(stderr),
                          "images": done.get("images") or images}
                await _remember(services, entry_id, code_hash, device, result)
                return
            yield _sse(event.kind, payload)
            event = await anext(events, None)
    finally:
        await _close(events)


async def _close(events: AsyncIterator[Any] | None) -> None:
    """Close the runner's stream (which stops the run if it is still going)."""
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()


def _join(lines: list[str]) -> str:
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


@router.get("/api/entries/{entry_id}/demo/stream")
async def stream_demo(entry_id: str, services: ServicesDep, _: DemoRateLimit,
                      device: Device = Query("auto")) -> StreamingResponse:
    """Run the entry's demo and stream `stdout`, `stderr`, `image` and `done` events."""
    code, code_hash, runner = _demo(services, entry_id)
    # wait for the first event before answering, so a refusal is a proper error response
    events: AsyncIterator[Any] | None = None
    try:
        with _sandbox_errors():
            events = runner.astream(code, device)
            first = await anext(events, None)
    except AppError:
        await _close(events)
        raise
    assert events is not None
    return StreamingResponse(
        _events(first, events, services, entry_id, code_hash, device),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
