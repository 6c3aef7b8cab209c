"""indexer/overlaps.py: pairs of entries a phrasing flips between, own vector left out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.embedders import HashingEmbedder
from indexer.index import Row
from indexer.kb import KnowledgeBase
from indexer.overlaps import find_overlaps, searcher_overlaps
from indexer.schema import Entry, Status
from indexer.search import Searcher


def unit(*xs: float) -> list[float]:
    v = np.asarray(xs, dtype=np.float32)
    return list(v / np.linalg.norm(v))


def test_a_phrasing_flips_only_with_its_own_vector_left_out() -> None:
    rows = [Row("a", "question", "qa"), Row("a", "alternate", "alt-a"),
            Row("b", "question", "qb"), Row("c", "question", "qc")]
    vectors = np.array([unit(1, 0, 0), unit(0.6, 0.8, 0),  # alt-a is far from a's question...
                        unit(0.5, 0.9, 0),                  # ...and close to b
                        unit(0, 0, 1)], dtype=np.float32)
    overlaps = find_overlaps(rows, vectors, {"a": "Question A?"})
    assert [(o.a, o.b) for o in overlaps] == [("a", "b")]
    flips = {f.phrasing: f for f in overlaps[0].flips}
    assert set(flips) == {"alt-a", "qb"}  # b's only phrasing lands on a, through alt-a
    flip = flips["alt-a"]
    assert (flip.entry_id, flip.nearest) == ("a", "b")
    assert flips["qb"].own_score == -1.0  # b has no other vector
    assert flip.nearest_score > flip.own_score  # its own vector (1.0) did not count
    assert flip.own_score == pytest.approx(0.6, abs=1e-5)
    assert overlaps[0].a_question == "Question A?" and overlaps[0].b_question == "qb"
    data = overlaps[0].to_dict()
    assert data["a"] == {"id": "a", "question": "Question A?"}
    assert data["flips"][0] == {"entry_id": "b", "phrasing": "qb", "nearest": "a",
                                "nearest_score": 0.9907, "own_score": -1.0}  # the worst first
    # c is alone: not part of any pair
    assert all("c" not in (o.a, o.b) for o in overlaps)


def test_far_neighbours_and_unrelated_pairs_are_left_out() -> None:
    rows = [Row("a", "question", "qa"), Row("b", "question", "qb")]
    vectors = np.array([unit(1, 0.2), unit(0.2, 1)], dtype=np.float32)  # cosine 0.38
    assert find_overlaps(rows, vectors) == []  # no other vector for a, but b is not close
    assert [o.b for o in find_overlaps(rows, vectors, min_score=0.3)] == ["b"]
    assert find_overlaps(rows, vectors, involving={"z"}, min_score=0.3) == []


def test_drafts_against_a_searcher(kb_dir: Path) -> None:
    kb = KnowledgeBase.load(kb_dir)
    searcher = Searcher.open(kb, HashingEmbedder(), None)
    known = kb.get("why-nonlinearities")
    twin = Entry(id="imported-twin", question=known.question, answer=known.answer,
                 status=Status.draft)
    unrelated = Entry(id="imported-other", question="Where is the exam room on Friday?",
                      answer="Room 101, at nine.", status=Status.draft)
    overlaps = searcher_overlaps(searcher, [twin, unrelated])
    assert overlaps and all("imported-twin" in (o.a, o.b) for o in overlaps)
    twin_pair = next(o for o in overlaps if "why-nonlinearities" in (o.a, o.b))
    assert any(f.phrasing == known.question and f.entry_id == "imported-twin"
               for f in twin_pair.flips)  # the draft's question lands on the existing entry
    assert "imported-twin" not in kb.entries  # nothing was written or indexed
    assert "imported-twin" not in searcher.index.entry_ids
