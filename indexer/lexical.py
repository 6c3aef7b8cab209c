"""BM25 over whole entries (bm25s), fused with the dense score.

Exact words matter for course questions ("pad_sequence", "lstsq", "Kaiming"),
and MiniLM blurs them. Each entry is one document: its question, alternates
and answer. A BM25 score s adds weight * s / (s + saturation) to the entry's
dense score: saturating rather than normalizing per query, so an off-topic
question that shares one word with an entry gains little.
"""

from __future__ import annotations

import logging
import re
import threading

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from indexer.schema import Entry

logging.getLogger("bm25s").setLevel(logging.WARNING)

# bm25s.tokenize's defaults with stopwords="en", applied without its per-call set-up
# (one question: 5 us instead of 70).
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_STOPWORDS = frozenset(STOPWORDS_EN)


def query_tokens(text: str) -> list[str]:
    """The words of a question as the index has them: lower case, no stopwords."""
    return [t for t in _TOKEN.findall(text.lower()) if t not in _STOPWORDS]


def _document(entry: Entry) -> str:
    return " ".join([*entry.phrasings, entry.answer])


class LexicalIndex:
    """A BM25 index of entries, rebuilt after changes (tokenizing is cheap).

    Writers call `refresh` once their changes are in; the rebuild happens beside
    searches, which use the previous index until the new one is swapped in. A
    search that finds changes nobody refreshed rebuilds first.
    """

    def __init__(self) -> None:
        self._docs: dict[str, str] = {}
        self._version = 0  # bumped by each change to _docs
        self._built: tuple[int, bm25s.BM25 | None, list[str]] = (0, None, [])
        self._lock = threading.Lock()

    def set(self, entry: Entry) -> None:
        """Add or replace one entry."""
        with self._lock:
            self._docs[entry.id] = _document(entry)
            self._version += 1

    def remove(self, entry_id: str) -> None:
        """Drop one entry."""
        with self._lock:
            if self._docs.pop(entry_id, None) is not None:
                self._version += 1

    def refresh(self) -> None:
        """Rebuild the index from the current entries, if they changed since the last build."""
        with self._lock:
            if self._built[0] == self._version:
                return
            version, ids = self._version, list(self._docs)
            docs = [self._docs[i] for i in ids]
        bm25 = None
        if docs:
            bm25 = bm25s.BM25()
            bm25.index(bm25s.tokenize(docs, stopwords="en", show_progress=False),
                       show_progress=False)
        with self._lock:
            if version > self._built[0]:  # a concurrent refresh may have built a newer one
                self._built = (version, bm25, ids)

    def scores(self, query: str) -> dict[str, float]:
        """BM25 score of every entry that shares a word with the query."""
        if self._built[0] != self._version:
            self.refresh()
        _, bm25, ids = self._built
        if bm25 is None:
            return {}
        tokens = query_tokens(query)
        if not tokens:
            return {}
        raw = np.asarray(bm25.get_scores(tokens))
        return {ids[i]: float(raw[i]) for i in np.flatnonzero(raw > 0)}
