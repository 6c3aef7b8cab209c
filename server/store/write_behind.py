"""The background writer behind `Store.log_question`, and the barrier reads wait at.

The chat path does not write to the database itself: it queues the question (and
its review item), and a thread commits whatever has queued up in one transaction
(group commit: requests that arrive while a write is under way share the next
one). A request that must not answer before its question is stored waits for its
ticket; every read and write through the Store first waits for what was queued
before it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from server.store.errors import StoreError

log = logging.getLogger(__name__)


class WriteBehind:
    """A thread that writes queued items in batches, and a barrier for readers.

    `put` never blocks on the database and returns a ticket. `wait` returns once
    everything put before it (or up to its ticket) has been written, and raises
    StoreError when the ticket's batch could not be. A batch that fails is
    retried; after WRITE_ATTEMPTS failures its questions are logged at ERROR
    level, text and all, so that nothing disappears without a trace.
    """

    WRITE_ATTEMPTS = 5
    RETRY_DELAY_S = 0.2
    # How long the writer lets items gather before a write, unless a reader waits:
    # a write then never competes with the request that queued it for the GIL,
    # and under load one transaction takes many questions.
    LINGER_S = 0.05
    MAX_BATCH = 1000

    def __init__(self, write: Callable[[list[Any]], None]):
        self._write = write
        self._cv = threading.Condition()
        self._pending: list[Any] = []
        self._queued = self._done = 0
        self._waiting = 0
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed: deque[tuple[int, int]] = deque(maxlen=64)  # tickets (first, last]

    def put(self, item: Any) -> int:
        with self._cv:
            if self._closed:
                raise StoreError("The store is closed.")
            self._pending.append(item)
            self._queued += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="askta-question-log",
                                                daemon=True)
                self._thread.start()
            # The writer needs waking only for a first item or a full batch: while it
            # lingers over a batch, waking it at each question would only cost the GIL.
            if len(self._pending) == 1 or len(self._pending) >= self.MAX_BATCH:
                self._cv.notify_all()
            return self._queued

    def wait(self, ticket: int | None = None) -> None:
        """Wait until what was put before now (or up to `ticket`) is written; a ticket
        whose batch could not be written raises StoreError."""
        if threading.current_thread() is self._thread:
            return
        with self._cv:
            target = self._queued if ticket is None else ticket
            if self._done < target:
                self._waiting += 1
                self._cv.notify_all()
                try:
                    while self._done < target:
                        self._cv.wait()
                finally:
                    self._waiting -= 1
            if ticket is not None and any(a < ticket <= b for a, b in self._failed):
                raise StoreError("The question could not be stored: the database is not "
                                 "answering. Try again in a moment.")

    def close(self) -> None:
        self.wait()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._pending and not self._closed:
                    self._cv.wait()
                if not self._pending:
                    return
                deadline = time.monotonic() + self.LINGER_S
                while not (self._waiting or self._closed or len(self._pending) >= self.MAX_BATCH):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                batch, self._pending = self._pending, []
            written = self._write_batch(batch)
            with self._cv:
                if not written:
                    self._failed.append((self._done, self._done + len(batch)))
                self._done += len(batch)
                self._cv.notify_all()

    def _write_batch(self, batch: list[Any]) -> bool:
        for attempt in range(1, self.WRITE_ATTEMPTS + 1):
            try:
                self._write(batch)
                return True
            except Exception:
                if attempt == self.WRITE_ATTEMPTS:
                    log.exception("could not write %d logged questions; they were: %r",
                                  len(batch), [q["text"] for q, _ in batch])
                    return False
                time.sleep(self.RETRY_DELAY_S * attempt)
        return False
