"""Runs kept in this process's memory (the local executor): each with its events, and
readers woken on the event loop when one is added."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from server.runs.models import TERMINAL, RunEvent, RunView, UnknownRun

# Finished runs kept for reading back (GET, SSE replay), oldest forgotten first.
KEEP_RUNS = 512


@dataclass
class MemoryRun:
    """One run's metadata and events; `changed` is set (and replaced) at each change."""

    id: str
    entry_id: str
    device: str
    status: str = "queued"
    worker: str | None = None
    created: float = field(default_factory=time.time)
    events: list[RunEvent] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, kind: str, data: dict[str, Any]) -> None:
        """Append an event (ignored once the run has ended); `done` ends the run."""
        if self.status in TERMINAL:
            return
        self.events.append(RunEvent(len(self.events) + 1, kind, data))
        if kind == "done":
            self.status = str(data.get("status") or "error")
        elif self.status == "queued":
            self.status = "running"
        self._notify()

    def set_status(self, status: str) -> None:
        if self.status not in TERMINAL:
            self.status = status
            self._notify()

    def _notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    def view(self, then: list[tuple[str, dict[str, Any]]] | None = None) -> RunView:
        """The run now, or as it will be once the events `then` are added."""
        events = list(self.events)
        events += [RunEvent(len(events) + i, kind, data)
                   for i, (kind, data) in enumerate(then or [], start=1)]
        return RunView.build(self.id, self.entry_id, self.status, self.device, self.worker,
                             events)


class MemoryRuns:
    """The runs of one process, newest last; only the event loop touches them."""

    def __init__(self, keep: int = KEEP_RUNS) -> None:
        self.keep = keep
        self._runs: OrderedDict[str, MemoryRun] = OrderedDict()

    def create(self, run_id: str, entry_id: str, device: str, worker: str | None) -> MemoryRun:
        """A new queued run; forgets the oldest finished runs past `keep`."""
        run = MemoryRun(run_id, entry_id, device, worker=worker)
        self._runs[run_id] = run
        while len(self._runs) > self.keep:
            oldest = next((r for r in self._runs.values() if r.status in TERMINAL), None)
            if oldest is None:
                break
            del self._runs[oldest.id]
        return run

    def discard(self, run_id: str) -> None:
        self._runs.pop(run_id, None)

    def get(self, run_id: str) -> MemoryRun:
        try:
            return self._runs[run_id]
        except KeyError:
            raise UnknownRun(run_id) from None

    def active(self) -> int:
        """Runs queued or running."""
        return sum(r.status not in TERMINAL for r in self._runs.values())

    async def events(self, run_id: str, after: int = 0) -> AsyncIterator[RunEvent]:
        """Events above `after`, waiting for new ones until `done`."""
        run = self.get(run_id)
        cursor = max(0, after)
        while True:
            changed = run.changed
            while cursor < len(run.events):
                event = run.events[cursor]
                cursor += 1
                yield event
                if event.kind == "done":
                    return
            if run.status in TERMINAL:
                return
            await changed.wait()
