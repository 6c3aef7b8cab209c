"""The local executor: runs in this process's warm sandbox pool (the default; nothing
else to start). The runs, with their events, live in this process's memory."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from server.runs.executor import ExecutorStatus, OnDone
from server.runs.memory import MemoryRun, MemoryRuns
from server.runs.models import RunEvent, RunRequest, RunView, event_data, failure_events, new_run_id
from server.sandbox.errors import SandboxError, SandboxUnavailable
from server.sandbox.models import Event

log = logging.getLogger("askta")
# How long `submit` waits for the run's first event, so that a refusal (busy, no such
# device) is an error of the request rather than of the run.
ADMIT_WAIT_S = 0.3


class Runner(Protocol):
    """What the local executor needs of the sandbox runner (server/sandbox/runner.py)."""

    @property
    def cuda_available(self) -> bool: ...

    def astream(self, code: str, device: str = "auto") -> AsyncIterator[Event]: ...

    def has_free_runner(self, device: str = "auto") -> bool: ...


def public_failure(e: BaseException) -> str:
    """What a run's stderr says when the sandbox failed under it."""
    return f"The sandbox failed during the run: {e}"


class LocalExecutor:
    """Runs on the in-process `SandboxRunner`; each run a task on the event loop that
    reads the runner's stream into the run's events, whoever is listening.

    `runner` gives the app's runner, or None while the sandbox cannot run here (then
    every run is refused with `unavailable`, the reason being the app's to tell)."""

    name = "local"

    def __init__(self, runner: Callable[[], Runner | None], unavailable: str = "") -> None:
        self._runner = runner
        self.unavailable = unavailable or "Demo runs are not available on this server."
        self.runs = MemoryRuns()
        self.worker = f"{socket.gethostname()}:local"
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def runner(self) -> Runner:
        runner = self._runner()
        if runner is None:
            raise SandboxUnavailable(self.unavailable)
        return runner

    @property
    def available(self) -> bool:
        return self._runner() is not None

    @property
    def cuda_available(self) -> bool:
        return bool(getattr(self._runner(), "cuda_available", False))

    async def submit(self, request: RunRequest, on_done: OnDone | None = None) -> RunView:
        """Start the run; a refusal in its first moments is raised here."""
        free = self.runner.has_free_runner(request.device)
        run = self.runs.create(new_run_id(), request.entry_id, request.device, self.worker)
        events = self.runner.astream(request.code, request.device)
        first: asyncio.Future[Any] = asyncio.ensure_future(anext(events, None))
        done, _ = await asyncio.wait({first}, timeout=ADMIT_WAIT_S)
        if done and first.exception() is not None:
            self.runs.discard(run.id)
            await _aclose(events)
            raise first.exception()  # type: ignore[misc]
        view = run.view()  # queued, as the API promises
        if free:
            run.set_status("running")
        task = asyncio.create_task(self._consume(run, events, first, request, on_done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return view

    async def _consume(self, run: MemoryRun, events: AsyncIterator[Event],
                       first: asyncio.Future[Any], request: RunRequest,
                       on_done: OnDone | None) -> None:
        """Read the runner's events into the run; record the result (`on_done`) before
        publishing `done`, so whoever sees the end sees it recorded."""
        device = request.device if request.device != "auto" else "cpu"
        ending: list[tuple[str, dict[str, Any]]] = []
        try:
            event = await first
            while event is not None:
                if event.kind == "done":
                    ending = [("done", event_data("done", event.data))]
                    break
                run.add(event.kind, event_data(event.kind, event.data))
                event = await anext(events, None)
            else:
                ending = failure_events("The sandbox ended the run without a result.", device)
        except SandboxError as e:
            log.error("run %s (%s): %s", run.id, run.entry_id, e)
            ending = failure_events(public_failure(e), device)
        except asyncio.CancelledError:
            for kind, data in failure_events("The server stopped during the run.", device):
                run.add(kind, data)
            raise
        finally:
            await _aclose(events)
        if on_done is not None:
            try:
                await on_done(run.view(then=ending))
            except Exception:  # recording a run must not lose it
                log.exception("run %s: recording its result failed", run.id)
        for kind, data in ending:
            run.add(kind, data)

    async def get(self, run_id: str) -> RunView:
        return self.runs.get(run_id).view()

    def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        self.runs.get(run_id)  # UnknownRun now, not at the first read
        return self.runs.events(run_id, after)

    def has_free_runner(self, device: str = "auto") -> bool:
        runner = self._runner()
        return runner is not None and runner.has_free_runner(device)

    def status(self) -> ExecutorStatus:
        runner = self._runner()
        if runner is None:
            return ExecutorStatus(self.name, reason=self.unavailable)
        waiting = int(getattr(runner, "waiting", 0))
        running = int(getattr(runner, "running", 0))
        # this process is the one worker, for each device its pool serves
        workers = {"cpu": 1} | ({"cuda": 1} if self.cuda_available else {})
        return ExecutorStatus(self.name, workers=workers, queue_depth={"local": waiting},
                              running=running)

    def close(self, grace_s: float = 0.0) -> None:
        """The runner is closed by its owner (Services); nothing else is held here."""


async def _aclose(events: AsyncIterator[Any]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
