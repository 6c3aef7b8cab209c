"""The embedder for a model setting and a runtime (ONNX Runtime or PyTorch)."""

from __future__ import annotations

import logging

from indexer.embedders.base import Embedder, EmbedderError
from indexer.embedders.batching import BatchingEmbedder
from indexer.embedders.hashing import HashingEmbedder
from indexer.embedders.sentence_transformer import SentenceTransformerEmbedder

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "onnx", "torch")


def load_embedder(model: str = "", runtime: str = "auto") -> Embedder:
    """The embedder for a model setting: '' is the bundled MiniLM, 'hashing' the small fake.

    `runtime` picks what runs the model: "onnx" (ONNX Runtime, an error if it cannot
    reproduce PyTorch's vectors), "torch", or "auto" (ONNX Runtime when it can, else
    PyTorch, with a warning in the log).
    """
    if model.startswith("hashing"):
        dim = model.partition("-")[2]
        return HashingEmbedder(int(dim) if dim else 256)
    if runtime not in RUNTIMES:
        raise EmbedderError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    reference = SentenceTransformerEmbedder(model)
    embedder: Embedder = reference
    if runtime != "torch":
        from indexer.embedders.onnx_runtime import OnnxEmbedder

        try:
            embedder = OnnxEmbedder(reference)
        except EmbedderError as e:
            if runtime == "onnx":
                raise
            log.warning("encoding with PyTorch: %s", e)
    return BatchingEmbedder(embedder)
