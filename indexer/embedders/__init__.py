"""Embedders turn texts into L2-normalized float32 vectors.

- `base`: the `Embedder` protocol, `EmbedderError`, `normalize`
- `hashing`: `HashingEmbedder`, the small deterministic fake for tests
- `sentence_transformer`: `SentenceTransformerEmbedder` (PyTorch), `bundled_model_path`
- `onnx_runtime`: `OnnxEmbedder`, the same model traced to ONNX and run by ONNX Runtime
- `batching`: `BatchingEmbedder`, concurrent single questions share one model call
- `factory`: `load_embedder`, which picks among them

Importing this package loads neither torch, sentence-transformers nor onnxruntime:
each is imported when a model is loaded or run.
"""

from indexer.embedders.base import Embedder, EmbedderError, normalize
from indexer.embedders.batching import BatchingEmbedder
from indexer.embedders.factory import RUNTIMES, load_embedder
from indexer.embedders.hashing import HashingEmbedder
from indexer.embedders.onnx_runtime import OnnxEmbedder
from indexer.embedders.sentence_transformer import (
    SentenceTransformerEmbedder,
    bundled_model_path,
)

__all__ = [
    "RUNTIMES",
    "BatchingEmbedder",
    "Embedder",
    "EmbedderError",
    "HashingEmbedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "bundled_model_path",
    "load_embedder",
    "normalize",
]
