"""The executor seam: what routes call to start a run and read it back.

Two implementations: `LocalExecutor` (server/runs/local.py, the in-process warm pool)
and `CeleryExecutor` (server/runs/remote.py, worker machines through Celery and Redis).
Refusals are the sandbox's errors (server/sandbox/errors.py), raised by `submit` at
once: `SandboxBusy` (queue full), `DeviceUnavailable` (no such device, or no worker for
it), `SandboxUnavailable` (runs cannot happen at all).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from server.runs.models import RunEvent, RunRequest, RunView

# Called once when a run ends, on the submitting process (caching, logging, metrics).
OnDone = Callable[[RunView], Awaitable[None]]


@dataclass(frozen=True)
class ExecutorStatus:
    """What /healthz and /metrics show about the executor."""

    executor: str
    workers: dict[str, int] = field(default_factory=dict)  # connected workers per device
    queue_depth: dict[str, int] = field(default_factory=dict)  # runs waiting per queue
    running: int = 0
    reason: str | None = None  # why runs cannot happen now, if they cannot


class Executor(Protocol):
    """Starts runs and reads them back, with their events, from any process that can."""

    name: str

    @property
    def available(self) -> bool:
        """Whether runs can be submitted at all (else `submit` raises SandboxUnavailable)."""

    @property
    def cuda_available(self) -> bool:
        """Whether a `cuda` run would be accepted now."""

    async def submit(self, request: RunRequest, on_done: OnDone | None = None) -> RunView:
        """Queue a run (status `queued`) or refuse it at once with a sandbox error."""

    async def get(self, run_id: str) -> RunView:
        """The run as it is now; UnknownRun if there is none with this id."""

    def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """The run's events numbered above `after`, as they come, up to `done`."""

    def has_free_runner(self, device: str = "auto") -> bool:
        """Whether a run for `device` would start at once (a hint for pages)."""

    def status(self) -> ExecutorStatus:
        """Workers and queues, for /healthz and /metrics (blocking: call it off the loop)."""

    def close(self, grace_s: float = 0.0) -> None:
        """Stop: wait up to `grace_s` for local runs, then release everything."""
