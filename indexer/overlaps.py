"""Confusable entries: pairs of entries a student's wording can flip between.

Each phrasing of an entry (its question and every alternate) is scored against
every entry, an entry's score being its best vector, as the search ranks entries
before its BM25 bonus; the phrasing's own vector is left out, so it stands for a
new student's wording of the same thing. When another entry then comes out on
top, the phrasing "flips" to it, and the two entries are close enough to be
confused: an instructor can sharpen them (a more specific question, an alternate
moved, a pointer from one answer to the other). `askta check --overlaps`, the
panel on /admin/stats and `askta import` all report `find_overlaps`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from indexer.index import Row
from indexer.schema import Entry
from indexer.search import Searcher, entry_texts

PHRASING_KINDS = ("question", "alternate")
# A phrasing flips only to an entry that scores at least this: below it the two are
# not close, even when the phrasing's own entry has nothing else near it (an entry
# with no alternates and no answer). On the bundled KB with the bundled model, 0.4
# lists 14 pairs (21 phrasings), 0.5 lists 13 (19), 0.6 lists 7 (12); the pairs
# between 0.5 and 0.6 are real neighbours (minibatch noise vs SGD's limitations).
MIN_SCORE = 0.5
CHUNK = 512  # phrasings scored at once: bounds the (phrasings x vectors) matrix


@dataclass(frozen=True)
class Flip:
    """A phrasing of `entry_id` that lands on `nearest` when its own vector is left out."""

    entry_id: str
    phrasing: str
    nearest: str
    nearest_score: float  # the entry it lands on
    own_score: float  # its own entry, from the entry's other vectors (-1.0: none left)


@dataclass
class Overlap:
    """Two entries close enough to be confused, and the phrasings that flip between them."""

    a: str
    b: str
    a_question: str
    b_question: str
    score: float  # the highest score any phrasing flipped with
    flips: list[Flip] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready, scores rounded."""
        return {
            "a": {"id": self.a, "question": self.a_question},
            "b": {"id": self.b, "question": self.b_question},
            "score": round(self.score, 4),
            "flips": [{**asdict(f), "nearest_score": round(f.nearest_score, 4),
                       "own_score": round(f.own_score, 4)} for f in self.flips],
        }


def find_overlaps(
    rows: Sequence[Row],
    vectors: np.ndarray,
    questions: Mapping[str, str] | None = None,
    involving: Collection[str] | None = None,
    min_score: float = MIN_SCORE,
) -> list[Overlap]:
    """The confusable pairs among the entries these rows belong to, most flips first.

    `rows[i]` is what `vectors[i]` (unit length) stands for. With `involving`, only pairs
    with at least one of those entries (new drafts against an existing KB).
    """
    if len(rows) != len(vectors):
        raise ValueError("one row per vector")
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    of_entry: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        of_entry.setdefault(r.entry_id, []).append(i)
    phrasings = [i for i, r in enumerate(rows) if r.kind in PHRASING_KINDS]
    flips: dict[tuple[str, str], list[Flip]] = {}
    for at in range(0, len(phrasings), CHUNK):
        chunk = np.asarray(phrasings[at:at + CHUNK], dtype=np.int64)
        # Vectors are unit length, so the inner product is the cosine similarity. The
        # nearest entry is the one with the best vector once the phrasing's own is out.
        sims = vectors[chunk] @ vectors.T
        sims[np.arange(len(chunk)), chunk] = -np.inf
        best = sims.argmax(axis=1)
        for n, i in enumerate(chunk.tolist()):
            entry_id, nearest = rows[i].entry_id, rows[int(best[n])].entry_id
            score = float(sims[n, best[n]])
            if nearest == entry_id or score < min_score:
                continue
            others = [j for j in of_entry[entry_id] if j != i]
            own = float(sims[n, others].max()) if others else -1.0
            flip = Flip(entry_id, rows[i].text, nearest, score, own)
            a, b = sorted((entry_id, nearest))
            flips.setdefault((a, b), []).append(flip)
    titles = dict(questions or {})
    for r in rows:
        if r.kind == "question":
            titles.setdefault(r.entry_id, r.text)
    wanted = set(involving) if involving is not None else None
    found = [
        Overlap(a, b, titles.get(a, a), titles.get(b, b),
                max(f.nearest_score for f in fs),
                sorted(fs, key=lambda f: f.own_score - f.nearest_score))
        for (a, b), fs in flips.items()
        if wanted is None or a in wanted or b in wanted
    ]
    found.sort(key=lambda o: (-len(o.flips), -o.score, o.a, o.b))
    return found


def searcher_overlaps(searcher: Searcher, drafts: Sequence[Entry] = ()) -> list[Overlap]:
    """The confusable pairs of a searcher's index; with `drafts`, those involving a draft.

    The index's vectors are used as they are (no model call), and only the drafts are
    embedded: they join the indexed entries as if they were published.
    """
    rows, vectors = searcher.vectors()
    questions = {e.id: e.question for e in searcher.kb.entries.values()}
    if not drafts:
        return find_overlaps(rows, vectors, questions)
    ids = {d.id for d in drafts}
    keep = [i for i, r in enumerate(rows) if r.entry_id not in ids]
    draft_rows = [row for d in drafts for row in entry_texts(d)]
    draft_vectors = searcher.embed([r.text for r in draft_rows])
    questions.update({d.id: d.question for d in drafts})
    return find_overlaps([rows[i] for i in keep] + draft_rows,
                         np.vstack([vectors[keep], draft_vectors]), questions, involving=ids)
