"""indexer/evaluate.py: metrics on a tiny labeled file, computed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.evaluate import Outcome, calibrate, load_labeled, score
from indexer.kb import KnowledgeBaseError
from indexer.search import Thresholds


def o(
    expect: str | None,
    top: str | None,
    answered: bool,
    rank: int | None,
    s: float = 0.6,
    m: float = 0.1,
) -> Outcome:
    return Outcome("q", expect, top, top, answered, top if answered else None, s, m, rank)


def test_metrics_by_hand() -> None:
    outcomes = [
        o("a", "a", True, 1),  # right answer
        o("b", "a", True, 2),  # wrong answer, expected at rank 2
        o("c", "c", False, 1),  # right entry ranked first but routed
        o("d", "x", False, None),  # expected entry not among the hits
        o(None, "a", False, None),  # correctly routed
        o(None, "b", True, None),  # should have been routed
    ]
    r = score(outcomes)
    assert r.total == 6 and r.answerable == 4
    assert r.top1 == 0.5  # a, c of a, b, c, d
    assert r.mrr == round((1 + 0.5 + 1 + 0) / 4, 4)  # 0.625
    assert r.answered_precision == round(1 / 3, 4)  # a right; b and the null wrong
    assert r.answered_rate == 0.5
    assert r.route_accuracy == 0.5
    assert r.overall == round(2 / 6, 4)  # a and the routed null
    assert len(r.wrong) == 4


def test_load_labeled(tmp_path: Path) -> None:
    f = tmp_path / "q.yaml"
    f.write_text('- {q: "why relu", expect: why-nonlinearities}\n- {q: "hi", expect: null}\n')
    items = load_labeled(f)
    assert [(i.question, i.expect) for i in items] == [
        ("why relu", "why-nonlinearities"),
        ("hi", None),
    ]
    f.write_text("- {q: no expect}\n")
    with pytest.raises(KnowledgeBaseError, match="item 1"):
        load_labeled(f)


def test_calibrate_picks_the_middle_of_the_gap() -> None:
    outcomes = [
        o("a", "a", True, 1, s=0.70),
        o("b", "b", True, 1, s=0.60),
        o(None, "a", False, None, s=0.40),
        o(None, "b", False, None, s=0.30),
    ]
    cal = calibrate(outcomes, Thresholds())
    assert cal.overall == 1.0
    assert 0.40 < cal.score <= 0.60
    assert cal.score == pytest.approx((cal.score_range[0] + cal.score_range[1]) / 2, abs=1e-3)
