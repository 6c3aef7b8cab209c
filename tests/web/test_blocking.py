"""server/web/blocking.py: a question alone runs on the event loop; a burst goes to threads."""

from __future__ import annotations

import asyncio
import threading

import pytest

from server.web.blocking import InlineWhenAlone


def where() -> threading.Thread:
    return threading.current_thread()


def test_a_call_alone_runs_on_the_loop() -> None:
    async def main() -> None:
        run = InlineWhenAlone()
        assert await run(where) is threading.current_thread()
        assert await run(where) is threading.current_thread()
        assert (run.inline, run.threaded, run.in_flight) == (2, 0, 0)

    asyncio.run(main())


def test_calls_that_arrive_together_go_to_threads() -> None:
    async def main() -> None:
        run = InlineWhenAlone()
        loop_thread = threading.current_thread()
        threads = await asyncio.gather(*(run(where) for _ in range(4)))
        assert all(t is not loop_thread for t in threads)
        assert (run.inline, run.threaded, run.in_flight) == (0, 4, 0)

    asyncio.run(main())


def test_a_call_beside_a_threaded_one_is_threaded_too() -> None:
    """While one call runs in a thread, the loop is free: the next one joins it there."""
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "slow"

    async def main() -> None:
        run = InlineWhenAlone()
        first = asyncio.create_task(run(slow))
        second = asyncio.create_task(run(slow))  # a burst of two: both threaded
        await asyncio.to_thread(started.wait, 10)
        third = asyncio.create_task(run(where))
        assert await third is not threading.current_thread()
        release.set()
        assert await asyncio.gather(first, second) == ["slow", "slow"]
        assert (run.inline, run.threaded, run.in_flight) == (0, 3, 0)
        assert await run(where) is threading.current_thread()  # alone again

    asyncio.run(main())


def test_errors_reach_the_caller_and_the_count_recovers() -> None:
    def fail() -> None:
        raise ValueError("no")

    async def main() -> None:
        run = InlineWhenAlone()
        with pytest.raises(ValueError):
            await run(fail)
        results = await asyncio.gather(run(fail), run(where), return_exceptions=True)
        assert isinstance(results[0], ValueError) and isinstance(results[1], threading.Thread)
        assert run.in_flight == 0

    asyncio.run(main())
