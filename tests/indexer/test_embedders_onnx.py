"""The bundled model run by ONNX Runtime: the same vectors as PyTorch, or a clear refusal."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import indexer.embedders.onnx_runtime as onnx_runtime
from indexer.embedders import (
    BatchingEmbedder,
    EmbedderError,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    load_embedder,
)
from indexer.evaluate import evaluate, load_labeled
from indexer.kb import KnowledgeBase
from indexer.search import Searcher

REPO = Path(__file__).resolve().parents[2]
DEV = REPO.parent / "shared" / "data" / "dev_questions.yaml"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def onnx(real_embedder: SentenceTransformerEmbedder) -> OnnxEmbedder:
    return OnnxEmbedder(real_embedder)


def test_same_vectors_as_pytorch(onnx: OnnxEmbedder,
                                 real_embedder: SentenceTransformerEmbedder) -> None:
    texts = [f"question {i}: " + "why do we need relu " * (i % 7) for i in range(70)]
    texts += ["", "é ü — naïve façade ∇·x", "x " * 1000]
    got, expected = onnx.embed(texts), real_embedder.embed(texts)
    assert got.shape == expected.shape == (73, 384) and got.dtype == np.float32
    assert float((got * expected).sum(axis=1).min()) > 0.9999  # also: rows kept in order
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    one = onnx.embed(["why do we need relu"])
    assert one.shape == (1, 384) and float(one[0] @ expected[0]) < 0.99  # not a constant
    assert onnx.embed([]).shape == (0, 384)
    assert (onnx.name, onnx.dimension) == (real_embedder.name, real_embedder.dimension)


def test_dev_set_targets_on_onnx_runtime(onnx: OnnxEmbedder,
                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    searcher = Searcher.open(KnowledgeBase.load(REPO / "kb"), onnx,
                             tmp_path_factory.mktemp("index"))
    report = evaluate(searcher, load_labeled(DEV))
    assert report.top1 >= 0.95 and report.overall >= 0.93
    assert report.answered_precision >= 0.97


def test_vectors_that_differ_are_refused(real_embedder: SentenceTransformerEmbedder,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(onnx_runtime, "MAX_DIFFERENCE", -1.0)
    with pytest.raises(EmbedderError, match="differ from PyTorch"):
        OnnxEmbedder(real_embedder)


def test_auto_falls_back_to_pytorch_and_says_why(monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    def untraceable(reference: SentenceTransformerEmbedder) -> tuple[bytes, list[str]]:
        raise EmbedderError("the model could not be traced to ONNX: no")

    monkeypatch.setattr(onnx_runtime, "_trace", untraceable)
    with caplog.at_level(logging.WARNING):
        embedder = load_embedder("", "auto")
    assert isinstance(embedder, BatchingEmbedder)
    assert isinstance(embedder.inner, SentenceTransformerEmbedder)
    assert "encoding with PyTorch: the model could not be traced" in caplog.text
    with pytest.raises(EmbedderError, match="could not be traced"):
        load_embedder("", "onnx")


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(load_embedder("", "torch").inner,  # type: ignore[attr-defined]
                      SentenceTransformerEmbedder)
    with pytest.raises(EmbedderError, match="runtime must be one of auto, onnx, torch"):
        load_embedder("", "tensorrt")
    # The fake embedder has no runtime to choose.
    assert load_embedder("hashing-64", "onnx").dimension == 64


def test_long_texts_go_in_small_batches(onnx: OnnxEmbedder,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each model call stays within the token budget; short texts still share calls."""
    calls: list[tuple[int, int]] = []
    run = onnx._run

    def spy(encodings: list) -> np.ndarray:
        calls.append((len(encodings), max(len(e.ids) for e in encodings)))
        return run(encodings)

    monkeypatch.setattr(onnx, "_run", spy)
    texts = ["word " * 400] * 40 + [f"short question {i}" for i in range(40)]
    vectors = onnx.embed(texts)
    assert vectors.shape == (80, 384)
    assert all(n * width <= onnx_runtime.MAX_BATCH_TOKENS for n, width in calls)
    assert sum(n for n, _ in calls) == 80
    assert max(n for n, _ in calls) == onnx.batch_size  # the short ones, 32 at a time
    assert np.allclose(vectors[0], vectors[39], atol=1e-5)
