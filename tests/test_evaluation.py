"""server/evaluation.py: the held-out week, its labels, folds and the cross-fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.decision import FEATURES
from indexer.evaluate import load_labeled
from server.evaluation import (
    DATA,
    FRESH_QUESTIONS,
    GATE_SET,
    GATE_SHARE,
    NULL_QUESTIONS,
    PAGES,
    Asked,
    Decided,
    Figures,
    FreshReport,
    _gate,
    cross_fit,
    fold_of,
    gate_holds,
    import_pages,
    report,
)

REPO = Path(__file__).resolve().parent.parent


def test_the_labels_are_the_ids_the_importer_gives(tmp_path: Path) -> None:
    drafts = import_pages(REPO / "kb", tmp_path / "kb", [DATA / p for p in PAGES])
    ids = {d.id for d in drafts}
    assert len(drafts) >= 19 and all(d.status.value == "draft" and d.answer for d in drafts)
    fresh = load_labeled(DATA / FRESH_QUESTIONS)
    nulls = load_labeled(DATA / NULL_QUESTIONS)
    assert len(fresh) >= 60 and len(nulls) >= 60
    assert {i.expect for i in fresh} == ids  # every imported entry has paraphrases
    assert all(i.expect is None for i in nulls)
    assert not {i.question for i in fresh} & {i.question for i in nulls}


def test_folds_are_stable_and_keep_a_group_together() -> None:
    assert fold_of("why-nonlinearities") == fold_of("why-nonlinearities")
    folds = {fold_of(f"group-{i}") for i in range(100)}
    assert folds == set(range(5))


def synthetic(n: int, seed: int) -> list[Asked]:
    """Questions whose right candidate has a higher first feature, as a score would."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        answerable = i % 3 != 0
        x = rng.normal(0, 0.1, size=(3, len(FEATURES)))
        x[0, 0] += 1.0 if answerable else 0.2
        out.append(Asked("fresh", f"q{i}", "e0" if answerable else None, f"g{i}",
                         ["e0", "e1", "e2"], [True, True, True], x, answerable, "e0"))
    return out


def test_cross_fit_decides_each_fold_without_its_own_labels() -> None:
    asked = synthetic(150, 0)
    oof, model = cross_fit(asked, "m", target=0.95)
    assert len(oof) == len(asked) and model.model == "m"
    result = report(asked, oof, model)
    fitted = result.fitted["fresh"]
    assert fitted.answered_precision >= 0.9 and fitted.route_accuracy >= 0.9
    # relabelling one fold's questions changes no decision in that fold
    k = fold_of("g1")
    flipped = [Asked(a.dataset, a.question, None if fold_of(a.group) == k else a.expect,
                     a.group, a.ids, a.answerable, a.x, a.baseline_answered, a.baseline_top)
               for a in asked]
    again, _ = cross_fit(flipped, "m", target=0.95)
    same = [i for i, a in enumerate(asked) if fold_of(a.group) == k]
    assert [oof[i].answered for i in same] == [again[i].answered for i in same]
    assert [oof[i].p for i in same] == pytest.approx([again[i].p for i in same])


def test_the_gate_sits_under_every_right_answer_of_the_rule_on_the_bundled_kb() -> None:
    x = np.zeros((3, len(FEATURES)))

    def asked(dataset: str, expect: str | None, top: str) -> Asked:
        return Asked(dataset, "q", expect, "g", [top, "other", "third"], [True] * 3, x,
                     True, top)

    def decided(p_first: float) -> Decided:
        return Decided(False, None, None, p_first, False, p_first)

    pairs = [(asked(GATE_SET, "a", "a"), decided(0.4)),  # right answers of the rule
             (asked(GATE_SET, "b", "b"), decided(0.3)),
             (asked(GATE_SET, None, "c"), decided(0.05)),  # a wrong one: no bearing
             (asked("fresh", "d", "d"), decided(0.01))]  # another set: no bearing
    gate = _gate([a for a, _ in pairs], [d for _, d in pairs])
    assert gate == pytest.approx(GATE_SHARE * 0.3) and 0 < gate < 0.3


def test_the_gate_is_kept_only_if_it_costs_the_bundled_kb_nothing() -> None:
    def fig(precision: float, rate: float) -> Figures:
        return Figures(80, 68, 0.97, precision, rate, 1.0, 0.9)

    result = FreshReport(baseline={GATE_SET: fig(1.0, 0.825), "fresh": fig(0.77, 0.51)},
                         gated={GATE_SET: fig(1.0, 0.825), "fresh": fig(0.79, 0.47)})
    assert gate_holds(result)
    result.gated[GATE_SET] = fig(1.0, 0.8125)  # one right answer of the bundled KB routed
    assert not gate_holds(result)
    result.gated[GATE_SET] = fig(1.0, 0.825)
    result.gated["fresh"] = fig(0.75, 0.47)  # fewer answers, and more of them wrong
    assert not gate_holds(result)
