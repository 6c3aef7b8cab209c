"""The real path: the bundled MiniLM model, real FAISS, the bundled knowledge base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indexer.embedders import SentenceTransformerEmbedder, bundled_model_path
from indexer.evaluate import evaluate, load_labeled
from indexer.kb import KnowledgeBase
from indexer.search import Searcher

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "data" / "dev_questions.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searcher(
    real_embedder: SentenceTransformerEmbedder, tmp_path_factory: pytest.TempPathFactory
) -> Searcher:
    return Searcher.open(
        KnowledgeBase.load(REPO / "kb"), real_embedder, tmp_path_factory.mktemp("index")
    )


def test_model_ships_in_the_package(real_embedder: SentenceTransformerEmbedder) -> None:
    assert (bundled_model_path() / "model.safetensors").is_file()
    vectors = real_embedder.embed(["why do we need relu", "what does ReLU do"])
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert float(vectors[0] @ vectors[1]) > 0.5


def test_seed_questions_find_their_entries(searcher: Searcher) -> None:
    for question, expected in [
        ("why do we need relu", "why-nonlinearities"),
        ("how do i see when things are due", "course-calendar"),
        ("what is param.grad in the abs example", "meanings-of-gradient"),
    ]:
        result = searcher.search(question)
        assert result.answered and result.entry and result.entry.id == expected, question


def test_off_topic_is_routed(searcher: Searcher) -> None:
    for question in ("what is the capital of italy", "asdfghjkl"):
        result = searcher.search(question)
        assert not result.answered and result.entry is None


def test_unanswered_seed_entries_never_served(searcher: Searcher) -> None:
    result = searcher.search("What are limitations of SGD?")
    assert not result.answered and result.pending_entry == "sgd-limitations"


def test_dev_set_targets(searcher: Searcher) -> None:
    report = evaluate(searcher, load_labeled(DEV))
    assert report.top1 >= 0.95
    assert report.overall >= 0.93
    assert report.answered_precision >= 0.97


def test_the_shipped_confidence_orders_the_closest_answers(
    real_embedder: SentenceTransformerEmbedder, searcher: Searcher
) -> None:
    from indexer.decision import DecisionModel

    decision = DecisionModel.for_embedder(real_embedder.name)
    assert decision is not None, "indexer/decision.json was fitted for another model"
    searcher.decision = decision
    try:
        answered = searcher.search("why do we need relu")
        loose = searcher.search("how does batch normalization work")  # minibatch-noise
    finally:
        searcher.decision = None
    assert answered.answered and answered.entry is not None
    assert answered.confidence is not None and loose.confidence is not None
    assert answered.confidence > 0.3 > loose.confidence
    confidences = [h.confidence for h in loose.hits]
    assert confidences and all(c is not None for c in confidences)
    assert confidences == sorted(confidences, reverse=True)  # type: ignore[type-var]


def test_overlaps_of_the_bundled_kb(searcher: Searcher) -> None:
    from indexer.overlaps import searcher_overlaps

    overlaps = searcher_overlaps(searcher)
    pairs = [(o.a, o.b) for o in overlaps]
    # The two entries about what backward() computes are the closest pair of the KB...
    assert pairs[0] == ("autodiff-vs-symbolic", "meanings-of-gradient")
    assert len(overlaps[0].flips) >= 3
    # ...and few of the 19 entries' 171 pairs are listed, none of them between far topics.
    assert 3 <= len(pairs) <= 20
    assert ("image-representations", "why-nonlinearities") not in pairs
    assert all(f.nearest_score >= 0.5 for o in overlaps for f in o.flips)
