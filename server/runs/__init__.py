"""Demo runs as resources: one seam (`Executor`) and its two implementations.

    executor = LocalExecutor(runner)                 # the in-process warm pool (default)
    executor = CeleryExecutor(redis_url, ...)        # worker machines through Celery + Redis
    run = await executor.submit(RunRequest(entry_id=..., code=..., device="auto"))
    async for event in executor.events(run.id, after=0):
        ...                                          # stdout / stderr / image, then done

A run is kept with every event it produced, numbered from 1, so a reader that
reconnects (SSE `Last-Event-ID`) or arrives late sees each event once.
"""

from server.runs.executor import Executor, ExecutorStatus, OnDone
from server.runs.in_flight import InFlight, RunsInFlight, SharedInFlight, runs_in_flight
from server.runs.models import TERMINAL, RunEvent, RunRequest, RunView, UnknownRun

__all__ = ["TERMINAL", "Executor", "ExecutorStatus", "InFlight", "OnDone", "RunEvent",
           "RunRequest", "RunsInFlight", "SharedInFlight", "runs_in_flight",
           "RunView", "UnknownRun"]
