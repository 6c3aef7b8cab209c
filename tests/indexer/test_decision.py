"""The calibrated decision: features, the logistic fit, the probability cuts, the shipped model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.decision import (
    BUNDLED,
    FEATURES,
    Candidate,
    DecisionModel,
    _best_other,
    features,
    fit_logistic,
    threshold_for_precision,
)
from indexer.index import EntryHits, Row


def candidate(entry_id: str, score: float, bm25: float = 0.0, close: int = 1) -> Candidate:
    hits = EntryHits(score, Row(entry_id, "question", "q"), question=score, answer=score - 0.1,
                     close=close)
    return Candidate(entry_id, score, hits, bm25)


def test_features_give_each_candidate_its_lead_over_the_others() -> None:
    x = features([candidate("a", 0.9, bm25=3.0), candidate("b", 0.7), candidate("c", 0.5)],
                 words=4)
    assert x.shape == (3, len(FEATURES))
    margin = FEATURES.index("margin")
    assert x[:, margin] == pytest.approx([0.2, -0.2, -0.4])
    assert x[:, FEATURES.index("lexical_top")].tolist() == [1.0, 0.0, 0.0]
    assert x[0, FEATURES.index("length")] == pytest.approx(np.log1p(4))
    assert features([], 3).shape == (0, len(FEATURES))
    assert _best_other(np.array([0.4])).tolist() == [0.0]


def test_fit_logistic_separates_and_ranks() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 * rng.normal(size=400) > 0).astype(float)
    mean, scale, w, b = fit_logistic(x, y, l2=0.1)
    p = 1 / (1 + np.exp(-(((x - mean) / scale) @ w + b)))
    assert w[0] > 0 > w[1]
    assert ((p > 0.5) == (y > 0.5)).mean() > 0.9


def test_threshold_for_precision_is_the_lowest_cut_that_reaches_it() -> None:
    p = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    right = np.array([1, 1, 1, 0, 1, 0], dtype=bool)
    assert threshold_for_precision(p, right, 1.0) == 0.8
    assert threshold_for_precision(p, right, 0.8) == 0.6
    assert threshold_for_precision(p, np.zeros(6, dtype=bool), 0.5) == 1.0  # never: answer none


def test_a_model_round_trips_and_belongs_to_one_embedder(tmp_path: Path) -> None:
    model = DecisionModel("some-model", [0.0] * len(FEATURES), [1.0] * len(FEATURES),
                          [1.0] + [0.0] * (len(FEATURES) - 1), -0.5, 0.8, 0.4)
    path = tmp_path / "decision.json"
    model.save(path)
    assert DecisionModel.load(path) == model
    assert DecisionModel.for_embedder("some-model", path) == model
    assert DecisionModel.for_embedder("hashing-256", path) is None
    assert DecisionModel.for_embedder("some-model", tmp_path / "missing.json") is None
    p = model.probability(np.array([[0.5] + [0.0] * (len(FEATURES) - 1)]))
    assert p[0] == pytest.approx(0.5)


def test_the_shipped_model_is_complete() -> None:
    model = DecisionModel.load(BUNDLED)
    assert model.model.startswith("bundled:all-MiniLM-L6-v2")
    assert len(model.weights) == len(model.mean) == len(model.scale) == len(FEATURES)
    assert 0 < model.answer_at <= 1 and 0 < model.near_at <= 1
    assert {"fresh", "bundled-dev"} <= set(model.report["out_of_fold"])
