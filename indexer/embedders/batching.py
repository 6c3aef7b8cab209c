"""Single questions that arrive together share one model call."""

from __future__ import annotations

import threading

import numpy as np

from indexer.embedders.base import Embedder


class BatchingEmbedder:
    """Encodes single questions that arrive at the same time in one batch.

    While one batch is being encoded, questions from other threads wait and are
    encoded together next: one query alone pays nothing extra, and under load a
    model call serves many requests.
    """

    def __init__(self, inner: Embedder, max_batch: int = 64):
        self.inner, self.max_batch = inner, max_batch
        self.name, self.dimension = inner.name, inner.dimension
        self._cv = threading.Condition()
        self._pending: list[_Slot] = []
        self._busy = False

    def embed(self, texts: list[str]) -> np.ndarray:
        """Encode texts; a single text may share a model call with concurrent ones."""
        if len(texts) != 1:
            return self.inner.embed(texts)
        slot = _Slot(texts[0])
        with self._cv:
            self._pending.append(slot)
            while not slot.done:
                if self._busy:
                    self._cv.wait()
                    continue
                self._busy = True
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                self._cv.release()
                try:
                    vectors = self.inner.embed([s.text for s in batch])
                    for s, v in zip(batch, vectors, strict=True):
                        s.vector = v
                except BaseException as e:
                    for s in batch:
                        s.error = e
                finally:
                    self._cv.acquire()
                    self._busy = False
                    for s in batch:
                        s.done = True
                    self._cv.notify_all()
        if slot.error is not None:
            raise slot.error
        assert slot.vector is not None
        return slot.vector.reshape(1, -1)


class _Slot:
    __slots__ = ("text", "vector", "error", "done")

    def __init__(self, text: str):
        self.text = text
        self.vector: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = False
