"""From a question to an answer-or-route decision.

One encode, one FAISS search, a score per entry (the best of its vectors,
plus a saturating BM25 bonus), then the decision: answer when the best entry
is both close enough and clearly ahead of the runner-up; otherwise route the
question to the TAs. With a confidence model for the embedder
(indexer/decision.py), each candidate also gets a calibrated probability: it
orders the closest answers, picks the near miss of a routed question, and, past
its gate, routes an answer the rule would give when that answer is unlikely.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.decision import Candidate, DecisionModel, features
from indexer.embedders import Embedder
from indexer.index import IndexMismatch, Row, VectorIndex
from indexer.kb import KnowledgeBase, entry_hash, folder_lock
from indexer.lexical import LexicalIndex
from indexer.schema import Entry, Status

log = logging.getLogger("askta.search")


@dataclass(frozen=True)
class Thresholds:
    """The answer-or-route decision, calibrated with `askta eval` on the dev set.

    These numbers are the one place the decision is tuned; README "Retrieval
    quality" records the run that chose them.
    """

    score: float = 0.63  # answer only when the best entry scores at least this...
    margin: float = 0.05  # ...and leads the runner-up by at least this,
    confident: float = 0.90  # unless it scores this high, which needs no margin.
    suggest: float = 0.30  # entries above this are offered as "did you mean"
    near: float = 0.55  # a routed best entry above this is offered as a near miss
    answer_weight: float = 1.0  # weight of answer-text vectors against question vectors
    lexical_weight: float = 0.4  # BM25 adds up to this much (indexer/lexical.py)...
    lexical_saturation: float = 5.0  # ...reaching half of it at this BM25 score

    def decide(self, score: float, margin: float) -> bool:
        """Answer (True) or route to the TAs (False)."""
        return score >= self.score and (margin >= self.margin or score >= self.confident)

    def replace(self, **changes: float) -> Thresholds:
        return dataclasses.replace(self, **changes)


# A runner-up this close to the answer's score is offered as "did you mean".
CLOSE_RUNNER_UP = 0.15


@dataclass(frozen=True)
class Hit:
    """One candidate entry and its score."""

    entry_id: str
    question: str
    score: float
    confidence: float | None = None  # calibrated P(right answer), with a decision model

    def to_dict(self) -> dict[str, object]:
        return {"id": self.entry_id, "question": self.question, "score": round(self.score, 4)}


@dataclass
class SearchResult:
    """The decision for one question, with the evidence behind it."""

    query: str
    answered: bool
    entry: Entry | None
    score: float
    margin: float
    hits: list[Hit] = field(default_factory=list)
    reason: str = ""
    pending_entry: str | None = None  # an unanswered entry the question matches
    top_id: str | None = None  # the best entry of any status, before the decision
    vector: np.ndarray | None = field(default=None, repr=False)  # the encoded question
    confidence: float | None = None  # calibrated P(the top entry is right), with a model
    near_miss: Hit | None = None  # routed, but the best entry is close: "This may answer it"

    @property
    def suggestions(self) -> list[Hit]:
        """Entries to offer besides the answer ("did you mean ...").

        With an answer, only runners-up close to it: the match is then not
        certain. Without one, every candidate above the suggestion threshold.
        """
        if self.entry is None:
            return list(self.hits)
        return [
            h
            for h in self.hits
            if h.entry_id != self.entry.id and h.score >= self.score - CLOSE_RUNNER_UP
        ]


_SPACE = re.compile(r"\s+")
_CODE = re.compile(r"```.*?```", re.S)


# Bump when entry_texts changes: saved indexes built the old way are then rebuilt.
TEXTS_VERSION = 2


def index_identity(embedder: Embedder) -> str:
    """What produced an index's vectors: the model and the recipe of texts per entry."""
    return f"{embedder.name}; texts v{TEXTS_VERSION}"


def entry_texts(entry: Entry) -> list[Row]:
    """The texts that represent an entry in the index."""
    rows = [Row(entry.id, "question", entry.question)]
    rows += [Row(entry.id, "alternate", q) for q in entry.alternate_questions]
    if entry.answer.strip():
        prose = _SPACE.sub(" ", _CODE.sub(" ", entry.answer)).strip()
        # The whole answer (MiniLM reads its first 256 tokens), each later paragraph, and
        # each sentence of some length: a student's wording often echoes one sentence.
        # Sentences lifted held-out top-1 from 0.833 to 0.853 (askta eval --leave-one-out).
        paragraphs = [p for p in re.split(r"\n\s*\n", _CODE.sub("\n\n", entry.answer)) if p.strip()]
        rows.append(Row(entry.id, "answer", prose[:1000]))
        for p in paragraphs[1:4]:
            rows.append(Row(entry.id, "answer", _SPACE.sub(" ", p).strip()[:600]))
        sentences = re.split(r"(?<=[.!?])\s+", prose)
        for sent in sentences[:12]:
            if len(sent) > 40:
                rows.append(Row(entry.id, "answer", sent[:400]))
    return rows


@contextlib.contextmanager
def _index_lock(index_dir: Path | None) -> Iterator[None]:
    """The index folder's lock, across processes (none for an index kept in memory)."""
    if index_dir is None:
        yield
        return
    index_dir.mkdir(parents=True, exist_ok=True)
    with folder_lock(index_dir):
        yield


def _indexed(entry: Entry) -> bool:
    """Published entries are answers; unanswered ones are indexed to recognise their askers."""
    return entry.answerable or entry.status == Status.unanswered


class Searcher:
    """Answers questions from a knowledge base; keeps its index in step with the KB.

    The KB swaps in a new immutable `entries` mapping on every write; each operation
    here reads `self.kb.entries` once and works on that snapshot.
    """

    def __init__(
        self,
        kb: KnowledgeBase,
        embedder: Embedder,
        index: VectorIndex,
        thresholds: Thresholds | None = None,
        index_dir: Path | None = None,
        decision: DecisionModel | None = None,
    ):
        self.kb, self.embedder, self.index = kb, embedder, index
        self.thresholds = thresholds or Thresholds()
        self.decision = decision  # None: the score and margin rule of `thresholds`
        self.index_dir = index_dir
        self.lexical = LexicalIndex()
        self.stats: dict[str, int] = {}  # what the last sync did
        # Searches take _lock, and writers only while they change the index in memory:
        # embedding an entry and saving the index happen outside it, so questions are
        # answered meanwhile. _write_lock keeps writers one at a time.
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()

    # --- building --------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        kb: KnowledgeBase,
        embedder: Embedder,
        index_dir: Path | None = None,
        thresholds: Thresholds | None = None,
        progress: Callable[[int, int], None] | None = None,
        decision: DecisionModel | None = None,
    ) -> Searcher:
        """Load the saved index and bring it up to date with the KB, re-embedding what changed.

        Under the index folder's lock: web processes sharing a data dir start one after
        another here, so only the first builds and saves, and the others load its work."""
        with _index_lock(index_dir):
            return cls._open(kb, embedder, index_dir, thresholds, progress, decision)

    @classmethod
    def _open(
        cls,
        kb: KnowledgeBase,
        embedder: Embedder,
        index_dir: Path | None,
        thresholds: Thresholds | None,
        progress: Callable[[int, int], None] | None,
        decision: DecisionModel | None,
    ) -> Searcher:
        index: VectorIndex | None = None
        if index_dir is not None and (index_dir / "manifest.json").exists():
            try:
                index = VectorIndex.load(
                    index_dir, model=index_identity(embedder), dimension=embedder.dimension
                )
            except IndexMismatch as e:
                log.warning("rebuilding the index: %s", e)
        searcher = cls(
            kb,
            embedder,
            index or VectorIndex(embedder.dimension, index_identity(embedder)),
            thresholds,
            index_dir,
            decision,
        )
        searcher.stats = searcher.sync(progress)
        return searcher

    def sync(self, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        """Update the index to match the KB; count the entries added, changed and removed."""
        with self._write_lock, self._lock:
            entries = self.kb.entries  # one snapshot for the whole sync
            wanted = {e.id: e for e in entries.values() if _indexed(e)}
            stale = [i for i in self.index.entry_ids if i not in wanted]
            todo = [
                e for e in wanted.values() if self.index.entry_hashes.get(e.id) != entry_hash(e)
            ]
            added = sum(1 for e in todo if e.id not in self.index.entry_ids)
            for entry_id in stale:
                self.index.remove(entry_id)
                self.lexical.remove(entry_id)
            for entry in wanted.values():
                self.lexical.set(entry)
            self.lexical.refresh()
            self._embed_entries(todo, progress)
            optimized = self.index.optimize()
            if (todo or stale or optimized or not self._saved()) and self.index_dir is not None:
                self.index.save(self.index_dir)
        return {
            "added": added,
            "changed": len(todo) - added,
            "removed": len(stale),
            "entries": len(self.index.entry_ids),
            "vectors": len(self.index),
        }

    def _persist(self, entry_id: str) -> None:
        """Save one entry's change: a journal record, or a new snapshot when the change
        made the index large enough to be partitioned. Called with _write_lock held:
        saving only reads the index, as searches do."""
        with self._lock:
            optimized = self.index.optimize()
        if self.index_dir is None:
            return
        with _index_lock(self.index_dir):  # other processes may save the same folder
            if optimized:
                self.index.save(self.index_dir)
            else:
                self.index.save_entry(self.index_dir, entry_id)

    def _saved(self) -> bool:
        return self.index_dir is not None and (self.index_dir / "manifest.json").exists()

    def _embed_entries(
        self,
        entries: list[Entry],
        progress: Callable[[int, int], None] | None = None,
        batch: int = 256,
    ) -> None:
        pending = deque((e, entry_texts(e)) for e in entries)
        done = 0
        while pending:
            chunk: list[tuple[Entry, list[Row]]] = []
            size = 0
            while pending and (size < batch or not chunk):
                e, rows = pending.popleft()
                chunk.append((e, rows))
                size += len(rows)
            vectors = self.embedder.embed([r.text for _, rows in chunk for r in rows])
            at = 0
            with self._lock:
                for e, rows in chunk:
                    self.index.add(e.id, rows, vectors[at : at + len(rows)], entry_hash(e))
                    at += len(rows)
            done += len(chunk)
            if progress:
                progress(done, len(entries))

    def upsert(self, entry: Entry, *, persist: bool = True) -> None:
        """Re-embed one entry after it was written (or drop it if it may not be indexed).

        What is indexed is the KB's version of the entry when the upsert runs, not
        necessarily `entry`: two saves of one entry can reach here in the other order, and
        an entry deleted meanwhile is dropped, so the index ends in step with the KB.
        `persist=False` changes memory only: for a change another process wrote, and
        saved to the index folder, itself.
        """
        with self._write_lock:
            current = self.kb.entries.get(entry.id)
            if current is None or not _indexed(current):  # deleted meanwhile, or not served
                self._drop(entry.id, persist)
                return
            if self.index.entry_hashes.get(current.id) == entry_hash(current) and not persist:
                return  # already indexed as it is (this process wrote it, or saw it before)
            self._embed_entries([current])
            self.lexical.set(current)
            self.lexical.refresh()
            if persist:
                self._persist(current.id)

    def remove(self, entry_id: str, *, persist: bool = True) -> None:
        """Drop one entry from the index (`persist` as in upsert)."""
        with self._write_lock:
            self._drop(entry_id, persist)

    def _drop(self, entry_id: str, persist: bool = True) -> None:
        """Remove one entry's vectors and words, and save that; called with _write_lock held."""
        with self._lock:
            self.index.remove(entry_id)
        self.lexical.remove(entry_id)
        self.lexical.refresh()
        if persist:
            self._persist(entry_id)

    def vectors(self) -> tuple[list[Row], np.ndarray]:
        """A copy of every indexed vector with its row (indexer/overlaps.py reads them)."""
        with self._lock:
            return self.index.vectors()

    # --- searching -------------------------------------------------------------------------
    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors for texts (used to group similar questions)."""
        return self.embedder.embed(texts)

    def search(self, query: str, k: int = 5) -> SearchResult:
        """Score every entry against the question and decide: answer, or route to the TAs."""
        text = _SPACE.sub(" ", query).strip()
        if not text:
            return SearchResult(query, False, None, 0.0, 0.0, [], "the question is empty")
        vector = self.embedder.embed([text])[0]
        result = self.search_vector(text, vector, k)
        result.vector = vector
        return result

    def candidates(self, text: str, vector: np.ndarray,
                   entries: Mapping[str, Entry] | None = None) -> list[Candidate]:
        """Every entry among the question's top vector hits, best fused score first."""
        t = self.thresholds
        entries = self.kb.entries if entries is None else entries
        with self._lock:
            found = self.index.hits_per_entry(vector, k=64)
        lexical = self.lexical.scores(text) if t.lexical_weight else {}
        out: list[Candidate] = []
        for entry_id, hits in found.items():
            if entry_id not in entries:  # deleted meanwhile
                continue
            score = hits.best * (t.answer_weight if hits.row.kind == "answer" else 1.0)
            bm25 = lexical.get(entry_id, 0.0)
            score += t.lexical_weight * bm25 / (bm25 + t.lexical_saturation)
            out.append(Candidate(entry_id, score, hits, bm25))
        out.sort(key=lambda c: (c.score, c.entry_id), reverse=True)
        return out

    def search_vector(self, text: str, vector: np.ndarray, k: int = 5) -> SearchResult:
        """The decision for an already-encoded question."""
        t = self.thresholds
        entries = self.kb.entries  # one snapshot: an entry deleted meanwhile is skipped
        candidates = self.candidates(text, vector, entries)
        if not candidates:
            return SearchResult(text, False, None, 0.0, 0.0, [], "the knowledge base is empty")
        confidence = self._confidence(candidates, text)
        ranked = [(c.score, entries[c.entry_id], p)
                  for c, p in zip(candidates, confidence, strict=True)]
        deciding = self.decision is not None and self.decision.decides
        if deciding:  # most likely first (a stable sort keeps score order)
            ranked.sort(key=lambda r: -(r[2] or 0.0))
        answerable = [(s, e, p) for s, e, p in ranked if e.answerable]
        hits = [Hit(e.id, e.question, s, p) for s, e, p in answerable if s >= t.suggest]
        if self.decision is not None:  # the closest answers, most likely first
            hits.sort(key=lambda h: -(h.confidence or 0.0))
        hits = hits[:k]
        top_score, top, top_p = ranked[0]
        runner_up = max((r[0] for r in ranked[1:]), default=0.0)
        margin = top_score - runner_up
        # The near miss: the most likely answer (with a model, the first closest answer).
        near = Hit(top.id, top.question, top_score, top_p) if top.answerable else None
        if near is not None and self.decision is not None and hits:
            near = hits[0]

        def route(reason: str, pending: str | None = None) -> SearchResult:
            close = near if near is not None and self._near(near.score, near.confidence) \
                else None
            return SearchResult(text, False, None, top_score, margin, hits, reason, pending,
                                top.id, confidence=top_p, near_miss=close)

        if not top.answerable:
            return route(
                f"closest to {top.id!r}, which is still waiting for an answer",
                top.id if top_score >= t.score else None,
            )
        second = f"{ranked[1][1].id!r} ({ranked[1][0]:.2f})" if len(ranked) > 1 else "none"
        if deciding and self.decision is not None and top_p is not None:
            if top_p < self.decision.answer_at:
                return route(
                    f"best match {top.id!r} scored {top_score:.2f} (confidence {top_p:.2f}, "
                    f"below {self.decision.answer_at:.2f}); runner-up {second}"
                )
        elif not t.decide(top_score, margin):
            if top_score < t.score:
                return route(
                    f"best match {top.id!r} scored {top_score:.2f}, below {t.score:.2f}; "
                    f"runner-up {second}"
                )
            return route(f"{top.id!r} ({top_score:.2f}) and {second} are too close to call")
        elif self.decision is not None and top_p is not None and top_p < self.decision.gate_at:
            return route(f"{top.id!r} scored {top_score:.2f}, {margin:.2f} ahead of {second}, "
                         f"but its confidence {top_p:.2f} is below {self.decision.gate_at:.2f}")
        reason = f"{top.id!r} scored {top_score:.2f}, {margin:.2f} ahead of the runner-up {second}"
        if top_p is not None:
            reason += f", confidence {top_p:.2f}"
        return SearchResult(text, True, top, top_score, margin, hits, reason, None, top.id,
                            confidence=top_p)

    def _confidence(self, candidates: list[Candidate], text: str) -> list[float | None]:
        """The calibrated probability of each candidate (None without a decision model)."""
        if self.decision is None:
            return [None] * len(candidates)
        words = len(text.split())
        return [float(p) for p in self.decision.probability(features(candidates, words))]

    def _near(self, score: float, confidence: float | None) -> bool:
        """Close to the bar but under it: worth offering as "This may answer it"."""
        if self.decision is not None and confidence is not None:
            return confidence >= self.decision.near_at
        return score >= self.thresholds.near
