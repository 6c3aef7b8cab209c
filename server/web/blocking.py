"""Where a route runs a short blocking call: on the event loop when it is alone, else in a thread.

Handing a call to a worker thread and its result back costs two thread wake-ups,
0.2-0.5 ms on a small VM: a tenth of what answering a question costs. A question
asked while no other is being answered runs on the event loop, which would
otherwise wait idle for it. Questions that arrive together go to worker threads,
where the embedder encodes them in one batch (indexer.embedders.BatchingEmbedder)
while the loop goes on reading requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from starlette.concurrency import run_in_threadpool

P = ParamSpec("P")
T = TypeVar("T")


class InlineWhenAlone:
    """Runs one kind of short call inline when no other is in flight, else in a thread.

    Meant for calls of a few milliseconds: one inline call holds up every other
    request for that long, and never more than one at a time.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self.inline = 0  # how many calls ran on the loop, and in threads (for tests, stats)
        self.threaded = 0

    async def __call__(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        self.in_flight += 1
        try:
            # Requests read in the same turn of the loop get here before anyone decides,
            # so a burst is seen as one and goes to the threads together.
            await asyncio.sleep(0)
            if self.in_flight == 1:
                self.inline += 1
                return fn(*args, **kwargs)
            self.threaded += 1
            return await run_in_threadpool(fn, *args, **kwargs)
        finally:
            self.in_flight -= 1
